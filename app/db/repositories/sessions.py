"""SQL for ``orchestration_session``. Never commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OrchestrationSession

TOUCH_GRANULARITY = timedelta(seconds=5)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # Rows this transaction read, held strongly (the ORM's identity map only holds them weakly).
        self._read: dict[str, OrchestrationSession] = {}

    async def get(self, session_id: str) -> OrchestrationSession | None:
        row = await self._session.get(OrchestrationSession, session_id)
        if row is not None:
            self._read[row.id] = row
        return row

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

    async def lock(self, session_id: str) -> None:
        """Row lock on the session (PostgreSQL ``FOR UPDATE``) to serialise graph-shape changes."""
        await self._session.execute(
            select(OrchestrationSession.id).where(OrchestrationSession.id == session_id).with_for_update()
        )

    async def insert(self, row: OrchestrationSession) -> OrchestrationSession:
        self._session.add(row)
        await self._session.flush()
        return row

    async def touch(self, session_id: str, at: datetime) -> None:
        """Record activity (conditional update that only moves the time forward).

        The session row is shared by every writer of the session, so it is touched at most once per
        ``TOUCH_GRANULARITY``: concurrent writers then rarely queue on its row lock. When this
        transaction already read the row (``get``) and its activity is that recent, the update could
        match nothing (the time only moves forward), so the statement is skipped.
        """
        row = self._read.get(session_id)
        # The state's dict, not the attribute: reading an expired attribute would load it (no I/O here).
        seen = inspect(row).dict.get("last_activity_at") if row is not None else None
        if seen is not None and seen >= at - TOUCH_GRANULARITY:
            return
        await self._session.execute(
            update(OrchestrationSession)
            .where(
                OrchestrationSession.id == session_id,
                OrchestrationSession.last_activity_at < at - TOUCH_GRANULARITY,
            )
            .values(last_activity_at=at)
            .execution_options(synchronize_session=False)
        )
