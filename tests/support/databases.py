"""Real databases for tests: a migrated template per backend, copied for every test.

PostgreSQL comes from ``ORCHESTRATOR_TEST_DATABASE_URL`` (an admin URL to a throwaway cluster; ``.ci/run``
starts one). The template database is migrated once per run with the real Alembic chain, then each test
gets a copy made with ``CREATE DATABASE … TEMPLATE`` (procrastinate's trick), emptied and reused after
the test: isolated and fast. SQLite templates are a migrated file copied per test. With ``CI`` set, a missing PostgreSQL fails the test instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.db import schema
from app.db.engine import create_database
from app.db.models import Base
from app.settings import to_async_url

PG_ENV = "ORCHESTRATOR_TEST_DATABASE_URL"


def postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        message = f"PostgreSQL tests need {PG_ENV} (a throwaway cluster; .ci/run starts one)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


class PostgresTemplate:
    """A migrated template database and a factory of copies.

    ``CREATE DATABASE … TEMPLATE`` costs a quarter of a second or more (far more while other test runs share
    the cluster), so a released copy is emptied with one ``TRUNCATE`` and handed to the next test instead of
    being dropped. A copy that cannot be reset that way (its schema moved, or a straggling connection
    holds a lock) is dropped.
    """

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"orch_tpl_{secrets.token_hex(4)}"
        self._idle: list[str] = []
        self._lock = threading.Lock()  # fixtures reach this from short-lived worker threads

    async def create(self) -> None:
        conn = await asyncpg.connect(_dsn(self.admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        database = create_database(to_async_url(_dsn(self.admin_url, self.name)))
        try:
            await schema.upgrade(database)
        finally:
            await database.dispose()

    async def copy(self) -> str:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        name = f"orch_t_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(_dsn(self.admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        finally:
            await conn.close()
        return to_async_url(_dsn(self.admin_url, name))

    async def release(self, url: str) -> None:
        """Empty the copy for the next test (same schema, no rows, identities restarted), or drop it."""
        names = {table.name for table in Base.metadata.sorted_tables}
        tables = ", ".join(f'"{name}"' for name in sorted(names))
        try:
            conn = await asyncpg.connect(_dsn(url), timeout=10)
            try:
                await conn.execute("SET lock_timeout = '2s'")
                revision = await conn.fetchval("SELECT version_num FROM alembic_version")
                present = {
                    r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                }
                if revision != schema.head_revision() or present != {*names, "alembic_version"}:
                    raise LookupError(f"schema at {revision} with tables {sorted(present)}")
                await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
            finally:
                await conn.close()
        except (asyncpg.PostgresError, OSError, LookupError):
            await self.drop(url)
            return
        with self._lock:
            self._idle.append(url)

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        conn = await asyncpg.connect(_dsn(self.admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def destroy(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for url in idle:
            await self.drop(url)
        conn = await asyncpg.connect(_dsn(self.admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


class SqliteTemplate:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"

    async def create(self) -> None:
        database = create_database(f"sqlite+aiosqlite:///{self.path}")
        try:
            await schema.upgrade(database)
        finally:
            await database.dispose()

    def copy(self, target_dir: Path) -> str:
        target = target_dir / f"orch-{secrets.token_hex(4)}.db"
        shutil.copyfile(self.path, target)
        return f"sqlite+aiosqlite:///{target}"


async def create_empty_postgres(admin_url: str) -> str:
    """A brand-new PostgreSQL database with no schema at all (for migration tests); returns its async URL."""
    name = f"orch_empty_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return to_async_url(_dsn(admin_url, name))


async def drop_postgres(admin_url: str, url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def plain_url(url: str) -> str:
    """The URL as a user writes it (``postgresql://…``, ``sqlite:///…``), without the async driver."""
    return make_url(url).set(drivername=make_url(url).get_backend_name()).render_as_string(hide_password=False)
