"""What the supervisors' board shows (issue 16): sessions at a glance, one session as columns and a tree,
one task in full. Read-only, one read transaction per call.

The board is an edge like the MCP tools: it gets its data here, from the same repositories and views the
tools use (``TaskView.ready`` and ``open_children`` included), so the board and the agents never disagree
about what is ready. When to re-read is not this module's business: the board learns of changes from the
change feed (``app.board.feed``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import Field

from app import errors
from app.db.models import Task
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskScope
from app.domain.clock import iso
from app.domain.enums import TERMINAL_STATUSES, TaskStatus
from app.services.base import Service
from app.services.graph import rules
from app.services.sessions.overview import ACTIVE_AGENT_WINDOW, EventView, event_view
from app.services.sessions.status_reasons import status_reasons
from app.services.views import (
    SessionView,
    StatusCounts,
    TaskView,
    View,
    session_view,
    task_views,
)

SESSIONS_LIMIT = 200
RECENT_EVENTS = 30
TASK_EVENTS = 200
DONE_LIMIT = 50
ARTIFACT_PREVIEW_CHARS = 4000


class BoardSession(View):
    session: SessionView
    counts: StatusCounts
    progress_ratio: float
    active_agents: list[str]


class BoardSessions(View):
    sessions: list[BoardSession]
    total_count: int


class TaskRef(View):
    id: str
    title: str
    status: str


class WaitingTask(View):
    task: TaskView
    on_dependencies: list[TaskRef]
    on_children: list[TaskRef]


class HeldTask(View):
    task: TaskView
    holder: str | None
    lease_expires_at: str | None
    lease_seconds_left: int | None
    attempt: int


class BlockedTask(View):
    task: TaskView
    reason: str


class TreeNode(View):
    task: TaskView
    depends_on: list[TaskRef]
    children: list[TreeNode]


class BoardAgent(View):
    actor: str
    holding: list[TaskRef]
    last_seen_at: str | None


class SessionBoard(View):
    session: SessionView
    counts: StatusCounts
    progress_ratio: float
    ready: list[TaskView]
    waiting: list[WaitingTask]
    in_progress: list[HeldTask]
    blocked: list[BlockedTask]
    done: list[TaskView]
    done_omitted: int
    tree: list[TreeNode]
    agents: list[BoardAgent]
    recent_events: list[EventView]
    titles: dict[str, str] = Field(description="task id -> title, for the events")
    generated_at: str


class ArtifactPreview(View):
    id: str
    kind: str
    name: str
    content: str
    truncated: bool
    size_bytes: int
    file_paths: list[str]
    created_by: str
    created_at: str


class TaskDetail(View):
    task: TaskView
    session: SessionView
    parent: TaskRef | None
    depends_on: list[TaskRef]
    dependents: list[TaskRef]
    children: list[TaskRef]
    artifacts: list[ArtifactPreview]
    events: list[EventView]


def _ref(task: Task | TaskView) -> TaskRef:
    return TaskRef(id=task.id, title=task.title, status=task.status)


def _progress(by_status: dict[str, int]) -> float:
    total = sum(by_status.values())
    terminal = sum(n for status, n in by_status.items() if status in TERMINAL_STATUSES)
    return round(terminal / total, 4) if total else 0.0


def _seconds_left(expires: datetime | None, now: datetime) -> int | None:
    return None if expires is None else max(0, int((expires - now).total_seconds()))


class BoardService(Service):
    """Read-only views for the board; never writes (not even the actor's last-seen time)."""

    async def list_sessions(self) -> BoardSessions:
        """Every session, most recently active first, with counts, progress and its active agents."""
        now = self.clock.now()

        async def work(repos: Repositories) -> BoardSessions:
            rows, total = await repos.sessions.list_page(
                include_completed=True, working_directory=None, limit=SESSIONS_LIMIT, offset=0
            )
            by_session = await repos.tasks.count_by_sessions([row.id for row in rows])
            result = []
            for row in rows:
                by_status = by_session[row.id]
                counts = StatusCounts(by_status=by_status, total=sum(by_status.values()))
                agents = await _active_agents(repos, row.id, now)
                result.append(
                    BoardSession(
                        session=session_view(row, counts),
                        counts=counts,
                        progress_ratio=_progress(by_status),
                        active_agents=sorted(agents),
                    )
                )
            return BoardSessions(sessions=result, total_count=total)

        return await self._read(work)

    async def session_board(self, session_id: str) -> SessionBoard:
        """One session as the board's columns, tree, agents and recent events.

        Raises:
            not_found: the session does not exist.
        """
        now = self.clock.now()

        async def work(repos: Repositories) -> SessionBoard:
            row = await repos.sessions.get(session_id)
            if row is None:
                raise errors.SessionNotFound(session_id)
            tasks = await repos.tasks.list_in_scope(TaskScope(session_id=session_id))
            views = await task_views(repos, tasks)
            by_id = {view.id: view for view in views}
            by_status: dict[str, int] = defaultdict(int)
            for view in views:
                by_status[view.status] += 1
            counts = StatusCounts(by_status=dict(by_status), total=len(views))
            children: dict[str, list[TaskView]] = defaultdict(list)
            for view in views:
                if view.parent_id is not None:
                    children[view.parent_id].append(view)
            blocked_rows = [t for t in tasks if t.status == TaskStatus.BLOCKED]
            reasons = await status_reasons(repos, blocked_rows)
            done = sorted(
                (v for v in views if v.status in TERMINAL_STATUSES),
                key=lambda v: (v.completed_at or v.updated_at, v.id),
                reverse=True,
            )
            last = await repos.events.last_id(session_id)
            events = await repos.events.list_window(session_id, after_id=0, upto_id=last, limit=RECENT_EVENTS)
            return SessionBoard(
                session=session_view(row, counts),
                counts=counts,
                progress_ratio=_progress(dict(by_status)),
                ready=[v for v in views if v.ready],
                waiting=[_waiting(v, by_id, children) for v in views if v.status == "pending" and not v.ready],
                in_progress=[
                    HeldTask(
                        task=by_id[t.id],
                        holder=rules.live_holder(t, now) or t.assigned_to,
                        lease_expires_at=iso(t.lease_expires_at),
                        lease_seconds_left=_seconds_left(t.lease_expires_at, now),
                        attempt=t.attempt_count,
                    )
                    for t in tasks
                    if t.status == TaskStatus.IN_PROGRESS
                ],
                blocked=[BlockedTask(task=by_id[t.id], reason=reasons[t.id]) for t in blocked_rows],
                done=done[:DONE_LIMIT],
                done_omitted=max(0, len(done) - DONE_LIMIT),
                tree=_tree([v for v in views if v.parent_id is None or v.parent_id not in by_id], by_id, children),
                agents=await _agents(repos, session_id, tasks, now),
                recent_events=[event_view(e) for e in reversed(events)],
                titles={v.id: v.title for v in views},
                generated_at=iso(now) or "",
            )

        return await self._read(work)

    async def task_detail(self, task_id: str) -> TaskDetail:
        """One task: its fields, dependencies both ways, children, artifacts (previews) and its history.

        Raises:
            not_found: the task does not exist.
        """

        async def work(repos: Repositories) -> TaskDetail:
            task = await repos.tasks.get(task_id)
            if task is None:
                raise errors.TaskNotFound(task_id)
            session = await repos.sessions.get(task.session_id)
            if session is None:  # deleted between the two reads
                raise errors.TaskNotFound(task_id)
            view = (await task_views(repos, [task]))[0]
            related = await repos.tasks.get_many(
                [*view.dependencies, *await repos.dependencies.dependents_of([task_id])]
            )
            related_by_id = {t.id: t for t in related}
            dependents = sorted(set(related_by_id) - set(view.dependencies))
            parent = await repos.tasks.get(task.parent_id) if task.parent_id else None
            counts = StatusCounts(by_status={}, total=0)
            artifacts = await repos.artifacts.heads_by_task_ids([task_id], chars=ARTIFACT_PREVIEW_CHARS + 1)
            events = await repos.events.list_latest_for_task(task_id, limit=TASK_EVENTS)
            return TaskDetail(
                task=view,
                session=session_view(session, counts),
                parent=_ref(parent) if parent is not None else None,
                depends_on=[_ref(related_by_id[d]) for d in view.dependencies if d in related_by_id],
                dependents=[_ref(related_by_id[d]) for d in dependents],
                children=[_ref(c) for c in await repos.tasks.list_children([task_id])],
                artifacts=[
                    ArtifactPreview(
                        id=a.id,
                        kind=a.kind,
                        name=a.name,
                        content=a.content[:ARTIFACT_PREVIEW_CHARS],
                        truncated=len(a.content) > ARTIFACT_PREVIEW_CHARS,
                        size_bytes=a.size_bytes,
                        file_paths=list(a.file_paths or []),
                        created_by=a.created_by,
                        created_at=iso(a.created_at) or "",
                    )
                    for a in artifacts
                ],
                events=[event_view(e) for e in events],
            )

        return await self._read(work)


def _waiting(view: TaskView, by_id: dict[str, TaskView], children: dict[str, list[TaskView]]) -> WaitingTask:
    return WaitingTask(
        task=view,
        on_dependencies=[_ref(by_id[d]) if d in by_id else TaskRef(id=d, title=d, status="?") for d in view.blocked_by],
        on_children=[_ref(c) for c in children.get(view.id, []) if c.status not in TERMINAL_STATUSES],
    )


def _tree(roots: list[TaskView], by_id: dict[str, TaskView], children: dict[str, list[TaskView]]) -> list[TreeNode]:
    def node(view: TaskView) -> TreeNode:
        return TreeNode(
            task=view,
            depends_on=[_ref(by_id[d]) for d in view.dependencies if d in by_id],
            children=[node(c) for c in children.get(view.id, [])],
        )

    return [node(root) for root in roots]


async def _active_agents(repos: Repositories, session_id: str, now: datetime) -> set[str]:
    """Actors holding a live claim in the session or current in it and seen in the last day."""
    held = await repos.tasks.list_in_scope(TaskScope(session_id=session_id), statuses=[TaskStatus.IN_PROGRESS.value])
    holders = {h for t in held if (h := rules.live_holder(t, now)) is not None}
    present = await repos.agents.list_current_in_session(session_id, seen_since=now - ACTIVE_AGENT_WINDOW)
    return holders | {a.actor for a in present}


async def _agents(repos: Repositories, session_id: str, tasks: list[Task], now: datetime) -> list[BoardAgent]:
    holding: dict[str, list[TaskRef]] = defaultdict(list)
    for task in tasks:
        holder = rules.live_holder(task, now) if task.status == TaskStatus.IN_PROGRESS else None
        if holder is not None:
            holding[holder].append(_ref(task))
    present = await repos.agents.list_current_in_session(session_id, seen_since=now - ACTIVE_AGENT_WINDOW)
    actors = sorted(set(holding) | {a.actor for a in present})
    seen = await repos.agents.last_seen(actors)
    return [BoardAgent(actor=a, holding=holding.get(a, []), last_seen_at=iso(seen.get(a))) for a in actors]
