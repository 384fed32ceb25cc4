"""synthesize_results: a roll-up of mixed children, its recommendations, and completing the parent."""

from __future__ import annotations

import pytest

from app import errors
from app.services.graph.updates import TaskChanges
from app.services.work.synthesis import SynthesizeResult
from app.services.work.synthesis_report import Recommendation
from tests.support.execution import artifacts_of, complete, execute, status_moves
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


async def synthesize(h: Harness, parent_id: str, *, complete_parent: bool = False) -> SynthesizeResult:
    return await h.services.synthesis.synthesize_results(
        caller("lead"), parent_id, complete_parent=complete_parent, request_id=None
    )


async def fail(h: Harness, task_id: str, actor: str, reason: str) -> None:
    await h.services.updates.update_task(
        caller(actor),
        task_id,
        TaskChanges(status="failed"),
        expected_version=None,
        reason=reason,
        force=False,
        request_id=None,
    )


async def test_mixed_children_roll_up_into_counts_outcomes_failures_timeline_and_advice(harness: Harness) -> None:
    await harness.session()
    plan = await harness.plan(
        title="Release 2.0",
        subtasks=[
            {"key": "api", "title": "API", "description": "Build the API.", "specialist_type": "coder"},
            {"key": "docs", "title": "Docs", "description": "Write docs.", "specialist_type": "documenter"},
            {"key": "perf", "title": "Perf", "description": "Benchmark.", "specialist_type": "tester"},
            {"title": "Deploy", "description": "Ship it.", "depends_on": ["perf"], "specialist_type": "devops"},
            {"title": "Legal", "description": "Review licences.", "specialist_type": "reviewer"},
            {"title": "Infra", "description": "Provision.", "specialist_type": "devops"},
            {"title": "Blog", "description": "Announce.", "specialist_type": "documenter"},
        ],
    )
    parent, api, docs, perf, deploy, legal, infra, blog = plan.created

    await execute(harness, api.id, "coder")
    harness.clock.advance(600)
    api_done = await complete(
        harness, api.id, "coder", summary="API built.", file_paths=["api.py"], artifact_type="code"
    )
    harness.clock.advance(60)
    await execute(harness, docs.id, "writer")
    harness.clock.advance(300)
    await complete(harness, docs.id, "writer", summary="Docs written.", artifact_type="documentation")
    await execute(harness, perf.id, "bench")
    await fail(harness, perf.id, "bench", "Benchmark host is down.")
    await harness.services.removal.cancel_task(
        caller(), legal.id, reason="Legal review is out of scope.", preserve_work=True, cascade=False, request_id=None
    )
    await execute(harness, infra.id, "ops")
    await complete(harness, infra.id, "ops", next_action="blocked", summary="Waiting for cloud credentials.")
    await execute(harness, blog.id, "marketing", lease_seconds=3600)

    result = await synthesize(harness, parent.id, complete_parent=True)

    assert result.children.model_dump() == {
        "total": 7,
        "by_status": {"blocked": 1, "cancelled": 1, "completed": 2, "failed": 1, "in_progress": 1, "pending": 1},
        "completion_ratio": round(2 / 7, 4),
    }
    assert [(o.task_id, o.summary) for o in result.outcomes] == [(api.id, "API built."), (docs.id, "Docs written.")]
    assert sorted((f.task_id, f.status, f.reason) for f in result.failures) == sorted(
        [
            (perf.id, "failed", "Benchmark host is down."),
            (legal.id, "cancelled", "Legal review is out of scope."),
        ]
    )
    assert {(a.task_id, a.kind) for a in (await artifacts_of(harness, api.id))} == {(api.id, "code")}
    assert {(ref.id, ref.kind) for ref in result.artifacts} >= {(api_done.artifact.id, "code")}
    assert {ref.kind for ref in result.artifacts} == {"code", "documentation", "cancellation", "general"}
    assert result.timeline.model_dump() == {
        "first_started_at": "2026-01-01T00:00:00Z",
        "last_completed_at": "2026-01-01T00:16:00Z",
        "span_seconds": 960.0,
        "durations": [
            {
                "task_id": api.id,
                "title": "API",
                "started_at": "2026-01-01T00:00:00Z",
                "completed_at": "2026-01-01T00:10:00Z",
                "seconds": 600.0,
            },
            {
                "task_id": docs.id,
                "title": "Docs",
                "started_at": "2026-01-01T00:11:00Z",
                "completed_at": "2026-01-01T00:16:00Z",
                "seconds": 300.0,
            },
        ],
        "average_seconds": 450.0,
    }
    kinds = [(r.kind, r.task_ids) for r in result.recommendations]
    assert kinds == [
        ("retry", [perf.id]),
        ("fix_dependency", [deploy.id]),
        ("resolve_blocker", [infra.id]),
        ("wait", [blog.id]),
    ]
    assert "Benchmark host is down." in result.recommendations[0].message
    assert "Waiting for cloud credentials." in result.recommendations[2].message
    assert result.parent_completed is False
    assert result.parent_not_completed_reason is not None
    assert result.parent_not_completed_reason.startswith("3 subtask(s) are not finished:")
    assert result.parent.status == "pending"

    stored = {a.id: a for a in await artifacts_of(harness, parent.id)}
    report = stored[result.artifact_id]
    assert (report.kind, report.created_by, report.name) == ("synthesis", "lead", "Synthesis of Release 2.0")
    assert report.content.startswith("# Synthesis: Release 2.0\n")
    for text in ("| API (`", "API built.", "## Failures and blockers", "Benchmark host is down.", "**retry**"):
        assert text in report.content


