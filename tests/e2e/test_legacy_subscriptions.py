"""The legacy era's change feed keeps its subscriptions in this process (DESIGN §4.7): what a session
follows, until it unsubscribes or ends, and no more than it may. Real uvicorn, the real client on
2025-11-25 with a session; a change is a real ``orchestrator_update_task``.

What a session hears arrives in order on its one stream, and a change announces its task before its
session, so "the session's URI arrived a second time and the task's did not" is a complete observation,
not a wait for something that does not come.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, ResourceUpdatedNotification

from app.runtime.serving import live_session_ids
from app.tools.change_feed import LegacySubscriptions
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client, serve, sqlite_settings
from tests.support.waiting import new_session, plan, until

pytestmark = pytest.mark.anyio


def subscriptions(server: RunningServer) -> LegacySubscriptions:
    legacy: LegacySubscriptions = server.runtime.change_feed.legacy
    return legacy


class Heard:
    """The ``resources/updated`` URIs one client received, in order."""

    def __init__(self) -> None:
        self.uris: list[str] = []

    async def __call__(self, message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))


async def change(c: Client, task_id: str, priority: str) -> None:
    await call_ok(c, "orchestrator_update_task", task_id=task_id, priority=priority, agent="planner")


async def test_an_unsubscribed_task_is_no_longer_announced_while_its_session_still_is(
    sqlite_template: Any, tmp_path: Path
) -> None:
    heard = Heard()
    async with serve(sqlite_settings(sqlite_template, tmp_path)) as server:
        async with client(server, "legacy", message_handler=heard) as c:
            session_id = await new_session(c)
            task = await plan(c, session_id, "Watched")
            task_uri, session_uri = f"orchestrator://tasks/{task['id']}", f"orchestrator://sessions/{session_id}"
            await c.subscribe_resource(task_uri)
            await c.subscribe_resource(session_uri)
            await change(c, task["id"], "high")
            await until(lambda: heard.uris.count(session_uri) == 1)
            await c.unsubscribe_resource(task_uri)
            held = subscriptions(server).count
            await change(c, task["id"], "low")
            await until(lambda: heard.uris.count(session_uri) == 2)
    assert heard.uris == [task_uri, session_uri, session_uri]
    assert held == 1


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/tasks/task_0123456789abcdef",
        "orchestrator://task/task_0123456789abcdef",  # "task", not "tasks"
        "orchestrator://tasks/sess_0123456789abcdef",  # a session id where a task's goes
        "orchestrator://tasks/task_0123456789abcdef/artifacts",
        "orchestrator://sessions/" + "a" * 2000,
    ],
)
async def test_only_a_task_or_a_session_can_be_followed_and_the_refusal_names_both(
    sqlite_template: Any, tmp_path: Path, uri: str
) -> None:
    async with serve(sqlite_settings(sqlite_template, tmp_path)) as server, client(server, "legacy") as c:
        with pytest.raises(MCPError) as refused:
            await c.subscribe_resource(uri)
        held = subscriptions(server).count
    assert refused.value.error.code == INVALID_PARAMS
    message = refused.value.error.message
    assert repr(uri[:100]) in message
    assert "orchestrator://tasks/{task id}" in message and "orchestrator://sessions/{session id}" in message
    assert held == 0


async def test_a_session_follows_at_most_its_cap_and_may_resubscribe_or_make_room(
    sqlite_template: Any, tmp_path: Path
) -> None:
    uris = [f"orchestrator://tasks/task_{n:016x}" for n in range(4)]
    settings = sqlite_settings(sqlite_template, tmp_path, max_subscriptions_per_session=3)
    async with serve(settings) as server, client(server, "legacy") as c, client(server, "legacy") as other:
        for uri in uris[:3]:
            await c.subscribe_resource(uri)
        await c.subscribe_resource(uris[0])  # already followed: not one more
        with pytest.raises(MCPError) as refused:
            await c.subscribe_resource(uris[3])
        await other.subscribe_resource(uris[3])  # the cap is per session: another session is unaffected
        await c.unsubscribe_resource(uris[1])
        await c.subscribe_resource(uris[3])  # room made
        held = subscriptions(server).count
    assert refused.value.error.code == INVALID_REQUEST
    assert "already follows 3 resources" in refused.value.error.message
    assert "ORCHESTRATOR_MAX_SUBSCRIPTIONS_PER_SESSION" in refused.value.error.message
    assert held == 4  # c: 0, 2, 3; other: 3


async def test_a_session_that_ended_is_forgotten_at_the_next_subscribe_even_if_nothing_changes(
    sqlite_template: Any, tmp_path: Path
) -> None:
    async with serve(sqlite_settings(sqlite_template, tmp_path)) as server:
        manager = server.app.state.server.session_manager
        async with client(server, "legacy") as leaving:
            for n in range(3):
                await leaving.subscribe_resource(f"orchestrator://tasks/task_{n:016x}")
            held_while_there = subscriptions(server).count
        with anyio.fail_after(20):
            while live_session_ids(manager):  # noqa: ASYNC110  # the client's DELETE ends its session
                await anyio.sleep(0.02)
        held_after_it_left = subscriptions(server).count  # nothing has asked yet
        async with client(server, "legacy") as staying:
            await staying.subscribe_resource("orchestrator://sessions/sess_0123456789abcdef")
            held_after_the_next_subscribe = subscriptions(server).count
    assert (held_while_there, held_after_it_left, held_after_the_next_subscribe) == (3, 3, 1)


async def test_a_stateless_server_refuses_subscribe_and_points_to_listen(sqlite_template: Any, tmp_path: Path) -> None:
    settings = sqlite_settings(sqlite_template, tmp_path, stateless_http=True)
    async with serve(settings) as server, client(server, "legacy") as c:
        with pytest.raises(MCPError) as refused:
            await c.subscribe_resource("orchestrator://sessions/sess_0123456789abcdef")
    assert refused.value.error.code == INVALID_REQUEST
    assert "subscriptions/listen" in refused.value.error.message
