"""A retry sent while the first call with its request_id is still running (DESIGN §3 Idempotency).

Agents resend a call when its answer is slow to come; the resend may reach the server while the first
call is still inside its transaction. It must get the first call's stored result (same arguments) or
``idempotency_conflict`` (other arguments), never run the work again against the state the first call
left behind. On PostgreSQL the two calls are held until both are inside their transactions at the task's
row lock (or one is seen waiting for a lock); SQLite runs one writer at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from app import errors
from app.db.repositories.tasks import TaskRepository
from app.services import idempotency
from tests.support.calls import cancel
from tests.support.execution import artifacts_of, complete, execute, status_moves
from tests.support.gates import hold_together
from tests.support.harness import Harness
from tests.support.snapshot import row_counts

pytestmark = pytest.mark.anyio


async def overlapping(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` at once; each one's result or tool error, in the order they finished."""
    answers: list[Any] = []

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        try:
            answers.append(await call())
        except errors.OrchestratorError as exc:
            answers.append(exc)

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(one, call)
    return answers


def assert_replayed(first: Any, retry: Any) -> None:
    """Both calls succeeded, and the retry answered exactly what the first did."""
    assert not isinstance(first, errors.OrchestratorError) and not isinstance(retry, errors.OrchestratorError), (
        first,
        retry,
    )
    assert retry.model_dump() == first.model_dump()


async def test_a_retry_of_complete_task_during_the_first_call_replays_its_result(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.session()
    task = (await harness.plan(title="Ship it")).task
    await execute(harness, task.id, "worker")
    hold_together(monkeypatch, harness.database, TaskRepository, "get_for_update", parties=2, match=task.id)

    def call() -> Awaitable[Any]:
        return complete(harness, task.id, "worker", request_id="done-1")

    first, retry = await overlapping(call, call)
    assert_replayed(first, retry)
    assert len(await artifacts_of(harness, task.id)) == 1
    assert await status_moves(harness, task.id) == [("pending", "in_progress"), ("in_progress", "completed")]
    assert (await row_counts(harness.database))["request_record"] == 1


async def test_a_retry_of_cancel_task_during_the_first_call_replays_its_result(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.session()
    task = (await harness.plan(title="Drop it")).task
    hold_together(monkeypatch, harness.database, TaskRepository, "get_for_update", parties=2, match=task.id)

    def call() -> Awaitable[Any]:
        return cancel(harness, task.id, reason="Scope cut.", request_id="cut-1")

    first, retry = await overlapping(call, call)
    assert_replayed(first, retry)
    assert first.previous_status == "pending" and first.task.status == "cancelled"
    assert await status_moves(harness, task.id) == [("pending", "cancelled")]


async def test_the_same_request_id_with_other_arguments_during_the_first_call_is_an_idempotency_conflict(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.session()
    task = (await harness.plan(title="Ship it")).task
    await execute(harness, task.id, "worker")
    hold_together(monkeypatch, harness.database, TaskRepository, "get_for_update", parties=2, match=task.id)

    async def call(summary: str) -> Any:
        with idempotency.bound_arguments({"task_id": task.id, "summary": summary, "request_id": "done-1"}):
            return await complete(harness, task.id, "worker", summary=summary, request_id="done-1")

    answers = await overlapping(lambda: call("Shipped."), lambda: call("Shipped, with notes."))
    done = [a for a in answers if not isinstance(a, errors.OrchestratorError)]
    refused = [a for a in answers if isinstance(a, errors.OrchestratorError)]
    assert len(done) == 1 and len(refused) == 1, answers
    conflict = refused[0]
    assert isinstance(conflict, errors.IdempotencyConflict), conflict
    assert (conflict.code, conflict.field, conflict.value, conflict.details["first_tool"]) == (
        "idempotency_conflict",
        "request_id",
        "done-1",
        "orchestrator_complete_task",
    )
    assert len(await artifacts_of(harness, task.id)) == 1
