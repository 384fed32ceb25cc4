"""complete_task: every next_action, the holder rule, idempotent retries, and what it unblocks."""

from __future__ import annotations

import pytest

from app import errors
from app.services.work.briefs import ExecuteTaskResult
from tests.support.execution import (
    artifacts_of,
    claims,
    complete,
    event_kinds,
    execute,
    next_task,
    ready_parent,
    recorded_statements,
    status_moves,
    view,
)
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


async def test_complete_stores_the_work_in_the_database_and_releases_the_claim(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan(title="Write parser")).task
    await execute(harness, task.id, "coder-1")
    harness.clock.advance(120)
    result = await complete(
        harness,
        task.id,
        "coder-1",
        summary="Parser written and tested.",
        detailed_work="## What changed\nparser.py: new.",
        file_paths=["app/parser.py", "tests/test_parser.py", "app/parser.py"],
        artifact_type="code",
    )
    assert result.task.status == "completed"
    assert (result.task.summary, result.task.assigned_to, result.task.lease_expires_at) == (
        "Parser written and tested.",
        None,
        None,
    )
    assert (result.task.started_at, result.task.completed_at) == ("2026-01-01T00:00:00Z", "2026-01-01T00:02:00Z")
    art = result.artifact
    assert (art.kind, art.task_id, art.content, art.file_paths, art.created_by) == (
        "code",
        task.id,
        "## What changed\nparser.py: new.",
        ["app/parser.py", "tests/test_parser.py"],
        "coder-1",
    )
    assert art.size_bytes == len(art.content.encode())
    assert [a.id for a in await artifacts_of(harness, task.id)] == [art.id]
    assert result.unblocked == [] and result.next_ready == []
    assert claims(harness, "released") == 1


async def test_a_retry_with_the_same_request_id_after_a_lost_answer_returns_the_same_result_once(
    harness: Harness,
) -> None:
    await harness.session()
    task = (await harness.plan()).task
    dependent = (await harness.plan(title="after", dependencies=[task.id])).task
    await execute(harness, task.id, "agent")
    first = await complete(harness, task.id, "agent", request_id="done-1")  # its answer is "lost"
    harness.clock.advance(5)
    retry = await complete(harness, task.id, "agent", request_id="done-1")
    assert retry == first
    assert [t.id for t in retry.unblocked] == [dependent.id]
    assert len(await artifacts_of(harness, task.id)) == 1
    assert await status_moves(harness, task.id) == [("pending", "in_progress"), ("in_progress", "completed")]
    # Without the request id the same call is a new operation, refused by the status machine.
    with pytest.raises(errors.InvalidTransition):
        await complete(harness, task.id, "agent")


async def test_needs_revision_returns_the_task_to_the_queue_with_a_note_for_the_next_agent(harness: Harness) -> None:
    sid = await harness.session()
    task = (await harness.plan(title="Implement cache")).task
    await execute(harness, task.id, "first")
    result = await complete(
        harness, task.id, "first", next_action="needs_revision", summary="Eviction is wrong under load."
    )
    assert (result.task.status, result.task.assigned_to, result.task.ready) == ("pending", None, True)
    assert result.task.summary == "Eviction is wrong under load."
    stored = {a.kind: a for a in await artifacts_of(harness, task.id)}
    assert sorted((kind, a.created_by) for kind, a in stored.items()) == [
        ("general", "first"),
        ("revision_note", "first"),
    ]
    note = stored["revision_note"]
    assert "Eviction is wrong under load." in note.content and result.artifact.id in note.content

    again = (await next_task(harness, sid, "second")).root
    assert isinstance(again, ExecuteTaskResult)
    assert (again.task.id, again.claim.attempt) == (task.id, 2)
    assert "## Revision notes (address these first)" in again.specialist.prompt
    assert "Eviction is wrong under load." in again.specialist.prompt
    assert any("revision note" in step for step in again.instructions)


