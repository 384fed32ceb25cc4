"""The rules every task write path obeys: the holder rule, readiness, and status moves with side effects.

One function per rule so update, cancel, delete, execute and complete all enforce the same thing the same
way. Callers hold the row lock (``get_for_update``) before calling any of these.

Readiness (DESIGN §3): a pending task is ready when every dependency is completed and every subtask is
terminal. A claim checks both (dependencies first, then children: see docs/decisions.md); a completion
checks the children whatever the status it starts from, because a claimed parent that gained a subtask
keeps its holder but may not complete. When a task's last open subtask turns terminal, its parent becomes
ready: readiness is derived, so nothing is written for the parent but a ``children_done`` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app import errors
from app.db.models import Task
from app.db.repositories import Repositories
from app.db.repositories.tasks import Neighbour
from app.domain import transitions
from app.domain.clock import iso
from app.domain.enums import OPEN_STATUSES, TERMINAL_STATUSES, TaskStatus
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


@dataclass(frozen=True)
class Readiness:
    """What decides whether a task is ready, as read once under its row lock: its dependencies with their
    statuses and its subtasks (every one, oldest first).

    A claim reads this once and hands it on within its transaction: the pick's re-check, the move's
    readiness rule and the brief (which shows the subtasks and the task's ``open_children``) would otherwise
    each read the same rows again — five statements of a claim's twelve. Nothing the claim writes changes
    these rows, and the row lock keeps a concurrent plan_task from adding a subtask meanwhile.
    """

    dependencies: list[tuple[str, str]]
    children: list[Neighbour]

    @property
    def blocking(self) -> list[str]:
        """The dependencies that are not completed."""
        return [dep_id for dep_id, status in self.dependencies if status != TaskStatus.COMPLETED]

    @property
    def open_children(self) -> list[tuple[str, str]]:
        """The subtasks that are not terminal, as ``(id, status)``."""
        return [(c.id, c.status) for c in self.children if c.status not in TERMINAL_STATUSES]

    @property
    def ready_for(self) -> bool:
        """Every dependency completed and every subtask terminal (the task's own status aside)."""
        return not self.blocking and not self.open_children


async def read_readiness(repos: Repositories, task: Task) -> Readiness:
    """The task's dependencies with their statuses and its subtasks, in one statement."""
    dependencies, children = await repos.tasks.neighbours(task.id)
    return Readiness(dependencies=[(d.id, d.status) for d in dependencies], children=children)


async def ensure_ready(tx: Tx, task: Task, readiness: Readiness | None = None) -> None:
    """The task may be claimed: every dependency completed, then every subtask terminal.

    ``readiness`` is what the caller already read under the row lock (a claim's pick); without it the
    rows are read here.

    Raises:
        dependencies_unmet: listing the dependencies that are not completed.
        children_open: listing the subtasks that are not terminal, with their statuses.
    """
    if readiness is None:
        readiness = await read_readiness(tx.repos, task)
    if readiness.blocking:
        raise errors.DependenciesUnmet(task.id, readiness.blocking)
    if readiness.open_children:
        raise errors.ChildrenOpen(task.id, readiness.open_children)


async def ensure_children_done(tx: Tx, task: Task, readiness: Readiness | None = None) -> None:
    """A parent waits for its subtasks: none of them may be open (from ``readiness`` when the caller read
    it under the row lock).

    Raises:
        children_open: listing the subtasks that are not terminal, with their statuses.
    """
    # The ``children_open`` test reads children without their row locks: a concurrent plan_task under this
    # task either committed before (seen here) or serialises behind this transaction's row lock on the parent
    # (plan_task locks the parent row; SQLite: immediate transaction).
    if readiness is not None:
        children = readiness.open_children
    else:
        children = (await tx.repos.tasks.open_children_of([task.id])).get(task.id, [])
    if children:
        raise errors.ChildrenOpen(task.id, children)


async def ensure_parent_open(tx: Tx, task: Task, target: TaskStatus) -> None:
    """A finished subtask may come back (reopen, retry, restore) only while its parent is not closed.

    Raises:
        invalid_transition: the parent is completed (reopen it first) or archived (final).
    """
    if task.parent_id is None:
        return
    # Row lock on the parent (child before parent; SQLite: immediate transaction): a concurrent completion
    # of the parent either commits first (seen here) or waits and then sees this subtask open.
    parent = await tx.repos.tasks.get_for_update(task.parent_id)
    if parent is not None and parent.status in (TaskStatus.COMPLETED, TaskStatus.ARCHIVED):
        raise errors.ParentClosed(task.id, task.status, target.value, parent.id, parent.status)


@dataclass(frozen=True)
class NowReady:
    """A task that a change just made ready (a dependent, or a parent whose last subtask ended), with the
    dependencies (all completed) read to decide it: its view needs nothing more (it has no open subtask),
    so an answer listing it does not read them again."""

    task: Task
    dependencies: list[tuple[str, str]]


async def announce_ready_parents(tx: Tx, children: Sequence[tuple[str | None, str]]) -> list[NowReady]:
    """The parents that became ready because these ``(parent_id, child_id)`` subtasks just turned terminal
    (or were deleted): pending, no dependency left open and no open subtask. Each gets a ``children_done``
    event naming the child that was the last to finish, so waiting agents hear of it at once.

    Row lock on each parent (child before parent; SQLite: immediate transaction): when the last two
    subtasks end in concurrent transactions, the second to take the parent's lock sees the first one's
    commit, so exactly one of them announces the parent.
    """
    last_child = {parent_id: child_id for parent_id, child_id in children if parent_id is not None}
    if not last_child:
        return []
    await tx.repos.session.flush()
    ready: list[NowReady] = []
    for parent_id in sorted(last_child):
        parent = await tx.repos.tasks.get_for_update(parent_id)
        if parent is None or parent.status != TaskStatus.PENDING:
            continue
        if (await tx.repos.tasks.open_children_of([parent.id])).get(parent.id):
            continue
        deps = (await tx.repos.dependencies.statuses_for([parent.id])).get(parent.id, [])
        if any(status != TaskStatus.COMPLETED for _, status in deps):
            continue
        tx.repos.events.append(
            session_id=parent.session_id,
            task_id=parent.id,
            kind="children_done",
            actor=tx.caller.actor,
            at=tx.now,
            data={"last_child": last_child[parent.id]},
        )
        ready.append(NowReady(parent, deps))
    return ready


async def announce_ready_dependents(tx: Tx, task: Task) -> list[NowReady]:
    """The dependents of the just-completed ``task`` that are ready now (pending, every dependency
    completed, no open subtask), each with a ``dependencies_met`` event in this transaction, so the change
    feed tells waiting agents the moment their work can start."""
    await tx.repos.session.flush()
    dependents = await tx.repos.tasks.get_many(await tx.repos.dependencies.dependents_of([task.id]))
    pending = [d for d in dependents if d.status == TaskStatus.PENDING]
    ids = [d.id for d in pending]
    deps = await tx.repos.dependencies.statuses_for(ids)
    still_open = await tx.repos.tasks.open_children_of(ids)
    ready = [
        NowReady(d, deps.get(d.id, []))
        for d in pending
        if d.id not in still_open and all(status == TaskStatus.COMPLETED for _, status in deps.get(d.id, []))
    ]
    for dependent in ready:
        tx.repos.events.append(
            session_id=dependent.task.session_id,
            task_id=dependent.task.id,
            kind="dependencies_met",
            actor=tx.caller.actor,
            at=tx.now,
            data={"completed": task.id},
        )
    return ready


async def waits_for(tx: Tx, session_id: str) -> dict[str, list[str]]:
    """Who waits for whom in the session: every dependency edge, and each parent waiting for its subtasks.

    A subtask that depends on one of its ancestors would wait forever (the ancestor waits for it), so a
    cycle in this graph is a ``dependency_cycle`` even when the dependency edges alone have none.
    """
    edges = await tx.repos.dependencies.edges_in_session(session_id)
    for parent_id, child_ids in (await tx.repos.tasks.children_by_parent(session_id)).items():
        edges.setdefault(parent_id, []).extend(child_ids)
    return edges


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


def renew_if_holder(tx: Tx, task: Task, lease_seconds: int) -> None:
    """DESIGN §3: "any write by the holder also renews" its lease. Every write path that lets the holder write
    to its claimed (locked) task without moving its status calls this: update_task's edits, plan_task under
    it, synthesize_results on it. A renewal moves ``lease_expires_at`` only (no version bump, no event:
    docs/decisions.md "Lease renewal is not a change of the task"); a lapsed lease is renewed by
    execute_task, as before. A renewal never shortens the lease: a holder that claimed for longer than
    ``lease_seconds`` keeps the time it asked for (docs/decisions.md "A write renews, never shortens").
    """
    if live_holder(task, tx.now) != tx.caller.actor:
        return
    renewed_until = tx.now + timedelta(seconds=lease_seconds)
    if task.lease_expires_at is not None and task.lease_expires_at > renewed_until:
        return
    apply_claim(task, tx.caller.actor, tx.now, lease_seconds)
    tx.claims.append("renewed")


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
    readiness: Readiness | None = None,
) -> list[NowReady]:
    """Move ``task`` to ``target`` under the status machine, with every side effect of the move; returns
    the parent the move made ready (its last open subtask ended), if any.

    Callers have already applied the holder rule; this checks the table of DESIGN §3, readiness for a
    claim or an implicit claim (from ``readiness`` when the caller read it under the lock), open subtasks
    for any completion, and the reason a reopen needs. A move from open to terminal announces the parent
    when this was its last open subtask.

    Raises:
        invalid_transition (also reopening a subtask of a completed or archived parent), dependencies_unmet,
        children_open, invalid_argument (reopen without a reason).
    """
    current = TaskStatus(task.status)
    transitions.check(task.id, current, target)
    if current == TaskStatus.COMPLETED and target == TaskStatus.PENDING and not reason:
        raise errors.InvalidArgument(
            f"Reopening completed task {task.id} needs a reason; pass reason='why it must be redone'.",
            field="reason",
            value=reason,
        )
    if current in TERMINAL_STATUSES and target in OPEN_STATUSES:
        await ensure_parent_open(tx, task, target)
    if target in (TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED) and current == TaskStatus.PENDING:
        await ensure_ready(tx, task, readiness)
    elif target == TaskStatus.COMPLETED:
        await ensure_children_done(tx, task, readiness)
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
    if current in OPEN_STATUSES and target in TERMINAL_STATUSES:
        return await announce_ready_parents(tx, [(task.parent_id, task.id)])
    return []
