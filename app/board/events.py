"""``/board/events``: server-sent events that tell an open board page which sessions and tasks changed.

Each message is ``event: change`` with ``data: {"sessions": [...], "tasks": [...]}`` (ids only; the page
re-reads itself, so nothing user-written travels here). The changes come from the change feed
(:class:`~app.board.feed.BoardFeed`, DESIGN §4.7), so a change made on any replica reaches every open
page. The stream subscribes before its headers go out, so once the page sees it open no change passes it
by. A comment line every ``KEEPALIVE_SECONDS`` keeps proxies from closing a quiet stream. The stream ends
when the client goes, when the page falls behind or changes may have been missed (see ``feed``), or when
the service stops being ready (a drain, a restart, a shutdown): the browser's EventSource then reconnects
after ``retry`` milliseconds and the page re-reads everything it shows. A stream is never kept open while
the service is not ready, so a draining process holds no stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
from starlette.types import Message, Receive, Scope, Send

from app.board.feed import BoardFeed, BoardSubscription
from app.runtime.reboot_manager import RebootManager, ServiceState

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
        with self._feed.changes() as changes:  # subscribed before the page learns that the stream is open
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            await send(_chunk(f"retry: {RETRY_MILLISECONDS}\n\n"))
            if self._reboot.state == ServiceState.READY:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._until_disconnect, receive, group.cancel_scope.cancel)
                    group.start_soon(self._until_not_ready, group.cancel_scope.cancel)
                    group.start_soon(self._keepalive, send)
                    group.start_soon(self._relay, changes, send, group.cancel_scope.cancel)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _relay(changes: BoardSubscription, send: Send, done: Callable[[], None]) -> None:
        async for change in changes:
            data = json.dumps({"sessions": sorted(change.session_ids), "tasks": sorted(change.task_ids)})
            await send(_chunk(f"event: change\ndata: {data}\n\n"))
        done()  # the feed ended the stream (the page fell behind, or changes may have been missed)

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