async def test_complete_parent_completes_it_once_every_child_is_finished(harness: Harness) -> None:
    await harness.session()
    plan = await harness.plan(
        title="Parent",
        subtasks=[{"title": "one", "description": "1"}, {"title": "two", "description": "2"}],
    )
    parent, one, two = plan.created
    await complete(harness, one.id, "a", summary="One done.")
    early = await synthesize(harness, parent.id, complete_parent=True)
    assert (early.parent_completed, early.parent_not_completed_reason) == (
        False,
        f"1 subtask(s) are not finished: {two.id} (pending).",
    )
    assert [(r.kind, r.task_ids) for r in early.recommendations] == [("claim_ready", [two.id])]

    await complete(harness, two.id, "b", summary="Two done.")
    advice = await synthesize(harness, parent.id)
    assert advice.recommendations == [
        Recommendation(
            kind="complete_parent",
            message="Every subtask is finished; complete 'Parent' with "
            "orchestrator_synthesize_results(complete_parent=true).",
            task_ids=[parent.id],
        )
    ]
    done = await synthesize(harness, parent.id, complete_parent=True)
    assert (done.parent_completed, done.parent_not_completed_reason) == (True, None)
    assert done.parent.status == "completed"
    assert done.parent.summary == "Completed from the synthesis of 2 subtask(s): 2 completed."
    assert done.recommendations == []
    assert await status_moves(harness, parent.id) == [("pending", "completed")]
    assert [a.kind for a in await artifacts_of(harness, parent.id)] == ["synthesis"] * 3


async def test_complete_parent_respects_another_agents_claim_on_the_parent(harness: Harness) -> None:
    await harness.session()
    plan = await harness.plan(title="Parent", subtasks=[{"title": "one", "description": "1"}])
    parent, one = plan.created
    await complete(harness, one.id, "a")
    claim = await execute(harness, parent.id, "owner", lease_seconds=600)  # ready once its subtask ended
    result = await synthesize(harness, parent.id, complete_parent=True)
    assert (result.parent_completed, result.parent_not_completed_reason) == (
        False,
        f"The parent is claimed by 'owner' until {claim.claim.lease_expires_at}; only the holder may complete it.",
    )
    assert result.parent.status == "in_progress"


async def test_failed_children_past_their_attempts_are_recommended_for_reassignment(harness: Harness) -> None:
    await harness.session()
    plan = await harness.plan(title="Parent", subtasks=[{"title": "flaky", "description": "f"}])
    parent, flaky = plan.created
    for _ in range(3):
        await execute(harness, flaky.id, "w", lease_seconds=30)
        harness.clock.advance(31)
        await harness.services.leases.sweep_expired()
    result = await synthesize(harness, parent.id)
    assert [(f.task_id, f.status, f.attempt_count) for f in result.failures] == [(flaky.id, "failed", 3)]
    assert result.failures[0].reason.startswith("Failed after 3 expired lease(s); last holder w.")
    assert [(r.kind, r.task_ids) for r in result.recommendations] == [
        ("reassign", [flaky.id]),
        ("review_failures", [flaky.id]),
        ("complete_parent", [parent.id]),
    ]


async def test_synthesizing_a_task_without_subtasks_is_an_invalid_argument(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    with pytest.raises(errors.InvalidArgument) as refused:
        await synthesize(harness, task.id)
    assert (refused.value.code, refused.value.field) == ("invalid_argument", "parent_task_id")
    with pytest.raises(errors.TaskNotFound) as missing:
        await synthesize(harness, "task_ffffffffffffffff")
    assert (missing.value.code, missing.value.field) == ("not_found", "parent_task_id")
