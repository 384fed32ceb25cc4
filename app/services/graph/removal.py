"""Taking work out of the plan: archive or delete a task (with its subtree), or cancel it.

Concurrency: the task rows are read under a *row lock* (``FOR UPDATE`` on PostgreSQL; *immediate
transaction* on SQLite) and the session row is locked too, because both operations change the shape of
the graph (which tasks exist, which edges count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from app import errors
from app.db.models import Task
from app.domain.enums import OPEN_STATUSES, ArtifactKind, TaskStatus
from app.services.artifacts import new_artifact
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.views import TaskView, View, one_task_view


class DeleteTaskResult(View):
    task_id: str
    action: Literal["archived", "deleted"]
    affected: list[str]


class CancelTaskResult(View):
    task: TaskView
    previous_status: str
    cancelled: list[str]
    dependents_now_blocked: list[str]


class TaskRemovalService(Service):
    async def delete_task(
        self, caller: Caller, task_id: str, *, archive_instead: bool, force: bool, request_id: str | None
    ) -> DeleteTaskResult:
        """Archive the task and its subtree, or delete them for good.

        Raises:
            not_found; claimed_by_other (someone holds a task of the subtree); invalid_transition
            (archiving a task you still hold: release or complete it first); invalid_argument (hard delete
            of a task with children or dependents, without force); forbidden (force without admin).
        """

        async def work(tx: Tx) -> DeleteTaskResult:
            rules.require_force_allowed(tx, force)
            root = await tx.repos.tasks.get_for_update(task_id)
            if root is None:
                raise errors.TaskNotFound(task_id)
            await tx.repos.sessions.lock(root.session_id)
            subtree_ids = await tx.repos.tasks.subtree_ids(task_id)
            subtree = [await _locked(tx, i) for i in subtree_ids]
            for task in subtree:
                rules.ensure_not_held_by_other(tx, task, force=force)
            if archive_instead:
                affected = await archive_tasks(tx, subtree, force=force)
                action: Literal["archived", "deleted"] = "archived"
            else:
                affected = await _delete(tx, root, subtree, force=force)
                action = "deleted"
            await tx.repos.sessions.touch(root.session_id, tx.now)
            return DeleteTaskResult(task_id=task_id, action=action, affected=affected)

        return await self._write(caller, "orchestrator_delete_task", request_id, DeleteTaskResult, work)

    async def cancel_task(
        self,
        caller: Caller,
        task_id: str,
        *,
        reason: str | None,
        preserve_work: bool,
        cascade: bool,
        request_id: str | None,
    ) -> CancelTaskResult:
        """Cancel an open task (and with ``cascade`` its open descendants), recording why.

        Raises:
            not_found, invalid_transition (the task is not open), claimed_by_other.
        """

        async def work(tx: Tx) -> CancelTaskResult:
            task = await tx.repos.tasks.get_for_update(task_id)
            if task is None:
                raise errors.TaskNotFound(task_id)
            previous = task.status
            targets = [task]
            if cascade:
                for other_id in (await tx.repos.tasks.subtree_ids(task_id))[1:]:
                    other = await _locked(tx, other_id)
                    if other.status in OPEN_STATUSES:
                        targets.append(other)
            for target in targets:
                rules.ensure_not_held_by_other(tx, target)
            text = reason or f"Cancelled by {caller.actor}."
            for target in targets:
                await rules.move(
                    tx, target, TaskStatus.CANCELLED, lease_seconds=self.config.lease_seconds, reason=reason
                )
                target.version += 1
                if not preserve_work:
                    await tx.repos.artifacts.delete_by_task(target.id)
                await tx.repos.artifacts.insert(
                    new_artifact(
                        session_id=target.session_id,
                        task_id=target.id,
                        kind=ArtifactKind.CANCELLATION.value,
                        name=f"Cancellation of {target.title}",
                        content=text,
                        actor=caller.actor,
                        at=tx.now,
                    )
                )
            cancelled_ids = [t.id for t in targets]
            dependents = await tx.repos.dependencies.dependents_of(cancelled_ids)
            still_open = [
                t.id
                for t in await tx.repos.tasks.get_many(dependents)
                if t.status in OPEN_STATUSES and t.id not in cancelled_ids
            ]
            await tx.repos.sessions.touch(task.session_id, tx.now)
            await tx.repos.session.flush()
            return CancelTaskResult(
                task=await one_task_view(tx.repos, task),
                previous_status=previous,
                cancelled=cancelled_ids,
                dependents_now_blocked=sorted(still_open),
            )

        return await self._write(caller, "orchestrator_cancel_task", request_id, CancelTaskResult, work)


async def _locked(tx: Tx, task_id: str) -> Task:
    task = await tx.repos.tasks.get_for_update(task_id)
    if task is None:  # the subtree was read in this transaction under the session lock
        raise errors.TaskNotFound(task_id)
    return task


async def archive_tasks(tx: Tx, subtree: Sequence[Task], *, force: bool) -> list[str]:
    """Archive every task given (one ``status_changed`` event each); ``force`` first releases claims.

    Shared by ``delete_task`` and session cleanup. Raises ``invalid_transition`` for an in-progress task
    without ``force``.
    """
    affected: list[str] = []
    for task in subtree:
        if task.status == TaskStatus.ARCHIVED:
            continue
        if task.status == TaskStatus.IN_PROGRESS:
            if not force:
                raise errors.InvalidTransition(
                    task.id,
                    task.status,
                    "archived",
                    [s.value for s in (TaskStatus.PENDING, TaskStatus.CANCELLED)],
                )
            # force: release the claim first, then archive (an admin clearing the board). The release is
            # counted and recorded like any other, so the audit trail says whose work was set aside.
            released = {"released_claim_of": task.assigned_to}
            task.status = TaskStatus.PENDING.value
            rules.release_claim(task)
            tx.transitions.append(("in_progress", "pending"))
            tx.claims.append("released")
        else:
            released = {}
        await rules.move(tx, task, TaskStatus.ARCHIVED, lease_seconds=0, event_data=released)
        task.version += 1
        affected.append(task.id)
    return affected


async def _delete(tx: Tx, root: Task, subtree: list[Task], *, force: bool) -> list[str]:
    ids_in_tree = [t.id for t in subtree]
    outside_dependents = [
        d for d in await tx.repos.dependencies.dependents_of(ids_in_tree) if d not in set(ids_in_tree)
    ]
    if not force:
        if len(subtree) > 1:
            raise errors.InvalidArgument(
                f"Task {root.id} has {len(subtree) - 1} descendant task(s); delete them first, archive "
                "instead (archive_instead=true), or pass force=true (admin) to delete the whole subtree.",
                field="force",
                value=False,
            )
        if outside_dependents:
            raise errors.InvalidArgument(
                f"Tasks {', '.join(outside_dependents)} depend on {root.id}; remove those dependencies "
                "first, archive instead, or pass force=true (admin).",
                field="force",
                value=False,
                details={"dependents": outside_dependents},
            )
    for task in subtree:
        tx.repos.events.append(
            session_id=task.session_id,
            task_id=task.id,
            kind="task_deleted",
            actor=tx.caller.actor,
            at=tx.now,
            data={"title": task.title, "status": task.status, "root": root.id},
        )
    await tx.repos.tasks.delete_ids(ids_in_tree)
    if root.status in OPEN_STATUSES:
        # The deleted task no longer holds its parent back: the parent may be ready now (``children_done``).
        await rules.announce_ready_parents(tx, [(root.parent_id, root.id)])
    return ids_in_tree
