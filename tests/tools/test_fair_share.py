"""FairShare on a manual clock: the bucket's burst and refill, the cap in flight, the hint, bounded memory."""

from __future__ import annotations

import pytest

from app import errors
from app.tools.fair_share import MAX_REFUSAL_HOLD_SECONDS, FairShare, Refused

pytestmark = pytest.mark.anyio


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def share(clock: ManualClock, *, rate: int = 60, burst: int = 3, in_flight: int = 2) -> FairShare:
    return FairShare(rate_per_minute=rate, burst=burst, max_in_flight=in_flight, monotonic=clock)


async def call(fair: FairShare, actor: str) -> None:
    async with fair.admit(actor):
        pass


async def test_a_burst_passes_then_the_rate_applies_and_refills_with_time() -> None:
    clock = ManualClock()
    fair = share(clock, rate=60, burst=3)  # one call a second
    for _ in range(3):
        await call(fair, "flood")
    with pytest.raises(errors.RateLimited) as refused:
        await call(fair, "flood")
    assert refused.value.to_dict()["retry_after_seconds"] == 1.0
    clock.now += 0.5
    with pytest.raises(errors.RateLimited) as again:
        await call(fair, "flood")
    assert again.value.to_dict()["retry_after_seconds"] == 0.5
    clock.now += 0.5
    await call(fair, "flood")  # one token refilled


async def test_one_actor_over_its_rate_leaves_another_actor_untouched() -> None:
    fair = share(ManualClock(), burst=2)
    await call(fair, "flood")
    await call(fair, "flood")
    with pytest.raises(errors.RateLimited):
        await call(fair, "flood")
    await call(fair, "calm")
    await call(fair, "calm")


async def test_calls_in_flight_are_capped_per_actor_and_room_returns_when_one_ends() -> None:
    fair = share(ManualClock(), burst=10, in_flight=2)
    async with fair.admit("flood"), fair.admit("flood"):
        with pytest.raises(errors.RateLimited) as refused:
            await call(fair, "flood")
        await call(fair, "calm")
    body = refused.value.to_dict()
    assert (body["code"], body["retryable"], body["retry_after_seconds"]) == ("rate_limited", True, 1.0)
    await call(fair, "flood")


async def test_a_refusal_at_the_cap_in_flight_takes_no_token() -> None:
    fair = share(ManualClock(), burst=2, in_flight=1)
    async with fair.admit("flood"):
        for _ in range(5):
            with pytest.raises(errors.RateLimited):
                await call(fair, "flood")
    await call(fair, "flood")  # the second token is still there


async def test_idle_actors_with_full_buckets_are_forgotten_but_busy_ones_kept() -> None:
    clock = ManualClock()
    fair = share(clock, rate=60, burst=3)  # an empty bucket refills in 3 s
    for n in range(100):
        await call(fair, f"agent-{n}")
    async with fair.admit("busy"):
        assert fair.tracked_actors == 101
        clock.now += 3
        await call(fair, "newcomer")  # the sweep runs on admission
        assert fair.tracked_actors == 2  # busy (in flight) and newcomer
    await call(fair, "newcomer")
    await call(fair, "newcomer")
    with pytest.raises(errors.RateLimited):  # forgetting never hands out more than the burst
        await call(fair, "newcomer")


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FairShare(rate_per_minute=0, burst=1, max_in_flight=1)


async def test_a_refusal_is_held_only_for_a_caller_that_ignored_its_retry_after() -> None:
    clock = ManualClock()
    fair = share(clock, rate=60, burst=1)  # one call a second
    await call(fair, "flood")
    with pytest.raises(Refused) as first:
        await call(fair, "flood")
    assert (first.value.to_dict()["retry_after_seconds"], first.value.hold_seconds) == (1.0, 0.0)
    clock.now += 0.25  # retries before the second it was told: its refusal is held back a second
    with pytest.raises(Refused) as ignored:
        await call(fair, "flood")
    assert ignored.value.hold_seconds == MAX_REFUSAL_HOLD_SECONDS == 1.0
    clock.now += 0.75  # the caller that waited as told is admitted, and never held
    await call(fair, "flood")


async def test_a_caller_over_its_cap_in_flight_that_retries_at_once_is_held() -> None:
    clock = ManualClock()
    fair = share(clock, burst=10, in_flight=1)
    async with fair.admit("flood"):
        with pytest.raises(Refused) as first:
            await call(fair, "flood")
        with pytest.raises(Refused) as again:
            await call(fair, "flood")
    assert (first.value.hold_seconds, again.value.hold_seconds) == (0.0, MAX_REFUSAL_HOLD_SECONDS)
