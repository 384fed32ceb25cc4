"""Committed writes report their status transitions and claim outcomes to the metrics, exactly once."""

from __future__ import annotations

import pytest

from app import errors
from app.services.base import ServiceConfig
from app.services.graph.updates import TaskChanges
from app.services.work.leases import LeaseService
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


def claims(harness: Harness) -> dict[str, float]:
    samples = harness.metrics.registry.collect()
    return {
        s.labels["outcome"]: s.value
        for family in samples
        if family.name == "orchestrator_claims"
        for s in family.samples
        if s.name == "orchestrator_claims_total"
    }


def transitions(harness: Harness) -> dict[tuple[str, str], float]:
    return {
        (s.labels["from_status"], s.labels["to_status"]): s.value
        for family in harness.metrics.registry.collect()
        if family.name == "orchestrator_task_transitions"
        for s in family.samples
        if s.name == "orchestrator_task_transitions_total"
    }


async def set_status(
    harness: Harness, actor: str, task_id: str, status: str, *, force: bool = False, request_id: str | None = None
) -> None:
    await harness.services.updates.update_task(
        caller(actor),
        task_id,
        TaskChanges(status=status),
        expected_version=None,
        reason=None,
        force=force,
        request_id=request_id,
    )


async def test_claim_renewal_by_write_conflict_and_completion_are_each_counted_once(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await set_status(harness, "alice", task.id, "in_progress", request_id="claim-1")
    await set_status(harness, "alice", task.id, "in_progress", request_id="claim-1")  # a replay: counts nothing
    await harness.services.updates.update_task(
        caller("alice"),
        task.id,
        TaskChanges(title="Renamed"),
        expected_version=None,
        reason=None,
        force=False,
        request_id=None,
    )
    with pytest.raises(errors.ClaimedByOther):
        await set_status(harness, "bob", task.id, "blocked")
    await harness.complete("alice", task.id)

    assert claims(harness) == {"acquired": 1, "renewed": 1, "released": 1, "conflict": 1, "expired": 0}
    assert transitions(harness) == {("pending", "in_progress"): 1, ("in_progress", "completed"): 1}


async def test_admin_take_over_of_a_claim_counts_as_acquired_not_renewed(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await set_status(harness, "alice", task.id, "in_progress")
    await set_status(harness, "root", task.id, "in_progress", force=True)

    assert claims(harness)["acquired"] == 2 and claims(harness)["renewed"] == 0
    assert transitions(harness) == {("pending", "in_progress"): 1}


async def test_cascading_cancel_and_forced_archive_report_every_moved_task(harness: Harness) -> None:
    await harness.session()
    plan = await harness.plan(subtasks=[{"title": "a", "description": "a"}, {"title": "b", "description": "b"}])
    root, first, _ = plan.created
    await set_status(harness, "alice", first.id, "in_progress")
    await harness.services.removal.cancel_task(
        caller("alice"), root.id, reason="Scope cut", preserve_work=True, cascade=True, request_id=None
    )
    assert transitions(harness) == {
        ("pending", "in_progress"): 1,
        ("pending", "cancelled"): 2,
        ("in_progress", "cancelled"): 1,
    }
    assert claims(harness)["released"] == 1

    other = (await harness.plan(title="Held")).task
    await set_status(harness, "bob", other.id, "in_progress")
    await harness.services.removal.delete_task(
        caller("root"), other.id, archive_instead=True, force=True, request_id=None
    )
    assert transitions(harness)[("in_progress", "pending")] == 1
    assert transitions(harness)[("pending", "archived")] == 1
    assert claims(harness)["released"] == 2


async def test_a_refused_write_reports_no_transition(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    with pytest.raises(errors.InvalidTransition):
        await set_status(harness, "alice", task.id, "failed")  # pending -> failed is not a move

    assert transitions(harness) == {}
    assert claims(harness) == {"acquired": 0, "renewed": 0, "released": 0, "conflict": 0, "expired": 0}


async def test_lease_sweep_reports_expired_claims_and_their_moves(harness: Harness) -> None:
    await harness.session()
    first, second = (await harness.plan(title="one")).task, (await harness.plan(title="two")).task
    await set_status(harness, "alice", first.id, "in_progress")
    await set_status(harness, "bob", second.id, "in_progress")
    harness.clock.advance(harness.settings.lease_seconds + 1)
    sweeper = LeaseService(harness.uow, harness.clock, config=ServiceConfig(max_attempts=1), sink=harness.metrics)

    result = await sweeper.sweep_expired()

    assert sorted(e.outcome for e in result.expired) == ["failed", "failed"]
    assert claims(harness)["expired"] == 2
    assert transitions(harness) == {("pending", "in_progress"): 2, ("in_progress", "failed"): 2}
