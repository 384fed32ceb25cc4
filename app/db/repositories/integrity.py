"""SQL for maintenance: rows that break the graph's rules (stuck claims, dangling edges, stale work).

The services decide what is wrong and what to do; this module only finds the rows. The ``lock`` variants
read under a *row lock* (PostgreSQL ``FOR UPDATE``; SQLite: the immediate transaction) so a fix applies to
the row it inspected. Never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import Task, TaskDependency
from app.db.repositories.tasks import TaskScope, scope_predicates


@dataclass(frozen=True)
class StalePending:
    """Pending work nobody touched since a cutoff: how much, and the oldest ids (a report lists those)."""

    count: int
    oldest_ids: list[str]


@dataclass(frozen=True)
class DanglingEdge:
    """A dependency row with at least one end that is not a task."""

    task_id: str
    depends_on_id: str
    task_exists: bool
    depends_on_exists: bool
    session_id: str | None  # the session of the end that exists, if any


@dataclass(frozen=True)
class Edge:
    task_id: str
    depends_on_id: str
    session_id: str
    depends_on_session_id: str
    depends_on_status: str
    recorded_session_id: str  # the edge's own session_id column (migration 0006), which the ready set reads


class IntegrityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _tasks(self, query: Select[Task], *, lock: bool) -> list[Task]:
        query = query.order_by(Task.created_at, Task.id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return list((await self._session.scalars(query)).all())

    async def expired_claims(self, now: datetime, scope: TaskScope) -> list[Task]:
        """In-progress rows whose lease ran out (read only; the fix goes through ``expire_leases``)."""
        return await self._tasks(
            select(Task).where(Task.status == "in_progress", Task.lease_expires_at <= now, *scope_predicates(scope)),
            lock=False,
        )

    async def in_progress_without_claim(self, scope: TaskScope, *, lock: bool) -> list[Task]:
        """In-progress rows with no holder or no lease: nobody works on them and no lease will expire."""
        return await self._tasks(
            select(Task).where(
                Task.status == "in_progress",
                or_(Task.assigned_to.is_(None), Task.lease_expires_at.is_(None)),
                *scope_predicates(scope),
            ),
            lock=lock,
        )

    async def claims_on_inactive_tasks(self, scope: TaskScope, *, lock: bool) -> list[Task]:
        """Rows that are not in progress yet still name a holder or a lease."""
        return await self._tasks(
            select(Task).where(
                Task.status != "in_progress",
                or_(Task.assigned_to.is_not(None), Task.lease_expires_at.is_not(None)),
                *scope_predicates(scope),
            ),
            lock=lock,
        )

    async def stale_pending(self, cutoff: datetime, scope: TaskScope, *, listed: int) -> StalePending:
        """How many pending rows nobody has touched since ``cutoff``, and the ids of the oldest ``listed``.

        Counted in the database: the maintenance monitor asks every few minutes over every session, and a
        long-lived deployment's backlog of untouched work can be tens of thousands of rows, which it only
        reports (25,731 whole rows were read into Python to be counted before).
        """
        rows = (
            await self._session.execute(
                select(Task.id, func.count().over())
                .where(Task.status == "pending", Task.updated_at < cutoff, *scope_predicates(scope))
                .order_by(Task.created_at, Task.id)
                .limit(listed)
            )
        ).all()
        return StalePending(count=int(rows[0][1]) if rows else 0, oldest_ids=[row[0] for row in rows])

    async def dangling_dependencies(self) -> list[DanglingEdge]:
        """Dependency rows whose task or depends_on task does not exist (only possible with FKs off)."""
        source, target = aliased(Task), aliased(Task)
        rows = await self._session.execute(
            select(
                TaskDependency.task_id,
                TaskDependency.depends_on_id,
                source.id.is_not(None),
                target.id.is_not(None),
                source.session_id,
                target.session_id,
            )
            .outerjoin(source, source.id == TaskDependency.task_id)
            .outerjoin(target, target.id == TaskDependency.depends_on_id)
            .where(or_(source.id.is_(None), target.id.is_(None)))
            .order_by(TaskDependency.task_id, TaskDependency.depends_on_id)
        )
        return [
            DanglingEdge(task_id, dep_id, bool(has_task), bool(has_dep), task_session or dep_session)
            for task_id, dep_id, has_task, has_dep, task_session, dep_session in rows
        ]

    async def edges(self, scope: TaskScope) -> list[Edge]:
        """Dependency edges whose dependent task is in scope, with both ends' sessions and the target's status."""
        target = aliased(Task)
        rows = await self._session.execute(
            select(
                TaskDependency.task_id,
                TaskDependency.depends_on_id,
                Task.session_id,
                target.session_id,
                target.status,
                TaskDependency.session_id,
            )
            .join(Task, Task.id == TaskDependency.task_id)
            .join(target, target.id == TaskDependency.depends_on_id)
            .where(*scope_predicates(scope))
            .order_by(TaskDependency.task_id, TaskDependency.depends_on_id)
        )
        return [Edge(*row) for row in rows]
