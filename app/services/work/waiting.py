"""Waiting for work (DESIGN §4.7): ``orchestrator_next_task(wait_seconds)`` parks here, holding no connection.

:class:`WorkWaiters` is one per process. A caller for whom nothing is ready joins its session's queue
and sleeps on an event, outside any transaction. A signal for the session (a commit that can make work
ready, here or on another replica; a periodic re-check; the listener's reconnect) hands the session's
*baton* to the oldest waiter: it runs the ordinary claim transaction again, and then passes the baton on
to the next waiter in arrival order, unless it found nothing while taking any specialist (then nothing is
ready for anyone, and the rest sleep on). A waiter that finds nothing keeps its place in the queue. A
signal that arrives while the baton is out restarts the round from the oldest waiter when it ends, so no
signal is lost to a round in progress. Draining ends every wait at once with ``reason: "draining"``.

A first attempt that finds nothing, and every attempt of a wait that finds nothing, raises
:class:`NothingReady` inside the claim transaction, so it rolls back and nothing is stored under the
call's ``request_id``: only the final answer (a claim, or the end of the wait) is the call's result.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio

from app import errors

T = TypeVar("T")
DRAINING = "draining"


class NothingReady(Exception):  # a control-flow signal, not an error of the call
    """Raised inside the claim transaction when nothing is ready and the caller will wait.

    It carries no reason: why nothing is ready is worked out once, when the wait ends without a task
    (``claim_or_wait``'s ``explain``), not on every attempt a signal sets off while agents wait.
    """

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


class WaitMetrics(Protocol):
    def waiters_changed(self, delta: int) -> None: ...

    def waiter_woken(self, cause: str, latency_seconds: float | None) -> None: ...


class _NoMetrics:
    def waiters_changed(self, delta: int) -> None:
        return None

    def waiter_woken(self, cause: str, latency_seconds: float | None) -> None:
        return None


@dataclass(eq=False)
class _Waiter:
    session_id: str
    filtered: bool  # it takes only some specialists: others may find work it cannot
    woken: anyio.Event = field(default_factory=anyio.Event)
    cause: str = ""
    signalled_at: float | None = None


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended: with the claim (``result``), or without one and the reason."""

    result: object | None
    ended: str  # "claimed" | "timeout" | "draining"


class WorkWaiters:
    """The waiters of this process, per session in arrival order, and the baton that serves them."""

    def __init__(self, metrics: WaitMetrics | None = None) -> None:
        self._metrics: WaitMetrics = metrics or _NoMetrics()
        self._queues: dict[str, list[_Waiter]] = {}
        self._baton: dict[str, _Waiter] = {}  # session -> the waiter running its attempt now
        self._again: dict[str, tuple[str, float | None]] = {}  # a signal came while the baton was out
        self._draining = False

    @property
    def count(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def sessions(self) -> list[str]:
        """Sessions that have waiters now."""
        return [sid for sid, queue in self._queues.items() if queue]

    # --- signals ---------------------------------------------------------------------------------
    def signal(self, session_ids: Sequence[str], cause: str, at: float | None = None) -> None:
        """Work may be ready in these sessions: serve their waiters, oldest first."""
        for session_id in session_ids:
            self._start(session_id, cause, at)

    def recheck(self, cause: str) -> None:
        """Serve every session that has waiters (periodic safety net, listener reconnect)."""
        self.signal(self.sessions(), cause)

    def drain(self) -> None:
        """End every wait now (``reason: "draining"``) and refuse new ones until ``resume``."""
        self._draining = True
        for queue in self._queues.values():
            for waiter in queue:
                waiter.cause = DRAINING
                waiter.woken.set()

    def resume(self) -> None:
        self._draining = False

    def _start(self, session_id: str, cause: str, at: float | None) -> None:
        queue = self._queues.get(session_id)
        if not queue:
            return
        if session_id in self._baton:
            self._again[session_id] = (cause, at)
            return
        self._give(queue[0], cause, at)

    def _give(self, waiter: _Waiter, cause: str, at: float | None) -> None:
        self._baton[waiter.session_id] = waiter
        waiter.cause, waiter.signalled_at = cause, at
        waiter.woken.set()

    def _pass_on(self, waiter: _Waiter, *, go_on: bool) -> None:
        """``waiter`` finished its turn: hand the baton to the next waiter, or end the round."""
        session_id = waiter.session_id
        if self._baton.get(session_id) is not waiter:
            return
        del self._baton[session_id]
        queue = self._queues.get(session_id, [])
        position = queue.index(waiter) if waiter in queue else len(queue)
        if go_on and position + 1 < len(queue):
            self._give(queue[position + 1], waiter.cause, waiter.signalled_at)
            return
        again = self._again.pop(session_id, None)
        if again is not None and queue:
            self._give(queue[0], *again)

    # --- waiting ---------------------------------------------------------------------------------
    async def wait(
        self,
        session_id: str,
        *,
        filtered: bool,
        seconds: float,
        attempt: Callable[[], Awaitable[T | None]],
    ) -> WaitOutcome:
        """Wait up to ``seconds`` for ``attempt`` (one claim transaction) to return a claim.

        ``attempt`` returns None when nothing is ready. Holds no database connection while asleep.
        """
        if self._draining:
            return WaitOutcome(None, DRAINING)
        waiter = _Waiter(session_id, filtered)
        queue = self._queues.setdefault(session_id, [])
        queue.append(waiter)
        self._metrics.waiters_changed(1)
        try:
            with anyio.move_on_after(seconds):
                while True:
                    await waiter.woken.wait()
                    if waiter.cause == DRAINING:
                        self._metrics.waiter_woken(DRAINING, None)
                        return WaitOutcome(None, DRAINING)
                    latency = time.time() - waiter.signalled_at if waiter.signalled_at is not None else None
                    self._metrics.waiter_woken(waiter.cause, max(latency, 0.0) if latency is not None else None)
                    waiter.woken = anyio.Event()
                    result = await attempt()
                    # Found one: more may be ready for the next. Found none: only others' filters may differ.
                    self._pass_on(waiter, go_on=result is not None or waiter.filtered)
                    if result is not None:
                        return WaitOutcome(result, "claimed")
            return WaitOutcome(None, DRAINING if self._draining else "timeout")
        finally:
            self._pass_on(waiter, go_on=True)  # ended with the baton in hand (timeout, error): the next one goes
            queue.remove(waiter)
            if not queue and self._queues.get(session_id) is queue:
                del self._queues[session_id]
            self._metrics.waiters_changed(-1)


async def claim_or_wait(
    waiters: WorkWaiters,
    claim: Callable[[], Awaitable[T]],
    *,
    seconds: float,
    filtered: bool,
    no_task: Callable[[str], T],
    explain: Callable[[str], Awaitable[str]],
) -> T:
    """Run ``claim`` (which raises :class:`NothingReady` when nothing is ready); wait and retry if so.

    Returns the claim, or ``no_task(reason)`` when the wait ends without one, the reason from
    ``explain(session_id)`` (a read, made then: the session's numbers as the wait ends).
    """
    try:
        return await claim()
    except NothingReady as nothing:
        session_id = nothing.session_id
    unavailable: list[str] = []  # the last attempt's message when the database was away

    async def attempt() -> T | None:
        try:
            result = await claim()
        except NothingReady:
            unavailable.clear()
            return None
        except errors.Unavailable as down:  # the database is away: keep waiting, the reconnect re-checks
            unavailable[:] = [down.message]
            return None
        return result

    outcome = await waiters.wait(session_id, filtered=filtered, seconds=seconds, attempt=attempt)
    if outcome.ended == "claimed":
        return outcome.result  # type: ignore[return-value]  # attempt() returned T
    if outcome.ended == DRAINING:
        return no_task(DRAINING)
    if unavailable:
        reason = unavailable[0]
    else:
        try:
            reason = await explain(session_id)
        except errors.Unavailable as down:
            reason = down.message
    return no_task(f"Nothing became ready within {seconds:g} s. {reason}")
