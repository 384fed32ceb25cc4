"""The status machine of DESIGN §3: which status may follow which, and nothing else.

Every write path that changes a task's status asks :func:`check` first, so the table below is the
single source of truth; a refused move raises ``invalid_transition`` naming the moves that are allowed.
Only completion completes: an edit (``orchestrator_update_task``) asks :func:`check_edit`, which refuses
the move to completed and names ``orchestrator_complete_task``.
"""

from __future__ import annotations

from app import errors
from app.domain.enums import TaskStatus

S = TaskStatus

ALLOWED: dict[TaskStatus, tuple[TaskStatus, ...]] = {
    S.PENDING: (S.IN_PROGRESS, S.BLOCKED, S.COMPLETED, S.CANCELLED, S.ARCHIVED),
    S.IN_PROGRESS: (S.PENDING, S.IN_PROGRESS, S.BLOCKED, S.COMPLETED, S.FAILED, S.CANCELLED),
    S.BLOCKED: (S.PENDING, S.CANCELLED, S.ARCHIVED),
    S.COMPLETED: (S.PENDING, S.ARCHIVED),
    S.FAILED: (S.PENDING, S.ARCHIVED),
    S.CANCELLED: (S.PENDING, S.ARCHIVED),
    S.ARCHIVED: (),
}


def allowed_from(current: TaskStatus) -> tuple[TaskStatus, ...]:
    """The statuses a task may move to from ``current``."""
    return ALLOWED[current]


def is_allowed(current: TaskStatus, requested: TaskStatus) -> bool:
    return requested in ALLOWED[current]


def check(task_id: str, current: TaskStatus, requested: TaskStatus) -> None:
    """Refuse a move the machine does not allow.

    Raises:
        invalid_transition: naming the current status, the requested one and the allowed moves.
    """
    if not is_allowed(current, requested):
        raise errors.InvalidTransition(task_id, current.value, requested.value, [s.value for s in ALLOWED[current]])


def check_edit(task_id: str, current: TaskStatus, requested: TaskStatus) -> None:
    """Refuse a move an edit may not make: anything the machine refuses, and completion at all.

    Raises:
        invalid_transition: naming the moves allowed by an edit (and, for completed, the tool that completes).
    """
    if requested == TaskStatus.COMPLETED:
        allowed = [s.value for s in ALLOWED[current] if s != TaskStatus.COMPLETED]
        raise errors.CompletionOutsideCompleteTask(task_id, current.value, allowed)
    check(task_id, current, requested)
