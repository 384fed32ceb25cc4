"""The libpq TLS option of a PostgreSQL URL reaches asyncpg, for the pool and for the LISTEN connection."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db.engine import create_database
from app.runtime.work_signals import listen_dsn
from app.settings import load_settings
from tests.support.databases import postgres_admin_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def with_query(url: str, query: str) -> str:
    return make_url(url).update_query_string(query).render_as_string(hide_password=False)


async def tls_of_own_connection(url: str) -> bool:
    database = create_database(url, pool_size=1, connect_timeout=5)
    try:
        async with database.engine.connect() as conn:
            in_use = await conn.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            return bool(in_use)
    finally:
        await database.dispose()


@pytest.mark.parametrize("option", ["sslmode", "ssl"])
async def test_the_pool_connects_with_the_tls_mode_of_the_url(option: str) -> None:
    """``?sslmode=`` (libpq's spelling, in every hosted PostgreSQL's connection string) used to reach
    ``asyncpg.connect`` as an unknown keyword: every connect failed with a TypeError."""
    url = load_settings(database_url=with_query(postgres_admin_url(), f"{option}=disable")).resolved_database_url()
    assert await tls_of_own_connection(url) is False


async def test_a_required_tls_mode_is_enforced_not_dropped() -> None:
    """``require`` against this (TLS-less) test server must fail on TLS, not connect in the clear."""
    url = load_settings(database_url=with_query(postgres_admin_url(), "sslmode=require")).resolved_database_url()
    server_has_tls = await tls_of_own_connection(with_query(url, "sslmode=prefer"))
    if server_has_tls:
        assert await tls_of_own_connection(url) is True
        return
    with pytest.raises(ConnectionError, match="SSL"):
        await tls_of_own_connection(url)


@pytest.mark.parametrize("option", ["sslmode", "ssl"])
async def test_the_listen_connection_takes_the_tls_mode_of_the_url(option: str) -> None:
    """asyncpg's DSN reads ``sslmode`` only; an ``ssl=`` left in it went to the server as a setting."""
    url = load_settings(database_url=with_query(postgres_admin_url(), f"{option}=disable")).resolved_database_url()
    dsn = listen_dsn(url)
    assert dsn is not None and "sslmode=disable" in dsn and "ssl=" not in dsn.replace("sslmode=", "")
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
    finally:
        await conn.close()
