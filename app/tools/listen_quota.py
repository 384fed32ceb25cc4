"""A cap on open ``subscriptions/listen`` streams per principal (DESIGN §7 "No one caller can hurt the
others"), the 2026-07-28 era's counterpart of the legacy session quota (``app.http.session_limits``).

A listen stream is one long request that stays open while the client follows changes (§4.7). The SDK
bounds them only for the whole process (``ListenHandler``: 1,024 streams, then "Subscription limit
reached" for everyone), so one client that opened streams in a loop would lock every other client out of
the change feed. This SDK middleware (``MCPServer(middleware=...)``, the seam ``ToolListCache`` uses too)
counts each principal's open streams (token subject, else the client's ``clientInfo.name``, else
``anonymous``, as the session quota does) and refuses one more past ``max_per_principal``, before the SDK
subscribes it; the count drops when the stream ends, however it ends. Other requests pass untouched.

A stream's ``resourceSubscriptions`` are held for its life, so they are bounded too, by the cap a legacy
session has (``max_uris_per_stream``, ``ORCHESTRATOR_MAX_SUBSCRIPTIONS_PER_SESSION``): without it one
request body (megabytes) could make a stream hold tens of thousands of URIs, and a principal a hundred
such streams.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import INVALID_PARAMS

from app.auth import identity

METHOD = "subscriptions/listen"
TOO_MANY_STREAMS = -32000  # JSON-RPC's range for implementation-defined server errors, as the session quota


class ListenQuota:
    """The SDK middleware that caps each principal's open ``subscriptions/listen`` streams."""

    def __init__(self, max_per_principal: int, *, max_uris_per_stream: int) -> None:
        self._max = max_per_principal
        self._max_uris = max_uris_per_stream
        self._open: Counter[str] = Counter()

    def open_streams(self, principal: str) -> int:
        return self._open[principal]

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != METHOD:
            return await call_next(ctx)
        followed = _resource_subscriptions(ctx.params)
        if followed > self._max_uris:
            raise MCPError(
                INVALID_PARAMS,
                f"This stream asks to follow {followed} resources, more than one stream may ({self._max_uris}, "
                "ORCHESTRATOR_MAX_SUBSCRIPTIONS_PER_SESSION); follow the session's board "
                "(orchestrator://sessions/{id}), which changes whenever any of its tasks does, or split them.",
            )
        principal = identity.resolve_caller(ctx, None).principal or identity.ANONYMOUS
        held = self._open[principal]
        if held >= self._max:
            raise MCPError(
                TOO_MANY_STREAMS,
                f"{principal[:64]!r} already holds {held} open subscriptions/listen streams, the most one principal "
                "may (ORCHESTRATOR_MAX_LISTEN_STREAMS_PER_PRINCIPAL). One stream can follow many resources: "
                "add them to one stream's resource_subscriptions, or end a stream first.",
            )
        self._open[principal] += 1
        try:
            return await call_next(ctx)
        finally:
            self._open[principal] -= 1
            if not self._open[principal]:
                del self._open[principal]


def _resource_subscriptions(params: Mapping[str, Any] | None) -> int:
    """How many URIs the request's filter names (0 when it names none or is malformed: the SDK refuses
    a malformed request itself)."""
    notifications = params.get("notifications") if isinstance(params, Mapping) else None
    uris = notifications.get("resourceSubscriptions") if isinstance(notifications, Mapping) else None
    return len(uris) if isinstance(uris, list) else 0
