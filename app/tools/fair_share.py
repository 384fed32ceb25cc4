"""Fair share per actor (DESIGN §7 "No one caller can hurt the others"): a call rate and a cap in flight.

Every tool call is admitted here before it runs, by its actor (DESIGN §3 Actors). Two limits apply:

- a token bucket per actor: ``rate_per_minute`` tokens a minute refill it, it holds at most ``burst``, and
  each call takes one. An LLM agent calls about once a second and never empties it; a runaway loop does
  within a second or two;
- a cap on the actor's calls in flight (a ``next_task`` waiting for work counts: admission wraps the
  whole call).

Over either, the call is refused with ``rate_limited`` and ``retry_after_seconds``, in memory, before any
database work. The state is bounded: an actor with nothing in flight whose bucket has refilled is
indistinguishable from one never seen, so it is forgotten (swept at most once per refill period).
The clock is injectable for tests. One process's share: replicas each keep their own.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from app import errors

# When the cap in flight is reached we cannot know when one of the actor's calls ends; a second is how
# long a typical call takes at most, so a client that honours the hint retries about when room is made.
IN_FLIGHT_RETRY_AFTER_SECONDS = 1.0
# How long a refusal is held back from a caller that ignored the retry_after_seconds it was given.
MAX_REFUSAL_HOLD_SECONDS = 1.0


class Refused(errors.RateLimited):
    """``rate_limited``, with how long the edge holds the answer back (``hold_seconds``).

    A caller that retries before the ``retry_after_seconds`` it was told gets its next refusal a second
    (``MAX_REFUSAL_HOLD_SECONDS``) late: a runaway loop then costs the server one refusal a second per
    concurrent call instead of as many as it can send, each of which costs the whole MCP transport (the
    bucket refills continuously, so its hint is often a tenth of a second). A caller that honours the hint
    is never held.
    """

    def __init__(self, message: str, *, retry_after_seconds: float, hold_seconds: float) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds)
        self.hold_seconds = hold_seconds


@dataclass
class _Share:
    tokens: float
    updated_at: float
    in_flight: int = 0
    refused_until: float = 0.0  # the end of the last retry_after_seconds given to this actor


class FairShare:
    """The per-actor call-rate bucket and cap in flight of one process."""

    def __init__(
        self,
        *,
        rate_per_minute: int,
        burst: int,
        max_in_flight: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute < 1 or burst < 1 or max_in_flight < 1:
            raise ValueError("rate_per_minute, burst and max_in_flight must each be at least 1")
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self.max_in_flight = max_in_flight
        self._per_second = rate_per_minute / 60.0
        # How long an empty bucket takes to fill: after that an idle actor's state carries no information.
        self._refill_seconds = burst / self._per_second
        self._now = monotonic
        self._shares: dict[str, _Share] = {}
        self._swept_at = monotonic()

    @property
    def tracked_actors(self) -> int:
        """Actors whose state is held right now (the memory bound's observable)."""
        return len(self._shares)

    @asynccontextmanager
    async def admit(self, actor: str) -> AsyncIterator[None]:
        """Hold one of ``actor``'s places in flight for the block, after taking a token from its bucket.

        Asynchronous only so it shares one ``async with`` with the call's other guards; it never awaits.

        Raises:
            rate_limited: the actor has ``max_in_flight`` calls running, or its bucket is empty.
        """
        now = self._now()
        self._sweep(now)
        share = self._shares.get(actor)
        if share is None:
            share = self._shares[actor] = _Share(tokens=float(self.burst), updated_at=now)
        else:
            share.tokens = min(float(self.burst), share.tokens + (now - share.updated_at) * self._per_second)
            share.updated_at = now
        if share.in_flight >= self.max_in_flight:
            raise self._refused(
                share,
                now,
                f"Actor {actor!r} already has {share.in_flight} calls in flight, the most allowed "
                f"(ORCHESTRATOR_MAX_IN_FLIGHT_PER_ACTOR={self.max_in_flight}); wait for one to finish, then retry. "
                "Several agents sharing one name should each pass their own `agent`.",
                IN_FLIGHT_RETRY_AFTER_SECONDS,
            )
        if share.tokens < 1.0:
            wait = math.ceil((1.0 - share.tokens) / self._per_second * 10) / 10  # tenths, never 0
            raise self._refused(
                share,
                now,
                f"Actor {actor!r} is calling faster than {self.rate_per_minute} calls a minute "
                f"(ORCHESTRATOR_RATE_LIMIT_PER_MINUTE, bursts of {self.burst}); slow down and retry after "
                f"{wait:g} s. Several agents sharing one name should each pass their own `agent`.",
                wait,
            )
        share.tokens -= 1.0
        share.in_flight += 1
        try:
            yield
        finally:
            share.in_flight -= 1  # the sweep never drops a share in flight, so this is the live one

    @staticmethod
    def _refused(share: _Share, now: float, message: str, retry_after: float) -> Refused:
        """The refusal, held back when the actor is retrying inside the wait it was last told."""
        hold = MAX_REFUSAL_HOLD_SECONDS if now < share.refused_until else 0.0
        share.refused_until = max(share.refused_until, now + retry_after)
        return Refused(message, retry_after_seconds=retry_after, hold_seconds=hold)

    def _sweep(self, now: float) -> None:
        """Forget actors with nothing in flight whose bucket is full again (at most once per refill period)."""
        if now - self._swept_at < self._refill_seconds:
            return
        self._swept_at = now
        self._shares = {
            actor: share
            for actor, share in self._shares.items()
            if share.in_flight > 0 or share.tokens + (now - share.updated_at) * self._per_second < self.burst
        }
