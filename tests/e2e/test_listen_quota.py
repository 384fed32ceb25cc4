"""Open ``subscriptions/listen`` streams are capped per principal (DESIGN §7): one client that opens streams
in a loop cannot take the change feed from the others, and a stream that ends frees its place."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, Implementation

from app.tools.listen_quota import TOO_MANY_STREAMS, ListenQuota
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client, serve, sqlite_settings
from tests.support.waiting import new_session, plan

pytestmark = pytest.mark.anyio


def named(server: RunningServer, name: str) -> Client:
    return client(server, "2026-07-28", client_info=Implementation(name=name, version="1"))


def quota(server: RunningServer) -> ListenQuota:
    found = [m for m in server.app.state.server.middleware if isinstance(m, ListenQuota)]
    assert len(found) == 1
    return found[0]


async def test_a_principal_at_its_stream_cap_is_refused_while_another_listens_and_hears(
    sqlite_template: Any, tmp_path: Path
) -> None:
    settings = sqlite_settings(sqlite_template, tmp_path, max_listen_streams_per_principal=2)
    async with serve(settings) as server, named(server, "flood") as flood, named(server, "calm") as calm:
        session_id = await new_session(calm)
        task = await plan(calm, session_id, "Watched")
        uri = f"orchestrator://tasks/{task['id']}"
        async with AsyncExitStack() as streams:
            for _ in range(2):
                await streams.enter_async_context(flood.listen(resource_subscriptions=[uri]))
            with pytest.raises(MCPError) as refused:
                async with flood.listen(resource_subscriptions=[uri]):
                    pass
            held_at_the_cap = quota(server).open_streams("flood")
            async with calm.listen(resource_subscriptions=[uri]) as heard:
                await call_ok(calm, "orchestrator_update_task", task_id=task["id"], priority="high")
                event = await anext(aiter(heard))
        async with flood.listen(resource_subscriptions=[uri]):  # its streams ended: room again
            held_after = quota(server).open_streams("flood")
    assert refused.value.error.code == TOO_MANY_STREAMS
    assert "'flood' already holds 2 open subscriptions/listen streams" in refused.value.error.message
    assert "ORCHESTRATOR_MAX_LISTEN_STREAMS_PER_PRINCIPAL" in refused.value.error.message
    assert held_at_the_cap == 2 and held_after == 1
    assert str(getattr(event, "uri", "")) == uri
    assert quota(server).open_streams("flood") == 0


async def test_a_stream_follows_at_most_the_per_session_number_of_resources(
    sqlite_template: Any, tmp_path: Path
) -> None:
    uris = [f"orchestrator://tasks/task_{n:016x}" for n in range(4)]
    settings = sqlite_settings(sqlite_template, tmp_path, max_subscriptions_per_session=3)
    async with serve(settings) as server, named(server, "watcher") as watcher:
        async with watcher.listen(resource_subscriptions=uris[:3]) as accepted:
            honored = sorted(accepted.honored.resource_subscriptions or [])
        with pytest.raises(MCPError) as refused:
            async with watcher.listen(resource_subscriptions=uris):
                pass
        held = quota(server).open_streams("watcher")
    assert honored == uris[:3]
    assert refused.value.error.code == INVALID_PARAMS
    assert "asks to follow 4 resources, more than one stream may (3" in refused.value.error.message
    assert held == 0  # refused before it counted
