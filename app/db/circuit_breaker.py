"""The circuit breaker in front of the database: stops hammering a dead server, probes it, recovers alone.

It implements the unit of work's ``ConnectionGate``. Closed, every transaction may try the database;
after ``failure_threshold`` consecutive *connection* failures it opens, and every transaction fails at
once with a retryable ``unavailable`` (no connect attempt, no waiting on a connect timeout). It lets
exactly one attempt through (half-open) soon: ``first_backoff_seconds`` (a fraction of a second) after
opening, and twice as long after each failed probe, up to ``max_backoff_seconds``. A success closes it
and resets the backoff. So a short outage costs about its own length (DESIGN §7), while a long one is
probed every few seconds, not hammered. Conflicts and constraint errors are not failures here: the
database answered. A listener hears when it opens and closes, so readiness can say why it is false.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from app import errors

log = logging.getLogger("app.db")
FIRST_BACKOFF_SECONDS = 0.1  # the first probe after opening: a restart of a few tenths costs about that


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitListener(Protocol):
    def circuit_opened(self, reason: str) -> None: ...

    def circuit_closed(self) -> None: ...


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe after an exponential backoff."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        max_backoff_seconds: float = 5.0,
        first_backoff_seconds: float = FIRST_BACKOFF_SECONDS,
        listener: CircuitListener | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.max_backoff_seconds = max_backoff_seconds
        self.first_backoff_seconds = min(first_backoff_seconds, max_backoff_seconds)
        self._backoff = self.first_backoff_seconds  # how long the circuit stays open this time
        self._listener = listener
        self._now = monotonic
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def reset(self) -> None:
        """Forget the history (a warm restart rebuilt the engine: try it afresh)."""
        was_open = self._state != CircuitState.CLOSED
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._probe_started_at = None
        self._backoff = self.first_backoff_seconds
        if was_open and self._listener is not None:
            self._listener.circuit_closed()

    # --- ConnectionGate --------------------------------------------------------------------------
    def before_attempt(self) -> None:
        """Admit an attempt, or refuse it while the circuit is open.

        Raises:
            unavailable: the circuit is open (or its single half-open probe is already running).
        """
        if self._state == CircuitState.CLOSED:
            return
        now = self._now()
        if self._state == CircuitState.OPEN:
            remaining = self._opened_at + self._backoff - now
            if remaining > 0:
                raise self._refusal(remaining)
            self._state = CircuitState.HALF_OPEN
            self._probe_started_at = now
            log.info("circuit_half_open", extra={"event": "circuit_half_open"})
            return
        # Half-open: one probe at a time; a probe that never reported back is given up after the longest backoff.
        if self._probe_started_at is not None and now - self._probe_started_at < self.max_backoff_seconds:
            raise self._refusal(self._probe_started_at + self.max_backoff_seconds - now)
        self._probe_started_at = now

    def record_success(self) -> None:
        self._failures = 0
        if self._state != CircuitState.CLOSED:
            self._state = CircuitState.CLOSED
            self._probe_started_at = None
            self._backoff = self.first_backoff_seconds
            log.info("circuit_closed", extra={"event": "circuit_closed"})
            if self._listener is not None:
                self._listener.circuit_closed()

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == CircuitState.HALF_OPEN or (
            self._state == CircuitState.CLOSED and self._failures >= self.failure_threshold
        ):
            if self._state == CircuitState.HALF_OPEN:  # the probe failed: wait twice as long for the next
                self._backoff = min(self._backoff * 2, self.max_backoff_seconds)
            else:
                self._backoff = self.first_backoff_seconds
            self._state = CircuitState.OPEN
            self._opened_at = self._now()
            self._probe_started_at = None
            reason = self.describe()
            log.warning("circuit_open", extra={"event": "circuit_open", "failures": self._failures})
            if self._listener is not None:
                self._listener.circuit_opened(reason)

    def retry_after_seconds(self) -> float:
        """When a caller refused now should try again: the next probe while open, else at once (soon)."""
        if self._state == CircuitState.OPEN:
            return round(max(self._opened_at + self._backoff - self._now(), FIRST_BACKOFF_SECONDS), 1)
        return FIRST_BACKOFF_SECONDS

    def describe(self) -> str:
        """Why the circuit is not closed, for readiness and health answers."""
        if self._state == CircuitState.CLOSED:
            return "closed"
        return (
            f"circuit {self._state.value} after {self._failures} consecutive connection failures; "
            f"probing the database again after {self._backoff:g} s, backing off up to {self.max_backoff_seconds:g} s"
        )

    def _refusal(self, remaining: float) -> errors.Unavailable:
        return errors.Unavailable(
            f"The database is unreachable ({self.describe()}); retry shortly.",
            retry_after_seconds=round(max(remaining, FIRST_BACKOFF_SECONDS), 1),
        )
