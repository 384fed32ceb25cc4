"""SQL for watching ``task_event`` as a change feed across replicas (the board's poller). Never commits.

``task_event`` ids come from one sequence shared by every replica, so "events after id N" sees changes
made anywhere. A PostgreSQL sequence hands out ids in the order transactions ask, not the order they
commit, so a caller re-reads a short window below its high-water mark and drops ids it has seen.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import TaskEvent


class EventFeedRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def last_id(self) -> int:
        """The highest event id of all sessions (0 when there is none)."""
        value = await self._session.scalar(select(func.max(TaskEvent.id)))
        return int(value or 0)

    async def list_after(self, after_id: int, *, limit: int) -> list[tuple[int, str, str | None]]:
        """``(id, session_id, task_id)`` of the events with ``id > after_id``, oldest first."""
        rows = await self._session.execute(
            select(TaskEvent.id, TaskEvent.session_id, TaskEvent.task_id)
            .where(TaskEvent.id > after_id)
            .order_by(TaskEvent.id)
            .limit(limit)
        )
        return [(int(event_id), session_id, task_id) for event_id, session_id, task_id in rows]
