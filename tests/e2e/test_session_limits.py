"""Legacy MCP sessions are capped per principal and closed when idle (DESIGN §7): one client's flood of
sessions never locks another client out, and a session left idle frees its place by itself."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError
from mcp.types import Implementation

from app.runtime.serving import live_session_ids
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client, serve, sqlite_settings

pytestmark = pytest.mark.anyio
BOUND = 20  # seconds; every wait ends on its condition well before this


def initialize(name: str, request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}},
    }


async def open_raw_session(server: RunningServer, name: str, request_id: int = 1) -> httpx2.Response:
    """An initialize POST as a legacy client sends it, never followed by DELETE."""
    async with httpx2.AsyncClient() as http:
        return await http.post(
            server.mcp_url,
            json=initialize(name, request_id),
            headers={"accept": "application/json, text/event-stream"},
        )


async def test_a_principal_at_its_session_cap_cannot_open_more_while_another_principal_can(
    sqlite_template: Any, tmp_path: Path
) -> None:
    settings = sqlite_settings(sqlite_template, tmp_path, max_sessions_per_principal=2)
    async with serve(settings) as server, AsyncExitStack() as sessions:
        for _ in range(2):
            flood = await sessions.enter_async_context(
                client(server, "legacy", client_info=Implementation(name="flood", version="1"))
            )
            await call_ok(flood, "orchestrator_health_check")
        with pytest.raises(BaseExceptionGroup) as refused_client:  # the client's task groups wrap its MCPError
            async with client(server, "legacy", client_info=Implementation(name="flood", version="1")):
                pass
        refused = await open_raw_session(server, "flood", request_id=7)
        calm = await sessions.enter_async_context(
            client(server, "legacy", client_info=Implementation(name="calm", version="1"))
        )
        health = await call_ok(calm, "orchestrator_health_check")
        assert len(live_session_ids(server.app.state.server.session_manager)) == 3

    assert refused_client.group_contains(MCPError, match="'flood' already holds 2")
    assert refused.status_code == 429
    body = refused.json()
    assert (body["jsonrpc"], body["id"], body["error"]["code"]) == ("2.0", 7, -32000)
    assert "'flood' already holds 2" in body["error"]["message"]
    assert "ORCHESTRATOR_MAX_SESSIONS_PER_PRINCIPAL" in body["error"]["message"]
    assert "Mcp-Session-Id" in body["error"]["message"]  # says what to do: reuse, DELETE or wait
    assert "healthy" in health


async def test_an_idle_session_is_closed_and_frees_its_place(sqlite_template: Any, tmp_path: Path) -> None:
    settings = sqlite_settings(sqlite_template, tmp_path, max_sessions_per_principal=1, session_idle_seconds=0.5)
    async with serve(settings) as server:
        manager = server.app.state.server.session_manager
        first = await open_raw_session(server, "flood")
        assert first.status_code == 200 and first.headers["mcp-session-id"] in live_session_ids(manager)
        assert (await open_raw_session(server, "flood")).status_code == 429
        with anyio.fail_after(BOUND):
            while live_session_ids(manager):  # noqa: ASYNC110  # the SDK closes it when its idle time runs out
                await anyio.sleep(0.05)
        again = await open_raw_session(server, "flood")
        assert again.status_code == 200 and again.headers["mcp-session-id"] != first.headers["mcp-session-id"]


async def test_a_second_protocol_version_header_does_not_open_a_session_past_the_cap(
    sqlite_template: Any, tmp_path: Path
) -> None:
    """The SDK serves a request by its first ``MCP-Protocol-Version``; the quota must judge it the same way.

    Before, the quota read the last one: ``2025-11-25`` then ``2026-07-28`` passed it as sessionless while
    the SDK opened a legacy session, so one principal could open sessions without limit.
    """
    settings = sqlite_settings(sqlite_template, tmp_path, max_sessions_per_principal=2)
    headers = httpx2.Headers(
        [
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-protocol-version", "2026-07-28"),
        ]
    )
    async with serve(settings) as server, httpx2.AsyncClient() as http:
        statuses = [
            (await http.post(server.mcp_url, json=initialize("flood", n), headers=headers)).status_code
            for n in range(4)
        ]
        assert len(live_session_ids(server.app.state.server.session_manager)) == 2
    assert statuses == [200, 200, 429, 429]
