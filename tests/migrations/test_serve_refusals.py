"""``task-orchestrator serve`` on a database it cannot use, as an operator sees it: one line and status 3.

A PostgreSQL database below head (auto-migration off) and a SQLite directory that cannot be written are
refused before the "serving MCP at" banner and without a traceback; an unmigrated SQLite file is the
embedded default's first start, and is upgraded and served.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest

from app.db import schema
from app.db.engine import create_database
from tests.support.databases import plain_url
from tests.support.process import app_process, child_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SERVE = [str(Path(sys.executable).with_name("task-orchestrator")), "serve", "--port", "0"]


async def serve_until_it_exits(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process(SERVE, env=env, cwd=cwd, check=False)


async def revision_of(url: str) -> str | None:
    database = create_database(url)
    try:
        return (await schema.current_state(database)).current
    finally:
        await database.dispose()


async def test_serve_on_an_unmigrated_database_refuses_postgresql_with_one_line_and_upgrades_sqlite(
    backend: str, empty_database_url: str, tmp_path: Path
) -> None:
    env = child_env(ORCHESTRATOR_DATABASE_URL=plain_url(empty_database_url))
    head = schema.head_revision()
    if backend == "postgresql":
        result = await serve_until_it_exits(env, tmp_path)
        assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
            3,
            "",
            f"task-orchestrator: cannot start: database schema is at nothing, this build needs {head}: run "
            "`task-orchestrator migrate` (or set ORCHESTRATOR_AUTO_MIGRATE=true)\n",
        )
        assert await revision_of(empty_database_url) is None  # nothing migrated behind the operator's back
        return
    async with app_process(env, tmp_path) as running:
        async with httpx2.AsyncClient() as http:
            ready = await http.get(f"{running.base_url}/readyz")
        assert (ready.status_code, ready.json()["ready"]) == (200, True)
    assert running.exit_code == 0
    assert await revision_of(empty_database_url) == head


async def test_serve_refuses_a_sqlite_directory_it_cannot_write_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data_dir = blocker / "data"  # under a regular file: nothing can be created there, not even by root
    result = await serve_until_it_exits(child_env(ORCHESTRATOR_DATA_DIR=str(data_dir)), tmp_path)
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        3,
        "",
        f"task-orchestrator: cannot start: the SQLite database directory {data_dir.resolve()} is not writable "
        f"(Not a directory): mount a writable volume at {data_dir.resolve()} (docker run -v "
        f"orchestrator-data:{data_dir.resolve()} ...), or set ORCHESTRATOR_DATA_DIR or ORCHESTRATOR_DATABASE_URL\n",
    )
