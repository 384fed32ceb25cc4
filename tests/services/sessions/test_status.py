"""get_status: the numbers of a known graph, and this process's metrics, resources and health."""

from __future__ import annotations

from datetime import date

import pytest

from app.services.graph.updates import TaskChanges
from app.services.sessions.status import COMPLETED_LIMIT, LIST_LIMIT, READY_TOP, StatusResult
from app.services.work.briefs import ExecuteTaskResult
from tests.support.execution import complete, execute, next_task
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


async def status(h: Harness, session_id: str, **flags: bool) -> StatusResult:
    options = {
        "include_completed": False,
        "include_performance_metrics": False,
        "include_resource_usage": False,
        **flags,
    }
    return await h.services.status.get_status(caller(), session_id=session_id, **options)


async def test_status_counts_a_seeded_graph_exactly(harness: Harness) -> None:
    sid = await harness.session()
    other = await harness.session("bob", working_directory="/elsewhere")
    await harness.plan("bob", session_id=other, title="not in this session")
    done1 = (await harness.plan(title="done 1", specialist_type="coder")).task
    harness.clock.advance(1)
    done2 = (await harness.plan(title="done 2", specialist_type="coder")).task
    waiting = (await harness.plan(title="waits", specialist_type="tester", dependencies=[done1.id])).task
    ready_low = (await harness.plan(title="ready low", priority="low")).task
    ready_high = (await harness.plan(title="ready high", priority="high", specialist_type="architect")).task
    running = (await harness.plan(title="running", specialist_type="devops")).task
    stuck = (await harness.plan(title="stuck", specialist_type="devops")).task
    blocker = (await harness.plan(title="unmet", specialist_type="analyst")).task
    await harness.services.updates.update_task(
        caller(),
        waiting.id,
        TaskChanges(add_dependencies=[blocker.id]),
        expected_version=None,
        reason=None,
        force=False,
        request_id=None,
    )
    await complete(harness, done1.id, "w1", summary="First done.")
    harness.clock.advance(10)
    await complete(harness, done2.id, "w2", summary="Second done.")
    await execute(harness, running.id, "runner", lease_seconds=60)
    await execute(harness, stuck.id, "ops")
    await complete(harness, stuck.id, "ops", next_action="blocked", summary="Needs a VPN account.")
    await execute(harness, blocker.id, "late", lease_seconds=30)
    harness.clock.advance(45)  # the 'late' lease has lapsed, the runner's has not

    result = await status(harness, sid, include_completed=True)

    assert result.counts.model_dump() == {
        "by_status": {"blocked": 1, "completed": 2, "in_progress": 2, "pending": 3},
        "by_specialist": {"analyst": 1, "architect": 1, "coder": 2, "devops": 2, "generic": 1, "tester": 1},
        "total": 8,
    }
    assert result.session.id == sid and result.session.completed is False
    assert (result.ready.count, result.ready.waiting_on_dependencies, result.ready.waiting_on_children) == (2, 1, 0)
    assert [t.id for t in result.ready.top] == [ready_high.id, ready_low.id]
    assert sorted((c.task_id, c.holder, c.lease_expires_at, c.lease_expired) for c in result.in_progress) == sorted(
        [
            (running.id, "runner", "2026-01-01T00:01:11Z", False),
            (blocker.id, "late", "2026-01-01T00:00:41Z", True),
        ]
    )
    assert [(b.task_id, b.reason, b.blocked_since) for b in result.blocked] == [
        (stuck.id, "Needs a VPN account.", "2026-01-01T00:00:11Z")
    ]
    assert result.completed is not None
    assert [(c.task_id, c.summary, c.completed_at) for c in result.completed] == [
        (done2.id, "Second done.", "2026-01-01T00:00:11Z"),
        (done1.id, "First done.", "2026-01-01T00:00:01Z"),
    ]
    assert (result.performance_metrics, result.resource_usage) == (None, None)
    assert result.system_health.database.ok is True
    assert result.system_health.database.backend == harness.backend
    assert result.system_health.reboot_manager.model_dump() == {
        "ok": False,
        "state": "starting",
        "in_flight_calls": 0,
        "problems": ["service is starting"],
    }
    assert result.system_health.monitors.model_dump() == {"ok": False, "monitors": {}}


