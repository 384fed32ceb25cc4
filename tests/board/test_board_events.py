"""``/board/events`` fed by the change feed (on one server, across replicas, through a LISTEN reconnect and a
drain), the security headers, and ``ORCHESTRATOR_BOARD=false``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx2
import pytest

from app.runtime.reboot_manager import ServiceState
from app.runtime.work_signals import listen_dsn
from tests.board.conftest import board_settings, free_port, serve_at
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client
from tests.support.waiting import until

pytestmark = pytest.mark.anyio
WAIT = 20


async def next_change(lines: AsyncIterator[str]) -> dict[str, list[str]]:
    """The data of the next ``change`` event on the stream."""
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "change":
            data: dict[str, list[str]] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError("the stream ended without a change")


async def change_naming(lines: AsyncIterator[str], task: dict[str, Any]) -> dict[str, list[str]]:
    """The first change on the stream that names ``task`` (bounded)."""
    with anyio.fail_after(WAIT):
        seen = await next_change(lines)
        while task["id"] not in seen["tasks"]:
            seen = await next_change(lines)
    return seen


async def plan_one(server: RunningServer, title: str) -> dict[str, Any]:
    async with client(server, "2026-07-28") as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/srv/r", agent="lead")
        planned = await call_ok(c, "orchestrator_plan_task", agent="lead", title=title, description=f"{title}.")
    return dict(planned["task"])


async def listening(server: RunningServer) -> None:
    """Until the server's LISTEN connection is up (a stream opened before its first connect would end then)."""
    listener = server.runtime.supervisor.get("change_listener")
    await until(lambda: listener.connected)


@asynccontextmanager
async def events(http: httpx2.AsyncClient) -> AsyncIterator[AsyncIterator[str]]:
    """An open ``/board/events`` stream's lines, past its ``retry`` line."""
    async with http.stream("GET", "/board/events") as stream:
        assert (stream.status_code, stream.headers["content-type"]) == (200, "text/event-stream; charset=utf-8")
        lines = stream.aiter_lines()
        assert await lines.__anext__() == "retry: 2000"
        yield lines


@asynccontextmanager
async def two_replicas(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, RunningServer, httpx2.AsyncClient]]:
    """(writer, watcher, a client of the watcher): two servers on one PostgreSQL, the watcher listening."""
    async with (
        serve_at(board_settings(database_url, tmp_path / "a"), free_port()) as writer,
        serve_at(board_settings(database_url, tmp_path / "b"), free_port()) as watcher,
        httpx2.AsyncClient(base_url=watcher.base_url, timeout=WAIT) as http,
    ):
        await listening(watcher)
        yield writer, watcher, http


async def cut_listen_connection(database_url: str, server: RunningServer) -> None:
    """End the server's LISTEN connection from the database side (as a network cut or a failover would)."""
    dsn = listen_dsn(database_url)
    assert dsn is not None
    admin = await asyncpg.connect(dsn)
    try:
        terminated = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1) AS t",
            f"task-orchestrator-listen:{server.runtime.holder.reboot.instance_id}"[:63],
        )
    finally:
        await admin.close()
    assert terminated == 1


async def test_a_task_planned_through_mcp_reaches_the_board_stream_of_the_same_server(
    board_server: RunningServer, backend: str
) -> None:
    if backend == "postgresql":
        await listening(board_server)
    async with httpx2.AsyncClient(base_url=board_server.base_url, timeout=WAIT) as http, events(http) as lines:
        task = await plan_one(board_server, "Here")
        seen = await change_naming(lines, task)
    assert seen == {"sessions": [task["session_id"]], "tasks": [task["id"]]}


@pytest.mark.parametrize("backend", ["postgresql"])  # replicas share one PostgreSQL; SQLite is one process
async def test_a_change_made_on_one_replica_reaches_the_board_stream_of_another(
    database_url: str, tmp_path: Path
) -> None:
    async with two_replicas(database_url, tmp_path) as (writer, _, http), events(http) as lines:
        task = await plan_one(writer, "On A")
        seen = await change_naming(lines, task)
    assert seen == {"sessions": [task["session_id"]], "tasks": [task["id"]]}


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no LISTEN connection to lose
async def test_open_streams_end_when_the_listener_reconnects_and_a_new_stream_hears_the_other_replica(
    database_url: str, tmp_path: Path
) -> None:
    async with two_replicas(database_url, tmp_path) as (writer, watcher, http):
        async with events(http) as lines:
            # What other replicas change until the connection is back is never heard: the page must re-read.
            await cut_listen_connection(database_url, watcher)
            with anyio.fail_after(WAIT):
                rest = [line async for line in lines]
            assert [line for line in rest if not line.startswith(":")] == [""]  # it ended, with no change
        registry = watcher.runtime.holder.metrics.registry
        assert registry.get_sample_value("orchestrator_change_listener_reconnects_total") == 1
        await listening(watcher)
        async with events(http) as lines:
            task = await plan_one(writer, "After the reconnect")
            seen = await change_naming(lines, task)
    assert seen == {"sessions": [task["session_id"]], "tasks": [task["id"]]}


async def test_the_stream_ends_when_the_service_drains_and_none_opens_until_it_is_ready(
    board_server: RunningServer,
) -> None:
    reboot = board_server.runtime.holder.reboot
    async with httpx2.AsyncClient(base_url=board_server.base_url, timeout=WAIT) as http:
        async with http.stream("GET", "/board/events") as stream:
            lines = stream.aiter_lines()
            assert await lines.__anext__() == "retry: 2000"
            reboot.move_to(ServiceState.DRAINING)
            with anyio.fail_after(WAIT):
                rest = [line async for line in lines]
            assert rest == [""]
        try:
            quick = await http.get("/board/events")
            assert (quick.status_code, quick.text) == (200, "retry: 2000\n\n")
            page = await http.get("/board")
            assert (page.status_code, page.headers["retry-after"]) == (503, "1")
        finally:
            reboot.move_to(ServiceState.READY)
        assert (await http.get("/board")).status_code == 200


async def test_pages_carry_a_strict_content_security_policy_and_assets_come_from_the_app(
    board_server: RunningServer,
) -> None:
    async with httpx2.AsyncClient(base_url=board_server.base_url) as http:
        page = await http.get("/board")
        script = await http.get("/board/static/board.js")
        style = await http.get("/board/static/board.css")
        missing = await http.get("/board/sessions/sess_0000000000000000")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (page.headers["x-content-type-options"], page.headers["x-frame-options"]) == ("nosniff", "DENY")
    assert '<script src="/board/static/board.js" defer></script>' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no asset from elsewhere
    assert (script.status_code, script.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert (style.status_code, style.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert missing.status_code == 404 and "sess_0000000000000000" in missing.text


async def test_board_false_serves_no_board(database_url: str, tmp_path: Path) -> None:
    settings = board_settings(database_url, tmp_path, board=False)
    async with serve_at(settings, free_port()) as running, httpx2.AsyncClient(base_url=running.base_url) as http:
        for path in ("/board", "/board/events", "/board/login", "/board/static/board.js"):
            assert (await http.get(path)).status_code == 404, path
