"""The change feed at the MCP edge (DESIGN §4.7): ``resources/updated`` for changed tasks and sessions.

Every change this replica hears of (its own commits, and the other replicas' through the LISTEN/NOTIFY
channel, see ``app.runtime.work_signals``) becomes ``resources/updated`` for
``orchestrator://tasks/{id}`` of each changed task and ``orchestrator://sessions/{id}`` of each session:

- 2026-07-28: :class:`ChangeFeedBus` is the server's ``SubscriptionBus`` (``MCPServer(subscriptions=…)``);
  the SDK's ``subscriptions/listen`` handler filters each stream by the URIs it asked for.
- 2025-11-25: ``resources/subscribe`` / ``resources/unsubscribe`` (registered on the SDK's low-level
  server: ``MCPServer`` has no public hook for them) remember which stateful MCP session wants which URI;
  a sender task delivers through that session's standalone stream.

Delivery is at-most-once and carries only the URI: clients re-read the resource. A session that has
ended (or whose stream fails) is forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import MCPError
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.types import INVALID_REQUEST, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from app.services.changes import Change

log = logging.getLogger("app.tools.change_feed")
TASK_URI = "orchestrator://tasks/{}"
SESSION_URI = "orchestrator://sessions/{}"
URI_PREFIX = "orchestrator://"
LEGACY_QUEUE = 1024  # URIs waiting for the legacy sender; past it they are dropped (at-most-once)
SEND_TIMEOUT_SECONDS = 5.0


def uris_of(change: Change) -> list[str]:
    return [*(TASK_URI.format(t) for t in change.task_ids), *(SESSION_URI.format(s) for s in change.session_ids)]


class ChangeFeedBus:
    """The ``SubscriptionBus`` of the 2026-07-28 era: synchronous fan-out to this process's listen streams.

    Cross-replica delivery happens below it: every replica turns every change it hears into ``deliver``.
    """

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[ServerEvent], None]] = {}

    async def publish(self, event: ServerEvent) -> None:
        self.deliver(event)
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def deliver(self, event: ServerEvent) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # one stream's failure must not starve the others
                log.exception("listen_delivery_failed", extra={"event": "listen_delivery_failed"})


class LegacySubscriptions:
    """``resources/subscribe`` on the 2025-11-25 era: URI → the stateful MCP sessions that asked for it."""

    def __init__(self, live_sessions: Callable[[], Collection[str]]) -> None:
        self._live = live_sessions
        self._by_uri: dict[str, dict[str, ServerSession]] = {}
        self._send: MemoryObjectSendStream[str] | None = None  # open while ``run`` runs

    @property
    def count(self) -> int:
        return sum(len(sessions) for sessions in self._by_uri.values())

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        if not uri.startswith(URI_PREFIX):
            raise MCPError(INVALID_REQUEST, f"Only orchestrator:// resources can be subscribed to, not {uri!r}.")
        session_id = _mcp_session_id(ctx)
        if session_id is None:
            raise MCPError(
                INVALID_REQUEST,
                "resources/subscribe needs a stateful MCP session (this server runs stateless); "
                "use subscriptions/listen (protocol 2026-07-28) instead.",
            )
        self._by_uri.setdefault(uri, {})[session_id] = ctx.session
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        uri, session_id = str(params.uri), _mcp_session_id(ctx)
        sessions = self._by_uri.get(uri, {})
        sessions.pop(session_id or "", None)
        if not sessions:
            self._by_uri.pop(uri, None)
        return EmptyResult()

    def deliver(self, uri: str) -> None:
        if uri in self._by_uri and self._send is not None:
            try:
                self._send.send_nowait(uri)
            except anyio.WouldBlock:
                log.warning("legacy_updates_dropped", extra={"event": "legacy_updates_dropped"})

    async def run(self) -> None:
        """Send queued updates to the sessions that subscribed (one task per process)."""
        send, receive = anyio.create_memory_object_stream[str](LEGACY_QUEUE)
        self._send = send
        try:
            with send, receive:
                await self._send_all(receive)
        finally:
            self._send = None

    async def _send_all(self, receive: MemoryObjectReceiveStream[str]) -> None:
        async for uri in receive:
            live = set(self._live())
            sessions = self._by_uri.get(uri, {})
            for session_id, session in list(sessions.items()):
                if session_id not in live:
                    sessions.pop(session_id, None)
                    continue
                try:
                    with anyio.fail_after(SEND_TIMEOUT_SECONDS):
                        await session.send_resource_updated(uri)
                except Exception:  # a broken stream: forget the session (at-most-once delivery)
                    sessions.pop(session_id, None)
            if not sessions:
                self._by_uri.pop(uri, None)


def _mcp_session_id(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    value = headers.get("mcp-session-id") if headers is not None else None
    return value if isinstance(value, str) and value else None


class ChangeFeed:
    """Both eras' subscribers of this process, fed from the change router."""

    def __init__(self, live_sessions: Callable[[], Collection[str]]) -> None:
        self.bus = ChangeFeedBus()
        self.legacy = LegacySubscriptions(live_sessions)

    def on_change(self, change: Change) -> None:
        for uri in uris_of(change):
            self.bus.deliver(ResourceUpdated(uri=uri))
            self.legacy.deliver(uri)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the legacy sender while entered (the lifespan enters it)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.legacy.run, name="change-feed-legacy")
            try:
                yield
            finally:
                group.cancel_scope.cancel()


def register(server: MCPServer[Any], feed: ChangeFeed) -> None:
    """``resources/subscribe`` and ``resources/unsubscribe`` for the 2025-11-25 era (private hook, pinned SDK)."""
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, feed.legacy.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, feed.legacy.unsubscribe)
