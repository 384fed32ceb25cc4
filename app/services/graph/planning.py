"""Planning: create a task and, in the same transaction, a tree of subtasks wired by sibling keys.

Everything is validated before the first row is written (parent, session, dependencies, keys), so a bad
plan writes nothing. A brand-new task has no dependents, but its parent and every ancestor wait for it
(DESIGN §3): a new subtask depending on an existing task that itself waits for the parent would never
start, so such a dependency is a ``dependency_cycle``; ``depends_on`` may only name *earlier* siblings
(never the subtask's own key), which keeps the new edges acyclic.

Concurrency: the parent is read under a *row lock* (``FOR UPDATE`` on PostgreSQL; *immediate transaction*
on SQLite), so a subtask is never added to a parent that a concurrent completion is closing: whichever
commits second sees the other (a completed parent refuses the subtask; an added subtask makes the
completion ``children_open``). A plan under a parent with outside dependencies also takes the session's
row lock, like ``update_task`` adding edges, so no concurrent edge can close a cycle unseen.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from app import errors
from app.db.models import Task
from app.domain import graph, ids
from app.domain.enums import TERMINAL_STATUSES, TaskStatus
from app.services import changes
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.session_resolution import require_open_session, resolve_session_id
from app.services.views import (
    ComplexityName,
    PriorityName,
    SpecialistName,
    TaskTypeName,
    TaskView,
    View,
    task_view,
    task_views,
)

MAX_PLANNED_TASKS = 500
Title = Annotated[str, Field(min_length=1, max_length=500, description="Short imperative title.")]
Description = Annotated[str, Field(min_length=1, max_length=20000, description="What to do; what done means.")]
Effort = Annotated[str, Field(min_length=1, max_length=100, description="Free text, e.g. '2h'.")]
TaskId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^task_[0-9a-f]{16}$")]
Key = Annotated[str, Field(min_length=1, max_length=64, description="Name siblings use in depends_on.")]
# One datetime type (pydantic parses a plain date as midnight), not a ``datetime | date`` union: a union's
# errors carry the member names in their location ("due_date.datetime"), not the argument's own path.
DueDate = Annotated[
    datetime,
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
            "description": "ISO 8601 date or date-time (UTC).",
        }
    ),
]


class SubtaskSpec(BaseModel):
    """One node of the ``subtasks`` tree of ``orchestrator_plan_task``."""

    model_config = ConfigDict(extra="forbid")

    key: Key | None = None
    title: Title
    description: Description
    task_type: Annotated[TaskTypeName, Field(description="As above.")] = "standard"
    complexity: Annotated[ComplexityName, Field(description="As above.")] = "moderate"
    specialist_type: Annotated[SpecialistName, Field(description="As above.")] = "generic"
    priority: Annotated[PriorityName, Field(description="As above.")] = "medium"
    estimated_effort: Effort | None = None
    due_date: DueDate | None = None
    context: dict[str, Any] = Field(default_factory=dict, description="As above.")
    dependencies: list[TaskId] = Field(default_factory=list, max_length=100, description="Existing task ids.")
    depends_on: list[Key] = Field(
        default_factory=list, max_length=100, description="Keys of EARLIER siblings this one waits for."
    )
    subtasks: list[SubtaskSpec] = Field(default_factory=list, max_length=100, description="Its own subtasks.")


class PlanTaskResult(View):
    task: TaskView
    created: list[TaskView]


def to_utc(value: datetime | date | None, field: str) -> datetime | None:
    """Normalise a due date (or a time filter): a date is midnight UTC, a naive time is UTC.

    Raises:
        invalid_argument: naming ``field`` when the time in UTC falls outside years 1-9999
            (``9999-12-31T23:00:00-05:00``): no datetime, and no database, holds it.
    """
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise errors.InvalidArgument(
            f"'{field}' is {value.isoformat()}, which in UTC falls outside years 1-9999; give a time between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.",
            field=field,
            value=value.isoformat(),
            allowed="a time between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
        ) from None


class TaskPlanningService(Service):
    async def plan_task(
        self,
        caller: Caller,
        spec: SubtaskSpec,
        *,
        parent_task_id: str | None,
        session_id: str | None,
        request_id: str | None,
    ) -> PlanTaskResult:
        """Create the task (and its subtree) in one transaction.

        A pending or claimed parent gains the subtasks and waits for them again (a claimed parent keeps its
        holder); a terminal parent is refused.

        Raises:
            not_found (session, parent, dependency), invalid_argument (archived session, cross-session
            parent or dependency, terminal parent, duplicate or unknown sibling key, too many tasks),
            dependency_cycle (a subtask depending on its own key, or on a task that waits for the parent).
        """

        async def work(tx: Tx) -> PlanTaskResult:
            if parent_task_id is None and not spec.subtasks and not spec.dependencies:
                alone = await _plan_alone(tx, spec, session_id)
                if alone is not None:
                    return alone
            repos = tx.repos
            parent = None
            if parent_task_id is not None:
                # Row lock on the parent: ordered against its completion (SQLite: immediate transaction).
                parent = await repos.tasks.get_for_update(parent_task_id)
                if parent is None:
                    raise errors.TaskNotFound(parent_task_id, field="parent_task_id")
            if session_id is not None:
                target_session = session_id
            elif parent is not None:
                target_session = parent.session_id
            else:
                target_session = await resolve_session_id(repos, caller, None)
            if parent is not None:
                _check_parent(parent, target_session)
                rules.renew_if_holder(tx, parent, self.config.lease_seconds)  # the holder planning its own work
            # Key-share row lock on the session: a concurrent cleanup cannot archive it under this plan.
            await require_open_session(repos, target_session, lock=True)
            # Counted before any row object is built: a deep tree must be refused cheaply.
            total = _count(spec)
            if total > MAX_PLANNED_TASKS:
                raise errors.InvalidArgument(
                    f"A plan may create at most {MAX_PLANNED_TASKS} tasks; this one has {total}. "
                    "Split it into several calls.",
                    field="subtasks",
                    value=total,
                    allowed=f"<= {MAX_PLANNED_TASKS} tasks in one plan",
                )
            rows: list[Task] = []
            edges: list[tuple[str, str]] = []
            external: dict[str, str] = {}  # dependency id -> field path, for validation
            _build(spec, parent.id if parent else None, target_session, tx, rows, edges, external, "")
            found = await repos.tasks.existing_ids(list(external))
            for dep_id, path in external.items():
                if dep_id not in found:
                    raise errors.TaskNotFound(dep_id, field=path)
                if found[dep_id] != target_session:
                    raise errors.InvalidArgument(
                        f"Dependency {dep_id} belongs to another session; dependencies must be in the "
                        "same session as the task.",
                        field=path,
                        value=dep_id,
                    )
            if parent is not None and edges:
                await _refuse_waiting_on_parent(tx, parent, edges, external)
            await repos.tasks.insert_many(rows)
            await repos.dependencies.insert_many(target_session, edges, tx.now)
            for row in rows:
                repos.events.append(
                    session_id=row.session_id,
                    task_id=row.id,
                    kind="task_created",
                    actor=caller.actor,
                    at=tx.now,
                    data={"title": row.title, "parent_id": row.parent_id},
                )
            await repos.sessions.touch(target_session, tx.now)
            # New tasks depend on exactly the edges just written: with none there is nothing to look up.
            if edges:
                views = await task_views(repos, rows)
            else:
                children = Counter(row.parent_id for row in rows if row.parent_id is not None)
                views = [task_view(row, [], children[row.id]) for row in rows]
            return PlanTaskResult(task=views[0], created=views)

        return await self._write(caller, "orchestrator_plan_task", request_id, PlanTaskResult, work)


async def _plan_alone(tx: Tx, spec: SubtaskSpec, session_id: str | None) -> PlanTaskResult | None:
    """A single task with no parent, subtasks or dependencies, the simplest plan: the session check,
    the task and its event in one statement on PostgreSQL (``TaskRepository.insert_in_open_session``).

    None when the session is missing or archived, having written nothing: the general path then refuses
    the call with the error it always gave (it reads the session again, once, on that path only).
    """
    target = session_id if session_id is not None else await resolve_session_id(tx.repos, tx.caller, None)
    rows: list[Task] = []
    _build(spec, None, target, tx, rows, [], {}, "")
    row = rows[0]
    activity = await tx.repos.tasks.insert_in_open_session(row, {"title": row.title, "parent_id": None})
    if activity is None:
        return None
    changes.note(tx.repos.session, target, (row.id,))  # written by a statement no flush sees
    await tx.repos.sessions.touch(target, tx.now, seen_activity=activity)
    view = task_view(row, [], 0)
    return PlanTaskResult(task=view, created=[view])


def _check_parent(parent: Task, session_id: str) -> None:
    if parent.session_id != session_id:
        raise errors.InvalidArgument(
            f"Parent task {parent.id} is in session {parent.session_id}, not {session_id}; a task and its "
            "parent must share a session (omit session_id to use the parent's).",
            field="parent_task_id",
            value=parent.id,
        )
    if parent.status in TERMINAL_STATUSES:
        raise errors.InvalidArgument(
            f"Parent task {parent.id} is {parent.status}; add subtasks only under open tasks "
            "(reopen it with orchestrator_update_task first).",
            field="parent_task_id",
            value=parent.id,
            allowed=["pending", "in_progress", "blocked"],
        )


async def _refuse_waiting_on_parent(
    tx: Tx, parent: Task, edges: list[tuple[str, str]], external: dict[str, str]
) -> None:
    """A new task under ``parent`` may not depend on a task that waits for ``parent`` (the parent itself,
    an ancestor, or anything depending on those): the parent waits for the new task, so none could start.

    Raises:
        dependency_cycle: the loop, from the new task through the dependency back to it.
    """
    outside = [(task_id, dep_id) for task_id, dep_id in edges if dep_id in external]
    if not outside:
        return
    # Row lock on the session, as update_task takes it for new edges (SQLite: immediate transaction).
    await tx.repos.sessions.lock(parent.session_id)
    waits = await rules.waits_for(tx, parent.session_id)
    for task_id, dep_id in outside:
        back = graph.find_path(waits, dep_id, parent.id)
        if back is not None:
            raise errors.DependencyCycle([task_id, *back, task_id], field=external[dep_id], value=dep_id)


def _count(spec: SubtaskSpec) -> int:
    """How many tasks the plan creates (iterative: the tree's depth is the caller's choice)."""
    total, stack = 0, [spec]
    while stack:
        node = stack.pop()
        total += 1
        stack.extend(node.subtasks)
    return total


def _build(
    spec: SubtaskSpec,
    parent_id: str | None,
    session_id: str,
    tx: Tx,
    rows: list[Task],
    edges: list[tuple[str, str]],
    external: dict[str, str],
    path: str,
) -> str:
    """Append the row for ``spec`` and its subtree (depth first); returns the new task's id.

    Each row is created one microsecond after the one before it: the tasks of one plan share a
    transaction, and next_task breaks a tie on ``created_at`` by the random id, so equal siblings came
    out in any order. Now they come out as the caller listed them (and ``sort=created_at`` agrees).
    """
    task_id = ids.new_task_id()
    created_at = tx.now + timedelta(microseconds=len(rows))
    rows.append(
        Task(
            id=task_id,
            session_id=session_id,
            parent_id=parent_id,
            title=spec.title,
            description=spec.description,
            task_type=spec.task_type,
            status=TaskStatus.PENDING.value,
            complexity=spec.complexity,
            specialist_type=spec.specialist_type,
            priority=spec.priority,
            estimated_effort=spec.estimated_effort,
            due_at=to_utc(spec.due_date, f"{path}due_date"),
            context=spec.context,
            attempt_count=0,
            version=1,
            created_by=tx.caller.actor,
            created_at=created_at,
            updated_at=created_at,
        )
    )
    for dep_id in dict.fromkeys(spec.dependencies):
        # The path names the argument's own index (first occurrence), as the caller wrote it.
        external.setdefault(dep_id, f"{path}dependencies[{spec.dependencies.index(dep_id)}]")
        edges.append((task_id, dep_id))
    keyed: dict[str, str] = {}
    for index, child in enumerate(spec.subtasks):
        child_path = f"{path}subtasks[{index}]."
        for dep_index, key in enumerate(child.depends_on):
            if key == child.key:
                raise errors.DependencyCycle([key, key], field=f"{child_path}depends_on[{dep_index}]", value=key)
            if key not in keyed:
                raise errors.InvalidArgument(
                    f"depends_on names {key!r}, which is not the key of an earlier sibling; list the "
                    "subtask it waits for before it and give that subtask this key.",
                    field=f"{child_path}depends_on[{dep_index}]",
                    value=key,
                    allowed=sorted(keyed),
                )
        child_id = _build(child, task_id, session_id, tx, rows, edges, external, child_path)
        for key in dict.fromkeys(child.depends_on):
            edges.append((child_id, keyed[key]))
        if child.key is not None:
            if child.key in keyed:
                raise errors.InvalidArgument(
                    f"Two sibling subtasks share the key {child.key!r}; keys must be unique among siblings.",
                    field=f"{child_path}key",
                    value=child.key,
                )
            keyed[child.key] = child_id
    return task_id
