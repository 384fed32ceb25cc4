"""Handing work back: ``orchestrator_complete_task`` in one transaction.

The detailed work is stored as an artifact in the database, the summary and next_action on the task, and
the task moves by next_action: complete/continue → completed (unblocking its dependents, and its parent
when this was its last open subtask, in the same transaction), needs_revision → pending with a
``revision_note`` and the claim released, blocked → blocked with the summary as the reason.
Concurrency: the task is read under a *row lock* (``FOR UPDATE`` on PostgreSQL; *immediate transaction*
on SQLite), so a completion and a competing claim or completion of the same task are ordered, and the
holder rule is checked on the latest row. A parent with open subtasks is refused (``children_open``)
whether it is pending (an implicit claim) or claimed (the holder keeps it).
"""

from __future__ import annotations

from collections.abc import Sequence

from app import errors
from app.db.models import Task
from app.domain import json_bounds
from app.domain.clock import iso
from app.domain.enums import ArtifactKind, NextAction, TaskStatus
from app.services.artifacts import new_artifact
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.views import ArtifactView, TaskView, View, artifact_view, task_view, task_views

NEXT_READY_LIMIT = 5


class CompleteTaskResult(View):
    task: TaskView
    artifact: ArtifactView
    unblocked: list[TaskView]
    next_ready: list[TaskView]