async def test_status_reports_this_processs_tool_latencies_and_resources(harness: Harness) -> None:
    sid = await harness.session()
    for seconds in (0.002, 0.004, 0.004, 0.2):
        harness.metrics.tool_call("orchestrator_next_task", "ok", "ok", seconds)
    harness.metrics.tool_call("orchestrator_next_task", "error", "unavailable", 0.004)

    result = await status(harness, sid, include_performance_metrics=True, include_resource_usage=True)

    assert result.completed is None
    assert result.performance_metrics is not None
    stats = result.performance_metrics["orchestrator_next_task"]
    assert (stats.calls, stats.errors) == (5, 1)
    assert 2.5 <= stats.p50_ms <= 5.0  # inside the histogram bucket that holds the median (2.5 to 5 ms)
    assert 100.0 <= stats.p95_ms <= 250.0
    usage = result.resource_usage
    assert usage is not None
    assert usage.rss_bytes is not None and usage.rss_bytes > 10 * 1024 * 1024
    assert usage.open_fds is not None and usage.open_fds > 3
    assert usage.cpu_seconds > 0
    assert usage.db_pool.capacity == 2 * harness.settings.db_pool_size  # pool size + as much overflow
    assert usage.db_pool.checked_out >= 1  # this very call holds one


async def test_status_is_a_board_its_lists_are_short_and_the_counts_cover_every_task(harness: Harness) -> None:
    sid = await harness.session()
    claimed = []
    for n in range(LIST_LIMIT + 2):
        task = (await harness.plan(title=f"claimed {n}")).task
        harness.clock.advance(1)
        await execute(harness, task.id, f"w{n}")
        claimed.append(task.id)
    for n in range(READY_TOP + 1):
        await harness.plan(title=f"ready {n}")
    completed = []
    for n in range(COMPLETED_LIMIT + 1):
        task = (await harness.plan(title=f"done {n}")).task
        harness.clock.advance(1)
        await complete(harness, task.id, "closer", summary=f"Done {n}.")
        completed.append(task.id)

    result = await status(harness, sid, include_completed=True)

    assert result.counts.by_status == {
        "completed": COMPLETED_LIMIT + 1,
        "in_progress": LIST_LIMIT + 2,
        "pending": READY_TOP + 1,
    }
    assert (result.ready.count, result.ready.waiting_on_dependencies, len(result.ready.top)) == (
        READY_TOP + 1,
        0,
        READY_TOP,
    )
    assert result.ready.waiting_on_children == 0
    assert [c.task_id for c in result.in_progress] == claimed[:LIST_LIMIT]  # oldest change first
    assert result.completed is not None
    assert [c.task_id for c in result.completed] == completed[::-1][:COMPLETED_LIMIT]  # newest first


async def test_the_ready_top_is_what_next_task_hands_out_first_and_the_count_covers_every_ready_task(
    harness: Harness,
) -> None:
    sid = await harness.session()
    blocker = (await harness.plan(title="blocker", priority="low")).task
    await harness.plan(title="waits", priority="critical", dependencies=[blocker.id])
    # A critical parent waits for its (low, ready) subtask; another waits for both a dependency and a subtask.
    parent = (await harness.plan(title="parent", priority="critical")).task
    await harness.plan(parent=parent.id, title="its subtask", priority="low")
    both = (await harness.plan(title="waits for both", priority="critical", dependencies=[blocker.id])).task
    await harness.plan(parent=both.id, title="its subtask too", priority="low")
    ready = [
        ("low", None),
        ("high", date(2026, 3, 1)),
        ("medium", None),
        ("high", None),
        ("critical", None),
        ("high", date(2026, 2, 1)),
        ("medium", date(2026, 1, 15)),
        ("low", date(2026, 1, 10)),
    ]
    for n, (priority, due) in enumerate(ready):
        harness.clock.advance(1)
        await harness.plan(title=f"ready {n}", priority=priority, due_date=due)

    result = await status(harness, sid)

    handed_out = []
    for n in range(READY_TOP):
        claimed = (await next_task(harness, sid, f"w{n}")).root
        assert isinstance(claimed, ExecuteTaskResult)
        handed_out.append(claimed.task.id)
    assert [t.id for t in result.ready.top] == handed_out
    assert [t.priority for t in result.ready.top] == ["critical", "high", "high", "high", "medium"]
    # Ready: the 8, the blocker and the two subtasks; a parent waiting for both counts under dependencies.
    assert (result.ready.count, result.ready.waiting_on_dependencies, result.ready.waiting_on_children) == (11, 2, 1)
    assert result.counts.by_status["pending"] == 11 + 2 + 1


async def test_a_parent_waiting_for_its_claimed_subtask_is_counted_as_waiting_for_children_not_ready(
    harness: Harness,
) -> None:
    sid = await harness.session()
    parent = (await harness.plan(title="parent", priority="critical")).task
    child = (await harness.plan(parent=parent.id, title="subtask")).task
    await execute(harness, child.id, "worker")

    result = await status(harness, sid)

    assert (result.ready.count, result.ready.waiting_on_dependencies, result.ready.waiting_on_children) == (0, 0, 1)
    assert result.ready.top == []
