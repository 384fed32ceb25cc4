"""``/board/events`` across replicas and through a drain, the security headers, and ``ORCHESTRATOR_BOARD=false``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest

from app.runtime.reboot_manager import ServiceState
from tests.board.conftest import board_settings, free_port, serve_at
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client

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


async def test_a_change_made_on_one_replica_reaches_the_board_stream_of_another(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        serve_at(board_settings(database_url, tmp_path / "a"), free_port()) as writer,
        serve_at(board_settings(database_url, tmp_path / "b"), free_port()) as watcher,
        httpx2.AsyncClient(base_url=watcher.base_url, timeout=WAIT) as http,
        http.stream("GET", "/board/events") as stream,
    ):
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert await lines.__anext__() == "retry: 2000"
        async with client(writer, "2026-07-28") as c:
            await call_ok(c, "orchestrator_initialize_session", working_directory="/srv/r", agent="lead")
            planned = await call_ok(c, "orchestrator_plan_task", agent="lead", title="T", description="On A.")
        task = planned["task"]
        with anyio.fail_after(WAIT):
            seen = await next_change(lines)
            while task["id"] not in seen["tasks"]:
                seen = await next_change(lines)
        assert task["session_id"] in seen["sessions"]


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
