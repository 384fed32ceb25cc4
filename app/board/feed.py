"""Where the board learns that tasks changed: the :class:`BoardFeed` seam and its ``task_event`` poller.

Every write that changes a task appends to ``task_event``, on whichever replica it ran, so polling that
table for ids above a high-water mark sees changes from every replica. One poll is one small indexed
read. The cross-replica change feed of DESIGN §4.7 (``LISTEN/NOTIFY``) can replace the poller by handing
``build_board_routes`` another :class:`BoardFeed`; nothing else in the board depends on where changes
come from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

from app.services.sessions.board import BoardChanges


@dataclass(frozen=True)
class BoardChange:
    """Sessions and tasks that changed together (one poll, or one notification)."""

    session_ids: frozenset[str]
    task_ids: frozenset[str]


class BoardFeed(Protocol):
    """A source of changes; each call of ``changes`` is one watcher's own subscription, from now on."""

    def changes(self) -> AsyncIterator[BoardChange]: ...


class ChangeReader(Protocol):
    """The read side the poller needs (``BoardService`` implements it)."""

    async def watch_start(self) -> BoardChanges: ...

    async def changes_after(self, high_water: int, seen_ids: list[int]) -> BoardChanges: ...


class EventTablePoller:
    """A :class:`BoardFeed` that polls ``task_event`` every ``interval`` seconds.

    ``reader`` is asked anew for every poll, so a warm restart's new unit of work is picked up; when it
    raises (the database or the service is unavailable), the subscription ends and the page's
    EventSource reconnects and re-reads.
    """

    def __init__(self, reader: Callable[[], Awaitable[ChangeReader]], *, interval: float = 1.0) -> None:
        self._reader = reader
        self._interval = interval

    async def changes(self) -> AsyncIterator[BoardChange]:
        # The reads are shielded: a watcher that goes away is cancelled at the sleep, never in the middle of
        # a query (cancelling an asyncpg query mid-flight throws its connection away). Each read is one
        # short statement, bounded by the database timeouts.
        with anyio.CancelScope(shield=True):
            start = await (await self._reader()).watch_start()
        high_water, seen = start.high_water, start.seen_ids
        while True:
            await anyio.sleep(self._interval)
            with anyio.CancelScope(shield=True):
                found = await (await self._reader()).changes_after(high_water, seen)
            high_water, seen = found.high_water, found.seen_ids
            if found.session_ids or found.task_ids:
                yield BoardChange(session_ids=frozenset(found.session_ids), task_ids=frozenset(found.task_ids))
