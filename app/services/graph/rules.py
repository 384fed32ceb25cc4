"""The rules every task write path obeys: the holder rule, readiness, and status moves with side effects.

One function per rule so update, cancel, delete, execute and complete all enforce the same thing the same
way. Callers hold the row lock (``get_for_update``) before calling any of these.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app import errors
from app.db.models import Task
from app.domain import transitions
from app.domain.clock import iso
from app.domain.enums import TaskStatus
from app.services.base import Tx
from app.services.caller import SCOPE_ADMIN


def live_holder(task: Task, now: datetime) -> str | None:
    """The actor holding a live claim on the task, or None (no claim, or the lease ran out)."""
    if task.status != TaskStatus.IN_PROGRESS or task.assigned_to is None:
        return None
    if task.lease_expires_at is not None and task.lease_expires_at <= now:
        return None
    return task.assigned_to


def require_force_allowed(tx: Tx, force: bool) -> None:
    """``force`` is an admin power.

    Raises:
        forbidden: the caller lacks the ``admin`` scope.
    """
    if force and not tx.caller.is_admin:
        raise errors.ScopeMissing(
            "force=true needs the 'admin' scope; ask an operator, or drop force.",
            scope=SCOPE_ADMIN,
            field="force",
            value=True,
        )


def ensure_not_held_by_other(tx: Tx, task: Task, *, force: bool = False) -> None:
    """Only the holder may change an in-progress task's status; admins may override with force.

    Raises:
        claimed_by_other: someone else holds a live claim.
    """
    holder = live_holder(task, tx.now)
    if holder is None or holder == tx.caller.actor:
        return
    if force:
        require_force_allowed(tx, force)
        return
    raise errors.ClaimedByOther(task.id, holder, iso(task.lease_expires_at))


async def ensure_ready(tx: Tx, task: Task) -> None:
    """Raises ``dependencies_unmet`` listing the dependencies that are not completed."""
    deps = (await tx.repos.dependencies.statuses_for([task.id])).get(task.id, [])
    blocking = [dep_id for dep_id, status in deps if status != TaskStatus.COMPLETED]
    if blocking:
        raise errors.DependenciesUnmet(task.id, blocking)


def apply_claim(task: Task, actor: str, now: datetime, lease_seconds: int) -> None:
    """Make ``actor`` the holder with a fresh lease (a claim counts one attempt; a renewal does not)."""
    renewing = task.status == TaskStatus.IN_PROGRESS and task.assigned_to == actor
    task.assigned_to = actor
    task.lease_expires_at = now + timedelta(seconds=lease_seconds)
    if not renewing:
        task.claimed_at = now
        task.attempt_count += 1
    if task.started_at is None:
        task.started_at = now


def release_claim(task: Task) -> None:
    task.assigned_to = None
    task.lease_expires_at = None
    task.claimed_at = None


async def move(
    tx: Tx,
    task: Task,
    target: TaskStatus,
    *,
    lease_seconds: int,
    reason: str | None = None,
    event_data: dict[str, Any] | None = None,
) -> None:
    """Move ``task`` to ``target`` under the status machine, with every side effect of the move.

    Callers have already applied the holder rule; this checks the table of DESIGN §3, readiness for a
    claim or an implicit claim, and the reason a reopen needs.

    Raises:
        invalid_transition, dependencies_unmet, invalid_argument (reopen without a reason).
    """
    current = TaskStatus(task.status)
    transitions.check(task.id, current, target)
    if current == TaskStatus.COMPLETED and target == TaskStatus.PENDING and not reason:
        raise errors.InvalidArgument(
            f"Reopening completed task {task.id} needs a reason; pass reason='why it must be redone'.",
            field="reason",
            value=reason,
        )
    if target in (TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED) and current == TaskStatus.PENDING:
        await ensure_ready(tx, task)
    if target == TaskStatus.IN_PROGRESS:
        # An admin's forced take-over of another actor's claim is a new claim, not a renewal.
        renew = current == TaskStatus.IN_PROGRESS and task.assigned_to == tx.caller.actor
        apply_claim(task, tx.caller.actor, tx.now, lease_seconds)
        tx.claims.append("renewed" if renew else "acquired")
    else:
        if current == TaskStatus.IN_PROGRESS:
            tx.claims.append("released")
        release_claim(task)
    if target == TaskStatus.COMPLETED:
        task.completed_at = tx.now
        if task.started_at is None:
            task.started_at = tx.now
    elif target == TaskStatus.PENDING:
        task.completed_at = None
    task.status = target.value
    task.updated_at = tx.now
    if current != target:
        tx.transitions.append((current.value, target.value))
    data = {"from": current.value, "to": target.value}
    if reason:
        data["reason"] = reason
    data.update(event_data or {})
    tx.repos.events.append(
        session_id=task.session_id,
        task_id=task.id,
        kind="status_changed",
        actor=tx.caller.actor,
        at=tx.now,
        data=data,
    )
