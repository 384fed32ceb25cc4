"""Lease expiry and claim release: the shared logic of the lease sweeper, scan_cleanup and restarts.

Concurrency: expired rows are picked with *claim (SKIP LOCKED)* on PostgreSQL (``FOR UPDATE SKIP
LOCKED``), so several replicas can sweep at once without touching the same row twice; on SQLite the
*immediate transaction* serialises sweepers. Each row is re-checked after locking, because its holder may
have renewed the lease between the scan and the lock.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app import errors
from app.db.models import Task
from app.db.repositories.tasks import TaskScope
from app.domain.clock import iso
from app.domain.enums import TERMINAL_STATUSES, TaskStatus
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules

SWEEPER_ACTOR = "system:lease-sweeper"


class ExpiredLease(BaseModel):
    task_id: str
    holder: str | None
    attempt_count: int
    expiries: int  # this task's expired leases since it last left a terminal status, this one included
    outcome: str  # "released" (back to pending) or "failed" (the ORCHESTRATOR_MAX_ATTEMPTS-th expiry)


class SweepResult(BaseModel):
    expired: list[ExpiredLease]


async def expire_leases(
    tx: Tx, *, max_attempts: int, limit: int = 500, scope: TaskScope | None = None
) -> list[ExpiredLease]:
    """Return expired claims to pending (``lease_expired`` event); fail a task at its ``max_attempts``-th expiry.

    ``scope`` narrows the sweep to one session or a set of tasks (maintenance of one subtree).
    """
    rows = await tx.repos.tasks.lock_expired_claims(tx.now, limit=limit, scope=scope)
    done: list[ExpiredLease] = []
    for task in rows:
        if task.status != TaskStatus.IN_PROGRESS or task.lease_expires_at is None or task.lease_expires_at > tx.now:
            continue  # renewed or released between the scan and the lock
        done.append(await expire_lease(tx, task, max_attempts=max_attempts))
    return done


async def expire_lease(tx: Tx, task: Task, *, max_attempts: int) -> ExpiredLease:
    """End one expired claim (the row is locked by the caller): back to pending, or failed at the limit.

    The limit counts expiries, not claims (DESIGN §3: "after ORCHESTRATOR_MAX_ATTEMPTS expiries"): claims
    that ended in a hand-back (needs_revision) do not count, and a retry starts the count again
    (:func:`expiries_so_far`). A task that fails here is terminal, so its parent may become ready
    (``children_done``).
    """
    return await _expire(tx, task, expiries=await expiries_so_far(tx, task) + 1, max_attempts=max_attempts)


async def expiries_so_far(tx: Tx, task: Task) -> int:
    """How many of ``task``'s leases expired in its current run: its ``lease_expired`` events since it last
    left a terminal status (retry from failed, reopen, restore), read under the caller's row lock.

    ``attempt_count`` is not this number: it counts every claim, including claims handed back with
    ``needs_revision`` and implicit claims, and a retry keeps it (docs/decisions.md "complete_task details").
    A new run starts with no expiries: the work was finished or given up, and a retried task that failed
    at the limit would otherwise fail again at its very next expiry.
    """
    return await tx.repos.events.count_expiries_since(task.id, left_statuses=[s.value for s in TERMINAL_STATUSES])


async def end_lapsed_claim(tx: Tx, task: Task, *, max_attempts: int) -> None:
    """Before the caller claims the locked ``task``: end another actor's claim whose lease ran out and that
    the sweeper has not reached yet, exactly as the sweeper would (``lease_expired``, back to pending), so
    the new claim is the next attempt. Shared by execute_task and update_task(status=in_progress).

    When this expiry would fail the task (the last one ``max_attempts`` allows), the claim is refused and
    nothing is written: the task cannot be claimed, and an error leaves the database as it was, so its
    reply names the stored state (in_progress, lapsed); the sweeper records the failure as for any lapse.

    Raises:
        invalid_transition (``LapsedClaimAtAttemptLimit``): this expiry fails the task.
    """
    if task.status != TaskStatus.IN_PROGRESS or task.assigned_to == tx.caller.actor:
        return
    if rules.live_holder(task, tx.now) is not None:
        return
    expiries = await expiries_so_far(tx, task) + 1
    if expiries >= max_attempts:
        raise errors.LapsedClaimAtAttemptLimit(
            task.id, task.assigned_to, iso(task.lease_expires_at), expiries=expiries, max_attempts=max_attempts
        )
    await _expire(tx, task, expiries=expiries, max_attempts=max_attempts)


async def _expire(tx: Tx, task: Task, *, expiries: int, max_attempts: int) -> ExpiredLease:
    holder = task.assigned_to
    failed = expiries >= max_attempts
    target = TaskStatus.FAILED if failed else TaskStatus.PENDING
    _release(tx, task, target, tx.now)
    data = {"holder": holder, "attempt_count": task.attempt_count, "expiries": expiries, "outcome": target.value}
    if failed:
        task.summary = (
            f"Failed after {expiries} expired lease(s); last holder {holder}. "
            "Retry it with orchestrator_update_task status=pending."
        )
        data["reason"] = "max_attempts"
    tx.repos.events.append(
        session_id=task.session_id,
        task_id=task.id,
        kind="lease_expired",
        actor=tx.caller.actor,
        at=tx.now,
        data=data,
    )
    tx.claims.append("expired")
    if failed:
        await rules.announce_ready_parents(tx, [(task.parent_id, task.id)])
    return ExpiredLease(
        task_id=task.id,
        holder=holder,
        attempt_count=task.attempt_count,
        expiries=expiries,
        outcome="failed" if failed else "released",
    )


async def release_all_claims(tx: Tx, *, reason: str) -> list[str]:
    """Return every live claim to pending (a restart with ``preserve_state=false``)."""
    rows = await tx.repos.tasks.lock_claimed(limit=None)
    released: list[str] = []
    for task in rows:
        holder = task.assigned_to
        _release(tx, task, TaskStatus.PENDING, tx.now)
        tx.repos.events.append(
            session_id=task.session_id,
            task_id=task.id,
            kind="claim_released",
            actor=tx.caller.actor,
            at=tx.now,
            data={"holder": holder, "reason": reason},
        )
        tx.claims.append("released")
        released.append(task.id)
    return released


def _release(tx: Tx, task: Task, target: TaskStatus, now: datetime) -> None:
    tx.transitions.append((task.status, target.value))
    task.status = target.value
    rules.release_claim(task)
    task.version += 1
    task.updated_at = now
    if target == TaskStatus.FAILED:
        task.completed_at = now


class LeaseService(Service):
    async def sweep_expired(self) -> SweepResult:
        """One sweep: every expired claim back to pending, or failed at the attempt limit."""

        async def work(tx: Tx) -> SweepResult:
            return SweepResult(expired=await expire_leases(tx, max_attempts=self.config.max_attempts))

        return await self._write(Caller(actor=SWEEPER_ACTOR, system=True), "lease_sweep", None, SweepResult, work)
