"""``/board/events``: server-sent events that tell an open board page which sessions and tasks changed.

Each message is ``event: change`` with ``data: {"sessions": [...], "tasks": [...]}`` (ids only; the page
re-reads itself, so nothing user-written travels here). A comment line every ``KEEPALIVE_SECONDS`` keeps
proxies from closing a quiet stream. The stream ends when the client goes, when the feed fails (the
database is unavailable) or when the service stops being ready (a drain, a restart, a shutdown): the
browser's EventSource then reconnects after ``retry`` milliseconds and the page re-reads everything it
shows. A stream is never opened while the service is not ready, so a draining process holds no stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import anyio
from starlette.types import Message, Receive, Scope, Send

from app import errors
from app.board.feed import BoardFeed
from app.runtime.reboot_manager import RebootManager, ServiceState

log = logging.getLogger("app.board")
RETRY_MILLISECONDS = 2000
KEEPALIVE_SECONDS = 15.0
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events through as they come
]


def _chunk(text: str) -> Message:
    return {"type": "http.response.body", "body": text.encode("utf-8"), "more_body": True}


class EventStream:
    """The ASGI answer of one ``/board/events`` request (already authorised)."""

    def __init__(self, feed: BoardFeed, reboot: RebootManager, extra_headers: list[tuple[bytes, bytes]]) -> None:
        self._feed = feed
        self._reboot = reboot
        self._headers = HEADERS + extra_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        await send(_chunk(f"retry: {RETRY_MILLISECONDS}\n\n"))
        if self._reboot.state == ServiceState.READY:
            async with anyio.create_task_group() as group:
                group.start_soon(self._until_disconnect, receive, group.cancel_scope.cancel)
                group.start_soon(self._until_not_ready, group.cancel_scope.cancel)
                group.start_soon(self._keepalive, send)
                group.start_soon(self._relay, send, group.cancel_scope.cancel)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay(self, send: Send, done: Callable[[], None]) -> None:
        try:
            async for change in self._feed.changes():
                data = json.dumps({"sessions": sorted(change.session_ids), "tasks": sorted(change.task_ids)})
                await send(_chunk(f"event: change\ndata: {data}\n\n"))
        except errors.OrchestratorError as exc:
            # Unavailable (the database or a restart): end the stream; the page reconnects and re-reads.
            log.info("board_stream_ended", extra={"event": "board_stream_ended", "code": exc.code})
        done()

    async def _keepalive(self, send: Send) -> None:
        while True:
            await anyio.sleep(KEEPALIVE_SECONDS)
            await send(_chunk(": keepalive\n\n"))

    async def _until_not_ready(self, done: Callable[[], None]) -> None:
        await self._reboot.wait_until(lambda: self._reboot.state != ServiceState.READY, None)
        done()

    @staticmethod
    async def _until_disconnect(receive: Receive, done: Callable[[], None]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        done()
