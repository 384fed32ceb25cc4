"""Direct database access for tests: whole-table snapshots and faults written behind the services' back."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import anyio
import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.db.engine import Database
from app.db.models import Base


async def table_snapshot(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: equal snapshots mean nothing was written."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    async with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(select(table))).all()
            snapshot[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return snapshot


def row_counts(snapshot: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
    return {name: len(rows) for name, rows in snapshot.items()}


async def execute_raw(url: str, statements: Sequence[str], *, foreign_keys_off: bool = False) -> None:
    """Run SQL on a connection of its own, bypassing every service rule (seeded faults).

    ``foreign_keys_off`` disables FK enforcement for these statements only: SQLite ``PRAGMA
    foreign_keys=OFF`` on this connection, PostgreSQL ``SET LOCAL session_replication_role = replica`` in
    this transaction.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        assert path is not None

        def run() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute(f"PRAGMA foreign_keys={'OFF' if foreign_keys_off else 'ON'}")
                conn.execute("BEGIN IMMEDIATE")
                for statement in statements:
                    conn.execute(statement)
                conn.execute("COMMIT")
            finally:
                conn.close()

        await anyio.to_thread.run_sync(run)
        return
    conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        async with conn.transaction():
            if foreign_keys_off:
                await conn.execute("SET LOCAL session_replication_role = replica")
            for statement in statements:
                await conn.execute(statement)
    finally:
        await conn.close()
