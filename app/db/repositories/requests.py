"""SQL for ``request_record``: the stored results that make writes idempotent. Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RequestRecord
from app.db.repositories.advisory_locks import lock_xact


class RequestRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    async def lock(self, actor: str, request_id: str) -> None:
        """Serialise the calls of one ``(actor, request_id)`` (the record's primary key) until this transaction ends.

        Taken before :meth:`get`: a retry that arrives while the first call still runs waits here, then finds
        the stored result, instead of finding nothing and failing on the state the first call left behind.
        """
        await lock_xact(self._session, self._backend, "request_record", actor, request_id)

    async def get(self, actor: str, request_id: str) -> RequestRecord | None:
        return await self._session.get(RequestRecord, (actor, request_id))

    async def insert(
        self,
        actor: str,
        request_id: str,
        tool: str,
        result: dict[str, Any],
        at: datetime,
        *,
        args_digest: str | None = None,
    ) -> None:
        # A concurrent duplicate fails on the primary key; the uow retries and the retry finds this row.
        self._session.add(
            RequestRecord(
                actor=actor,
                request_id=request_id,
                tool=tool,
                result=result,
                created_at=at,
                args_digest=args_digest,
            )
        )
        await self._session.flush()

    async def delete_older_than(self, cutoff: datetime) -> int:
        result = await self._session.execute(delete(RequestRecord).where(RequestRecord.created_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of a DELETE

    async def count_older_than(self, cutoff: datetime) -> int:
        rows = await self._session.execute(select(RequestRecord.request_id).where(RequestRecord.created_at < cutoff))
        return len(rows.all())
