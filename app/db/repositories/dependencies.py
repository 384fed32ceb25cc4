"""SQL for ``task_dependency``: the edges "task cannot start before depends_on is completed". Never commits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Task, TaskDependency


@cache
def _statuses_statement() -> Select[str, str, str]:
    """The query of :meth:`DependencyRepository.statuses_for`, built once (nearly every call runs it):
    building it and its cache key anew cost more CPU than PostgreSQL spends running it."""
    return (
        select(TaskDependency.task_id, TaskDependency.depends_on_id, Task.status)
        .join(Task, Task.id == TaskDependency.depends_on_id)
        .where(TaskDependency.task_id.in_(bindparam("task_ids", expanding=True)))
        .order_by(TaskDependency.task_id, TaskDependency.created_at, TaskDependency.depends_on_id)
    )


class DependencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert_many(self, session_id: str, edges: Iterable[tuple[str, str]], at: datetime) -> None:
        """Write ``edges`` of ``session_id`` (both ends of each are in it; the callers have checked), each a
        microsecond after the one before it (from ``at``) in the order given: a task's dependencies are
        listed by ``created_at``, so they come back in the order the caller gave them (with one time for
        all they came back in id order, which is random)."""
        rows = [
            TaskDependency(task_id=t, depends_on_id=d, session_id=session_id, created_at=at + timedelta(microseconds=i))
            for i, (t, d) in enumerate(edges)
        ]
        if rows:
            self._session.add_all(rows)
            await self._session.flush()

    async def delete_many(self, task_id: str, depends_on_ids: Sequence[str]) -> int:
        """Remove the task's edges to ``depends_on_ids``; returns how many existed."""
        if not depends_on_ids:
            return 0
        result = await self._session.execute(
            delete(TaskDependency).where(
                TaskDependency.task_id == task_id, TaskDependency.depends_on_id.in_(depends_on_ids)
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def statuses_for(self, task_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """For each task, its dependencies as ``(depends_on_id, status)`` in a stable order."""
        result: dict[str, list[tuple[str, str]]] = defaultdict(list)
        if not task_ids:
            return result
        rows = await self._session.execute(_statuses_statement(), {"task_ids": list(task_ids)})
        for task_id, dep_id, status in rows:
            result[task_id].append((dep_id, status))
        return result

    async def dependents_of(self, task_ids: Sequence[str]) -> list[str]:
        if not task_ids:
            return []
        rows = await self._session.scalars(
            select(TaskDependency.task_id).where(TaskDependency.depends_on_id.in_(task_ids)).distinct()
        )
        return sorted(rows.all())

    async def edges_in_session(self, session_id: str) -> dict[str, list[str]]:
        """The session's dependency graph as ``task -> [depends_on…]`` (for cycle checks)."""
        rows = await self._session.execute(
            select(TaskDependency.task_id, TaskDependency.depends_on_id).where(TaskDependency.session_id == session_id)
        )
        graph: dict[str, list[str]] = defaultdict(list)
        for task_id, dep_id in rows:
            graph[task_id].append(dep_id)
        return graph

    async def existing(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not pairs:
            return set()
        rows = await self._session.execute(
            select(TaskDependency.task_id, TaskDependency.depends_on_id).where(
                tuple_(TaskDependency.task_id, TaskDependency.depends_on_id).in_(pairs)
            )
        )
        return {(a, b) for a, b in rows}
