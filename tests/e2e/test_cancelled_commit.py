"""A call cancelled while its COMMIT is on its way answers what was kept (DESIGN §3 "No reply is
internal after a commit", §4.5 restart with graceful=false).

The commit cannot be taken back once sent: the database finishes it whatever happens to the caller.
Before, a restart's cancellation landing in that moment answered "nothing it did was kept. Retry it",
and the retry wrote the task a second time. The commit is made slow the way a busy disk makes it: on
PostgreSQL by a deferred constraint trigger that sleeps at COMMIT (a real slow commit in the server), on
SQLite by a commit in aiosqlite's thread that sleeps first (SQLite has no such trigger).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import asyncpg
import pytest

from app.settings import Settings
from tests.support.locks import plain_dsn
from tests.support.mcp import call_ok
from tests.support.server import client, serve

pytestmark = pytest.mark.anyio
SLOW_COMMIT_SECONDS = 1.0
BOUND = 20  # seconds; the waits below end on their conditions well before this

SLOW_COMMIT_TRIGGER = f"""
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({SLOW_COMMIT_SECONDS}); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON task DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW WHEN (NEW.title = 'Only once') EXECUTE FUNCTION slow_commit();
"""


@asynccontextmanager
async def slow_commits(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[], bool]]:
    """Makes the commit of the task titled 'Only once' take a second; yields "has that commit begun?"."""
    if database_url.startswith("sqlite"):
        committing = threading.Event()
        real_commit = aiosqlite.Connection.commit

        async def commit(self: aiosqlite.Connection) -> None:
            if committing.is_set() or "Only once" not in str(self._conn.execute("SELECT title FROM task").fetchall()):
                return await real_commit(self)

            def slow_commit() -> None:
                committing.set()
                time.sleep(SLOW_COMMIT_SECONDS)
                self._conn.commit()

            await self._execute(slow_commit)

        monkeypatch.setattr(aiosqlite.Connection, "commit", commit)
        yield committing.is_set
        return
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        await conn.execute(SLOW_COMMIT_TRIGGER)
        seen: list[bool] = []

        async def poll() -> None:
            while not seen:
                if await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query ILIKE 'COMMIT%'"
                ):
                    seen.append(True)
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as group:
            group.start_soon(poll)
            yield lambda: bool(seen)
            group.cancel_scope.cancel()
    finally:
        await conn.close()


async def test_a_plan_cancelled_by_a_restart_while_it_commits_answers_the_task_it_kept(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings) as server, slow_commits(database_url, monkeypatch) as committing:
        async with client(server, "2026-07-28") as planner, client(server, "2026-07-28") as admin:
            started = await call_ok(planner, "orchestrator_initialize_session", working_directory="/w", agent="p")
            session_id = started["session"]["id"]
            answers: dict[str, Any] = {}

            async def plan() -> None:
                answers["plan"] = await planner.call_tool(
                    "orchestrator_plan_task",
                    {"title": "Only once", "description": "d", "session_id": session_id, "agent": "p"},
                )

            async with anyio.create_task_group() as group:
                group.start_soon(plan)
                with anyio.fail_after(BOUND):
                    while not committing():  # noqa: ASYNC110  # set by the server's commit, elsewhere
                        await anyio.sleep(0.01)
                restart = await call_ok(admin, "orchestrator_restart_server", graceful=False, timeout=10, agent="ops")
            page = await call_ok(planner, "orchestrator_query_tasks", session_id=session_id)

    assert restart["outcome"] == "succeeded"
    assert restart["phases"][0]["details"]["cancelled"] == 1  # the plan was cancelled mid-commit
    assert [t["title"] for t in page["tasks"]] == ["Only once"]  # the commit went through
    answer = answers["plan"]
    assert not answer.is_error, answer.structured_content  # and the answer says so
    assert answer.structured_content["task"]["id"] == page["tasks"][0]["id"]
