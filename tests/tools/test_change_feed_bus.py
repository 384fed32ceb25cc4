"""The 2026-07-28 change feed's fan-out (``ChangeFeedBus``): every listen stream of this process gets each
event, one stream's failure never starves the others, and a stream that ends stops receiving."""

from __future__ import annotations

import logging

import pytest
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from app.tools.change_feed import ChangeFeedBus

pytestmark = pytest.mark.anyio
TASK = "orchestrator://tasks/task_0123456789abcdef"
SESSION = "orchestrator://sessions/sess_0123456789abcdef"


def uri_of(event: ServerEvent) -> str:
    assert isinstance(event, ResourceUpdated)
    return str(event.uri)


async def test_a_failing_stream_is_logged_and_the_streams_after_it_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    bus = ChangeFeedBus()
    heard: list[str] = []

    def broken(event: ServerEvent) -> None:
        raise RuntimeError("stream gone")

    bus.subscribe(broken)
    bus.subscribe(lambda event: heard.append(uri_of(event)))
    with caplog.at_level(logging.ERROR, logger="app.tools.change_feed"):
        await bus.publish(ResourceUpdated(uri=TASK))
        bus.deliver(ResourceUpdated(uri=SESSION))
    assert heard == [TASK, SESSION]
    assert [r.getMessage() for r in caplog.records] == ["listen_delivery_failed", "listen_delivery_failed"]


async def test_an_unsubscribed_stream_hears_nothing_more_and_unsubscribing_twice_is_harmless() -> None:
    bus = ChangeFeedBus()
    first: list[str] = []
    second: list[str] = []
    unsubscribe_first = bus.subscribe(lambda event: first.append(uri_of(event)))
    bus.subscribe(lambda event: second.append(uri_of(event)))
    bus.deliver(ResourceUpdated(uri=TASK))
    unsubscribe_first()
    unsubscribe_first()
    bus.deliver(ResourceUpdated(uri=SESSION))
    assert (first, second) == ([TASK], [TASK, SESSION])
