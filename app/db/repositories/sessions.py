"""SQL for ``orchestration_session``. Never commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OrchestrationSession

TOUCH_GRANULARITY = timedelta(seconds=5)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, session_id: str) -> OrchestrationSession | None:
        return await self._session.get(OrchestrationSession, session_id)

    async def get_active_for_directory(self, working_directory: str) -> OrchestrationSession | None:
        return await self._session.scalar(
            select(OrchestrationSession)
            .where(
                OrchestrationSession.working_directory == working_directory,
                OrchestrationSession.status == "active",
            )
            .order_by(OrchestrationSession.last_activity_at.desc(), OrchestrationSession.id)
            .limit(1)
        )

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
        ``TOUCH_GRANULARITY``: concurrent writers then rarely queue on its row lock.
        """
        await self._session.execute(
            update(OrchestrationSession)
            .where(
                OrchestrationSession.id == session_id,
                OrchestrationSession.last_activity_at < at - TOUCH_GRANULARITY,
            )
            .values(last_activity_at=at)
            .execution_options(synchronize_session=False)
        )
