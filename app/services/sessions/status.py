"""``orchestrator_get_status``: where a session stands, read from the database, plus this process's health.

Counts, the ready queue, claims, blockers and recent completions come from one read transaction: the
counts by status and by specialist in one grouped pass; the ready count, what the other pending tasks
wait for (dependencies or children) and the ready queue's top in one statement; then short lists — a
board, not a dump; the full lists are ``orchestrator_query_tasks``'. The process-side parts (tool latency
histograms, resource usage, RebootManager and monitor health) come from a :class:`ProcessProbe` the
composition root supplies, because services sit below the runtime layer.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

from pydantic import Field

from app import errors
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.domain.clock import Clock, iso
from app.domain.enums import TaskStatus
from app.services.base import OutcomeSink, Service, ServiceConfig
from app.services.caller import Caller
from app.services.session_resolution import resolve_session_id
from app.services.sessions.status_reasons import status_reasons
from app.services.views import SessionView, StatusCounts, TaskView, View, session_view, task_views

READY_TOP = 5
# A board, not a dump (issue 14): each list shows its first few; counts.by_status has how many there are,
# and orchestrator_query_tasks lists them all.
LIST_LIMIT = 10
COMPLETED_LIMIT = 10


class SessionCounts(View):
    by_status: dict[str, int]
    by_specialist: dict[str, int]
    total: int


class ReadyQueue(View):
    count: int = Field(description="Tasks that can be claimed now.")
    waiting_on_dependencies: int = Field(
        description="Pending tasks with a dependency that is not completed (whatever their subtasks)."
    )
    waiting_on_children: int = Field(
        description="Pending tasks whose dependencies are all completed but that wait for an open subtask "
        "(a parent waits for its children). count + waiting_on_dependencies + waiting_on_children is every "
        "pending task."
    )
    top: list[TaskView] = Field(description=f"The first {READY_TOP} in orchestrator_next_task order.")


class ClaimedTask(View):
    task_id: str
    title: str
    specialist_type: str
    holder: str | None
    lease_expires_at: str | None
    lease_expired: bool


class BlockedTask(View):
    task_id: str
    title: str
    reason: str
    blocked_since: str


class CompletedTask(View):
    task_id: str
    title: str
    summary: str | None
    completed_at: str | None


class ToolStats(View):
    calls: int
    errors: int
    p50_ms: float
    p95_ms: float


class PoolUsage(View):
    capacity: int | None = Field(description="The most connections this process's pool opens (size + overflow).")
    checked_out: int
    idle: int
    overflow: int


class ResourceUsage(View):
    rss_bytes: int | None = Field(description="Resident memory of this process (None where unknown).")
    cpu_seconds: float = Field(description="User plus system CPU time of this process.")
    open_fds: int | None = Field(description="Open file descriptors (None where /proc is missing).")
    db_pool: PoolUsage


class DatabaseHealth(View):
    ok: bool
    backend: str
    latency_ms: float = Field(description="Round trip of this call's first status query.")


class RebootHealth(View):
    ok: bool
    state: str
    in_flight_calls: int
    problems: list[str]


class MonitorHealth(View):
    alive: bool
    runs: int
    failures: int
    last_error: str | None


class MonitorsHealth(View):
    ok: bool
    monitors: dict[str, MonitorHealth]


class SystemHealth(View):
    database: DatabaseHealth
    reboot_manager: RebootHealth
    monitors: MonitorsHealth


class StatusResult(View):
    session: SessionView
    counts: SessionCounts
    ready: ReadyQueue
    in_progress: list[ClaimedTask] = Field(
        description=f"The first {LIST_LIMIT} claimed tasks, oldest change first; counts.by_status has them all "
        "and orchestrator_query_tasks(status=in_progress) lists them."
    )
    blocked: list[BlockedTask] = Field(
        description=f"The first {LIST_LIMIT} blocked tasks with the reason, oldest first; counts.by_status has "
        "them all and orchestrator_query_tasks(status=blocked) lists them."
    )
    completed: list[CompletedTask] | None = Field(
        description=f"The {COMPLETED_LIMIT} most recently completed, present with include_completed; "
        "orchestrator_query_tasks(status=completed) lists them all."
    )
    performance_metrics: dict[str, ToolStats] | None = Field(
        description="Per tool, from this process since it started; present with include_performance_metrics."
    )
    resource_usage: ResourceUsage | None = Field(description="This process; present with include_resource_usage.")
    system_health: SystemHealth


class ProcessProbe(Protocol):
    """This process's side of the status (implemented in the runtime layer)."""

    def tool_stats(self) -> dict[str, ToolStats]: ...

    def resource_usage(self) -> ResourceUsage: ...

    def reboot_health(self) -> RebootHealth: ...

    def monitors_health(self) -> MonitorsHealth: ...


