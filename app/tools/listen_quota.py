"""A cap on open ``subscriptions/listen`` streams per principal (DESIGN §7 "No one caller can hurt the
others"), the 2026-07-28 era's counterpart of the legacy session quota (``app.http.session_limits``).

A listen stream is one long request that stays open while the client follows changes (§4.7). The SDK
bounds them only for the whole process (``ListenHandler``: 1,024 streams, then "Subscription limit
reached" for everyone), so one client that opened streams in a loop would lock every other client out of
the change feed. This SDK middleware (``MCPServer(middleware=...)``, the seam ``ToolListCache`` uses too)
counts each principal's open streams (token subject, else the client's ``clientInfo.name``, else
``anonymous``, as the session quota does) and refuses one more past ``max_per_principal``, before the SDK
subscribes it; the count drops when the stream ends, however it ends. Other requests pass untouched.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from app.auth import identity

METHOD = "subscriptions/listen"
TOO_MANY_STREAMS = -32000  # JSON-RPC's range for implementation-defined server errors, as the session quota


class ListenQuota:
    """The SDK middleware that caps each principal's open ``subscriptions/listen`` streams."""

    def __init__(self, max_per_principal: int) -> None:
        self._max = max_per_principal
        self._open: Counter[str] = Counter()

    def open_streams(self, principal: str) -> int:
        return self._open[principal]

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != METHOD:
            return await call_next(ctx)
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
