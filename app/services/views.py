"""The shapes services hand back: TaskView, SessionView, ArtifactView and how rows become them.

These pydantic models are also the tools' declared output schemas, so a field named here is a field on
the wire. Derived values (``ready``, ``blocked_by``) are computed from the dependency rows, never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field

from app.db.models import Artifact, OrchestrationSession, Task
from app.db.repositories import Repositories
from app.domain import json_bounds
from app.domain.clock import iso
from app.domain.enums import TERMINAL_STATUSES, TaskStatus

TaskStatusName = Literal["pending", "in_progress", "blocked", "completed", "failed", "cancelled", "archived"]
TaskTypeName = Literal[
    "standard",
    "breakdown",
    "milestone",
    "review",
    "approval",
    "research",
    "implementation",
    "testing",
    "documentation",
    "deployment",
    "custom",
]
ComplexityName = Literal["trivial", "simple", "moderate", "complex", "very_complex"]
SpecialistName = Literal[
    "analyst",
    "coder",
    "tester",
    "documenter",
    "reviewer",
    "architect",
    "devops",
    "researcher",
    "coordinator",
    "generic",
]
PriorityName = Literal["low", "medium", "high", "critical"]
ArtifactKindName = Literal[
    "code",
    "documentation",
    "analysis",
    "design",
    "test",
    "config",
    "general",
    "synthesis",
    "handover",
    "report",
    "cancellation",
    "revision_note",
]


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskView(View):
    """A task as every tool returns it (DESIGN §4)."""

    id: str
    session_id: str
    parent_id: str | None
    title: str
    description: str
    task_type: TaskTypeName
    status: TaskStatusName
    ready: bool = Field(description="pending, every dependency completed and no open subtask")
    blocked_by: list[str] = Field(description="dependencies that are not completed")
    complexity: ComplexityName
    specialist_type: SpecialistName
    priority: PriorityName
    estimated_effort: str | None
    due_date: str | None
    context: dict[str, Any]
    dependencies: list[str]
    assigned_to: str | None
    lease_expires_at: str | None
    attempt_count: int
    summary: str | None
    version: int
    created_by: str
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    open_children: int = Field(description="subtasks not yet terminal; a parent is ready only at 0")
    unreadable: str | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="present only when the stored row holds values that cannot be sent (written before input "
        "checks existed): says which fields were left out or repaired, and how to fix them",
    )


class TaskSummary(View):
    """A task as a row of a list (DESIGN §4): what an agent scans; ``view=full`` reads the rest."""

    id: str
    parent_id: str | None
    title: str
    status: TaskStatusName
    ready: bool
    priority: PriorityName
    specialist_type: SpecialistName
    task_type: TaskTypeName
    assigned_to: str | None
    lease_expires_at: str | None
    open_children: int
    blocked_by: list[str]
    version: int
    created_at: str
    updated_at: str


class ArtifactView(View):
    id: str
    session_id: str
    task_id: str | None
    kind: ArtifactKindName
    name: str
    content: str
    file_paths: list[str]
    size_bytes: int
    sha256: str
    created_by: str
    created_at: str


class SessionView(View):
    id: str
    name: str
    working_directory: str | None
    description: str | None
    status: Literal["active", "archived"]
    completed: bool = Field(description="at least one task and every task terminal")
    created_by: str
    created_at: str
    last_activity_at: str
    version: int


class StatusCounts(View):
    by_status: dict[str, int]
    total: int


V = TypeVar("V", bound=TaskView)


def task_view(task: Task, deps: Sequence[tuple[str, str]], open_children: int = 0) -> TaskView:
    return task_view_as(TaskView, task, deps, open_children)


def task_view_as(view_type: type[V], task: Task, deps: Sequence[tuple[str, str]], open_children: int = 0) -> V:
    """The view of ``task`` built straight into ``view_type`` (a TaskView or a subclass that adds fields).

    ``ready`` is derived here exactly as the claim query derives it in SQL: pending, every dependency
    completed, and no open subtask (a parent waits for its children, DESIGN §3).
    """
    blocked_by = [dep_id for dep_id, status in deps if status != TaskStatus.COMPLETED]
    guard = RenderGuard.of(task)
    return view_type(
        id=task.id,
        session_id=task.session_id,
        parent_id=task.parent_id,
        title=guard.text(task.title),
        description=guard.text(task.description),
        task_type=task.task_type,
        status=task.status,
        ready=task.status == TaskStatus.PENDING and not blocked_by and open_children == 0,
        blocked_by=blocked_by,
        complexity=task.complexity,
        specialist_type=task.specialist_type,
        priority=task.priority,
        estimated_effort=guard.text(task.estimated_effort),
        due_date=iso(task.due_at),
        context=guard.context(task.context),
        dependencies=[dep_id for dep_id, _ in deps],
        assigned_to=guard.text(task.assigned_to),
        lease_expires_at=iso(task.lease_expires_at),
        attempt_count=task.attempt_count,
        summary=guard.text(task.summary),
        version=task.version,
        created_by=guard.text(task.created_by),
        created_at=iso(task.created_at) or "",
        updated_at=iso(task.updated_at) or "",
        started_at=iso(task.started_at),
        completed_at=iso(task.completed_at),
        open_children=open_children,
        unreadable=guard.marker,
    )


TEXT_COLUMNS = ("title", "description", "estimated_effort", "summary", "assigned_to", "created_by")


@dataclass(frozen=True)
class RenderGuard:
    """How one stored task row is sent when parts of it cannot be (DESIGN §3: one row never breaks a read).

    Rows written before input hygiene existed may hold a lone surrogate (SQLite stored it) or a context
    nested hundreds of levels deep (a reply no JSON parser reads back). Such a row is still served: text is
    repaired (each bad character shown as U+FFFD), a context that cannot be sent is left out (``{}``), and
    ``marker`` (the view's ``unreadable``) says what happened and how to fix it. ``RenderGuard.of`` is cheap
    for a clean row: one regex per text column and one serialization of the context.
    """

    task_id: str
    problems: tuple[str, ...] = ()
    context_keys: tuple[str, ...] | None = None  # set when the context is left out

    @classmethod
    def of(cls, task: Task) -> RenderGuard:
        problems = [
            f"{name} holds an invalid character (shown as U+FFFD)"
            for name in TEXT_COLUMNS
            if isinstance(value := getattr(task, name), str) and json_bounds.bad_character(value)
        ]
        context_problem = json_bounds.unrenderable(task.context) if task.context else None
        if context_problem is None and not problems:
            return cls(task.id)
        keys = None
        if context_problem is not None:
            keys = tuple(json_bounds.readable(str(k)) for k in (task.context or {}))
            problems.append(f"context is left out: {context_problem}")
        return cls(task.id, tuple(problems), keys)

    @overload
    def text(self, value: str) -> str: ...

    @overload
    def text(self, value: str | None) -> str | None: ...

    def text(self, value: str | None) -> str | None:
        return json_bounds.readable(value) if self.problems and value is not None else value

    def context(self, value: dict[str, Any] | None) -> dict[str, Any]:
        return {} if self.context_keys is not None else dict(value or {})

    @property
    def marker(self) -> str | None:
        """The view's ``unreadable``: what was repaired or left out, and how to fix the row."""
        if not self.problems:
            return None
        return (
            f"This task was stored before input checks existed and cannot be sent whole: {'; '.join(self.problems)}. "
            f"To fix it, {self.fix}."
        )

    @property
    def fix(self) -> str:
        """The calls that make the row whole again (a merge-patch that drops the context's top-level keys)."""
        steps = []
        if self.context_keys is not None:
            patch = ", ".join(f'"{k}": null' for k in self.context_keys[:20])
            steps.append(
                f"clear the context with orchestrator_update_task(task_id={self.task_id!r}, context={{{patch}}}) "
                "and then set the keys you need"
            )
        if any(not p.startswith("context") for p in self.problems):
            steps.append("rewrite the repaired text with orchestrator_update_task")
        return " and ".join(steps)


async def task_views(repos: Repositories, tasks: Sequence[Task]) -> list[TaskView]:
    """Views for many tasks with one dependency query."""
    return await task_views_as(TaskView, repos, tasks)


async def task_views_as(view_type: type[V], repos: Repositories, tasks: Sequence[Task]) -> list[V]:
    """Like :func:`task_views`, built straight into ``view_type`` (no second model per task)."""
    ids = [t.id for t in tasks]
    deps = await repos.dependencies.statuses_for(ids)
    children = await repos.tasks.open_children_of(ids)
    return [task_view_as(view_type, t, deps.get(t.id, []), len(children.get(t.id, ()))) for t in tasks]


S = TypeVar("S", bound=TaskSummary)


async def task_summaries_as(view_type: type[S], repos: Repositories, tasks: Sequence[Task]) -> list[S]:
    """Summary rows for many tasks (one dependency query, one open-children query).

    Reads only the columns a summary shows, so the rows may come from a light query; ``ready`` is derived
    exactly as in :func:`task_view_as`.
    """
    ids = [t.id for t in tasks]
    deps = await repos.dependencies.statuses_for(ids)
    children = await repos.tasks.open_children_of(ids)
    rows: list[S] = []
    for task in tasks:
        blocked_by = [dep_id for dep_id, status in deps.get(task.id, []) if status != TaskStatus.COMPLETED]
        open_children = len(children.get(task.id, ()))
        rows.append(
            view_type(
                id=task.id,
                parent_id=task.parent_id,
                title=task.title,
                status=task.status,
                ready=task.status == TaskStatus.PENDING and not blocked_by and open_children == 0,
                priority=task.priority,
                specialist_type=task.specialist_type,
                task_type=task.task_type,
                assigned_to=task.assigned_to,
                lease_expires_at=iso(task.lease_expires_at),
                open_children=open_children,
                blocked_by=blocked_by,
                version=task.version,
                created_at=iso(task.created_at) or "",
                updated_at=iso(task.updated_at) or "",
            )
        )
    return rows


async def task_summaries(repos: Repositories, tasks: Sequence[Task]) -> list[TaskSummary]:
    return await task_summaries_as(TaskSummary, repos, tasks)


async def one_task_view(repos: Repositories, task: Task) -> TaskView:
    return (await task_views(repos, [task]))[0]


def artifact_view(row: Artifact) -> ArtifactView:
    return ArtifactView(
        id=row.id,
        session_id=row.session_id,
        task_id=row.task_id,
        kind=row.kind,
        name=row.name,
        content=row.content,
        file_paths=list(row.file_paths or []),
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        created_by=row.created_by,
        created_at=iso(row.created_at) or "",
    )


def session_view(row: OrchestrationSession, counts: StatusCounts) -> SessionView:
    terminal = sum(n for status, n in counts.by_status.items() if status in TERMINAL_STATUSES)
    return SessionView(
        id=row.id,
        name=row.name,
        working_directory=row.working_directory,
        description=row.description,
        status=row.status,
        completed=counts.total > 0 and terminal == counts.total,
        created_by=row.created_by,
        created_at=iso(row.created_at) or "",
        last_activity_at=iso(row.last_activity_at) or "",
        version=row.version,
    )


async def status_counts(repos: Repositories, session_id: str) -> StatusCounts:
    by_status = await repos.tasks.count_by(session_id, "status")
    return StatusCounts(by_status=by_status, total=sum(by_status.values()))
