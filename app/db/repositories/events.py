"""SQL for ``task_event``, the append-only audit trail and change feed. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import TaskEvent

CHUNK = 1000  # ids per IN list, well under both drivers' parameter limits


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def append(
        self,
        *,
        session_id: str,
        task_id: str | None,
        kind: str,
        actor: str,
        at: datetime,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Queue an event; it is written with the transaction's next flush (append-only)."""
        self._session.add(
            TaskEvent(session_id=session_id, task_id=task_id, kind=kind, actor=actor, at=at, data=data or {})
        )

    async def list_for_task(self, task_id: str, *, limit: int = 200) -> Sequence[TaskEvent]:
        rows = await self._session.scalars(
            select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id).limit(limit)
        )
        return rows.all()

    async def list_for_tasks(self, task_ids: Sequence[str], kinds: Sequence[str]) -> Sequence[TaskEvent]:
        """Events of the given kinds for several tasks, oldest first (why each task is where it is)."""
        if not task_ids:
            return []
        rows = await self._session.scalars(
            select(TaskEvent).where(TaskEvent.task_id.in_(task_ids), TaskEvent.kind.in_(kinds)).order_by(TaskEvent.id)
        )
        return rows.all()

    async def count_expiries_since(self, task_id: str, *, left_statuses: Sequence[str]) -> int:
        """The task's ``lease_expired`` events since it last moved out of one of ``left_statuses`` (its latest
        ``status_changed`` event whose ``from`` is one of them), or all of them when it never did.

        Both statements walk ``ix_task_event_task`` (task_id, id): a task has few events. Reads what is flushed.
        """
        restarted = (
            select(func.max(TaskEvent.id))
            .where(
                TaskEvent.task_id == task_id,
                TaskEvent.kind == "status_changed",
                TaskEvent.data["from"].as_string().in_(list(left_statuses)),
            )
            .scalar_subquery()
        )
        value = await self._session.scalar(
            select(func.count())
            .select_from(TaskEvent)
            .where(
                TaskEvent.task_id == task_id,
                TaskEvent.kind == "lease_expired",
                TaskEvent.id > func.coalesce(restarted, 0),
            )
        )
        return int(value or 0)

    async def last_id(self, session_id: str) -> int:
        await self._session.flush()
        value = await self._session.scalar(select(func.max(TaskEvent.id)).where(TaskEvent.session_id == session_id))
        return int(value or 0)

    async def count_in_window(self, session_id: str, *, after_id: int, upto_id: int) -> int:
        value = await self._session.scalar(
            select(func.count()).where(
                TaskEvent.session_id == session_id, TaskEvent.id > after_id, TaskEvent.id <= upto_id
            )
        )
        return int(value or 0)

    async def list_window(self, session_id: str, *, after_id: int, upto_id: int, limit: int) -> list[TaskEvent]:
        """The latest ``limit`` events with ``after_id < id <= upto_id``, oldest first."""
        rows = await self._session.scalars(
            select(TaskEvent)
            .where(TaskEvent.session_id == session_id, TaskEvent.id > after_id, TaskEvent.id <= upto_id)
            .order_by(TaskEvent.id.desc())
            .limit(limit)
        )
        return list(reversed(rows.all()))

    async def latest_by_kinds(self, kinds: Sequence[str], *, task_ids: Sequence[str] | None) -> dict[str, TaskEvent]:
        """For each task (all tasks when ``task_ids`` is None), its latest event of one of ``kinds``."""
        base = select(func.max(TaskEvent.id)).where(TaskEvent.kind.in_(list(kinds)), TaskEvent.task_id.is_not(None))
        if task_ids is None:
            queries = [base]
        else:
            wanted = list(task_ids)
            queries = [base.where(TaskEvent.task_id.in_(wanted[i : i + CHUNK])) for i in range(0, len(wanted), CHUNK)]
        latest_ids: list[int] = []
        for query in queries:
            latest_ids += (await self._session.scalars(query.group_by(TaskEvent.task_id))).all()
        found: dict[str, TaskEvent] = {}
        for start in range(0, len(latest_ids), CHUNK):
            rows = await self._session.scalars(
                select(TaskEvent).where(TaskEvent.id.in_(latest_ids[start : start + CHUNK]))
            )
            for row in rows:
                if row.task_id is not None:
                    found[row.task_id] = row
        return found

    async def list_latest_for_task(self, task_id: str, *, limit: int) -> list[TaskEvent]:
        """The task's latest ``limit`` events, newest first."""
        rows = await self._session.scalars(
            select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id.desc()).limit(limit)
        )
        return list(rows.all())
