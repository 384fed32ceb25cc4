"""SQL for ``artifact``: work products stored in the database. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from sqlalchemy import Select, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Artifact


@cache
def _by_task_ids_statement() -> Select[Artifact]:
    """The query of :meth:`ArtifactRepository.list_by_task_ids`, built once (every claim's brief runs it)."""
    return (
        select(Artifact)
        .where(Artifact.task_id.in_(bindparam("task_ids", expanding=True)))
        .order_by(Artifact.created_at, Artifact.id)
    )


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, artifact: Artifact) -> Artifact:
        self._session.add(artifact)
        await self._session.flush()
        return artifact

    async def get(self, artifact_id: str) -> Artifact | None:
        return await self._session.get(Artifact, artifact_id)

    async def list_by_task_ids(self, task_ids: Sequence[str]) -> Sequence[Artifact]:
        if not task_ids:
            return []
        rows = await self._session.scalars(_by_task_ids_statement(), {"task_ids": list(task_ids)})
        return rows.all()

    async def latest_for_session(self, session_id: str, kind: str) -> Artifact | None:
        return await self._session.scalar(
            select(Artifact)
            .where(Artifact.session_id == session_id, Artifact.kind == kind)
            .order_by(Artifact.created_at.desc(), Artifact.id.desc())
            .limit(1)
        )

    async def delete_by_task(self, task_id: str, *, keep_kinds: Sequence[str] = ()) -> list[str]:
        """Remove a task's artifacts (except ``keep_kinds``); returns the removed ids."""
        query = select(Artifact.id).where(Artifact.task_id == task_id)
        if keep_kinds:
            query = query.where(Artifact.kind.not_in(keep_kinds))
        ids = list((await self._session.scalars(query)).all())
        if ids:
            await self._session.execute(delete(Artifact).where(Artifact.id.in_(ids)))
        return ids

    async def list_in_scope(self, *, session_id: str | None, task_ids: Sequence[str] | None) -> list[Artifact]:
        """Artifacts of one session (or all), optionally only those of some tasks, oldest first."""
        query = select(Artifact)
        if session_id is not None:
            query = query.where(Artifact.session_id == session_id)
        if task_ids is not None:
            query = query.where(Artifact.task_id.in_(list(task_ids)))
        rows = await self._session.scalars(query.order_by(Artifact.created_at, Artifact.id))
        return list(rows.all())
