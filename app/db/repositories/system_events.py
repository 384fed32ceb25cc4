"""SQL for ``system_event``: restarts, drains and maintenance runs. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import SystemEvent


class SystemEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, *, kind: str, actor: str, at: datetime, data: dict[str, Any]) -> SystemEvent:
        row = SystemEvent(kind=kind, actor=actor, at=at, data=data)
        self._session.add(row)
        await self._session.flush()
        return row

    async def list_by_kinds(self, kinds: Sequence[str], *, limit: int = 50) -> Sequence[SystemEvent]:
        rows = await self._session.scalars(
            select(SystemEvent).where(SystemEvent.kind.in_(kinds)).order_by(SystemEvent.id.desc()).limit(limit)
        )
        return rows.all()

    async def delete_older_than(self, kind: str, cutoff: datetime) -> int:
        """Remove events of ``kind`` recorded before ``cutoff``; returns how many."""
        result = await self._session.execute(
            delete(SystemEvent).where(SystemEvent.kind == kind, SystemEvent.at < cutoff)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def count_older_than(self, kind: str, cutoff: datetime) -> int:
        value = await self._session.scalar(
            select(func.count()).where(SystemEvent.kind == kind, SystemEvent.at < cutoff)
        )
        return int(value or 0)
