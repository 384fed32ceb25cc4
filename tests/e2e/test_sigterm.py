"""``task-orchestrator serve`` as a real process receiving SIGTERM while a slow call is in flight.

The call is made slow from the outside: the test holds the database (see ``tests.support.locks``), so the
call really waits inside the server. The server's JSON log on stdout is the gate: the test waits for its
lines (``drain_started``, …) instead of sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import asyncpg
import httpx2
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from sqlalchemy.engine import make_url

from tests.support.locks import WriteLock, hold_write_lock, plain_dsn, sqlite_path

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
WAIT = 60


class ServerProcess:
    """The subprocess, its JSON log lines as they arrive, and a way to wait for one."""

    def __init__(self, process: anyio.abc.Process, port: int) -> None:
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}"
        self.lines: list[dict[str, Any]] = []
        self._arrived = anyio.Event()

    async def read_log(self) -> None:
        assert self.process.stdout is not None
        stream = BufferedByteReceiveStream(self.process.stdout)
        while True:
            try:
                raw = await stream.receive_until(b"\n", 1 << 20)
            except (anyio.EndOfStream, anyio.IncompleteRead):
                break
            try:
                self.lines.append(json.loads(raw))
            except json.JSONDecodeError:
                self.lines.append({"event": raw.decode(errors="replace")})
            self._arrived.set()
            self._arrived = anyio.Event()
        self._arrived.set()

    def events(self) -> list[str]:
        return [str(line.get("event")) for line in self.lines]

    def find(self, event: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if line.get("event") == event), None)

    async def wait_for(self, event: str) -> dict[str, Any]:
        with anyio.fail_after(WAIT):
            while (line := self.find(event)) is None:
                if self.process.returncode is not None:
                    pytest.fail(f"the server exited before logging {event}: {self.events()}")
                await self._arrived.wait()
        return line

    async def metric(self, name: str) -> float:
        async with httpx2.AsyncClient() as http:
            text = (await http.get(f"{self.base_url}/metrics")).text
        for row in text.splitlines():
            if row.startswith(name + " "):
                return float(row.split()[1])
        raise AssertionError(f"{name} not exported")

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with httpx2.AsyncClient() as http:
            response = await http.get(f"{self.base_url}/readyz")
        return response.status_code, response.json()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running_service(database_url: str, data_dir: Path, drain_timeout: float) -> AsyncIterator[ServerProcess]:
    port = free_port()
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_DATA_DIR": str(data_dir),
        "ORCHESTRATOR_DRAIN_TIMEOUT_SECONDS": str(drain_timeout),
        "ORCHESTRATOR_LOG_FORMAT": "json",
        "ORCHESTRATOR_LOG_LEVEL": "INFO",
    }
    command = [str(Path(sys.executable).parent / "task-orchestrator"), "serve", "--port", str(port)]
    async with await anyio.open_process(command, env=env, stderr=None) as process:
        server = ServerProcess(process, port)
        async with anyio.create_task_group() as group:
            group.start_soon(server.read_log)
            try:
                await server.wait_for("Application startup complete.")
                yield server
            finally:
                if process.returncode is None:
                    process.kill()
                with anyio.fail_after(WAIT):
                    await process.wait()
                # Kept with the test's temporary directory, for reading after a failure.
                (data_dir / "server-log.jsonl").write_text("\n".join(json.dumps(line) for line in server.lines))


async def wait_until_blocked(server: ServerProcess, database_url: str) -> None:
    """Until the call is in flight and, on PostgreSQL, its statement waits on the test's lock.

    The call runs in another process, so there is no event to wait on: its in-flight gauge (and
    PostgreSQL's own view of its backend) are read until they show it.
    """
    with anyio.fail_after(WAIT):
        while await server.metric("orchestrator_tool_calls_in_flight") != 1:  # noqa: ASYNC110  # see above
            await anyio.sleep(0.02)
        if make_url(database_url).get_backend_name() != "postgresql":
            return
        conn = await asyncpg.connect(plain_dsn(database_url))
        try:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'task-orchestrator:%' "
                "AND wait_event_type = 'Lock'"
            )
            while await conn.fetchval(query) != 1:  # noqa: ASYNC110  # see above
                await anyio.sleep(0.02)
        finally:
            await conn.close()


def mcp_client(server: ServerProcess, era: str) -> Client:
    return Client(f"{server.base_url}/mcp", mode="legacy" if era == "legacy" else "2026-07-28")


@asynccontextmanager
async def slow_call_in_flight(
    server: ServerProcess, database_url: str, era: str, title: str
) -> AsyncIterator[tuple[WriteLock, list[Any]]]:
    """A plan_task call held inside the server by the test's database lock; its answer lands in the list."""
    answers: list[Any] = []
    async with mcp_client(server, era) as c, anyio.create_task_group() as group:
        await c.call_tool("orchestrator_initialize_session", {"working_directory": "/repo"})
        async with hold_write_lock(database_url) as lock:

            async def slow_call() -> None:
                answers.append(await c.call_tool("orchestrator_plan_task", {"title": title, "description": "d"}))

            group.start_soon(slow_call)
            await wait_until_blocked(server, database_url)
            yield lock, answers


async def test_sigterm_lets_the_slow_call_finish_answers_503_meanwhile_and_exits_zero(
    database_url: str, tmp_path: Path, era: str
) -> None:
    async with running_service(database_url, tmp_path, drain_timeout=30) as server:
        async with slow_call_in_flight(server, database_url, era, "Slow") as (lock, answers):
            sent = anyio.current_time()
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for("drain_started")
            assert await server.readyz() == (
                503,
                {"ready": False, "state": "draining", "reasons": ["service is draining"]},
            )
            async with mcp_client(server, era) as late:
                refused = await late.call_tool("orchestrator_query_tasks", {})
            assert refused.is_error and refused.structured_content is not None
            error = refused.structured_content["error"]
            assert (error["code"], error["retryable"]) == ("unavailable", True)
            assert not answers  # still waiting on the database
            await lock.release()
        with anyio.fail_after(WAIT):
            assert await server.process.wait() == 0
        exited = anyio.current_time()

    (answer,) = answers
    assert not answer.is_error, answer.structured_content
    assert answer.structured_content["task"]["title"] == "Slow"
    drained = server.find("drained")
    assert drained is not None and (drained["waited_for"], drained["cancelled"]) == (1, 0)
    order = [e for e in server.events() if e in ("drain_started", "drained", "stopping", "database_closed")]
    assert order == ["drain_started", "drained", "stopping", "database_closed"]
    # `serve` settles its heap (app.runtime.heap) once, before it reports ready.
    settled = server.find("heap_settled")
    assert settled is not None and settled["frozen_objects"] > 50_000, settled
    assert server.events().index("heap_settled") < server.events().index("ready")
    print(f"\nSIGTERM to exit: {exited - sent:.2f} s (slow call released by the test in between)")


@pytest.mark.parametrize("force", ["second_sigterm", "drain_timeout"])
async def test_a_second_sigterm_or_the_drain_timeout_cancels_the_slow_call_and_still_exits_zero(
    database_url: str, tmp_path: Path, era: str, force: str
) -> None:
    drain_timeout = 30 if force == "second_sigterm" else 0.5
    async with running_service(database_url, tmp_path, drain_timeout=drain_timeout) as server:
        async with slow_call_in_flight(server, database_url, era, "Cut") as (lock, answers):
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for("drain_started")
            if force == "second_sigterm":
                server.process.send_signal(signal.SIGTERM)
                await server.wait_for("drain_forced")
            await server.wait_for("calls_cancelled")
            # SQLite's worker thread sits in the lock wait until the lock goes; release it so it can roll back.
            await lock.release()
        with anyio.fail_after(WAIT):
            assert await server.process.wait() == 0

    (answer,) = answers
    assert answer.is_error and answer.structured_content is not None
    error = answer.structured_content["error"]
    assert (error["code"], error["retryable"]) == ("unavailable", True)
    assert await count_tasks_titled(database_url, "Cut") == 0  # its transaction rolled back


async def count_tasks_titled(database_url: str, title: str) -> int:
    if make_url(database_url).get_backend_name() == "sqlite":
        with closing(sqlite3.connect(sqlite_path(database_url))) as conn:
            return int(conn.execute("SELECT count(*) FROM task WHERE title = ?", (title,)).fetchone()[0])
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM task WHERE title = $1", title))
    finally:
        await conn.close()
