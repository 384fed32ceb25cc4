"""Claims: one holder per task under a stampede, readiness, renewal, and leases that lapse before a sweep."""

from __future__ import annotations

import anyio
import pytest

from app import errors
from tests.support.calls import update
from tests.support.execution import (
    claims,
    complete,
    event_kinds,
    execute,
    gate_row_locks,
    lease_events,
    status_moves,
    view,
)
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio

RACERS = 20


async def test_twenty_concurrent_claims_of_one_task_make_exactly_one_holder(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.session()
    task = (await harness.plan(title="Contested")).task
    arrived = gate_row_locks(monkeypatch, task.id, RACERS, harness.backend)
    winners: list[str] = []
    refused: list[errors.ClaimedByOther] = []

    async def racer(n: int) -> None:
        try:
            result = await execute(harness, task.id, f"agent-{n:02d}", lease_seconds=600)
            winners.append(result.claim.holder)
        except errors.ClaimedByOther as exc:
            refused.append(exc)

    async with anyio.create_task_group() as group:
        for n in range(RACERS):
            group.start_soon(racer, n)

    assert len(arrived) == RACERS  # every racer was inside its transaction before any took the row
    assert len(winners) == 1 and len(refused) == RACERS - 1
    holder = winners[0]
    expiry = "2026-01-01T00:10:00Z"  # the manual clock's start plus the 600 s lease
    for exc in refused:
        assert (exc.code, exc.field) == ("claimed_by_other", "task_id")
        assert exc.details == {"holder": holder, "lease_expires_at": expiry}
    assert await status_moves(harness, task.id) == [("pending", "in_progress")]
    assert (claims(harness, "acquired"), claims(harness, "conflict")) == (1, RACERS - 1)


async def test_claim_of_a_task_with_unmet_dependencies_lists_them_until_they_complete(harness: Harness) -> None:
    await harness.session()
    design = (await harness.plan(title="Design")).task
    spike = (await harness.plan(title="Spike")).task
    build = (await harness.plan(title="Build", dependencies=[design.id, spike.id])).task

    with pytest.raises(errors.DependenciesUnmet) as refused:
        await execute(harness, build.id)
    assert (refused.value.code, refused.value.field) == ("dependencies_unmet", "task_id")
    assert refused.value.details == {"blocking": [design.id, spike.id]}  # in the order they were given

    first = await complete(harness, design.id, "designer")
    assert first.unblocked == []  # spike still open
    with pytest.raises(errors.DependenciesUnmet) as still:
        await execute(harness, build.id)
    assert still.value.details == {"blocking": [spike.id]}

    second = await complete(harness, spike.id, "researcher")
    assert [t.id for t in second.unblocked] == [build.id]
    assert second.unblocked[0].ready is True and second.unblocked[0].blocked_by == []
    assert "dependencies_met" in await event_kinds(harness, build.id)

    claimed = await execute(harness, build.id, "builder")
    assert claimed.task.status == "in_progress" and claimed.claim.holder == "builder"


async def test_the_holder_renews_with_a_fresh_lease_and_the_same_attempt(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    first = await execute(harness, task.id, "alice", lease_seconds=60)
    harness.clock.advance(50)
    renewed = await execute(harness, task.id, "alice", lease_seconds=120)
    assert first.claim.model_dump() == {
        "holder": "alice",
        "claimed_at": "2026-01-01T00:00:00Z",
        "lease_expires_at": "2026-01-01T00:01:00Z",
        "attempt": 1,
    }
    assert renewed.claim.model_dump() == {
        "holder": "alice",
        "claimed_at": "2026-01-01T00:00:00Z",
        "lease_expires_at": "2026-01-01T00:02:50Z",
        "attempt": 1,
    }
    assert renewed.task.version == first.task.version  # a renewal is not a change of the task
    assert claims(harness, "renewed") == 1


async def test_another_actor_takes_over_a_lapsed_lease_before_the_sweeper_runs(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await execute(harness, task.id, "slow", lease_seconds=30)
    harness.clock.advance(29)
    with pytest.raises(errors.ClaimedByOther):
        await execute(harness, task.id, "eager")
    harness.clock.advance(2)
    taken = await execute(harness, task.id, "eager", lease_seconds=30)
    assert (taken.claim.holder, taken.claim.attempt) == ("eager", 2)
    assert await event_kinds(harness, task.id) == [
        "task_created",
        "status_changed",
        "lease_expired",
        "status_changed",
    ]
    assert await status_moves(harness, task.id) == [("pending", "in_progress"), ("pending", "in_progress")]


async def _take(h: Harness, how: str, task_id: str, actor: str) -> tuple[str | None, int]:
    """Claim ``task_id`` as ``actor`` with execute_task or update_task(status=in_progress): holder, attempt."""
    if how == "execute":
        brief = await execute(h, task_id, actor, lease_seconds=30)
        return brief.claim.holder, brief.claim.attempt
    taken = (await update(h, task_id, actor, admin=False, status="in_progress")).task
    return taken.assigned_to, taken.attempt_count


@pytest.mark.parametrize("how", ["execute", "update"])
async def test_a_lapsed_claim_taken_over_by_either_tool_expires_first(harness: Harness, how: str) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await execute(harness, task.id, "slow", lease_seconds=30)
    harness.clock.advance(31)
    assert await _take(harness, how, task.id, "eager") == ("eager", 2)
    assert await lease_events(harness, task.id) == [
        {"holder": "slow", "attempt_count": 1, "expiries": 1, "outcome": "pending"}
    ]
    assert await status_moves(harness, task.id) == [("pending", "in_progress"), ("pending", "in_progress")]


@pytest.mark.parametrize("how", ["execute", "update"])
async def test_a_lapsed_claim_whose_expiry_fails_the_task_is_refused_as_it_stands(harness: Harness, how: str) -> None:
    # MAX_ATTEMPTS=3: the third lapse fails the task, so nobody may take it over; the refusal writes nothing
    # and names the stored state, and the sweeper then records the failure.
    await harness.session()
    task = (await harness.plan()).task
    for n in range(3):
        await execute(harness, task.id, f"w{n}", lease_seconds=30)
        harness.clock.advance(31)
    before = await view(harness, task.id)
    with pytest.raises(errors.LapsedClaimAtAttemptLimit) as refused:
        await _take(harness, how, task.id, "w3")
    assert (refused.value.code, refused.value.field) == ("invalid_transition", "status")
    assert refused.value.details == {
        "current": "in_progress",
        "requested": "in_progress",
        "holder": "w2",
        "lease_expires_at": "2026-01-01T00:01:32Z",
        "expiries": 3,
        "max_attempts": 3,
    }
    assert "orchestrator_update_task" in refused.value.message
    now = await view(harness, task.id)
    assert (now.status, now.assigned_to, now.attempt_count, now.version) == (
        "in_progress",
        "w2",
        3,
        before.version,
    )
    assert [e.outcome for e in (await harness.services.leases.sweep_expired()).expired] == ["failed"]
    assert (await view(harness, task.id)).status == "failed"


@pytest.mark.parametrize("status", ["blocked", "completed"])
async def test_claiming_a_task_that_is_not_pending_is_an_invalid_transition(harness: Harness, status: str) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await complete(harness, task.id, next_action="blocked" if status == "blocked" else "complete")
    with pytest.raises(errors.InvalidTransition) as refused:
        await execute(harness, task.id)
    assert (refused.value.code, refused.value.field) == ("invalid_transition", "status")
    assert refused.value.details == {"current": status, "requested": "in_progress"}


async def test_claiming_an_unknown_task_is_not_found(harness: Harness) -> None:
    await harness.session()
    with pytest.raises(errors.TaskNotFound) as missing:
        await execute(harness, "task_0000000000000000")
    assert (missing.value.code, missing.value.field) == ("not_found", "task_id")


async def test_a_repeated_claim_with_the_same_request_id_returns_the_first_brief(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    first = await execute(harness, task.id, "alice", request_id="claim-1")
    harness.clock.advance(10)
    again = await execute(harness, task.id, "alice", request_id="claim-1")
    assert again == first
    assert claims(harness, "renewed") == 0