class StatusService(Service):
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        *,
        probe: ProcessProbe,
        config: ServiceConfig | None = None,
        sink: OutcomeSink | None = None,
    ) -> None:
        super().__init__(uow, clock, config=config, sink=sink)
        self.probe = probe

    async def get_status(
        self,
        caller: Caller,
        *,
        session_id: str | None,
        include_completed: bool,
        include_performance_metrics: bool,
        include_resource_usage: bool,
    ) -> StatusResult:
        """The session's real numbers and this process's health.

        Raises:
            not_found (session), invalid_argument (no session given and no current session).
        """

        async def work(repos: Repositories) -> StatusResult:
            sid = await resolve_session_id(repos, caller, session_id)
            started = time.perf_counter()
            board = await repos.tasks.board_counts(sid)  # one aggregate pass: by status and by specialist
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            by_status = board.by_status
            total = sum(by_status.values())
            row = await repos.sessions.get(sid)
            if row is None:  # deleted between the two reads
                raise errors.SessionNotFound(sid)
            ready = await repos.tasks.ready_board(sid, limit=READY_TOP)
            return StatusResult(
                session=session_view(row, StatusCounts(by_status=by_status, total=total)),
                counts=SessionCounts(by_status=by_status, by_specialist=board.by_specialist, total=total),
                ready=ReadyQueue(
                    count=ready.ready,
                    waiting_on_dependencies=by_status.get(TaskStatus.PENDING, 0) - ready.dependencies_met,
                    waiting_on_children=ready.dependencies_met - ready.ready,
                    top=await task_views(repos, ready.top),
                ),
                in_progress=await _claimed(repos, sid, self.clock.now()),
                blocked=await _blocked(repos, sid),
                completed=await _completed(repos, sid) if include_completed else None,
                performance_metrics=self.probe.tool_stats() if include_performance_metrics else None,
                resource_usage=self.probe.resource_usage() if include_resource_usage else None,
                system_health=SystemHealth(
                    database=DatabaseHealth(ok=True, backend=self.uow.backend, latency_ms=latency_ms),
                    reboot_manager=self.probe.reboot_health(),
                    monitors=self.probe.monitors_health(),
                ),
            )

        return await self._read(work)


async def _claimed(repos: Repositories, session_id: str, now: datetime) -> list[ClaimedTask]:
    rows = await repos.tasks.list_by_status(session_id, TaskStatus.IN_PROGRESS, limit=LIST_LIMIT)
    return [
        ClaimedTask(
            task_id=t.id,
            title=t.title,
            specialist_type=t.specialist_type,
            holder=t.assigned_to,
            lease_expires_at=iso(t.lease_expires_at),
            lease_expired=t.lease_expires_at is not None and t.lease_expires_at <= now,
        )
        for t in rows
    ]


async def _blocked(repos: Repositories, session_id: str) -> list[BlockedTask]:
    rows = await repos.tasks.list_by_status(session_id, TaskStatus.BLOCKED, limit=LIST_LIMIT)
    reasons = await status_reasons(repos, rows)
    return [
        BlockedTask(task_id=t.id, title=t.title, reason=reasons[t.id], blocked_since=iso(t.updated_at) or "")
        for t in rows
    ]


async def _completed(repos: Repositories, session_id: str) -> list[CompletedTask]:
    rows = await repos.tasks.list_by_status(session_id, TaskStatus.COMPLETED, newest_first=True, limit=COMPLETED_LIMIT)
    return [
        CompletedTask(task_id=t.id, title=t.title, summary=t.summary, completed_at=iso(t.completed_at)) for t in rows
    ]
