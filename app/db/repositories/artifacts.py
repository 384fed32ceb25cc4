"""SQL for ``artifact``: work products stored in the database. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Insert, Integer, Select, Table, bindparam, case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Artifact

_ARTIFACTS: Table = Artifact.__table__  # type: ignore[assignment]


class ArtifactHead(NamedTuple):
    """An artifact as a brief, a board page or a task's resource shows it: its content cut in the database
    to the first characters shown (whole for the kinds asked for), so a megabyte it does not show is never
    read. ``size_bytes`` is the whole content's."""

    id: str
    session_id: str
    task_id: str | None
    kind: str
    name: str
    content: str
    file_paths: list[str]
    size_bytes: int
    sha256: str
    created_by: str
    created_at: datetime


@cache
def _insert_statement() -> Insert:
    return insert(_ARTIFACTS)


@cache
def _by_task_ids_statement() -> Select[Artifact]:
    """The query of :meth:`ArtifactRepository.list_by_task_ids`, built once (every claim's brief runs it)."""
    return (
        select(Artifact)
        .where(Artifact.task_id.in_(bindparam("task_ids", expanding=True)))
        .order_by(Artifact.created_at, Artifact.id)
    )


@cache
def _heads_statement(with_whole_kinds: bool) -> Select[Any]:
    """The query of :meth:`ArtifactRepository.heads_by_task_ids`, built once per shape (every claim runs it)."""
    head = func.substr(Artifact.content, 1, bindparam("chars", type_=Integer))
    content = (
        case((Artifact.kind.in_(bindparam("whole_kinds", expanding=True)), Artifact.content), else_=head)
        if with_whole_kinds
        else head
    )
    return (
        select(
            Artifact.id,
            Artifact.session_id,
            Artifact.task_id,
            Artifact.kind,
            Artifact.name,
            content.label("content"),
            Artifact.file_paths,
            Artifact.size_bytes,
            Artifact.sha256,
            Artifact.created_by,
            Artifact.created_at,
        )
        .where(Artifact.task_id.in_(bindparam("task_ids", expanding=True)))
        .order_by(Artifact.created_at, Artifact.id)
    )


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert(self, artifact: Artifact) -> Artifact:
        """Write a new artifact (the transient row ``new_artifact`` built, every column set) with one Core
        INSERT and return it as it was given.

        Not through the ORM (issue 14): every completion writes one, and a unit-of-work flush for a row
        nothing in the transaction changes again cost more than the statement. The row stays out of the
        identity map; a later read in the transaction loads it from the database.
        """
        await self._session.execute(_insert_statement(), {c.key: getattr(artifact, c.key) for c in _ARTIFACTS.columns})
        return artifact

    async def get(self, artifact_id: str) -> Artifact | None:
        return await self._session.get(Artifact, artifact_id)

    async def list_by_task_ids(self, task_ids: Sequence[str]) -> Sequence[Artifact]:
        if not task_ids:
            return []
        rows = await self._session.scalars(_by_task_ids_statement(), {"task_ids": list(task_ids)})
        return rows.all()

    async def heads_by_task_ids(
        self, task_ids: Sequence[str], *, chars: int, whole_kinds: Sequence[str] = ()
    ) -> list[ArtifactHead]:
        """The tasks' artifacts, oldest first, each with the first ``chars`` characters of its content (all
        of it for ``whole_kinds``), in one statement."""
        if not task_ids:
            return []
        params: dict[str, Any] = {"task_ids": list(task_ids), "chars": chars}
        if whole_kinds:
            params["whole_kinds"] = list(whole_kinds)
        rows = await self._session.execute(_heads_statement(bool(whole_kinds)), params)
        return [
            ArtifactHead(
                id=row.id,
                session_id=row.session_id,
                task_id=row.task_id,
                kind=row.kind,
                name=row.name,
                content=row.content or "",
                file_paths=list(row.file_paths or []),
                size_bytes=row.size_bytes,
                sha256=row.sha256,
                created_by=row.created_by,
                created_at=row.created_at,
            )
            for row in rows
        ]

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
