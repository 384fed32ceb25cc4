"""next_task as a work queue: many workers, every task done exactly once, in the promised order."""

from __future__ import annotations

from collections import Counter
from datetime import date

import anyio
import pytest

from app import errors
from app.db.repositories import Repositories
from app.services.work.briefs import ExecuteTaskResult, NoReadyTask
from tests.support.execution import complete, count_events, execute, next_task, recorded_statements, status_moves
from tests.support.harness import Harness, caller
from tests.support.waiting import until

pytestmark = pytest.mark.anyio

WORKERS = 10
TASKS = 200


async def test_ten_workers_drain_two_hundred_tasks_each_completed_exactly_once(harness: Harness) -> None:
    sid = await harness.session()
    subtasks = [{"title": f"item {i}", "description": f"Process item {i}."} for i in range(TASKS // 2)]
    roots = [(await harness.plan(title=f"batch {b}", subtasks=subtasks[: TASKS // 2 - 1])) for b in range(2)]
    task_ids = {t.id for plan in roots for t in plan.created}
    assert len(task_ids) == TASKS
    done_by: dict[str, list[str]] = {}
    start = anyio.Event()

    async def worker(n: int) -> None:
        name = f"worker-{n}"
        done_by[name] = []
        await start.wait()
        for _ in range(TASKS + 1):  # bounded: no worker can legitimately take more than all of them
            picked = (await next_task(harness, sid, name)).root
            if isinstance(picked, NoReadyTask):
                return
            await complete(harness, picked.task.id, name)
            done_by[name].append(picked.task.id)
        raise AssertionError(f"{name} never ran out of work")

    async with anyio.create_task_group() as group:
        for n in range(WORKERS):
            group.start_soon(worker, n)
        start.set()

    completed = [task_id for ids in done_by.values() for task_id in ids]
    assert Counter(completed).most_common(1)[0][1] == 1  # nobody completed a task twice
    assert set(completed) == task_ids  # none skipped
    status = await harness.services.status.get_status(
        caller(),
        session_id=sid,
        include_completed=False,
        include_performance_metrics=False,
        include_resource_usage=False,
    )
    assert status.counts.by_status == {"completed": TASKS}  # none left pending or in progress
    claims = await count_events(harness, "status_changed")
    assert claims == dict.fromkeys(task_ids, 2)  # pending -> in_progress -> completed, once each
    for task_id in list(task_ids)[:5]:
        assert await status_moves(harness, task_id) == [("pending", "in_progress"), ("in_progress", "completed")]
    assert sum(1 for ids in done_by.values() if ids) > 1  # the work really was shared


async def test_next_task_hands_out_priority_then_due_date_then_age(harness: Harness) -> None:
    sid = await harness.session()
    low = (await harness.plan(title="low", priority="low")).task
    harness.clock.advance(1)
    high_late = (await harness.plan(title="high, due late", priority="high", due_date=date(2026, 3, 1))).task
    harness.clock.advance(1)
    high_undated = (await harness.plan(title="high, no due date", priority="high")).task
    harness.clock.advance(1)
    high_soon = (await harness.plan(title="high, due soon", priority="high", due_date=date(2026, 2, 1))).task
    harness.clock.advance(1)
    critical = (await harness.plan(title="critical", priority="critical")).task
    harness.clock.advance(1)
    high_undated_newer = (await harness.plan(title="high, no due date, newer", priority="high")).task

    order = []
    for _ in range(6):
        picked = (await next_task(harness, sid)).root
        assert isinstance(picked, ExecuteTaskResult)
        order.append(picked.task.id)
    assert order == [critical.id, high_soon.id, high_late.id, high_undated.id, high_undated_newer.id, low.id]


async def test_subtasks_planned_in_one_call_are_handed_out_in_the_order_they_were_listed(harness: Harness) -> None:
    """One plan writes its tasks in one transaction; equal in priority and due date, they come out as listed
    (the tie on created_at used to fall to the random id: step 4 could come before step 1)."""
    sid = await harness.session()
    titles = [f"step {n}" for n in range(1, 9)]
    plan = await harness.plan(title="release", subtasks=[{"title": t, "description": "Do it."} for t in titles])
    assert [view.title for view in plan.created] == ["release", *titles]

    order = []
    for _ in titles:
        picked = (await next_task(harness, sid)).root
        assert isinstance(picked, ExecuteTaskResult)
        order.append(picked.task.title)
    assert order == titles


async def test_next_task_only_offers_the_requested_specialists_and_ready_work(harness: Harness) -> None:
    sid = await harness.session()
    design = (await harness.plan(title="design", specialist_type="architect", priority="low")).task
    await harness.plan(title="tests", specialist_type="tester", priority="critical", dependencies=[design.id])
    await harness.plan(title="code", specialist_type="coder", priority="high")

    picked = (await next_task(harness, sid, "arch", specialist_types=["architect", "analyst"])).root
    assert isinstance(picked, ExecuteTaskResult)
    assert (picked.task.id, picked.specialist.type) == (design.id, "architect")

    none = (await next_task(harness, sid, "qa", specialist_types=["tester"])).root
    assert none == NoReadyTask(
        task=None,
        reason="No ready task for specialist_type tester; 1 ready task(s) need coder (call again without "
        "specialist_type to take one). 1 task(s) are in progress with other agents. Call "
        "orchestrator_next_task again when running work completes.",
    )


async def test_next_task_explains_an_empty_queue_with_the_sessions_numbers(harness: Harness) -> None:
    sid = await harness.session()
    empty = (await next_task(harness, sid)).root
    assert empty == NoReadyTask(
        task=None, reason=f"Session {sid} has no tasks yet; plan work with orchestrator_plan_task."
    )

    first = (await harness.plan(title="first")).task
    await harness.plan(title="second", dependencies=[first.id])
    blocked = (await harness.plan(title="third")).task
    await complete(harness, blocked.id, next_action="blocked", summary="Waiting for credentials.")
    await execute(harness, first.id, "busy")
    waiting = (await next_task(harness, sid, "idle")).root
    assert waiting == NoReadyTask(
        task=None,
        reason="1 pending task(s) wait on dependencies that are not completed yet. 1 task(s) are in progress "
        "with other agents. 1 task(s) are blocked (see orchestrator_get_status for the reasons). Call "
        "orchestrator_next_task again when running work completes.",
    )


async def test_next_task_counts_a_parent_waiting_for_dependencies_and_children_once_as_get_status_does(
    harness: Harness,
) -> None:
    sid = await harness.session()
    blocker = (await harness.plan(title="blocker")).task
    await execute(harness, blocker.id, "w1")
    await harness.plan(title="waits", dependencies=[blocker.id])
    parent = (await harness.plan(title="parent")).task
    await execute(harness, (await harness.plan(parent=parent.id, title="its subtask")).task.id, "w2")
    both = (await harness.plan(title="waits for both", dependencies=[blocker.id])).task
    await execute(harness, (await harness.plan(parent=both.id, title="its subtask too")).task.id, "w3")

    waiting = (await next_task(harness, sid, "idle")).root

    assert waiting == NoReadyTask(
        task=None,
        reason="2 pending task(s) wait on dependencies that are not completed yet. 1 pending parent task(s) wait "
        "for their open subtasks; each becomes ready when its last subtask ends. 3 task(s) are in progress with "
        "other agents. Call orchestrator_next_task again when running work completes.",
    )
    ready = (
        await harness.services.status.get_status(
            caller(),
            session_id=sid,
            include_completed=False,
            include_performance_metrics=False,
            include_resource_usage=False,
        )
    ).ready
    assert (ready.count, ready.waiting_on_dependencies, ready.waiting_on_children) == (0, 2, 1)


async def test_a_waiting_next_task_works_out_why_nothing_is_ready_once_when_the_wait_ends(harness: Harness) -> None:
    """The attempts a wait's signals set off only try to claim; the explanation is read once, at the end."""
    sid = await harness.session()
    blocker = (await harness.plan(title="blocker")).task
    await execute(harness, blocker.id, "busy")
    await harness.plan(title="waits", dependencies=[blocker.id])
    waiters = harness.services.execution.waiters
    ended: list[NoReadyTask] = []

    async def wait() -> None:
        result = (await next_task(harness, sid, "patient", wait_seconds=1.0)).root
        assert isinstance(result, NoReadyTask)
        ended.append(result)

    with recorded_statements(harness) as statements, anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await until(lambda: waiters.count == 1)
            for _ in range(3):  # three signals, three attempts that find nothing
                waiters.recheck("interval")
                await anyio.sleep(0.05)

    claim_marker = "SKIP LOCKED" if harness.backend == "postgresql" else "BEGIN IMMEDIATE"  # one per attempt
    attempts = [s for s in statements if claim_marker in s]
    grouped_counts = [s for s in statements if "GROUP BY task.status" in s]
    assert len(attempts) >= 4  # the first try and one per signal
    assert len(grouped_counts) == 1  # the explanation, once
    assert ended[0].reason == (
        "Nothing became ready within 1 s. 1 pending task(s) wait on dependencies that are not completed yet. "
        "1 task(s) are in progress with other agents. Call orchestrator_next_task again when running work "
        "completes."
    )


async def test_next_task_reports_a_finished_session(harness: Harness) -> None:
    sid = await harness.session()
    only = (await harness.plan()).task
    await complete(harness, only.id)
    finished = (await next_task(harness, sid)).root
    assert finished == NoReadyTask(
        task=None, reason=f"All 1 task(s) of session {sid} are finished; nothing is left to do."
    )


async def test_the_claim_query_skips_excluded_rows_and_keeps_the_specialist_filter(harness: Harness) -> None:
    """Each shape of the prebuilt claim statement (``lock_next_ready``), bound with this call's values."""
    sid = await harness.session()
    other = await harness.session(working_directory="/work/other")
    critical = (await harness.plan(title="critical", priority="critical", session_id=sid)).task
    high = (await harness.plan(title="high coder", priority="high", specialist_type="coder", session_id=sid)).task
    low = (await harness.plan(title="low coder", priority="low", specialist_type="coder", session_id=sid)).task
    await harness.plan(title="elsewhere", priority="critical", session_id=other)

    async def pick(specialists: tuple[str, ...], exclude: list[str]) -> str | None:
        async def work(repos: Repositories) -> str | None:
            task = await repos.tasks.lock_next_ready(sid, specialists, exclude_ids=exclude)
            return None if task is None else task.id

        return await harness.uow.run(work)

    assert await pick((), []) == critical.id
    assert await pick((), [critical.id]) == high.id
    assert await pick((), [critical.id, high.id]) == low.id
    assert await pick(("coder",), []) == high.id
    assert await pick(("coder", "tester"), [high.id]) == low.id
    assert await pick(("coder",), [high.id, low.id]) is None
    assert await pick(("tester",), []) is None


@pytest.mark.parametrize("wait_seconds", [0, 5])
async def test_next_task_in_a_session_that_does_not_exist_is_not_found_at_once(
    harness: Harness, wait_seconds: float
) -> None:
    """The claim reads the named session only when nothing is picked; a missing one is still not_found."""
    await harness.session()
    await harness.plan(title="Elsewhere")
    with pytest.raises(errors.SessionNotFound) as caught:
        await next_task(harness, "sess_missing", "worker", wait_seconds=wait_seconds)
    assert (caught.value.code, caught.value.field, caught.value.value) == ("not_found", "session_id", "sess_missing")
