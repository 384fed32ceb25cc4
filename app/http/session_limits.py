"""A cap on legacy MCP sessions per principal (DESIGN §7), so one client's flood never locks another out.

Legacy (2025-11-25) stateful sessions live in the SDK's session manager, whose only limit is global
(``max_sessions``, 10 000, then 503 for everyone). :class:`SessionQuota` sits inside the manager, behind
the SDK's request-body limit (so the body it reads is already buffered and bounded), and admits a request
that would open a session only while its principal holds fewer than ``max_per_principal``. The
principal is the token's subject (auth on), else the client's ``clientInfo.name`` from the
``initialize`` body, else ``anonymous``. Over the cap the answer is HTTP 429 with a JSON-RPC error that
names the cap and what to do. Requests of the sessionless 2026-07-28 era and requests inside an existing
session pass straight through, unread.

The sessions a principal holds are the ids it opened that the manager still tracks: a session that
ends (DELETE, idle timeout, shutdown) frees its place by itself. Memory stays bounded: dead ids are
dropped whenever a principal is checked, and every entry is re-checked once the tracked ids outnumber
the live sessions twice over.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.buffered_body import read_body, replaying

ANONYMOUS = "anonymous"
TOO_MANY_SESSIONS = -32000  # JSON-RPC's range for implementation-defined server errors
CLIENT_NAME_CHARS = 64
SESSION_HEADER = MCP_SESSION_ID_HEADER.encode("ascii")
VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.encode("ascii")


class SessionQuota:
    """ASGI wrapper that refuses a principal's session beyond ``max_per_principal``."""

    def __init__(
        self, app: ASGIApp, *, live: Callable[[], Collection[str]], max_per_principal: int, idle_seconds: float
    ) -> None:
        self.app = app
        self.max_per_principal = max_per_principal
        self.idle_seconds = idle_seconds
        self._live = live
        self._owned: dict[str, set[str]] = {}
        self._opening: Counter[str] = Counter()  # initialize requests admitted and not yet answered

    def held(self, principal: str) -> int:
        """Sessions ``principal`` holds now, counting the ones being opened."""
        live = self._live()
        ids = self._owned.get(principal)
        if ids is not None:
            ids.difference_update([i for i in ids if i not in live])
            if not ids:
                del self._owned[principal]
        return (len(ids) if ids else 0) + self._opening[principal]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _may_open_a_session(scope):
            await self.app(scope, receive, send)
            return
        messages, body = await read_body(receive)
        request = _json_object(body)
        replay = replaying(messages, receive)
        if request is None or request.get("method") != "initialize":
            await self.app(scope, replay, send)  # only an initialize opens a session; the SDK answers the rest
            return
        principal = _principal(request)
        if self.held(principal) >= self.max_per_principal:
            await self._refuse(principal, request.get("id"), scope, replay, send)
            return
        self._opening[principal] += 1
        opened: str | None = None

        async def record_session(message: Message) -> None:
            nonlocal opened
            if message["type"] == "http.response.start":
                opened = next((v.decode("latin-1") for k, v in message.get("headers", []) if k == SESSION_HEADER), None)
            await send(message)

        try:
            await self.app(scope, replay, record_session)
        finally:
            self._opening[principal] -= 1
            if self._opening[principal] <= 0:
                del self._opening[principal]
            if opened is not None and opened in self._live():  # the SDK keeps only sessions it established
                self._owned.setdefault(principal, set()).add(opened)
                self._sweep()

    async def _refuse(self, principal: str, request_id: Any, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"Too many open MCP sessions: {principal!r} already holds {self.max_per_principal}, the most one "
            f"principal may hold (ORCHESTRATOR_MAX_SESSIONS_PER_PRINCIPAL). Reuse an open session (send its "
            f"Mcp-Session-Id header), end sessions you no longer use (HTTP DELETE), or wait: a session idle for "
            f"{self.idle_seconds:g} s is closed (ORCHESTRATOR_SESSION_IDLE_SECONDS)."
        )
        rid = request_id if isinstance(request_id, (str, int)) and not isinstance(request_id, bool) else None
        body = {"jsonrpc": "2.0", "id": rid, "error": {"code": TOO_MANY_SESSIONS, "message": message}}
        await JSONResponse(body, status_code=429)(scope, receive, send)

    def _sweep(self) -> None:
        live = self._live()
        tracked = sum(len(ids) for ids in self._owned.values())
        if tracked > 2 * len(live) + 64:
            for principal in list(self._owned):
                self.held(principal)


def install_session_quota(manager: StreamableHTTPSessionManager, *, max_per_principal: int) -> SessionQuota:
    """Put a :class:`SessionQuota` between the SDK's body limit and its session handling.

    ``asgi_app`` (the body limit around the manager's handler) and ``_server_instances`` (its registry of
    live sessions) are the manager's own (mcp 2.3, pinned to the 2.x major); MCP-SDK-NOTES §2.
    """
    limit = manager.asgi_app
    if not isinstance(limit, RequestBodyLimitMiddleware):
        raise TypeError("the MCP SDK's session manager changed shape: asgi_app is no longer its body limit")
    quota = SessionQuota(
        limit.app,
        live=lambda: manager._server_instances,
        max_per_principal=max_per_principal,
        idle_seconds=manager.session_idle_timeout or 0.0,
    )
    limit.app = quota
    return quota


def _may_open_a_session(scope: Scope) -> bool:
    """A legacy-era POST without a session id: the only request that can open a session."""
    if scope["type"] != "http" or scope.get("method") != "POST":
        return False
    version = None
    for key, value in scope.get("headers", []):
        if key == SESSION_HEADER:
            return False
        if key == VERSION_HEADER and version is None:
            # The first one, as the SDK's router reads it: a request naming both eras must be judged
            # by the era the SDK will serve it on, or a legacy session could open uncounted.
            version = value.decode("latin-1")
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _principal(request: dict[str, Any]) -> str:
    """Token subject (auth on), else the initialize request's ``clientInfo.name``, else ``anonymous``."""
    token = get_access_token()
    if token is not None:
        return token.subject or token.client_id
    params = request.get("params")
    info = params.get("clientInfo") if isinstance(params, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    return name[:CLIENT_NAME_CHARS] if isinstance(name, str) and name else ANONYMOUS
