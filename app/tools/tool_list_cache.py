"""``tools/list`` answered from the wire form the SDK produced for it the first time, per protocol version.

Why: the list is fixed once ``build_server`` has registered every tool, yet the SDK rebuilt its 40 KB answer
on every request — the handler's ``ListToolsResult`` dumped to a dict, validated and dumped again by the
version's result model, then stamped with the server's info — about a third of the server's time per
``tools/list`` (issue 14). This middleware (``MCPServer(middleware=...)``, the SDK's seam around each request,
MCP-SDK-NOTES) keeps the first finished dict of each protocol version and returns it; the SDK still wraps it
in its JSON-RPC envelope and encodes it.

Only a request the SDK would answer with that very dict is served from memory: a ``tools/list`` request (not
a notification) on a connection past the handshake gate (every 2026-07-28 connection is born past it; a
legacy one once ``initialize`` recorded its client), whose parameters hold nothing but ``_meta`` and pass the
version's request model. Anything else — a cursor, malformed parameters, a connection before ``initialize``
— goes down the chain, so the SDK's own answers and errors are unchanged. The answer carries nothing from the
request: the server-info stamp and cache hints are the server's own, the same for every caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types.methods import validate_client_request
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

METHOD = "tools/list"


class ToolListCache:
    """The SDK middleware that serves ``tools/list`` from its first answer in each protocol version."""

    def __init__(self) -> None:
        self._answers: dict[str, dict[str, Any]] = {}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != METHOD or ctx.request_id is None or not _answerable(ctx):
            return await call_next(ctx)
        version = ctx.protocol_version
        cached = self._answers.get(version)
        if cached is not None:
            return cached  # the SDK's runner copies the top level before the transport wraps it
        answer = await call_next(ctx)
        if isinstance(answer, dict) and "nextCursor" not in answer:
            self._answers[version] = answer
        return answer


def _answerable(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether the SDK would answer this request with the version's one list: the handshake gate is open,
    there is no cursor (nor anything else but ``_meta``), and the version's request model accepts it."""
    gate_open = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or ctx.session.client_params is not None
    if not gate_open or not _only_meta(ctx.params):
        return False
    try:
        validate_client_request(METHOD, ctx.protocol_version, ctx.params)
    except (ValidationError, KeyError, ValueError):
        return False
    return True


def _only_meta(params: Mapping[str, Any] | None) -> bool:
    return params is None or all(key == "_meta" for key in params)
