"""The status machine against the full table of DESIGN §3: every (from, to) pair, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from app import errors
from app.domain import transitions
from app.domain.enums import TaskStatus

S = TaskStatus

# DESIGN §3 "Status machine", row by row: the moves each status allows (everything else is refused).
DESIGN_TABLE: dict[TaskStatus, set[TaskStatus]] = {
    S.PENDING: {S.IN_PROGRESS, S.BLOCKED, S.COMPLETED, S.CANCELLED, S.ARCHIVED},
    S.IN_PROGRESS: {S.PENDING, S.IN_PROGRESS, S.BLOCKED, S.COMPLETED, S.FAILED, S.CANCELLED},
    S.BLOCKED: {S.PENDING, S.CANCELLED, S.ARCHIVED},
    S.COMPLETED: {S.PENDING, S.ARCHIVED},
    S.FAILED: {S.PENDING, S.ARCHIVED},
    S.CANCELLED: {S.PENDING, S.ARCHIVED},
    S.ARCHIVED: set(),
}
PAIRS = list(itertools.product(TaskStatus, TaskStatus))


def test_the_table_covers_every_status() -> None:
    assert set(DESIGN_TABLE) == set(TaskStatus)
    assert set(transitions.ALLOWED) == set(TaskStatus)


@pytest.mark.parametrize(("current", "requested"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_move_is_allowed_exactly_when_the_design_table_says_so(current: TaskStatus, requested: TaskStatus) -> None:
    expected = requested in DESIGN_TABLE[current]
    assert transitions.is_allowed(current, requested) is expected
    if expected:
        transitions.check("task_0000000000000001", current, requested)
        return
    with pytest.raises(errors.InvalidTransition) as caught:
        transitions.check("task_0000000000000001", current, requested)
    error = caught.value.to_dict()
    assert error["code"] == "invalid_transition"
    assert error["field"] == "status"
    assert error["value"] == requested.value
    assert error["current"] == current.value
    assert error["requested"] == requested.value
    assert set(error["allowed"]) == {s.value for s in DESIGN_TABLE[current]}


@pytest.mark.parametrize("current", list(TaskStatus), ids=[s.value for s in TaskStatus])
def test_allowed_from_lists_the_moves_of_the_table(current: TaskStatus) -> None:
    assert set(transitions.allowed_from(current)) == DESIGN_TABLE[current]


def test_archived_is_final_and_says_so_in_the_message() -> None:
    with pytest.raises(errors.InvalidTransition) as caught:
        transitions.check("task_0000000000000001", S.ARCHIVED, S.PENDING)
    assert caught.value.allowed == []
    assert "final" in caught.value.message
