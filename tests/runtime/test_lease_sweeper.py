"""The lease sweeper on a manual clock: lapsed claims go back to the queue, the third lapse fails the task,
and a holder that renews keeps its claim."""

from __future__ import annotations

import pytest

from app import errors
from app.runtime.lease_sweeper import LeaseSweeper
from app.services.work.leases import ExpiredLease
from tests.support.calls import update
from tests.support.execution import claims, complete, event_kinds, execute, lease_events, status_moves, view
from tests.support.harness import Harness
from tests.support.snapshot import diff, snapshot

pytestmark = pytest.mark.anyio
LEASE = 60


def sweeper(h: Harness) -> LeaseSweeper:
    return LeaseSweeper(lambda: h.services.leases, interval=h.settings.lease_sweep_interval_seconds)


async def test_an_expired_lease_returns_the_task_to_pending_with_a_lease_expired_event(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await execute(harness, task.id, "sleepy", lease_seconds=LEASE)
    monitor = sweeper(harness)

    harness.clock.advance(LEASE - 1)
    assert (await monitor.sweep()).expired == []
    harness.clock.advance(1)  # the lease ends exactly now
    await monitor.run_once()

    now = await view(harness, task.id)
    assert (now.status, now.assigned_to, now.lease_expires_at, now.attempt_count, now.ready) == (
        "pending",
        None,
        None,
        1,
        True,
    )
    assert await lease_events(harness, task.id) == [
        {"holder": "sleepy", "attempt_count": 1, "expiries": 1, "outcome": "pending"}
    ]
    assert claims(harness, "expired") == 1
    assert (await monitor.sweep()).expired == []  # nothing left to expire


async def test_the_third_expiry_fails_the_task_and_records_why(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    monitor = sweeper(harness)
    outcomes = []
    for attempt in range(1, 4):
        await execute(harness, task.id, f"agent-{attempt}", lease_seconds=LEASE)
        harness.clock.advance(LEASE + 1)
        outcomes += (await monitor.sweep()).expired
    assert outcomes == [
        ExpiredLease(task_id=task.id, holder="agent-1", attempt_count=1, expiries=1, outcome="released"),
        ExpiredLease(task_id=task.id, holder="agent-2", attempt_count=2, expiries=2, outcome="released"),
        ExpiredLease(task_id=task.id, holder="agent-3", attempt_count=3, expiries=3, outcome="failed"),
    ]
    assert (await lease_events(harness, task.id))[-1] == {
        "holder": "agent-3",
        "attempt_count": 3,
        "expiries": 3,
        "outcome": "failed",
        "reason": "max_attempts",
    }
    assert await status_moves(harness, task.id) == [("pending", "in_progress")] * 3
    assert (await event_kinds(harness, task.id)).count("lease_expired") == 3
    assert claims(harness, "expired") == 3
    with pytest.raises(errors.InvalidTransition) as refused:
        await execute(harness, task.id, "agent-4")
    assert refused.value.details == {"current": "failed", "requested": "in_progress"}  # retry it first


async def test_claims_handed_back_for_revision_do_not_count_towards_the_expiry_limit(harness: Harness) -> None:
    # DESIGN §3: the task fails after MAX_ATTEMPTS *expiries*; attempt_count also counts these two claims.
    await harness.session()
    task = (await harness.plan()).task
    monitor = sweeper(harness)
    for _ in range(2):
        await execute(harness, task.id, "worker", lease_seconds=LEASE)
        await complete(harness, task.id, "worker", next_action="needs_revision", summary="Redo: tests missing.")
    await execute(harness, task.id, "worker", lease_seconds=LEASE)
    harness.clock.advance(LEASE + 1)
    assert (await monitor.sweep()).expired == [
        ExpiredLease(task_id=task.id, holder="worker", attempt_count=3, expiries=1, outcome="released")
    ]
    assert (await view(harness, task.id)).status == "pending"


async def test_a_retried_task_gets_the_full_expiry_limit_again(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    monitor = sweeper(harness)
    for run in range(2):  # the first run fails at its third expiry; the retried one must too, not sooner
        outcomes = []
        for n in range(3):
            await execute(harness, task.id, f"agent-{run}-{n}", lease_seconds=LEASE)
            harness.clock.advance(LEASE + 1)
            outcomes += [(e.expiries, e.outcome) for e in (await monitor.sweep()).expired]
        assert outcomes == [(1, "released"), (2, "released"), (3, "failed")]
        assert (await view(harness, task.id)).status == "failed"
        await update(harness, task.id, "lead", status="pending")  # failed -> pending: retry
    assert (await view(harness, task.id)).attempt_count == 6  # the claims are all still counted


async def test_a_holder_that_renews_keeps_its_claim_through_sweeps(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    monitor = sweeper(harness)
    await execute(harness, task.id, "diligent", lease_seconds=LEASE)
    for _ in range(5):
        harness.clock.advance(LEASE - 10)
        renewed = await execute(harness, task.id, "diligent", lease_seconds=LEASE)
        assert (await monitor.sweep()).expired == []
    assert (renewed.task.status, renewed.claim.holder, renewed.claim.attempt) == ("in_progress", "diligent", 1)
    assert await lease_events(harness, task.id) == []
    assert claims(harness, "renewed") == 5


async def test_a_sweep_that_finds_nothing_writes_nothing(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await execute(harness, task.id, "busy", lease_seconds=LEASE)
    monitor = sweeper(harness)
    before = await snapshot(harness.database)

    for _ in range(3):
        harness.clock.advance(10)  # well past the activity-touch granularity, within the lease
        assert (await monitor.sweep()).expired == []

    assert diff(before, await snapshot(harness.database)) == {}
