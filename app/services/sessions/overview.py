"""Reading and resuming sessions: the list of sessions, what an agent needs to pick up the work, and one
session's state at a glance.

``resume_session`` is the agent's way back in after a restart or a hand-off, in one call: it makes the
session current and answers with the brief of every task the actor holds (exactly as ``execute_task``
gives it), who else holds what, what waits and on what (dependencies or open subtasks), what is blocked
and why, what to do next (in ``next_task`` order), the latest handover document, and exactly the events
since this actor's previous visit of the session (``agent_visit``; ``initialize_session`` and
``resume_session`` both count as visits). Without a session id it resolves the session as every other
call does (``session_resolution``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from app import errors
from app.db.models import OrchestrationSession, Task, TaskEvent
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskScope
from app.db.uow import UnitOfWork
from app.domain import directories
from app.domain.clock import Clock, iso
from app.domain.enums import TERMINAL_STATUSES, ArtifactKind, TaskStatus
from app.domain.roles import RoleCatalog
from app.services.base import OutcomeSink, Service, ServiceConfig, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.session_resolution import resolve_session_id
from app.services.views import (
    ArtifactView,
    SessionView,
    StatusCounts,
    TaskSummary,
    TaskView,
    View,
    artifact_view,
    session_view,
    status_counts,
    task_summaries,
    task_views,
)
from app.services.work.briefs import ExecuteTaskResult, build_brief

READY_NEXT_LIMIT = 10
WAITING_LIMIT = 100
SESSIONS_OF_LIMIT = 50
RECENT_EVENTS_LIMIT = 500
ACTIVE_AGENT_WINDOW = timedelta(hours=24)
STATUS_EVENT = "status_changed"


class SessionSummary(SessionView):
    counts: StatusCounts


class ListSessionsResult(View):
    sessions: list[SessionSummary]
    total_count: int


class EventView(View):
    id: int
    task_id: str | None
    kind: str
    actor: str
    at: str
    data: dict[str, Any]


class HeldTask(TaskView):
    holder: str | None
    holder_last_seen_at: str | None
    lease_live: bool


class BlockedTask(TaskView):
    reason: str | None
    blocked_at: str | None
    reported_by: str | None


class WaitReason(View):
    dependencies: list[str] = Field(description="Dependencies not completed yet.")
    children: list[str] = Field(description="Subtasks not finished yet (the task waits for all of them).")


class WaitingTask(TaskSummary):
    why: WaitReason


class ResumeSessionResult(View):
    session: SessionView
    counts: StatusCounts
    held: list[ExecuteTaskResult] = Field(description="Your claims, each as orchestrator_execute_task returns it.")
    in_progress: list[HeldTask] = Field(description="Tasks other agents hold.")
    waiting: list[WaitingTask] = Field(description=f"Pending tasks that are not ready (up to {WAITING_LIMIT}).")
    blocked: list[BlockedTask]
    ready_next: list[TaskSummary]
    recent_events: list[EventView]
    recent_events_omitted: int
    latest_handover: ArtifactView | None


class SessionBoard(View):
    """One session at a glance (the ``orchestrator://sessions/{id}`` resource)."""

    session: SessionView
    counts: StatusCounts
    ready: list[TaskSummary] = Field(description=f"The first {READY_NEXT_LIMIT} in orchestrator_next_task order.")
    claims: list[TaskSummary]
    waiting: list[WaitingTask]


class DetailedCounts(StatusCounts):
    by_specialist: dict[str, int]


class ActiveAgent(View):
    actor: str
    holding: list[str]
    last_seen_at: str | None


class SessionStatusResult(View):
    session: SessionView
    counts: DetailedCounts
    progress_ratio: float
    active_agents: list[ActiveAgent]
    last_activity_at: str


def event_view(row: TaskEvent) -> EventView:
    return EventView(
        id=row.id,
        task_id=row.task_id,
        kind=row.kind,
        actor=row.actor,
        at=iso(row.at) or "",
        data=dict(row.data or {}),
    )


async def held_tasks(repos: Repositories, tasks: Sequence[Task], now: datetime) -> list[HeldTask]:
    """In-progress tasks with their holder, whether the lease is still live, and when the holder was seen."""
    seen = await repos.agents.last_seen([t.assigned_to for t in tasks if t.assigned_to])
    return [
        HeldTask(
            **view.model_dump(),
            holder=task.assigned_to,
            holder_last_seen_at=iso(seen.get(task.assigned_to)) if task.assigned_to else None,
            lease_live=rules.live_holder(task, now) is not None,
        )
        for task, view in zip(tasks, await task_views(repos, tasks), strict=True)
    ]


async def blocked_tasks(repos: Repositories, tasks: Sequence[Task]) -> list[BlockedTask]:
    """Blocked tasks with the reason, time and actor of the status change that blocked them."""
    events = await repos.events.latest_by_kinds([STATUS_EVENT], task_ids=[t.id for t in tasks])
    result: list[BlockedTask] = []
    for task, view in zip(tasks, await task_views(repos, tasks), strict=True):
        event = events.get(task.id)
        blocking = event is not None and (event.data or {}).get("to") == TaskStatus.BLOCKED.value
        reason = (event.data or {}).get("reason") if blocking and event is not None else None
        result.append(
            BlockedTask(
                **view.model_dump(),
                reason=str(reason) if reason is not None else None,
                blocked_at=iso(event.at) if blocking and event is not None else None,
                reported_by=event.actor if blocking and event is not None else None,
            )
        )
    return result


async def waiting_tasks(repos: Repositories, pending: Sequence[Task]) -> list[WaitingTask]:
    """The pending tasks that are not ready, each with what it waits for: dependencies, open subtasks."""
    children = await repos.tasks.open_children_of([t.id for t in pending])
    waiting = [row for row in await task_summaries(repos, pending) if not row.ready][:WAITING_LIMIT]
    return [
        WaitingTask(
            **row.model_dump(),
            why=WaitReason(dependencies=row.blocked_by, children=[child for child, _ in children.get(row.id, [])]),
        )
        for row in waiting
    ]


async def _session_or_raise(repos: Repositories, session_id: str) -> OrchestrationSession:
    row = await repos.sessions.get(session_id)
    if row is None:
        raise errors.SessionNotFound(session_id)
    return row


class SessionOverviewService(Service):
    """Lists, resumes and summarises sessions."""

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        *,
        roles: RoleCatalog,
        config: ServiceConfig | None = None,
        sink: OutcomeSink | None = None,
    ) -> None:
        super().__init__(uow, clock, config=config, sink=sink)
        self.roles = roles

    async def list_sessions(
        self, *, include_completed: bool, working_directory: str | None, limit: int, offset: int
    ) -> ListSessionsResult:
        """A page of sessions, most recently active first, each with its task counts.

        Without ``include_completed`` only active sessions that still have open work (or no tasks yet)
        are listed; with it, completed and archived sessions too. ``working_directory`` matches in its one
        spelling, as initialize_session stores it.
        """
        if working_directory is not None:
            working_directory = directories.normalise(working_directory)

        async def work(repos: Repositories) -> ListSessionsResult:
            rows, total = await repos.sessions.list_page(
                include_completed=include_completed, working_directory=working_directory, limit=limit, offset=offset
            )
            by_session = await repos.tasks.count_by_sessions([row.id for row in rows])
            summaries = []
            for row in rows:
                counts = StatusCounts(by_status=by_session[row.id], total=sum(by_session[row.id].values()))
                summaries.append(SessionSummary(**session_view(row, counts).model_dump(), counts=counts))
            return ListSessionsResult(sessions=summaries, total_count=total)

        return await self._read(work)

    async def resume_session(self, caller: Caller, session_id: str | None) -> ResumeSessionResult:
        """Make the session the actor's current one and return, in one call, what is needed to continue.

        Raises:
            not_found: the named session does not exist.
            invalid_argument: none named and none to fall back on (``session_resolution``).
        """

        async def work(tx: Tx) -> ResumeSessionResult:
            repos = tx.repos
            sid = await resolve_session_id(repos, caller, session_id)
            row = await _session_or_raise(repos, sid)
            visit = await repos.agents.get_visit(caller.actor, sid)
            after = visit.last_event_id if visit is not None else 0
            # Fix the window's upper end first, so an event committed meanwhile is shown next time.
            upto = await repos.events.last_id(sid)
            events = await repos.events.list_window(sid, after_id=after, upto_id=upto, limit=RECENT_EVENTS_LIMIT)
            new_events = await repos.events.count_in_window(sid, after_id=after, upto_id=upto)
            await repos.agents.set_current_session(caller.actor, sid, tx.now)
            await repos.agents.record_visit(caller.actor, sid, upto, tx.now)
            await repos.sessions.touch(sid, tx.now)
            scope = TaskScope(session_id=sid)
            counts = await status_counts(repos, sid)
            handover = await repos.artifacts.latest_for_session(sid, ArtifactKind.HANDOVER.value)
            claimed = await repos.tasks.list_in_scope(scope, statuses=[TaskStatus.IN_PROGRESS.value])
            mine = [t for t in claimed if rules.live_holder(t, tx.now) == caller.actor]
            held = [await build_brief(repos, t, self.roles, max_attempts=self.config.max_attempts) for t in mine]
            return ResumeSessionResult(
                session=session_view(row, counts),
                counts=counts,
                held=held,
                in_progress=await held_tasks(repos, [t for t in claimed if t not in mine], tx.now),
                waiting=await waiting_tasks(
                    repos, await repos.tasks.list_in_scope(scope, statuses=[TaskStatus.PENDING.value])
                ),
                blocked=await blocked_tasks(
                    repos, await repos.tasks.list_in_scope(scope, statuses=[TaskStatus.BLOCKED.value])
                ),
                ready_next=await task_summaries(
                    repos, await repos.tasks.list_ready_in_scope(scope, limit=READY_NEXT_LIMIT)
                ),
                recent_events=[event_view(e) for e in events],
                recent_events_omitted=new_events - len(events),
                latest_handover=artifact_view(handover) if handover is not None else None,
            )

        return await self._write(caller, "orchestrator_resume_session", None, ResumeSessionResult, work)

    async def session_board(self, session_id: str) -> SessionBoard:
        """Counts, the ready queue, the claims and what waits (and why) in one session.

        Raises:
            not_found: the session does not exist.
        """

        async def work(repos: Repositories) -> SessionBoard:
            row = await _session_or_raise(repos, session_id)
            scope = TaskScope(session_id=session_id)
            counts = await status_counts(repos, session_id)
            return SessionBoard(
                session=session_view(row, counts),
                counts=counts,
                ready=await task_summaries(repos, await repos.tasks.list_ready_in_scope(scope, limit=READY_NEXT_LIMIT)),
                claims=await task_summaries(
                    repos, await repos.tasks.list_in_scope(scope, statuses=[TaskStatus.IN_PROGRESS.value])
                ),
                waiting=await waiting_tasks(
                    repos, await repos.tasks.list_in_scope(scope, statuses=[TaskStatus.PENDING.value])
                ),
            )

        return await self._read(work)

    async def sessions_of(self, caller: Caller) -> list[SessionView]:
        """The caller's active sessions (as ``session_resolution`` defines them), most recent first."""

        async def work(repos: Repositories) -> list[SessionView]:
            actors = [caller.actor] if caller.principal is None else [caller.actor, caller.principal]
            rows = await repos.sessions.list_active_of_actors(actors, caller.principal, limit=SESSIONS_OF_LIMIT)
            return [session_view(row, await status_counts(repos, row.id)) for row in rows]

        return await self._read(work)

    async def session_status(self, caller: Caller, session_id: str | None) -> SessionStatusResult:
        """Counts, progress and the agents working in one session, from the database.

        Raises:
            not_found: the session does not exist.
            invalid_argument: none named and none to fall back on (``session_resolution``).
        """
        now = self.clock.now()
        requested = session_id

        async def work(repos: Repositories) -> SessionStatusResult:
            session_id = await resolve_session_id(repos, caller, requested)
            row = await _session_or_raise(repos, session_id)
            by_status = await repos.tasks.count_by(session_id, "status")
            by_specialist = await repos.tasks.count_by(session_id, "specialist_type")
            total = sum(by_status.values())
            terminal = sum(n for status, n in by_status.items() if status in TERMINAL_STATUSES)
            counts = DetailedCounts(by_status=by_status, by_specialist=by_specialist, total=total)
            holding: dict[str, list[str]] = defaultdict(list)
            scope = TaskScope(session_id=session_id)
            for task in await repos.tasks.list_in_scope(scope, statuses=[TaskStatus.IN_PROGRESS.value]):
                holder = rules.live_holder(task, now)
                if holder is not None:
                    holding[holder].append(task.id)
            present = await repos.agents.list_current_in_session(session_id, seen_since=now - ACTIVE_AGENT_WINDOW)
            seen = await repos.agents.last_seen(sorted(set(holding) | {a.actor for a in present}))
            actors = sorted(set(holding) | set(seen), key=lambda a: (-(seen[a].timestamp() if a in seen else 0), a))
            return SessionStatusResult(
                session=session_view(row, StatusCounts(by_status=by_status, total=total)),
                counts=counts,
                progress_ratio=round(terminal / total, 4) if total else 0.0,
                active_agents=[
                    ActiveAgent(actor=a, holding=holding.get(a, []), last_seen_at=iso(seen.get(a))) for a in actors
                ],
                last_activity_at=iso(row.last_activity_at) or "",
            )

        return await self._read(work)
