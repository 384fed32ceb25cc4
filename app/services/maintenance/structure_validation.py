"""validate_structure: read-only checks that the task graph obeys its own rules, each finding with a fix.

The write paths refuse every fault checked here, so a finding means a row was changed behind the
service's back (a manual SQL fix, a restore, a bug). Levels add checks: ``basic`` covers the graph's hard
rules (dependency cycles, edges to missing tasks, open children under archived or completed parents,
parents in another session or missing, claim/status mismatches, rows that cannot be sent whole);
``comprehensive`` adds parent-link cycles,
cross-session dependencies, dependencies that can never complete, and artifact digests; ``full_audit``
adds the schema revision against this build's head and the event log against the rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.db.models import Task
from app.db.repositories import Repositories
from app.db.repositories.integrity import DanglingEdge, Edge
from app.db.repositories.tasks import TaskScope
from app.db.schema import SchemaState
from app.domain import graph
from app.domain.enums import OPEN_STATUSES, TaskStatus
from app.services.views import RenderGuard, View

Severity = Literal["info", "warning", "error"]
ValidationLevel = Literal["basic", "comprehensive", "full_audit"]
CLOSED_PARENTS = frozenset({TaskStatus.ARCHIVED, TaskStatus.COMPLETED})
NEVER_COMPLETING = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.ARCHIVED})
SCAN_CLEANUP = "run orchestrator_maintenance_coordinator action=scan_cleanup"

# Which events record a status change, and the status each one leaves the task in (the audit's view of
# the trail). A task with none of them is still in its initial status, pending.
STATUS_FROM_EVENT: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "status_changed": lambda data: data.get("to"),
    "lease_expired": lambda data: data.get("outcome"),
    "claim_released": lambda data: TaskStatus.PENDING.value,
}


class StructureIssue(View):
    kind: str
    severity: Severity
    task_ids: list[str]
    session_id: str | None
    message: str
    fix: str


@dataclass(frozen=True)
class ValidationInput:
    scope: TaskScope
    level: ValidationLevel
    schema_state: SchemaState | None  # full_audit only


def _issue(
    kind: str, severity: Severity, tasks: Iterable[str], session_id: str | None, message: str, fix: str
) -> StructureIssue:
    return StructureIssue(
        kind=kind, severity=severity, task_ids=list(tasks), session_id=session_id, message=message, fix=fix
    )


async def validate_structure(repos: Repositories, spec: ValidationInput) -> list[StructureIssue]:
    """Every issue found in the scope, errors first."""
    tasks = await repos.tasks.list_in_scope(spec.scope)
    by_id = {t.id: t for t in tasks}
    missing_parent_ids = sorted({t.parent_id for t in tasks if t.parent_id and t.parent_id not in by_id})
    parents = {**by_id, **{p.id: p for p in await repos.tasks.get_many(missing_parent_ids)}}
    # Cycles can leave a subtree, so a subtree's edges are read for its whole session.
    edge_scope = TaskScope(session_id=spec.scope.session_id)
    edges = await repos.integrity.edges(edge_scope)
    issues = [
        *_dependency_cycles(edges, by_id),
        *_dangling_edges(await repos.integrity.dangling_dependencies(), spec.scope),
        *_parent_problems(tasks, parents),
        *_claim_mismatches(tasks),
        *_unreadable_rows(tasks),
    ]
    if spec.level in ("comprehensive", "full_audit"):
        issues += _parent_cycles(tasks, parents)
        issues += _cross_session_dependencies(edges, by_id)
        issues += _never_completing_dependencies(edges, by_id)
        artifacts = await repos.artifacts.list_in_scope(
            session_id=spec.scope.session_id,
            task_ids=sorted(spec.scope.task_ids) if spec.scope.task_ids is not None else None,
        )
        for art in artifacts:
            body = art.content.encode()
            if len(body) != art.size_bytes or hashlib.sha256(body).hexdigest() != art.sha256:
                issues.append(
                    _issue(
                        "artifact_digest_mismatch",
                        "error",
                        [art.task_id] if art.task_id else [],
                        art.session_id,
                        f"Artifact {art.id} ({art.name!r}) does not match its recorded size or sha256: its content "
                        "was changed outside the service.",
                        "Treat its content as unverified; store the intended content again as a new artifact "
                        "(orchestrator_complete_task) or restore it from a backup.",
                    )
                )
    if spec.level == "full_audit":
        issues += _schema_issue(spec.schema_state)
        issues += await _event_log_mismatches(repos, tasks)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(issues, key=lambda i: order[i.severity])


def _dependency_cycles(edges: Sequence[Edge], in_scope: Mapping[str, Task]) -> list[StructureIssue]:
    adjacency: dict[str, list[str]] = {}
    for edge in edges:
        adjacency.setdefault(edge.task_id, []).append(edge.depends_on_id)
    issues = []
    for cycle in graph.find_cycles(adjacency):
        if not any(node in in_scope for node in cycle):
            continue
        first = in_scope.get(cycle[0])
        issues.append(
            _issue(
                "dependency_cycle",
                "error",
                cycle[:-1],
                first.session_id if first else None,
                f"Dependency cycle {' -> '.join(cycle)}: none of these tasks can ever become ready.",
                f"Remove one edge: orchestrator_update_task task_id={cycle[0]} remove_dependencies=[{cycle[1]}].",
            )
        )
    return issues


def _dangling_edges(dangling: Iterable[DanglingEdge], scope: TaskScope) -> list[StructureIssue]:
    issues = []
    for edge in dangling:
        present = [
            i for i, ok in ((edge.task_id, edge.task_exists), (edge.depends_on_id, edge.depends_on_exists)) if ok
        ]
        if scope.session_id is not None and edge.session_id != scope.session_id:
            continue
        if scope.task_ids is not None and not any(i in scope.task_ids for i in present):
            continue
        missing = [i for i in (edge.task_id, edge.depends_on_id) if i not in present]
        fix = (
            f"Drop the edge: orchestrator_update_task task_id={edge.task_id} "
            f"remove_dependencies=[{edge.depends_on_id}]."
            if edge.task_exists
            else "Delete the dependency row (no task holds it): restore the missing task from a backup or remove the "
            "row with SQL."
        )
        issues.append(
            _issue(
                "dependency_on_missing_task",
                "error",
                present,
                edge.session_id,
                f"Dependency {edge.task_id} -> {edge.depends_on_id} points to missing task(s) {', '.join(missing)}.",
                fix,
            )
        )
    return issues


def _parent_problems(tasks: Sequence[Task], parents: Mapping[str, Task]) -> list[StructureIssue]:
    issues = []
    for task in tasks:
        if task.parent_id is None:
            continue
        parent = parents.get(task.parent_id)
        if parent is None:
            issues.append(
                _issue(
                    "missing_parent",
                    "error",
                    [task.id],
                    task.session_id,
                    f"Task {task.id} names parent {task.parent_id}, which does not exist.",
                    "Restore the parent from a backup, or delete the task (orchestrator_delete_task) and plan it "
                    "again.",
                )
            )
            continue
        if parent.session_id != task.session_id:
            issues.append(
                _issue(
                    "cross_session_parent",
                    "error",
                    [task.id, parent.id],
                    task.session_id,
                    f"Task {task.id} is in session {task.session_id} but its parent {parent.id} is in "
                    f"{parent.session_id}; a task and its parent must share a session.",
                    "No tool moves tasks between sessions: archive or delete the subtask (orchestrator_delete_task) "
                    "and plan it again under its parent's session.",
                )
            )
        if task.status in OPEN_STATUSES and parent.status in CLOSED_PARENTS:
            issues.append(_open_child_of_closed_parent(task, parent))
    return issues


def _open_child_of_closed_parent(task: Task, parent: Task) -> StructureIssue:
    """A subtask still open under a completed or archived parent: a parent waits for its children (DESIGN
    §3), so no write path makes this any more; rows from before that rule, or changed by hand, still can.

    A completed parent with open work is an error (its completion claims work that is not done, and it
    unblocked its dependents too early); under an archived parent the open child is only stray work.
    """
    if parent.status == TaskStatus.COMPLETED:
        return _issue(
            "open_child_of_closed_parent",
            "error",
            [task.id, parent.id],
            task.session_id,
            f"Task {task.id} is {task.status} under parent {parent.id}, which is completed: a parent completes "
            "only after all its subtasks end, so the parent was closed too early (data from before that rule, or "
            "changed outside the service).",
            f"Reopen the parent (orchestrator_update_task task_id={parent.id} status=pending reason=...) so it waits "
            f"for the subtask again, or cancel the subtask (orchestrator_cancel_task task_id={task.id}) if the "
            "parent's completion stands.",
        )
    return _issue(
        "open_child_of_closed_parent",
        "warning",
        [task.id, parent.id],
        task.session_id,
        f"Task {task.id} is {task.status} under parent {parent.id}, which is {parent.status}.",
        f"Cancel the child (orchestrator_cancel_task task_id={task.id}).",
    )


def _claim_mismatches(tasks: Sequence[Task]) -> list[StructureIssue]:
    issues = []
    for task in tasks:
        if task.status == TaskStatus.IN_PROGRESS and (task.assigned_to is None or task.lease_expires_at is None):
            lacking = "holder" if task.assigned_to is None else "lease expiry"
            issues.append(
                _issue(
                    "in_progress_without_claim",
                    "error",
                    [task.id],
                    task.session_id,
                    f"Task {task.id} is in_progress without a {lacking}: nobody can finish it and no lease will "
                    "expire to free it.",
                    f"{SCAN_CLEANUP.capitalize()} (it returns the task to pending).",
                )
            )
        elif task.status != TaskStatus.IN_PROGRESS and (
            task.assigned_to is not None or task.lease_expires_at is not None
        ):
            issues.append(
                _issue(
                    "holder_on_inactive_task",
                    "warning",
                    [task.id],
                    task.session_id,
                    f"Task {task.id} is {task.status} but still names holder {task.assigned_to!r} "
                    "(only in_progress tasks are held).",
                    f"{SCAN_CLEANUP.capitalize()} (it clears the stale holder).",
                )
            )
    return issues


def _unreadable_rows(tasks: Sequence[Task]) -> list[StructureIssue]:
    """Rows stored before input hygiene that reads serve only in part (``RenderGuard``)."""
    issues = []
    for task in tasks:
        guard = RenderGuard.of(task)
        if guard.marker is None:
            continue
        issues.append(
            _issue(
                "unreadable_row",
                "error",
                [task.id],
                task.session_id,
                f"Task {task.id} holds values that cannot be sent: {'; '.join(guard.problems)}. Reads serve it "
                "with those fields repaired or left out.",
                guard.fix[:1].upper() + guard.fix[1:] + ".",
            )
        )
    return issues


def _parent_cycles(tasks: Sequence[Task], parents: Mapping[str, Task]) -> list[StructureIssue]:
    adjacency = {t.id: [t.parent_id] for t in parents.values() if t.parent_id}
    scope_ids = {t.id for t in tasks}
    issues = []
    for cycle in graph.find_cycles(adjacency):
        if any(node in scope_ids for node in cycle):
            issues.append(
                _issue(
                    "parent_cycle",
                    "error",
                    cycle[:-1],
                    parents[cycle[0]].session_id if cycle[0] in parents else None,
                    f"Parent links form a cycle {' -> '.join(cycle)}: these tasks have no root.",
                    "Restore the tasks from a backup, or delete them (orchestrator_delete_task force=true).",
                )
            )
    return issues


def _cross_session_dependencies(edges: Sequence[Edge], in_scope: Mapping[str, Task]) -> list[StructureIssue]:
    issues = []
    for e in edges:
        if e.task_id not in in_scope:
            continue
        drop = f"orchestrator_update_task task_id={e.task_id} remove_dependencies=[{e.depends_on_id}]"
        if e.session_id != e.depends_on_session_id:
            problem = (
                f"Task {e.task_id} (session {e.session_id}) depends on {e.depends_on_id} in another session "
                f"({e.depends_on_session_id})."
            )
            fix = f"Drop the edge: {drop}."
        elif e.recorded_session_id != e.session_id:
            # Only a change outside the service can do this; get_status's ready set reads edges by this column.
            problem = (
                f"The dependency of task {e.task_id} on {e.depends_on_id} is recorded in session "
                f"{e.recorded_session_id}, but both tasks are in session {e.session_id}: the session's ready count "
                "(orchestrator_get_status) does not see it."
            )
            fix = f"Drop the edge and add it again: {drop}, then add_dependencies=[{e.depends_on_id}]."
        else:
            continue
        issues.append(
            _issue("cross_session_dependency", "error", [e.task_id, e.depends_on_id], e.session_id, problem, fix)
        )
    return issues


def _never_completing_dependencies(edges: Sequence[Edge], in_scope: Mapping[str, Task]) -> list[StructureIssue]:
    issues = []
    for e in edges:
        task = in_scope.get(e.task_id)
        if task is None or task.status not in OPEN_STATUSES or e.depends_on_status not in NEVER_COMPLETING:
            continue
        issues.append(
            _issue(
                "dependency_never_completes",
                "warning",
                [e.task_id, e.depends_on_id],
                e.session_id,
                f"Task {e.task_id} waits for {e.depends_on_id}, which is {e.depends_on_status} and will not "
                "complete as it stands.",
                f"Drop the edge (orchestrator_update_task task_id={e.task_id} remove_dependencies=[{e.depends_on_id}]) "
                f"or retry the dependency (orchestrator_update_task task_id={e.depends_on_id} status=pending).",
            )
        )
    return issues


def _schema_issue(state: SchemaState | None) -> list[StructureIssue]:
    if state is None or state.at_head:
        return []
    return [
        _issue(
            "schema_revision",
            "error",
            [],
            None,
            f"The database schema is at revision {state.current or 'none'}, this build expects {state.head}.",
            "Run `task-orchestrator migrate` (a schema behind head) or deploy the build that matches the database.",
        )
    ]


async def _event_log_mismatches(repos: Repositories, tasks: Sequence[Task]) -> list[StructureIssue]:
    latest = await repos.events.latest_by_kinds(list(STATUS_FROM_EVENT), task_ids=[t.id for t in tasks])
    issues = []
    for task in tasks:
        event = latest.get(task.id)
        expected = STATUS_FROM_EVENT[event.kind](event.data or {}) if event is not None else TaskStatus.PENDING.value
        if expected == task.status:
            continue
        source = (
            f"its last status event (#{event.id}, {event.kind}) says {expected}" if event else "it has no status event"
        )
        issues.append(
            _issue(
                "event_log_mismatch",
                "warning",
                [task.id],
                task.session_id,
                f"Task {task.id} is {task.status} but {source}: the row was changed without the audit trail.",
                f"Check the task; set the intended status with orchestrator_update_task task_id={task.id} status=... "
                "(that records the change), or restore it from a backup.",
            )
        )
    return issues
