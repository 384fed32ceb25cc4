"""Where the board learns that tasks changed: :class:`BoardFeed`, the change feed (DESIGN §4.7) as the board
sees it.

Every change this replica hears of, its own commits and the other replicas' through ``LISTEN/NOTIFY``,
reaches the process's :class:`~app.runtime.work_signals.ChangeRouter`: the same signal path that wakes
waiting ``next_task`` calls and feeds the MCP change feed. Each open ``/board/events`` stream subscribes
to it for as long as it is open (:class:`BoardSubscription`) and gets the changes through a bounded
buffer of its own, so the router never waits for a page; changes that arrived together leave as one
:class:`BoardChange`. A subscription ends early, and with it the stream, so that the page's EventSource
reconnects and the page re-reads everything it shows, when

- its buffer is full: the page reads more slowly than tasks change, and dropping single changes would
  leave it wrong without knowing;
- changes may have been missed: the replica's ``LISTEN`` connection has just been (re)established, and
  what other replicas changed while it was down was never heard.

Nothing here touches the database: an open board costs no query until it re-reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from app.runtime.work_signals import ChangeRouter
from app.services.changes import Change

log = logging.getLogger("app.board")
BUFFER = 256  # changes waiting for one page; past it the page's stream ends and the page re-reads


@dataclass(frozen=True)
class BoardChange:
    """Sessions and tasks that changed (one change, or several that arrived together)."""

    session_ids: frozenset[str]
    task_ids: frozenset[str]


def merged(changes: list[Change]) -> BoardChange:
    return BoardChange(
        session_ids=frozenset(s for change in changes for s in change.session_ids),
        task_ids=frozenset(t for change in changes for t in change.task_ids),
    )


class BoardSubscription:
    """One stream's view of the feed: subscribed from creation until ``close`` (or the ``with`` block ends).

    Iterating it yields :class:`BoardChange` until it ends: on overflow or missed changes (see the module),
    never because of a quiet spell. ``ended`` says why (``"overflow"``, ``"missed"``), or is None.
    """

    def __init__(self, router: ChangeRouter, buffer: int) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Change](buffer)
        self.ended: str | None = None
        self._unsubscribe = router.subscribe(self._deliver, on_missed=lambda: self._end("missed"))

    def _deliver(self, change: Change) -> None:
        # Called by the router for every change: it must never wait, so a full buffer ends the stream.
        if self.ended is None:
            try:
                self._send.send_nowait(change)
            except anyio.WouldBlock:
                self._end("overflow")

    def _end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self._unsubscribe()
            self._send.close()  # wakes the reader, which then ends
            log.info("board_stream_ended", extra={"event": "board_stream_ended", "reason": reason})

    def close(self) -> None:
        self._unsubscribe()
        self._send.close()
        self._receive.close()

    def __enter__(self) -> BoardSubscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __aiter__(self) -> BoardSubscription:
        return self

    async def __anext__(self) -> BoardChange:
        try:
            batch = [await self._receive.receive()]
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        while True:  # coalesce what else is already waiting (at most the buffer)
            try:
                batch.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        if self.ended is not None:
            raise StopAsyncIteration  # the page re-reads anyway; what is buffered need not go out first
        return merged(batch)


class BoardFeed:
    """The board's source of changes: the process's change router."""

    def __init__(self, router: ChangeRouter, *, buffer: int = BUFFER) -> None:
        self._router = router
        self._buffer = buffer

    def changes(self) -> BoardSubscription:
        """A new subscription, from now on (the caller closes it; use it in a ``with`` block)."""
        return BoardSubscription(self._router, self._buffer)
