"""The database circuit breaker on its own, with a hand-moved monotonic clock."""

from __future__ import annotations

import pytest

from app import errors
from app.db.circuit_breaker import CircuitBreaker, CircuitState


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Listener:
    def __init__(self) -> None:
        self.events: list[str] = []

    def circuit_opened(self, reason: str) -> None:
        self.events.append(f"open: {reason}")

    def circuit_closed(self) -> None:
        self.events.append("closed")


def make_breaker(threshold: int = 3, max_backoff: float = 5.0) -> tuple[CircuitBreaker, FakeTime, Listener]:
    clock, listener = FakeTime(), Listener()
    breaker = CircuitBreaker(
        failure_threshold=threshold, max_backoff_seconds=max_backoff, listener=listener, monotonic=clock
    )
    return breaker, clock, listener


def test_circuit_opens_after_the_threshold_of_consecutive_failures_and_refuses_at_once() -> None:
    breaker, _, listener = make_breaker(threshold=3)
    for _ in range(2):
        breaker.before_attempt()
        breaker.record_failure()
    assert breaker.state == CircuitState.CLOSED
    breaker.before_attempt()
    breaker.record_failure()
    assert breaker.state == CircuitState.OPEN
    assert listener.events == [
        "open: circuit open after 3 consecutive connection failures; "
        "probing the database again after 0.1 s, backing off up to 5 s"
    ]
    with pytest.raises(errors.Unavailable) as refused:
        breaker.before_attempt()
    assert refused.value.retryable is True
    assert refused.value.details["retry_after_seconds"] == 0.1
    assert breaker.retry_after_seconds() == 0.1


def test_a_success_between_failures_resets_the_count() -> None:
    breaker, _, _ = make_breaker(threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures) == (CircuitState.CLOSED, 1)


def test_a_fraction_of_a_second_after_opening_one_probe_goes_through_and_its_success_closes_the_circuit() -> None:
    breaker, clock, listener = make_breaker(threshold=1)
    breaker.record_failure()
    clock.now += 0.09
    with pytest.raises(errors.Unavailable):
        breaker.before_attempt()
    clock.now += 0.01
    breaker.before_attempt()  # the half-open probe
    assert breaker.state == CircuitState.HALF_OPEN
    with pytest.raises(errors.Unavailable):
        breaker.before_attempt()  # only one probe at a time
    breaker.record_success()
    assert breaker.state == CircuitState.CLOSED
    breaker.before_attempt()
    assert listener.events[-1] == "closed"


def probe_and_fail(breaker: CircuitBreaker, clock: FakeTime) -> float:
    """Wait out the open circuit, let the probe fail; return how long the circuit was open."""
    waited = 0.0
    while True:
        try:
            breaker.before_attempt()
        except errors.Unavailable as refused:
            step = refused.details["retry_after_seconds"]
            clock.now += step
            waited += step
            continue
        breaker.record_failure()
        return round(waited, 3)


def test_each_failed_probe_doubles_the_wait_up_to_the_longest_backoff() -> None:
    breaker, clock, listener = make_breaker(threshold=1, max_backoff=1.0)
    breaker.record_failure()
    waits = [probe_and_fail(breaker, clock) for _ in range(6)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert breaker.state == CircuitState.OPEN
    assert len([e for e in listener.events if e.startswith("open")]) == 7


def test_a_success_resets_the_backoff_to_a_fraction_of_a_second() -> None:
    breaker, clock, _ = make_breaker(threshold=1)
    breaker.record_failure()
    for _ in range(4):
        probe_and_fail(breaker, clock)
    clock.now += 5.0
    breaker.before_attempt()
    breaker.record_success()
    breaker.record_failure()  # a new outage starts over
    assert probe_and_fail(breaker, clock) == 0.1


def test_a_probe_that_never_reports_back_is_given_up_after_the_longest_backoff() -> None:
    breaker, clock, _ = make_breaker(threshold=1, max_backoff=5.0)
    breaker.record_failure()
    clock.now += 0.1
    breaker.before_attempt()
    clock.now += 4.9
    with pytest.raises(errors.Unavailable):
        breaker.before_attempt()
    clock.now += 0.1
    breaker.before_attempt()  # a new probe, not a permanent refusal
    assert breaker.state == CircuitState.HALF_OPEN
