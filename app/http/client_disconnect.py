"""A 2026-07-28 call whose client has gone is cancelled, as the MCP spec says closing the stream does.

On the 2026-07-28 era the only cancellation a client has is to close its response stream (MCP-SDK-NOTES).
The SDK watches for that on its SSE path only; with ``json_response=True`` (docs/decisions.md, "JSON
responses on the HTTP transport") nothing watches, so a call kept running after its client left. For
most calls that costs a little work; for a waiting ``orchestrator_next_task`` (DESIGN §4.7) it meant the
wait went on and then *claimed* the next ready task for a caller that would never see the brief: the task
sat in_progress for a whole lease, spent one of its attempts, and the wait held one of the actor's
in-flight places (§7) all the while.

This middleware watches for the client's disconnect once the request body has arrived and cancels the
call when it comes before the answer is complete. It watches only calls that can wait (``WAITING_TOOLS``,
named by the ``Mcp-Name`` header the SDK checks against the body): every other call is bounded by the
database timeout and costs little if it runs on, while the watch (a task per request) would cost every
call on the hot path. A cancelled call's transaction rolls back (the unit of
work never commits on a cancellation), so nothing of it is kept. A call that committed just before the
client left stays committed: its answer is lost with the connection, which is what ``request_id`` and
the lease are for.

Legacy (2025-11-25) requests are left alone: there the call runs in the MCP session, not in the POST,
and ``notifications/cancelled`` cancels it.
"""

from __future__ import annotations

import logging

import anyio
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.http")

MCP_PATH = "/mcp"
# The tools whose calls can wait (DESIGN §4.7): the ones a client is likely to give up on mid-call.
WAITING_TOOLS = frozenset({b"orchestrator_next_task"})
_PROTOCOL_VERSION_HEADER = b"mcp-protocol-version"
_NAME_HEADER = b"mcp-name"  # on 2026-07-28 the SDK refuses a tools/call whose Mcp-Name is not the tool's name


def is_waiting_call(scope: Scope) -> bool:
    """Whether the SDK serves this request on the sessionless era (a protocol version that is not one of
    the handshake versions, the SDK router's rule; its first header, as the router reads it) and it calls
    a tool that can wait."""
    version = name = None
    for key, value in scope["headers"]:
        if key == _PROTOCOL_VERSION_HEADER and version is None:
            version = value.decode("latin-1")
        elif key == _NAME_HEADER and name is None:
            name = value
    return version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS and name in WAITING_TOOLS


class ClientDisconnectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") != MCP_PATH
            or not is_waiting_call(scope)
        ):
            await self.app(scope, receive, send)
            return
        body_arrived = anyio.Event()
        answered = False

        async def tracking_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_arrived.set()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        async with anyio.create_task_group() as group:

            async def watch_for_disconnect() -> None:
                # Only after the body is in: until then the application reads it, and a second reader
                # would take chunks from it. After it, the server's receive() yields nothing but the
                # disconnect (or, once the answer is complete, a disconnect that means only that).
                await body_arrived.wait()
                while (await receive())["type"] != "http.disconnect":
                    pass  # pragma: no cover - nothing but a disconnect follows a complete body
                if not answered:
                    # The call's own log line and orchestrator_tool_calls_total say outcome "cancelled".
                    log.info("client_disconnected", extra={"event": "client_disconnected"})
                    group.cancel_scope.cancel()

            group.start_soon(watch_for_disconnect)
            await self.app(scope, tracking_receive, tracking_send)
            group.cancel_scope.cancel()
