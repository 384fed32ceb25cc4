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

Memory stays bounded on the legacy era, where this process keeps the subscriptions: only the two resources
that change can be followed (a task, a session's board; any other URI is refused, naming them), one MCP
session follows at most ``max_per_session`` of them, and the subscriptions of sessions that have ended are
dropped at the next ``resources/subscribe`` of anyone. Without the last, a session that subscribed to a
task nobody changes again, then went away, would be held for the life of the process.
"""

from __future__ import annotations

import logging
import re
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
from mcp.types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    EmptyResult,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from app.services.changes import Change

log = logging.getLogger("app.tools.change_feed")
TASK_URI = "orchestrator://tasks/{}"
SESSION_URI = "orchestrator://sessions/{}"
# The resources a write changes (DESIGN §4.6), with the ids' own shape (``app.domain.ids``).
SUBSCRIBABLE_URI = re.compile(r"orchestrator://(?:tasks/task|sessions/sess)_[0-9a-f]{16}")
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

    def __init__(self, live_sessions: Callable[[], Collection[str]], *, max_per_session: int) -> None:
        self._live = live_sessions
        self._max_per_session = max_per_session
        self._by_uri: dict[str, dict[str, ServerSession]] = {}
        self._uris_of: dict[str, set[str]] = {}  # MCP session id → its URIs, to forget a session whole
        self._send: MemoryObjectSendStream[str] | None = None  # open while ``run`` runs

    @property
    def count(self) -> int:
        """Subscriptions held: one per (MCP session, URI)."""
        return sum(len(sessions) for sessions in self._by_uri.values())

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        if not SUBSCRIBABLE_URI.fullmatch(uri):
            raise MCPError(
                INVALID_PARAMS,
                f"Cannot subscribe to {uri[:100]!r}: the resources that change are orchestrator://tasks/{{task id}} "
                "and orchestrator://sessions/{session id} (ids as the tools return them, e.g. task_0123456789abcdef).",
            )
        session_id = _mcp_session_id(ctx)
        if session_id is None:
            raise MCPError(
                INVALID_REQUEST,
                "resources/subscribe needs a stateful MCP session (this server runs stateless); "
                "use subscriptions/listen (protocol 2026-07-28) instead.",
            )
        self._forget_ended_sessions()
        uris = self._uris_of.setdefault(session_id, set())
        if uri not in uris and len(uris) >= self._max_per_session:
            raise MCPError(
                INVALID_REQUEST,
                f"This MCP session already follows {len(uris)} resources, the most one session may "
                "(ORCHESTRATOR_MAX_SUBSCRIPTIONS_PER_SESSION); resources/unsubscribe from some first, or follow "
                "the session's board (orchestrator://sessions/{id}), which changes whenever any of its tasks does.",
            )
        uris.add(uri)
        self._by_uri.setdefault(uri, {})[session_id] = ctx.session
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self._drop(_mcp_session_id(ctx) or "", str(params.uri))
        return EmptyResult()

    def _drop(self, session_id: str, uri: str) -> None:
        """Forget one subscription (a URI nobody follows, or a session that follows nothing, goes with it)."""
        sessions = self._by_uri.get(uri)
        if sessions is not None:
            sessions.pop(session_id, None)
            if not sessions:
                del self._by_uri[uri]
        uris = self._uris_of.get(session_id)
        if uris is not None:
            uris.discard(uri)
            if not uris:
                del self._uris_of[session_id]

    def _forget_ended_sessions(self) -> None:
        """Drop every subscription of the MCP sessions that have ended (DELETE, idle timeout)."""
        live = set(self._live())
        for session_id in [s for s in self._uris_of if s not in live]:
            for uri in list(self._uris_of[session_id]):
                self._drop(session_id, uri)

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
            for session_id, session in list(self._by_uri.get(uri, {}).items()):
                if session_id not in live:
                    self._drop(session_id, uri)
                    continue
                try:
                    with anyio.fail_after(SEND_TIMEOUT_SECONDS):
                        await session.send_resource_updated(uri)
                except Exception:  # a broken stream: forget the session (at-most-once delivery)
                    self._drop(session_id, uri)


def _mcp_session_id(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    value = headers.get("mcp-session-id") if headers is not None else None
    return value if isinstance(value, str) and value else None


class ChangeFeed:
    """Both eras' subscribers of this process, fed from the change router."""

    def __init__(self, live_sessions: Callable[[], Collection[str]], *, max_subscriptions_per_session: int) -> None:
        self.bus = ChangeFeedBus()
        self.legacy = LegacySubscriptions(live_sessions, max_per_session=max_subscriptions_per_session)

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