class CompletionService(Service):
    async def complete_task(
        self,
        caller: Caller,
        task_id: str,
        *,
        summary: str,
        detailed_work: str,
        next_action: str,
        file_paths: Sequence[str],
        artifact_type: str,
        force: bool,
        request_id: str | None,
    ) -> CompleteTaskResult:
        """Record the work on ``task_id`` and move it as ``next_action`` says.

        A pending task may be completed directly (an implicit claim: it must be ready); an in-progress
        task only by its holder, or by an admin with ``force``.

        Raises:
            not_found; claimed_by_other; dependencies_unmet (implicit claim of a task that is not ready);
            children_open (complete/continue of a task with open subtasks; a holder keeps its claim);
            not_claimed (needs_revision of a task nobody is working on); invalid_transition (e.g. the task
            is already completed, or blocked); forbidden (force without admin); invalid_argument
            (detailed_work over ORCHESTRATOR_MAX_ARTIFACT_BYTES).
        """
        json_bounds.check_text_bytes("detailed_work", detailed_work, max_bytes=self.config.max_artifact_bytes)

        async def work(tx: Tx) -> CompleteTaskResult:
            rules.require_force_allowed(tx, force)
            # Row lock (SQLite: immediate transaction): the holder rule is checked on the latest row.
            task = await tx.repos.tasks.get_for_update(task_id)
            if task is None:
                raise errors.TaskNotFound(task_id)
            rules.ensure_not_held_by_other(tx, task, force=force)
            action = NextAction(next_action)
            # Read once under the lock: the move's readiness or open-subtask rule and the answer's view use it.
            readiness = await rules.read_readiness(tx.repos, task)
            artifact = await tx.repos.artifacts.insert(
                new_artifact(
                    session_id=task.session_id,
                    task_id=task.id,
                    kind=artifact_type,
                    name=f"Work on {task.title} ({action.value})",
                    content=detailed_work,
                    actor=caller.actor,
                    at=tx.now,
                    file_paths=list(dict.fromkeys(file_paths)),
                )
            )
            # Set before the move, so the move's flush writes them in the same UPDATE as the status.
            task.summary = summary
            task.next_action = action.value
            task.version += 1
            task.updated_at = tx.now
            parents_ready = await self._apply(tx, task, action, summary, artifact.id, readiness)
            await tx.repos.sessions.touch(task.session_id, tx.now)
            await tx.repos.session.flush()
            unblocked = await _newly_ready(tx, task, parents_ready) if task.status == TaskStatus.COMPLETED else []
            next_ready: list[TaskView] = []
            if action == NextAction.CONTINUE:
                rows = await tx.repos.tasks.list_ready(task.session_id, limit=NEXT_READY_LIMIT)
                next_ready = await task_views(tx.repos, rows)
            return CompleteTaskResult(
                task=_own_view(task, readiness),
                artifact=artifact_view(artifact),
                unblocked=unblocked,
                next_ready=next_ready,
            )

        return await self._write(caller, "orchestrator_complete_task", request_id, CompleteTaskResult, work)

    async def _apply(
        self, tx: Tx, task: Task, action: NextAction, summary: str, work_id: str, readiness: rules.Readiness
    ) -> list[rules.NowReady]:
        """Move the task as ``action`` says (complete/continue, needs_revision or blocked); returns the
        parent the completion made ready, if any (``rules.move``)."""
        event: dict[str, object] = {"next_action": action.value, "artifact_id": work_id}
        if action in (NextAction.COMPLETE, NextAction.CONTINUE):
            if task.status == TaskStatus.PENDING:
                event["implicit_claim"] = True
                task.attempt_count += 1  # the work done without a claim counts as one attempt
            return await self._move(tx, task, TaskStatus.COMPLETED, event=event, readiness=readiness)
        if action == NextAction.NEEDS_REVISION:
            await self._send_back(tx, task, summary, work_id, event)
            return []
        return await self._move(tx, task, TaskStatus.BLOCKED, reason=summary, event=event)

    async def _move(
        self,
        tx: Tx,
        task: Task,
        target: TaskStatus,
        *,
        reason: str | None = None,
        event: dict[str, object],
        readiness: rules.Readiness | None = None,
    ) -> list[rules.NowReady]:
        return await rules.move(
            tx,
            task,
            target,
            lease_seconds=self.config.lease_seconds,
            reason=reason,
            event_data=dict(event),
            readiness=readiness,
        )

    async def _send_back(self, tx: Tx, task: Task, summary: str, work_id: str, event: dict[str, object]) -> None:
        """needs_revision: back to the queue, the claim released, the reason kept as a revision note."""
        if task.status != TaskStatus.IN_PROGRESS:
            raise errors.NotClaimed(
                f"Task {task.id} is {task.status}, not in progress: needs_revision sends claimed work back to "
                "the queue. Claim it with orchestrator_execute_task first, or edit it with "
                "orchestrator_update_task.",
                field="next_action",
                value=NextAction.NEEDS_REVISION.value,
                allowed=[a.value for a in NextAction if a != NextAction.NEEDS_REVISION],
            )
        holder = task.assigned_to
        note = await tx.repos.artifacts.insert(
            new_artifact(
                session_id=task.session_id,
                task_id=task.id,
                kind=ArtifactKind.REVISION_NOTE.value,
                name=f"Revision requested: {task.title}",
                content=(
                    f"Revision requested by {tx.caller.actor} at {iso(tx.now)} (holder was {holder}).\n\n"
                    f"{summary}\n\nThe work so far is in artifact {work_id}."
                ),
                actor=tx.caller.actor,
                at=tx.now,
            )
        )
        await self._move(tx, task, TaskStatus.PENDING, reason=summary, event={**event, "revision_note_id": note.id})


def _own_view(task: Task, readiness: rules.Readiness) -> TaskView:
    """The view of the task just moved, from what was read under its row lock: nothing this transaction
    writes changes the task's dependencies or subtasks, and the lock keeps others from adding a subtask."""
    return task_view(task, readiness.dependencies, len(readiness.open_children))


async def _newly_ready(tx: Tx, task: Task, parents_ready: list[rules.NowReady]) -> list[TaskView]:
    """Dependents of the just-completed ``task`` that are now ready, then its parent if this was the parent's
    last open subtask (``parents_ready``: the move decided that and recorded it as ``children_done``).

    Readiness is derived, so nothing is written for them but a ``dependencies_met`` event per dependent
    (``rules.announce_ready_dependents``). Each view is built from the rows read to decide it was ready.
    """
    ready = await rules.announce_ready_dependents(tx, task)
    listed = {r.task.id for r in ready}
    ready += [p for p in parents_ready if p.task.id not in listed]
    return [task_view(r.task, r.dependencies) for r in ready]
