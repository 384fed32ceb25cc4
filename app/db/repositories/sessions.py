"""SQL for ``orchestration_session``. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, case, delete, func, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    Agent,
    AgentVisit,
    Artifact,
    OrchestrationSession,
    Task,
    TaskDependency,
    TaskEvent,
)
from app.db.recent_touches import ACTIVITY_GRANULARITY, RecentTouches
from app.db.repositories.advisory_locks import lock_xact
from app.domain.enums import OPEN_STATUSES, TaskStatus


@dataclass(frozen=True)
class SessionStats:
    """A session with the task numbers that decide whether it is completed, orphaned or in use."""

    session: OrchestrationSession
    total: int
    open: int
    live_claims: int

    @property
    def completed(self) -> bool:
        return self.total > 0 and self.open == 0


def _task_stats(now: datetime | None = None) -> Subquery:
    """Per session: number of tasks, of open tasks and (given ``now``) of live claims."""
    columns: list[ColumnElement[Any]] = [
        Task.session_id.label("session_id"),
        func.count().label("total"),
        func.sum(case((Task.status.in_([s.value for s in OPEN_STATUSES]), 1), else_=0)).label("open"),
    ]
    if now is not None:
        live = and_(
            Task.status == TaskStatus.IN_PROGRESS.value,
            Task.assigned_to.is_not(None),
            or_(Task.lease_expires_at.is_(None), Task.lease_expires_at > now),
        )
        columns.append(func.sum(case((live, 1), else_=0)).label("live_claims"))
    return select(*columns).group_by(Task.session_id).subquery("task_stats")


class SessionRepository:
    def __init__(self, session: AsyncSession, backend: str, touches: RecentTouches) -> None:
        self._session = session
        self._backend = backend
        self._touches = touches
        # Rows this transaction read, held strongly (the ORM's identity map only holds them weakly).
        self._read: dict[str, OrchestrationSession] = {}

    async def get(self, session_id: str, *, key_share: bool = False) -> OrchestrationSession | None:
        """The session row; ``key_share`` takes PostgreSQL's ``FOR KEY SHARE`` row lock (SQLite: the
        immediate transaction), which writers adding tasks hold so that cleanup's ``FOR UPDATE`` cannot
        archive the session under them, while touches (``FOR NO KEY UPDATE``) and other such writers pass."""
        row = await self._session.get(
            OrchestrationSession,
            session_id,
            with_for_update={"read": True, "key_share": True} if key_share else None,
            # The locked row's values, not those an earlier read of this transaction left in the identity map.
            populate_existing=key_share,
        )
        if row is not None:
            self._read[row.id] = row
        return row

    async def lock_directory(self, working_directory: str) -> None:
        """Serialise the resume-or-create of one working directory's active session until this transaction ends.

        Taken before :meth:`get_active_for_directory`: of two agents starting on one directory at once, the
        second waits here and then resumes the session the first created, instead of creating another.
        """
        await lock_xact(self._session, self._backend, "session-dir", working_directory)

    async def get_active_for_directory(self, working_directory: str) -> OrchestrationSession | None:
        row = await self._session.scalar(
            select(OrchestrationSession)
            .where(
                OrchestrationSession.working_directory == working_directory,
                OrchestrationSession.status == "active",
            )
            .order_by(OrchestrationSession.last_activity_at.desc(), OrchestrationSession.id)
            .limit(1)
        )
        if row is not None:
            self._read[row.id] = row
        return row

    async def list_active_of_actors(
        self, actors: Sequence[str], prefix: str | None, *, limit: int
    ) -> list[OrchestrationSession]:
        """Active sessions, most recently active first, that one of these actors (or any actor named
        ``prefix/…``) created, has as its current session, or visited (``agent_visit``)."""

        def matches(column: Any) -> ColumnElement[bool]:
            preds: list[ColumnElement[bool]] = [column.in_(list(actors))]
            if prefix is not None:
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                preds.append(column.like(f"{escaped}/%", escape="\\"))
            return or_(*preds)

        current = select(Agent.current_session_id).where(matches(Agent.actor), Agent.current_session_id.is_not(None))
        visited = select(AgentVisit.session_id).where(matches(AgentVisit.actor))
        rows = await self._session.scalars(
            select(OrchestrationSession)
            .where(
                OrchestrationSession.status == "active",
                or_(
                    matches(OrchestrationSession.created_by),
                    OrchestrationSession.id.in_(current),
                    OrchestrationSession.id.in_(visited),
                ),
            )
            .order_by(OrchestrationSession.last_activity_at.desc(), OrchestrationSession.id)
            .limit(limit)
        )
        return list(rows.all())

    async def list_active(self, *, limit: int) -> list[OrchestrationSession]:
        """The most recently active sessions (status active), newest first."""
        rows = await self._session.scalars(
            select(OrchestrationSession)
            .where(OrchestrationSession.status == "active")
            .order_by(OrchestrationSession.last_activity_at.desc(), OrchestrationSession.id)
            .limit(limit)
        )
        return list(rows.all())

    async def lock(self, session_id: str) -> None:
        """Row lock on the session (PostgreSQL ``FOR UPDATE``) to serialise graph-shape changes."""
        await self._session.execute(
            select(OrchestrationSession.id).where(OrchestrationSession.id == session_id).with_for_update()
        )

    async def insert(self, row: OrchestrationSession) -> OrchestrationSession:
        self._session.add(row)
        await self._session.flush()
        return row

    async def touch(self, session_id: str, at: datetime, *, seen_activity: datetime | None = None) -> None:
        """Record activity (conditional update that only moves the time forward).

        The session row is shared by every writer of the session, so it is touched at most once per
        ``ACTIVITY_GRANULARITY``: concurrent writers then rarely queue on its row lock. When this
        transaction already read the row (``get``) and its activity is that recent, the update could
        match nothing (the time only moves forward), so the statement is skipped; so it is when this
        process issued it for the session less than the granularity ago (``app.db.recent_touches``).
        That memory is written when the statement runs, not at the commit: a transaction rolled back
        after its touch leaves the activity at most one granularity behind, which is all it promises.
        ``seen_activity`` is the activity this transaction read by a Core statement (a single task's plan).
        """
        seen = seen_activity
        row = self._read.get(session_id)
        if seen is None and row is not None:
            # The state's dict, not the attribute: reading an expired attribute would load it (no I/O here).
            seen = inspect(row).dict.get("last_activity_at")
        if seen is not None and seen >= at - ACTIVITY_GRANULARITY:
            return
        if not self._touches.due(session_id, at):
            return
        self._touches.record(session_id, at)
        await self._session.execute(
            update(OrchestrationSession)
            .where(
                OrchestrationSession.id == session_id,
                OrchestrationSession.last_activity_at < at - ACTIVITY_GRANULARITY,
            )
            .values(last_activity_at=at)
            .execution_options(synchronize_session=False)
        )

    async def list_page(
        self, *, include_completed: bool, working_directory: str | None, limit: int, offset: int
    ) -> tuple[list[OrchestrationSession], int]:
        """One page of sessions, most recently active first, and the number of all matches.

        Without ``include_completed`` only active sessions with open work (or no tasks yet) match.
        """
        stats = _task_stats()
        preds: list[ColumnElement[bool]] = []
        if working_directory is not None:
            preds.append(OrchestrationSession.working_directory == working_directory)
        if not include_completed:
            preds.append(OrchestrationSession.status == "active")
            preds.append(or_(stats.c.total.is_(None), stats.c.open > 0))
        base = select(OrchestrationSession).outerjoin(stats, stats.c.session_id == OrchestrationSession.id)
        total = await self._session.scalar(select(func.count()).select_from(base.where(*preds).subquery()))
        rows = await self._session.scalars(
            base.where(*preds)
            .order_by(OrchestrationSession.last_activity_at.desc(), OrchestrationSession.id)
            .limit(limit)
            .offset(offset)
        )
        return list(rows.all()), int(total or 0)

    async def list_with_stats(self, now: datetime, *, lock: bool = False) -> list[SessionStats]:
        """Every session with its task numbers (for cleanup), oldest activity first.

        ``lock`` takes a row lock on the session rows (PostgreSQL ``FOR UPDATE OF``), so a cleanup
        decides on rows no one else is changing; SQLite: the immediate transaction.
        """
        stats = _task_stats(now)
        query = (
            select(
                OrchestrationSession,
                func.coalesce(stats.c.total, 0),
                func.coalesce(stats.c.open, 0),
                func.coalesce(stats.c.live_claims, 0),
            )
            .outerjoin(stats, stats.c.session_id == OrchestrationSession.id)
            .order_by(OrchestrationSession.last_activity_at, OrchestrationSession.id)
        )
        if lock:
            query = query.with_for_update(of=OrchestrationSession).execution_options(populate_existing=True)
        rows = await self._session.execute(query)
        return [
            SessionStats(session=row, total=int(total), open=int(open_), live_claims=int(live))
            for row, total, open_, live in rows
        ]

    async def archive(self, row: OrchestrationSession, at: datetime) -> None:
        row.status = "archived"
        row.version += 1
        row.last_activity_at = at
        await self._session.flush()

    async def delete_with_contents(self, session_ids: Sequence[str]) -> None:
        """Remove sessions with every row that belongs to them, their event trail included."""
        if not session_ids:
            return
        ids = list(session_ids)
        task_ids = select(Task.id).where(Task.session_id.in_(ids))
        await self._session.execute(
            delete(TaskDependency).where(
                or_(TaskDependency.task_id.in_(task_ids), TaskDependency.depends_on_id.in_(task_ids))
            )
        )
        await self._session.execute(delete(Artifact).where(Artifact.session_id.in_(ids)))
        await self._session.execute(delete(AgentVisit).where(AgentVisit.session_id.in_(ids)))
        await self._session.execute(
            update(Agent).where(Agent.current_session_id.in_(ids)).values(current_session_id=None)
        )
        await self._session.execute(delete(TaskEvent).where(TaskEvent.session_id.in_(ids)))
        await self._session.execute(delete(Task).where(Task.session_id.in_(ids)))
        await self._session.execute(
            delete(OrchestrationSession)
            .where(OrchestrationSession.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
