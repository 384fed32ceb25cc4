"""A PostgreSQL restart drops every pooled connection: calls fail only while it is down, then recover."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from app import errors
from app.db import schema
from app.db.engine import create_database
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.settings import to_async_url

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
PG_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "pg.sh"


@dataclass
class Cluster:
    directory: Path
    port: int

    def start(self) -> str:
        started = subprocess.run(
            ["bash", str(PG_SCRIPT), "start", str(self.directory), str(self.port)],
            check=True,
            capture_output=True,
            text=True,
        )
        return to_async_url(started.stdout.strip())

    def stop(self) -> None:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", str(self.directory)], check=True)


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, str]]:
    """A throwaway PostgreSQL cluster of this test's own, so it may be restarted."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Not pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="orchestrator-restart-"))
    base.chmod(0o755)
    running = Cluster(base / "pg", port)
    try:
        url = running.start()
        yield running, url
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _select_one(repos: Repositories) -> int:
    return int((await repos.session.execute(text("SELECT 1"))).scalar_one())


async def _record(repos: Repositories) -> int:
    row = await repos.system_events.insert(kind="probe", actor="tester", at=datetime.now(UTC), data={})
    return row.id


async def test_reads_and_writes_after_a_database_restart_succeed(cluster: tuple[Cluster, str]) -> None:
    server, url = cluster
    database = create_database(url, pool_size=2)
    try:
        await schema.upgrade(database)
        uow = UnitOfWork(database)
        assert await uow.run(_select_one, write=False) == 1
        first = await uow.run(_record, write=True)

        server.stop()
        server.start()

        assert await uow.run(_select_one, write=False) == 1
        assert await uow.run(_record, write=True) == first + 1
    finally:
        await database.dispose()


async def test_calls_while_the_database_is_down_are_unavailable_then_recover(cluster: tuple[Cluster, str]) -> None:
    server, url = cluster
    database = create_database(url, pool_size=2, connect_timeout=2.0)
    try:
        await schema.upgrade(database)
        uow = UnitOfWork(database)
        assert await uow.run(_select_one, write=False) == 1

        server.stop()
        with pytest.raises(errors.Unavailable) as read_error:
            await uow.run(_select_one, write=False)
        with pytest.raises(errors.Unavailable) as write_error:
            await uow.run(_record, write=True)
        server.start()

        assert (read_error.value.code, read_error.value.retryable) == ("unavailable", True)
        assert (write_error.value.code, write_error.value.retryable) == ("unavailable", True)
        assert await uow.run(_select_one, write=False) == 1
    finally:
        await database.dispose()
