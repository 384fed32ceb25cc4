"""What the database layer tells the metrics: pool connections by state, and failures by kind."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from sqlalchemy import text

from app import errors
from app.db import uow as uow_module
from app.db.engine import create_database
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.observability.metrics import Metrics
from tests.support.databases import PostgresTemplate

pytestmark = pytest.mark.anyio


def db_errors(metrics: Metrics) -> dict[str, float]:
    return {
        kind: metrics.registry.get_sample_value("orchestrator_db_errors_total", {"kind": kind}) or 0.0
        for kind in ("connection", "conflict", "integrity", "other")
    }


async def test_pool_stats_follow_checkouts_overflow_and_returns(database_url: str) -> None:
    database = create_database(database_url, pool_size=1)
    try:
        assert database.pool_stats() == {"checked_out": 0, "idle": 0, "overflow": 0, "capacity": 2}
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(database.engine.connect())
            assert database.pool_stats() == {"checked_out": 1, "idle": 0, "overflow": 0, "capacity": 2}
            await stack.enter_async_context(database.write_engine.connect())  # the same pool
            assert database.pool_stats() == {"checked_out": 2, "idle": 0, "overflow": 1, "capacity": 2}
        # The overflow connection closes on return; the pooled one waits idle.
        assert database.pool_stats() == {"checked_out": 0, "idle": 1, "overflow": 0, "capacity": 2}
    finally:
        await database.dispose()


async def test_uow_counts_integrity_and_other_driver_errors_by_kind(database_url: str) -> None:
    database = create_database(database_url)
    metrics = Metrics("test")
    uow = UnitOfWork(database, errors_sink=metrics)

    async def orphan_edge(repos: Repositories) -> None:
        await repos.session.execute(
            text(
                "INSERT INTO task_dependency (task_id, depends_on_id, session_id, created_at) "
                "VALUES ('task_x', 'task_y', 'sess_x', CURRENT_TIMESTAMP)"
            )
        )

    async def bad_sql(repos: Repositories) -> None:
        await repos.session.execute(text("SELECT no_such_column FROM task"))

    try:
        with pytest.raises(errors.InvalidArgument):
            await uow.run(orphan_edge)
        with pytest.raises(Exception, match="no_such_column"):
            await uow.run(bad_sql, write=False)
    finally:
        await database.dispose()
    assert db_errors(metrics) == {"connection": 0, "conflict": 0, "integrity": 1, "other": 1}


async def test_uow_counts_each_retried_serialization_failure_as_a_conflict(
    postgres_template: PostgresTemplate,
) -> None:
    url = await postgres_template.copy()
    database = create_database(url)
    metrics = Metrics("test")

    async def serialization_failure(repos: Repositories) -> None:
        await repos.session.execute(text("DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = '40001'; END $$"))

    try:
        with pytest.raises(errors.Unavailable):
            await UnitOfWork(database, errors_sink=metrics).run(serialization_failure)
    finally:
        await database.dispose()
        await postgres_template.drop(url)
    assert db_errors(metrics) == {"connection": 0, "conflict": uow_module.MAX_ATTEMPTS, "integrity": 0, "other": 0}


async def test_uow_counts_an_unreachable_database_as_a_connection_error() -> None:
    # Port 1 on loopback refuses at once: no server, no wait.
    database = create_database("postgresql+asyncpg://nobody:pw@127.0.0.1:1/none", connect_timeout=2)
    metrics = Metrics("test")

    async def anything(repos: Repositories) -> None:
        await repos.session.execute(text("SELECT 1"))

    try:
        with pytest.raises(errors.Unavailable):
            await UnitOfWork(database, errors_sink=metrics).run(anything, write=False)
    finally:
        await database.dispose()
    assert db_errors(metrics) == {"connection": 1, "conflict": 0, "integrity": 0, "other": 0}