async def test_needs_revision_of_an_unclaimed_task_is_not_claimed(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    with pytest.raises(errors.NotClaimed) as refused:
        await complete(harness, task.id, next_action="needs_revision")
    assert (refused.value.code, refused.value.field) == ("not_claimed", "next_action")
    assert await artifacts_of(harness, task.id) == []


async def test_blocked_records_the_summary_as_the_reason(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    await execute(harness, task.id, "ops")
    result = await complete(harness, task.id, "ops", next_action="blocked", summary="No access to the cluster.")
    assert (result.task.status, result.task.assigned_to) == ("blocked", None)
    assert result.unblocked == [] and result.next_ready == []
    assert await status_moves(harness, task.id) == [("pending", "in_progress"), ("in_progress", "blocked")]
    status = await harness.services.status.get_status(
        caller(),
        session_id=task.session_id,
        include_completed=False,
        include_performance_metrics=False,
        include_resource_usage=False,
    )
    assert [(b.task_id, b.reason) for b in status.blocked] == [(task.id, "No access to the cluster.")]


async def test_continue_completes_and_lists_the_ready_queue_in_next_task_order(harness: Harness) -> None:
    await harness.session()
    first = (await harness.plan(title="first", priority="low")).task
    after = (await harness.plan(title="after first", priority="medium", dependencies=[first.id])).task
    urgent = (await harness.plan(title="urgent", priority="critical")).task
    held = (await harness.plan(title="held", priority="high")).task
    await execute(harness, held.id, "someone")
    await execute(harness, first.id, "me")
    result = await complete(harness, first.id, "me", next_action="continue")
    assert result.task.status == "completed"
    assert [t.id for t in result.unblocked] == [after.id]
    assert [t.id for t in result.next_ready] == [urgent.id, after.id]
    assert "dependencies_met" in await event_kinds(harness, after.id)


async def test_a_pending_ready_task_is_completed_with_an_implicit_claim(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    result = await complete(harness, task.id, "drive-by")
    assert (result.task.status, result.task.attempt_count) == ("completed", 1)
    assert await status_moves(harness, task.id) == [("pending", "completed")]


async def test_an_implicit_claim_needs_the_dependencies_completed(harness: Harness) -> None:
    await harness.session()
    dep = (await harness.plan()).task
    task = (await harness.plan(dependencies=[dep.id])).task
    with pytest.raises(errors.DependenciesUnmet) as refused:
        await complete(harness, task.id)
    assert refused.value.details == {"blocking": [dep.id]}
    assert await artifacts_of(harness, task.id) == []


async def test_only_the_holder_completes_unless_an_admin_forces_it(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    claim = await execute(harness, task.id, "holder", lease_seconds=300)
    with pytest.raises(errors.ClaimedByOther) as refused:
        await complete(harness, task.id, "intruder")
    assert refused.value.details == {"holder": "holder", "lease_expires_at": claim.claim.lease_expires_at}
    with pytest.raises(errors.Forbidden) as forbidden:
        await complete(harness, task.id, "intruder", force=True)
    assert (forbidden.value.code, forbidden.value.field) == ("forbidden", "force")
    forced = await complete(harness, task.id, "operator", admin=True, force=True)
    assert forced.task.status == "completed" and forced.artifact.created_by == "operator"
    assert [a.created_by for a in await artifacts_of(harness, task.id)] == ["operator"]


async def test_a_completion_reads_the_tasks_dependencies_and_subtasks_in_one_statement(harness: Harness) -> None:
    """The open-subtask rule and the answer's view share one read, taken under the row lock."""
    await harness.session()
    epic, design, _ = await ready_parent(harness)
    await execute(harness, epic, "lead")
    with recorded_statements(harness) as statements:
        done = await complete(harness, epic, "lead")

    assert (done.task.status, done.task.dependencies, done.task.open_children) == ("completed", [design], 0)
    assert len([s for s in statements if "UNION ALL" in s]) == 1
    assert [s for s in statements if "task.parent_id IN" in s or s.startswith("SELECT task_dependency.task_id")] == []


async def test_the_unblocked_tasks_are_shown_as_a_fresh_read_shows_them(harness: Harness) -> None:
    """A completion writes the task in one UPDATE, and builds the views of the tasks it made ready from what
    it read to decide that (one read of their dependencies); the views equal those read afterwards. A
    dependent still waiting on another task is not listed."""
    await harness.session()
    design = (await harness.plan(title="design")).task
    spike = (await harness.plan(title="spike")).task
    build = (await harness.plan(title="build", dependencies=[spike.id, design.id], context={"k": 1})).task
    docs = (await harness.plan(title="docs", dependencies=[design.id])).task
    later = (await harness.plan(title="later", dependencies=[design.id, docs.id])).task
    await complete(harness, spike.id, "me")
    harness.clock.advance(5)
    with recorded_statements(harness) as statements:
        done = await complete(harness, design.id, "me")
    by_id = sorted(done.unblocked, key=lambda t: t.id)
    assert by_id == sorted([await view(harness, build.id), await view(harness, docs.id)], key=lambda t: t.id)
    assert later.id not in {t.id for t in done.unblocked}
    assert [t.dependencies for t in by_id if t.id == build.id] == [[spike.id, design.id]]
    assert len([s for s in statements if "UPDATE task " in s]) == 1  # PostgreSQL: with its events (row_flush)
    assert (
        len([s for s in statements if s.startswith("SELECT task_dependency.task_id, task_dependency.depends_on_id")])
        == 1
    )
