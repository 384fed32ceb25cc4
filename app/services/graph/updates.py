"""Updating a task: every given field lands in one transaction, or none does.

Concurrency (DESIGN §3 "No lost update"): the row is read under a *row lock* (``FOR UPDATE`` on
PostgreSQL, the *immediate transaction* on SQLite), then checked against ``expected_version`` when one is
given (*row version*). ``context`` is merged into the latest stored value (RFC 7396), so two agents who
patch different keys both land. The version grows by one per successful update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from app import errors
from app.domain import graph, json_bounds, transitions
from app.domain.enums import TaskStatus
from app.domain.merge_patch import merge_patch, same_json
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.graph.planning import to_utc
from app.services.views import TaskView, View, one_task_view
from app.services.work.leases import end_lapsed_claim

UPDATABLE = (
    "title",
    "description",
    "status",
    "specialist_type",
    "complexity",
    "priority",
    "estimated_effort",
    "due_date",
    "context",
    "add_dependencies",
    "remove_dependencies",
)


@dataclass(frozen=True)
class TaskChanges:
    """The fields an update asks for; None means "not given"."""

    title: str | None = None
    description: str | None = None
    status: str | None = None
    specialist_type: str | None = None
    complexity: str | None = None
    priority: str | None = None
    estimated_effort: str | None = None
    due_date: datetime | date | None = None
    context: dict[str, Any] | None = None
    add_dependencies: list[str] = field(default_factory=list)
    remove_dependencies: list[str] = field(default_factory=list)

    def given(self) -> list[str]:
        return [name for name in UPDATABLE if getattr(self, name) not in (None, [])]


class UpdateTaskResult(View):
    task: TaskView
    changed: list[str]


class TaskUpdateService(Service):
    async def update_task(
        self,
        caller: Caller,
        task_id: str,
        changes: TaskChanges,
        *,
        expected_version: int | None,
        reason: str | None,
        force: bool,
        request_id: str | None,
    ) -> UpdateTaskResult:
        """Apply ``changes`` under the status machine and the holder rule.

        Raises:
            invalid_argument (nothing to change, reopen without reason, bad dependency),
            not_found, version_conflict, claimed_by_other, invalid_transition (also status=completed, which
            only orchestrator_complete_task does), dependencies_unmet, children_open (claiming or archiving a
            parent with open subtasks), dependency_cycle (a task depending on itself, on one of its ancestors, or
            closing a loop), forbidden (force without admin).
        """
        if not changes.given():
            raise errors.InvalidArgument(
                "Nothing to update: pass at least one of " + ", ".join(UPDATABLE) + ".",
                field="task_id",
                value=task_id,
                allowed=list(UPDATABLE),
            )

        async def work(tx: Tx) -> UpdateTaskResult:
            rules.require_force_allowed(tx, force)
            # Row lock: the latest row, locked until commit (SQLite: immediate transaction).
            task = await tx.repos.tasks.get_for_update(task_id)
            if task is None:
                raise errors.TaskNotFound(task_id)
            # Row version: a stale expected_version means the caller decided on old data.
            if expected_version is not None and expected_version != task.version:
                raise errors.VersionConflict(task_id, expected_version, task.version)
            if task.status == TaskStatus.ARCHIVED:
                if changes.status is None:
                    raise errors.ArchivedTaskReadOnly(task_id)
                raise errors.InvalidTransition(task_id, "archived", changes.status, [])
            changed: list[str] = []
            for name in (
                "title",
                "description",
                "specialist_type",
                "complexity",
                "priority",
                "estimated_effort",
            ):
                value = getattr(changes, name)
                if value is not None and getattr(task, name) != value:
                    setattr(task, name, value)
                    changed.append(name)
            if changes.due_date is not None:
                due = to_utc(changes.due_date, "due_date")
                if due != task.due_at:
                    task.due_at = due
                    changed.append("due_date")
            if changes.context is not None:
                merged = merge_patch(task.context or {}, changes.context)
                # A patch within bounds can still grow the stored value past them: bound the result.
                json_bounds.check_free_form("context", merged, max_bytes=self.config.max_context_bytes)
                # JSON-strict: a patch that only changes a value's type (true -> 1) is a change.
                if not same_json(merged, task.context):
                    task.context = merged
                    changed.append("context")
            # Like any field, an edge list counts as changed only when an edge actually went or came.
            if changes.remove_dependencies:
                removed = await tx.repos.dependencies.delete_many(
                    task.id, list(dict.fromkeys(changes.remove_dependencies))
                )
                if removed:
                    changed.append("remove_dependencies")
            if changes.add_dependencies and await _add_dependencies(
                tx, task.id, task.session_id, changes.add_dependencies
            ):
                changed.append("add_dependencies")
            if changes.status is not None:
                target = TaskStatus(changes.status)
                current = TaskStatus(task.status)
                if target != current:
                    # Only completion completes (DESIGN §3): refused before anything else is judged.
                    transitions.check_edit(task.id, current, target)
                rules.ensure_not_held_by_other(tx, task, force=force)
                if target == TaskStatus.IN_PROGRESS:
                    # Another actor's lapsed claim ends as execute_task ends it (lease_expired; refused when
                    # that expiry fails the task), so the claim made here is the next attempt.
                    await end_lapsed_claim(tx, task, max_attempts=self.config.max_attempts)
                    current = TaskStatus(task.status)
                if target == TaskStatus.ARCHIVED and target != current:
                    await _refuse_open_children(tx, task.id)
                if target != current or target == TaskStatus.IN_PROGRESS:
                    await rules.move(tx, task, target, lease_seconds=self.config.lease_seconds, reason=reason)
                    changed.append("status")
            else:
                rules.renew_if_holder(tx, task, self.config.lease_seconds)  # any write by the holder renews
            if changed:
                task.version += 1
                task.updated_at = tx.now
                tx.repos.events.append(
                    session_id=task.session_id,
                    task_id=task.id,
                    kind="task_updated",
                    actor=caller.actor,
                    at=tx.now,
                    data={
                        "changed": changed,
                        "version": task.version,
                        **({"reason": reason} if reason else {}),
                    },
                )
                await tx.repos.sessions.touch(task.session_id, tx.now)
            await tx.repos.session.flush()
            return UpdateTaskResult(task=await one_task_view(tx.repos, task), changed=changed)

        return await self._write(caller, "orchestrator_update_task", request_id, UpdateTaskResult, work)


async def _refuse_open_children(tx: Tx, task_id: str) -> None:
    """Archiving a parent alone is refused while a subtask is open: archived is final, so the subtask would
    stay open and claimable under it (what ``validate_structure`` reports as a fault). Like completion, which
    refuses open children too; ``delete_task`` is the tool that archives a whole subtree.

    The children are read without their row locks: a concurrent plan_task under this task either committed
    before (seen here) or waits on the parent's row lock this transaction holds (SQLite: immediate
    transaction); a subtask being reopened locks the parent as well (``rules.ensure_parent_open``).

    Raises:
        children_open: the open subtasks, with their statuses.
    """
    children = (await tx.repos.tasks.open_children_of([task_id])).get(task_id, [])
    if children:
        raise errors.ArchiveWithOpenChildren(task_id, children)


async def _add_dependencies(tx: Tx, task_id: str, session_id: str, dep_ids: list[str]) -> list[str]:
    """Add edges after checking existence, session and cycles; returns the dependencies that are new.

    Raises:
        not_found, invalid_argument (cross-session), dependency_cycle (the task itself, or an edge that
        closes a loop of waits: dependencies, and parents waiting for their subtasks).
    """
    wanted = list(dict.fromkeys(dep_ids))
    # Errors name the argument's own index (the first occurrence), not a position in the de-duplicated list.
    paths = {dep_id: f"add_dependencies[{dep_ids.index(dep_id)}]" for dep_id in wanted}
    found = await tx.repos.tasks.existing_ids(wanted)
    for dep_id in wanted:
        path = paths[dep_id]
        if dep_id == task_id:
            raise errors.DependencyCycle([task_id, task_id], field=path, value=dep_id)
        if dep_id not in found:
            raise errors.TaskNotFound(dep_id, field=path)
        if found[dep_id] != session_id:
            raise errors.InvalidArgument(
                f"Dependency {dep_id} belongs to another session; dependencies must share the task's session.",
                field=path,
                value=dep_id,
            )
    # Row lock on the session: two concurrent edge additions (A->B, B->A) could each see no cycle;
    # serialising graph changes per session closes that race (SQLite: immediate transaction).
    await tx.repos.sessions.lock(session_id)
    existing = await tx.repos.dependencies.existing([(task_id, d) for d in wanted])
    new = [d for d in wanted if (task_id, d) not in existing]
    edges = await rules.waits_for(tx, session_id)
    for dep_id in new:
        cycle = graph.cycle_if_added(edges, task_id, dep_id)
        if cycle is not None:
            raise errors.DependencyCycle(cycle, field=paths[dep_id], value=dep_id)
        edges.setdefault(task_id, []).append(dep_id)
    await tx.repos.dependencies.insert_many(session_id, [(task_id, d) for d in new], tx.now)
    return new
