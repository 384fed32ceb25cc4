"""A 2026-07-28 ``tools/list`` answered with the bytes the SDK sent for the same request before (issue 14).

Why: ``ToolListCache`` spares the SDK's handler, but on the sessionless era the SDK's HTTP entry still
validates the envelope and then encodes the 40 KB answer twice over (``model_dump`` of the JSON-RPC
response, then ``json.dumps``) on every request: most of what ``tools/list`` cost the server there, and the
Python client sends one after its first ``tools/call`` on every connection. No hook above the transport
reaches that encoding, so this wrapper sits in front of it, where ``SessionQuota`` does (inside the SDK's
request-body limit, behind authentication).

It is a memo of the SDK's own answers, not a second implementation of them. The SDK's answer to a
2026-07-28 ``tools/list`` POST depends only on what this wrapper keys on: the request's body without its
``id`` (compared as canonical JSON, so ``true`` and ``1`` differ), and the headers the SDK reads for it —
``Host``, ``Origin``, ``Content-Type`` and ``Accept`` (transport security, content negotiation) and every
``Mcp-*`` header, in order (routing, duplicates). The list itself is fixed once the server is built
(``ToolListCache`` answers with one dict per protocol version; no tool list here depends on the caller or
the service's state). So the first request of each shape goes to the SDK, which validates and answers it;
its answer is kept only when it is a 200 whose body is exactly ``{"jsonrpc","id","result"}`` and rebuilding
it from the kept result with the same id gives the same bytes. A later request of the same shape gets those
bytes with its own id. Anything else — a refusal, an error, a cursor (``nextCursor``), an id the SDK would
not echo as sent (only strings and integers qualify), a body that is not a JSON object — goes to the SDK
every time, so its answers and errors are unchanged.

Memory is bounded: at most ``MAX_SHAPES`` request shapes are remembered (least recently used dropped),
each holding its key (a request of more than ``MAX_SHAPE_BYTES`` of body and keyed headers is never
remembered: a client's ``tools/list`` is a few hundred bytes, and 256 one-megabyte keys would be a quarter of
a gigabyte) and a reference to a result shared by every shape with the same answer. A replayed
request gets no OpenTelemetry span from the SDK (the HTTP metrics still count it). Should a tool list ever
depend on the caller or on the service's state, this wrapper must go (docs/decisions.md).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.buffered_body import read_body, replaying

METHOD = "tools/list"
MAX_SHAPES = 256
MAX_SHAPE_BYTES = 8192
_VERSION_HEADER = b"mcp-protocol-version"
_METHOD_HEADER = b"mcp-method"
_KEYED_HEADERS = frozenset({b"host", b"origin", b"content-type", b"accept"})
_ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "result"})

Shape = tuple[tuple[tuple[bytes, bytes], ...], str]


class _Answer:
    """What the SDK sent for one request shape: its response headers (without the length) and result."""

    __slots__ = ("headers", "result")

    def __init__(self, headers: list[tuple[bytes, bytes]], result: bytes) -> None:
        self.headers = headers
        self.result = result

    def body(self, request_id: int | str) -> bytes:
        return b'{"jsonrpc":"2.0","id":' + _encode(request_id) + b',"result":' + self.result + b"}"


class ToolListReplay:
    """ASGI wrapper that answers a repeated 2026-07-28 ``tools/list`` with the SDK's earlier bytes."""

    def __init__(self, app: ASGIApp, *, max_shapes: int = MAX_SHAPES) -> None:
        self.app = app
        self.max_shapes = max_shapes
        self._answers: OrderedDict[Shape, _Answer] = OrderedDict()
        self._results: dict[bytes, bytes] = {}  # one copy of each distinct result, shared by its shapes

    @property
    def shapes(self) -> int:
        """Request shapes remembered now."""
        return len(self._answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _sessionless_tool_list_headers(scope)
        if headers is None:
            await self.app(scope, receive, send)
            return
        messages, body = await read_body(receive)
        replay = replaying(messages, receive)
        parsed = _shape(headers, body)
        if parsed is None:
            await self.app(scope, replay, send)
            return
        shape, request_id = parsed
        answer = self._answers.get(shape)
        if answer is not None:
            self._answers.move_to_end(shape)
            await _send(answer, request_id, send)
            return
        await self._ask_the_sdk(shape, request_id, scope, replay, send)

    async def _ask_the_sdk(
        self, shape: Shape, request_id: int | str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = 0
        response_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        complete = False

        async def capture(message: Message) -> None:
            nonlocal status, response_headers, complete
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, capture)
        if status == 200 and complete:
            self._remember(shape, request_id, response_headers, b"".join(chunks))

    def _remember(self, shape: Shape, request_id: int | str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        try:
            sent = json.loads(body)
        except ValueError:
            return
        if not isinstance(sent, dict) or sent.keys() != _ENVELOPE_KEYS or sent["id"] != request_id:
            return
        result = sent["result"]
        if not isinstance(result, dict) or "nextCursor" in result:
            return
        encoded = json.dumps(result, separators=(",", ":")).encode()
        answer = _Answer([h for h in headers if h[0].lower() != b"content-length"], encoded)
        if answer.body(request_id) != body:
            return  # not byte for byte what the SDK sent: keep asking it
        answer.result = self._results.setdefault(encoded, encoded)
        self._answers[shape] = answer
        while len(self._answers) > self.max_shapes:
            _, dropped = self._answers.popitem(last=False)
            if not any(kept.result is dropped.result for kept in self._answers.values()):
                self._results.pop(dropped.result, None)


def install_tool_list_replay(manager: StreamableHTTPSessionManager) -> ToolListReplay:
    """Put a :class:`ToolListReplay` between the SDK's body limit and its request handling (the seam
    ``install_session_quota`` uses; ``asgi_app`` is the manager's own, mcp 2.3, MCP-SDK-NOTES §2)."""
    limit = manager.asgi_app
    if not isinstance(limit, RequestBodyLimitMiddleware):
        raise TypeError("the MCP SDK's session manager changed shape: asgi_app is no longer its body limit")
    replay = ToolListReplay(limit.app)
    limit.app = replay
    return replay


def _sessionless_tool_list_headers(scope: Scope) -> tuple[tuple[bytes, bytes], ...] | None:
    """The keyed headers of a POST the SDK serves on the sessionless era (its router reads the first
    ``MCP-Protocol-Version``) and routes as ``tools/list``; None for any other request."""
    if scope["type"] != "http" or scope.get("method") != "POST":
        return None
    version: bytes | None = None
    method: bytes | None = None
    keyed: list[tuple[bytes, bytes]] = []
    for key, value in scope["headers"]:
        if key == _VERSION_HEADER and version is None:
            version = value
        elif key == _METHOD_HEADER and method is None:
            method = value
        if key in _KEYED_HEADERS or key.startswith(b"mcp-"):
            keyed.append((key, value))
    if version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS or method != b"tools/list":
        return None
    return tuple(keyed)


def _shape(headers: tuple[tuple[bytes, bytes], ...], body: bytes) -> tuple[Shape, int | str] | None:
    """The request's shape and id, or None when the request is not a plain JSON-RPC request whose id the
    SDK echoes as sent (a string, or an integer that is not a boolean), or is too large to remember."""
    if len(body) + sum(len(key) + len(value) for key, value in headers) > MAX_SHAPE_BYTES:
        return None
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict):
        return None
    request_id = request.pop("id", None)
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return None
    return (headers, json.dumps(request, sort_keys=True, separators=(",", ":"))), request_id


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _send(answer: _Answer, request_id: int | str, send: Send) -> None:
    body = answer.body(request_id)
    headers = [*answer.headers, (b"content-length", str(len(body)).encode("latin-1"))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
