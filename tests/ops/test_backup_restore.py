"""The backup and restore procedures of docs/operations.md, run for real on both backends.

SQLite: the online backup API (what ``sqlite3 … ".backup …"`` uses) copies the file while the service
has it open; the copy, put in place, holds the same data. PostgreSQL: ``pg_dump`` of a live database,
restored into a new database with ``pg_restore`` (custom format) or ``psql`` (plain SQL). "The same
data" is checked by comparing full exports of the original and the restored database.
"""

from __future__ import annotations

import glob
import io
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import anyio
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.runtime.maintenance_monitor import MaintenanceMonitor
from app.services.transfer.data_transfer import DataExportService
from app.settings import Settings
from tests.conftest import run_in_thread
from tests.support.databases import PostgresTemplate, SqliteTemplate, postgres_admin_url
from tests.support.harness import Harness, make_harness
from tests.support.mcp import call_ok
from tests.support.populate import populate
from tests.support.server import client, serve

pytestmark = pytest.mark.anyio


def records(text: str) -> list[str]:
    return text.splitlines()[1:]  # the header carries the export time


async def export_of(h: Harness) -> str:
    out = io.StringIO()
    await DataExportService(h.uow, h.clock).export_dump(out.write)
    return out.getvalue()


def pg_tool(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        pytest.fail(f"{name} is not installed (the PostgreSQL client tools are needed for this test)")
    return found


def dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return (
        parsed.set(database=database).render_as_string(hide_password=False)
        if database
        else parsed.render_as_string(hide_password=False)
    )


async def test_sqlite_online_backup_while_the_service_runs_restores_the_same_data(
    sqlite_template: SqliteTemplate, tmp_path: Path
) -> None:
    url = sqlite_template.copy(tmp_path)
    live = Path(url.split("///", 1)[1])
    backup = tmp_path / "backup.db"
    writer = make_harness(url)
    await populate(writer)
    async with serve(Settings(database_url=url, data_dir=tmp_path, log_format="console")) as running:
        # The monitor's start-up pass (it releases populate's long-expired claims) ends before the backup.
        await cast(MaintenanceMonitor, running.runtime.supervisor.get("maintenance")).wait_for_runs(1)
        async with client(running, "2026-07-28") as c:
            await call_ok(c, "orchestrator_initialize_session", agent="ops", working_directory="/live")
            await call_ok(
                c, "orchestrator_plan_task", agent="ops", title="Written through the service", description="x"
            )

            def online_backup() -> None:
                source, target = sqlite3.connect(live), sqlite3.connect(backup)
                try:
                    source.backup(target)  # the sqlite3 backup API: consistent while others have the file open
                finally:
                    target.close()
                    source.close()

            await anyio.to_thread.run_sync(online_backup)
            expected = records(await export_of(writer))
            await call_ok(c, "orchestrator_plan_task", agent="ops", title="After the backup", description="x")
    await writer.close()

    def restore() -> None:
        """The service is stopped; the backup replaces the database file (stale -wal/-shm removed)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, live)

    await anyio.to_thread.run_sync(restore)
    restored = make_harness(url)
    try:
        assert records(await export_of(restored)) == expected
        assert "After the backup" not in "\n".join(expected) and "Written through the service" in "\n".join(expected)
    finally:
        await restored.close()


@pytest.fixture
def pg_source(postgres_template: PostgresTemplate) -> Iterator[str]:
    url = run_in_thread(postgres_template.copy)
    yield url
    run_in_thread(lambda: postgres_template.drop(url))


@pytest.mark.parametrize("dump_format", ["custom", "plain"])
async def test_pg_dump_restored_into_a_new_database_holds_the_same_data(
    pg_source: str, tmp_path: Path, dump_format: str
) -> None:
    source = make_harness(pg_source)
    try:
        await populate(source)
        expected = records(await export_of(source))
        dump = tmp_path / "orchestrator.dump"
        await anyio.run_process(
            [pg_tool("pg_dump"), f"--format={dump_format}", "--no-owner", "--file", str(dump), dsn(pg_source)],
            check=True,
        )
    finally:
        await source.close()

    name = f"orch_restore_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn(postgres_admin_url()))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        target = dsn(pg_source, name)
        if dump_format == "custom":
            restore = [pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", target, str(dump)]
        else:
            restore = [pg_tool("psql"), "--quiet", "--set", "ON_ERROR_STOP=1", "--file", str(dump), target]
        await anyio.run_process(restore, check=True, env={**os.environ, "PGOPTIONS": "--client-min-messages=warning"})
        restored = make_harness(make_url(pg_source).set(database=name).render_as_string(hide_password=False))
        try:
            assert records(await export_of(restored)) == expected
        finally:
            await restored.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
