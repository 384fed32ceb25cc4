"""SQL about the database itself: the round-trip probe, the schema revision, open transactions. Never commits."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import schema


class DatabaseStateRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    async def ping(self) -> float:
        """One ``SELECT 1`` round trip on this transaction's connection; returns its latency in ms."""
        started = time.perf_counter()
        await self._session.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def revision(self) -> str | None:
        """The Alembic revision the database is at."""
        connection = await self._session.connection()
        return await connection.run_sync(schema.revision_of)

    async def open_transactions(self, application_name: str) -> int:
        """PostgreSQL: other backends of ``application_name`` on this database with a transaction open.

        The caller's own backend (which runs this query inside a transaction) is left out.
        """
        if self._backend != "postgresql":
            raise ValueError("open_transactions reads pg_stat_activity; it exists on PostgreSQL only")
        count = await self._session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
            ),
            {"name": application_name},
        )
        return int(count or 0)
