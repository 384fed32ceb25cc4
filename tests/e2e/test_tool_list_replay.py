"""``ToolListReplay``: a repeated 2026-07-28 ``tools/list`` gets the bytes the SDK sent for the same request,
with its own id, and everything the SDK would refuse is still refused by the SDK (issue 14)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from app.http.tool_list_replay import MAX_SHAPE_BYTES, ToolListReplay
from app.settings import Settings
from tests.support.auth import write_tokens_file
from tests.support.server import RunningServer, client, serve, sqlite_settings

pytestmark = pytest.mark.anyio
VERSION = "2026-07-28"
HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": VERSION,
    "mcp-method": "tools/list",
}


def tools_list(request_id: Any, client_name: str = "probe", method: str = "tools/list") -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": client_name, "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {"_meta": meta}}


async def post(server: RunningServer, body: dict[str, Any], **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(server.mcp_url, content=json.dumps(body), headers={**HEADERS, **headers})


class SdkCalls:
    """Counts the requests the replay hands on to the SDK (the real one, wrapped, not replaced)."""

    def __init__(self, replay: ToolListReplay) -> None:
        self.count = 0
        sdk = replay.app

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            self.count += 1
            await sdk(scope, receive, send)

        replay.app = counted


@pytest.fixture
async def server(sqlite_template: Any, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serve(sqlite_settings(sqlite_template, tmp_path)) as running:
        yield running


def replay_of(server: RunningServer) -> ToolListReplay:
    replay: ToolListReplay = server.app.state.tool_list_replay
    return replay


async def test_a_repeated_tools_list_gets_the_sdks_bytes_with_its_own_id(server: RunningServer) -> None:
    replay = replay_of(server)
    sdk = SdkCalls(replay)
    first = await post(server, tools_list(1))
    again = await post(server, tools_list("call-two"))
    third = await post(server, tools_list(2**40))

    assert (first.status_code, again.status_code, third.status_code) == (200, 200, 200)
    assert sdk.count == 1 and replay.shapes == 1
    assert again.content == first.content.replace(b'"id":1,', b'"id":"call-two",', 1)
    assert third.content == first.content.replace(b'"id":1,', b'"id":1099511627776,', 1)
    assert {k: v for k, v in again.headers.items() if k not in ("content-length", "date")} == {
        k: v for k, v in first.headers.items() if k not in ("content-length", "date")
    }
    assert int(again.headers["content-length"]) == len(again.content)
    assert len(first.json()["result"]["tools"]) == len(server.app.state.server._tool_manager.list_tools())

    async with client(server, VERSION) as c:  # the real client: one more shape (its own clientInfo), then replays
        listed = [await c.list_tools(cache_mode="bypass") for _ in range(3)]
    assert sdk.count == 2 and replay.shapes == 2
    assert all(answer == listed[0] for answer in listed)
    assert [t.name for t in listed[0].tools] == [t["name"] for t in first.json()["result"]["tools"]]


async def test_what_the_sdk_refuses_is_refused_by_the_sdk_every_time(server: RunningServer) -> None:
    replay = replay_of(server)
    assert (await post(server, tools_list(1))).status_code == 200
    sdk = SdkCalls(replay)
    refusals = {
        "another host": ({"host": "evil.example"}, tools_list(2)),
        "another origin": ({"origin": "http://evil.example"}, tools_list(2)),
        "no JSON accepted": ({"accept": "text/event-stream"}, tools_list(2)),
        "a boolean id": ({}, tools_list(True)),
        "a fractional id": ({}, tools_list(2.5)),
        "a method unlike its header": ({}, tools_list(2, method="resources/list")),
        "another version in the header": ({"mcp-protocol-version": "2099-01-01"}, tools_list(2)),
    }
    answers = {}
    for name, (headers, body) in refusals.items():
        answers[name] = [(await post(server, body, **headers)).status_code for _ in range(2)]

    assert answers == {
        "another host": [421, 421],
        "another origin": [403, 403],
        "no JSON accepted": [406, 406],
        "a boolean id": [400, 400],
        "a fractional id": [400, 400],
        "a method unlike its header": [400, 400],
        "another version in the header": [400, 400],
    }
    assert sdk.count == 2 * len(refusals)  # every one of them reached the SDK, both times
    assert replay.shapes == 1


async def test_legacy_requests_are_left_to_the_sdk(server: RunningServer) -> None:
    replay = replay_of(server)
    sdk = SdkCalls(replay)
    async with client(server, "legacy") as c:
        listed = [await c.list_tools(cache_mode="bypass") for _ in range(2)]
    assert listed[0] == listed[1] and listed[0].tools
    assert replay.shapes == 0 and sdk.count >= 3  # initialize, its notification and both lists reached the SDK


async def test_the_remembered_shapes_are_bounded_and_share_one_result(server: RunningServer) -> None:
    replay = replay_of(server)
    replay.max_shapes = 2
    sdk = SdkCalls(replay)
    for name in ("a", "b", "c"):
        assert (await post(server, tools_list(1, client_name=name))).status_code == 200
    assert replay.shapes == 2 and sdk.count == 3
    assert len(replay._results) == 1  # one copy of the 40 KB answer, whatever the number of shapes
    assert (await post(server, tools_list(2, client_name="c"))).status_code == 200
    assert sdk.count == 3  # still remembered
    assert (await post(server, tools_list(2, client_name="a"))).status_code == 200
    assert sdk.count == 4  # the least recently used was dropped and asked again


async def test_a_request_too_large_to_remember_is_answered_by_the_sdk_every_time(server: RunningServer) -> None:
    """A shape is remembered only up to MAX_SHAPE_BYTES: 256 bodies of a megabyte each must not be kept."""
    replay = replay_of(server)
    sdk = SdkCalls(replay)
    large = tools_list(1)
    large["params"]["_meta"]["com.example/padding"] = "y" * MAX_SHAPE_BYTES
    answers = [await post(server, large) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[0].json()["result"]["tools"]
    assert sdk.count == 2 and replay.shapes == 0


async def test_a_replayed_list_still_needs_a_valid_token(tmp_path: Path, database_url: str) -> None:
    tokens = write_tokens_file(tmp_path / "tokens", {"alice": "tasks:read"})
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_format="console",
        auth_tokens_file=tmp_path / "tokens",
        public_url="http://orchestrator.test",
    )
    async with serve(settings) as server:
        authorised = {"authorization": f"Bearer {tokens['alice']}"}
        answers = [(await post(server, tools_list(n), **authorised)).status_code for n in range(2)]
        anonymous = await post(server, tools_list(3))
        forged = await post(server, tools_list(4), authorization="Bearer not-a-token")
    assert answers == [200, 200] and replay_of(server).shapes == 1
    assert (anonymous.status_code, forged.status_code) == (401, 401)
