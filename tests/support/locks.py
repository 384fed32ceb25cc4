"""Holding the database from the outside, so a real call waits inside the server without test-only code.

SQLite: a second connection takes the database write lock with ``BEGIN IMMEDIATE``; every writer then waits
in its own ``BEGIN IMMEDIATE`` (busy timeout). PostgreSQL: a second connection takes ``LOCK TABLE task IN
EXCLUSIVE MODE``, which lets plain reads through and makes every insert or row lock on ``task`` wait.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
from sqlalchemy.engine import make_url


def plain_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` → ``postgresql://…`` for asyncpg itself."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str:
    path = make_url(url).database
    assert path, url
    return path


async def _begin_immediate(conn: sqlite3.Connection, deadline: float) -> None:
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await anyio.sleep(0.05)


class WriteLock:
    def __init__(self, release: Any) -> None:
        self._release = release
        self.released = False

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self._release()


@asynccontextmanager
async def hold_write_lock(database_url: str) -> AsyncIterator[WriteLock]:
    """Hold the task table (PostgreSQL) or the whole database (SQLite) against writers until released."""
    if make_url(database_url).get_backend_name() == "sqlite":
        # The server's own writers (a session's first call, a monitor's sweep) may hold the lock for a moment on a
        # loaded machine, and SQLite answers "database is locked" without calling the busy handler while another
        # connection closes the last handle on a WAL database: ask again, without blocking the event loop the
        # server may share, for as long as any test waits.
        conn = sqlite3.connect(sqlite_path(database_url), isolation_level=None, timeout=0.2)
        await _begin_immediate(conn, deadline=time.monotonic() + 60)

        async def release_sqlite() -> None:
            conn.execute("ROLLBACK")

        lock = WriteLock(release_sqlite)
        try:
            yield lock
        finally:
            await lock.release()
            conn.close()
        return
    pg = await asyncpg.connect(plain_dsn(database_url))
    tx = pg.transaction()
    await tx.start()
    await pg.execute("LOCK TABLE task IN EXCLUSIVE MODE")

    async def release_pg() -> None:
        await tx.rollback()

    lock = WriteLock(release_pg)
    try:
        yield lock
    finally:
        await lock.release()
        await pg.close()
