"""Parents wait for their children (DESIGN §3), on both backends.

An agent that only loops next_task → complete_task (or synthesize_results for a parent, as its brief says)
never gets a parent before its subtasks end; the parent becomes ready exactly when its last subtask turns
terminal, whichever way it ends; claims and completions of a parent with open subtasks are refused with
``children_open`` and write nothing.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from app import errors
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskRepository, TaskScope
from app.services.views import TaskView, task_views
from app.services.work.briefs import ExecuteTaskResult, NoReadyTask
from app.services.work.claims import ExecutionService
from app.services.work.synthesis import SynthesizeResult
from tests.support.calls import cancel, delete, update
from tests.support.execution import complete, event_kinds, execute, next_task, read, recorded_statements, view
from tests.support.harness import Harness, caller
from tests.support.snapshot import snapshot

pytestmark = pytest.mark.anyio


def node(title: str, **fields: Any) -> dict[str, Any]:
    return {"title": title, "description": f"Do {title}.", **fields}


# Root ─┬─ A ─┬─ A1
#       │     └─ A2 (depends on A1)
#       ├─ B (depends on A) ── B1
#       └─ C
THREE_LEVELS = [
    node("A", key="a", subtasks=[node("A1", key="a1"), node("A2", depends_on=["a1"])]),
    node("B", depends_on=["a"], subtasks=[node("B1")]),
    node("C"),
]


async def all_views(h: Harness, session_id: str) -> dict[str, TaskView]:
    """Every task of the session as the tools show it, by title."""

    async def work(repos: Repositories) -> list[TaskView]:
        return await task_views(repos, await repos.tasks.list_in_scope(TaskScope(session_id=session_id)))

    views: list[TaskView] = await read(h, work)
    return {v.title: v for v in views}


def expected_ready(tasks: dict[str, TaskView]) -> set[str]:
    """``ready`` from first principles: pending, every dependency completed, every subtask terminal."""
    by_id = {t.id: t for t in tasks.values()}
    terminal = {"completed", "failed", "cancelled", "archived"}
    return {
        t.title
        for t in tasks.values()
        if t.status == "pending"
        and all(by_id[d].status == "completed" for d in t.dependencies)
        and all(c.status in terminal for c in tasks.values() if c.parent_id == t.id)
    }


async def synthesize(h: Harness, parent_id: str, actor: str) -> SynthesizeResult:
    return await h.services.synthesis.synthesize_results(
        caller(actor, admin=False), parent_id, complete_parent=True, request_id=None
    )


async def test_an_agent_loop_never_takes_a_parent_before_its_subtasks_end(harness: Harness) -> None:
    sid = await harness.session()
    plan = await harness.plan(title="Root", subtasks=THREE_LEVELS)
    ids = {t.title: t.id for t in plan.created}
    titles = {v: k for k, v in ids.items()}
    order: list[str] = []
    added_late = False
    for _ in range(20):  # bounded: the tree has 8 tasks, 9 with the late subtask
        tasks = await all_views(harness, sid)
        assert {t.title for t in tasks.values() if t.ready} == expected_ready(tasks)
        picked = (await next_task(harness, sid, "agent")).root
        if isinstance(picked, NoReadyTask):
            break
        title = picked.task.title
        children = [t for t in tasks.values() if t.parent_id == picked.task.id]
        assert all(c.status == "completed" for c in children), (title, [(c.title, c.status) for c in children])
        if children:
            # The brief of a parent says its subtasks are done and how to roll them up.
            rollup = f"orchestrator_synthesize_results(parent_task_id={picked.task.id!r}, complete_parent=true)"
            assert any("subtask(s) of this task are done" in s and rollup in s for s in picked.instructions)
            assert rollup in picked.specialist.prompt
            result = await synthesize(harness, picked.task.id, "agent")
            assert (result.parent_completed, result.parent.status) == (True, "completed")
        else:
            done = await complete(harness, picked.task.id, "agent")
            became_ready = {t.title for t in done.unblocked}
            after = await all_views(harness, sid)
            newly = expected_ready(after) - expected_ready(tasks)
            assert became_ready == newly, (title, became_ready, newly)
        order.append(title)
        if title == "A2" and not added_late:
            # A is ready now (A1 and A2 are done); a late subtask makes it wait again.
            assert (await view(harness, ids["A"])).ready is True
            late = (await harness.plan(parent=ids["A"], title="A3")).task
            ids["A3"], titles[late.id] = late.id, "A3"
            added_late = True
            assert (await view(harness, ids["A"])).model_dump(include={"ready", "open_children"}) == {
                "ready": False,
                "open_children": 1,
            }
    # Leaves first, each parent right after its last subtask; dependencies between siblings respected.
    assert sorted(order) == sorted(["A1", "A2", "A3", "A", "B1", "B", "C", "Root"])
    position = {title: n for n, title in enumerate(order)}
    for parent, kids in {"A": ["A1", "A2", "A3"], "B": ["B1"], "Root": ["A", "B", "C"]}.items():
        assert all(position[k] < position[parent] for k in kids), order
    assert position["A1"] < position["A2"] and position["A"] < position["B"]
    final = await all_views(harness, sid)
    assert {t.status for t in final.values()} == {"completed"}
    # Each parent was announced when it became ready: by its last subtask (children_done) or, for B,
    # whose subtask may end before A, by the completion of A (dependencies_met).
    for parent in ("A", "Root"):
        assert "children_done" in await event_kinds(harness, ids[parent])
    assert {"children_done", "dependencies_met"} & set(await event_kinds(harness, ids["B"]))


async def test_the_last_subtask_to_complete_lists_its_parent_as_unblocked_with_an_event(harness: Harness) -> None:
    await harness.session()
    parent, first, second = (await harness.plan(title="Parent", subtasks=[node("one"), node("two")])).created
    with recorded_statements(harness) as early_statements:
        early = await complete(harness, first.id)
    assert early.unblocked == [] and (await view(harness, parent.id)).ready is False
    with recorded_statements(harness) as last_statements:
        last = await complete(harness, second.id)
    now = await view(harness, parent.id)
    assert last.unblocked == [now]
    assert (now.ready, now.open_children, now.status) == (True, 0, "pending")
    assert (await event_kinds(harness, parent.id)).count("children_done") == 1
    # The move decides whether the parent is ready; the answer's view is built from the rows it read.
    for statements in (early_statements, last_statements):
        assert len([s for s in statements if s.startswith("SELECT task.parent_id, task.id, task.status")]) == 1


@pytest.mark.parametrize("ending", ["cancel", "archive", "delete", "fail", "expire"])
async def test_a_parent_becomes_ready_when_its_last_subtask_ends_any_way(harness: Harness, ending: str) -> None:
    await harness.session()
    parent, done, last = (await harness.plan(title="Parent", subtasks=[node("done"), node("last")])).created
    await complete(harness, done.id)
    if ending == "cancel":
        await cancel(harness, last.id)
    elif ending == "archive":
        await delete(harness, last.id)
    elif ending == "delete":
        await delete(harness, last.id, archive_instead=False)
    elif ending == "fail":
        await update(harness, last.id, status="in_progress")
        await update(harness, last.id, status="failed")
    else:  # the lease sweeper fails it at the attempt limit
        for attempt in range(harness.settings.max_attempts):
            await execute(harness, last.id, f"worker-{attempt}", lease_seconds=30)
            harness.clock.advance(31)
            await harness.services.leases.sweep_expired()
    assert (await view(harness, parent.id)).model_dump(include={"ready", "open_children"}) == {
        "ready": True,
        "open_children": 0,
    }
    assert (await event_kinds(harness, parent.id)).count("children_done") == 1


async def test_claiming_or_completing_a_parent_with_open_subtasks_is_children_open_and_writes_nothing(
    harness: Harness,
) -> None:
    sid = await harness.session()
    parent, left, right = (await harness.plan(title="Parent", subtasks=[node("left"), node("right")])).created
    await execute(harness, right.id, "busy")
    # Oldest first: one plan creates its tasks in the order listed.
    open_children = [{"task_id": left.id, "status": "pending"}, {"task_id": right.id, "status": "in_progress"}]
    before = await snapshot(harness.database)
    refusals = [
        lambda: execute(harness, parent.id, "eager"),
        lambda: complete(harness, parent.id, "eager"),
        lambda: complete(harness, parent.id, "eager", next_action="continue"),
    ]
    for refused in refusals:
        with pytest.raises(errors.ChildrenOpen) as caught:
            await refused()
        error = caught.value.to_dict()
        assert (error["code"], error["field"], error["value"], error["children"]) == (
            "children_open",
            "task_id",
            parent.id,
            open_children,
        )
        assert "orchestrator_synthesize_results" in error["message"]
    assert await snapshot(harness.database) == before
    # next_task hands out the open subtask, never the parent.
    picked = (await next_task(harness, sid, "eager")).root
    assert isinstance(picked, ExecuteTaskResult) and picked.task.id == left.id


async def test_a_claimed_parent_that_gains_a_subtask_keeps_its_holder_but_cannot_complete(harness: Harness) -> None:
    await harness.session()
    parent = (await harness.plan(title="Parent")).task
    claim = await execute(harness, parent.id, "holder")
    late = (await harness.plan(parent=parent.id, title="Found more work")).task
    before = await snapshot(harness.database)
    with pytest.raises(errors.ChildrenOpen) as caught:
        await complete(harness, parent.id, "holder")
    assert caught.value.details == {"children": [{"task_id": late.id, "status": "pending"}]}
    assert await snapshot(harness.database) == before
    renewed = await execute(harness, parent.id, "holder")  # the holder keeps (and renews) its claim
    assert (renewed.claim.holder, renewed.claim.attempt) == ("holder", claim.claim.attempt)
    assert any("cannot be completed until they end" in step for step in renewed.instructions)
    await complete(harness, late.id, "worker")
    done = await complete(harness, parent.id, "holder", summary="Did it myself.")
    assert (done.task.status, done.task.summary) == ("completed", "Did it myself.")


async def test_unmet_dependencies_are_reported_before_open_subtasks(harness: Harness) -> None:
    await harness.session()
    first = (await harness.plan(title="First")).task
    parent, child = (await harness.plan(title="Parent", dependencies=[first.id], subtasks=[node("child")])).created
    with pytest.raises(errors.DependenciesUnmet) as unmet:
        await execute(harness, parent.id)
    assert unmet.value.details == {"blocking": [first.id]}
    await complete(harness, first.id)
    with pytest.raises(errors.ChildrenOpen) as still_open:
        await execute(harness, parent.id)
    assert still_open.value.details == {"children": [{"task_id": child.id, "status": "pending"}]}


async def test_next_task_explains_parents_waiting_for_their_subtasks(harness: Harness) -> None:
    sid = await harness.session()
    _, child = (await harness.plan(title="Parent", subtasks=[node("child")])).created
    await execute(harness, child.id, "busy")
    waiting = (await next_task(harness, sid, "idle")).root
    assert waiting == NoReadyTask(
        task=None,
        reason="1 pending parent task(s) wait for their open subtasks; each becomes ready when its last subtask "
        "ends. 1 task(s) are in progress with other agents. Call orchestrator_next_task again when running work "
        "completes.",
    )


async def test_a_subtask_of_a_completed_parent_cannot_be_reopened(harness: Harness) -> None:
    await harness.session()
    parent, child = (await harness.plan(title="Parent", subtasks=[node("child")])).created
    await complete(harness, child.id)
    await complete(harness, parent.id)
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidTransition) as caught:
        await update(harness, child.id, status="pending", reason="redo")
    error = caught.value.to_dict()
    assert (error["field"], error["current"], error["requested"], error["parent_id"], error["parent_status"]) == (
        "status",
        "completed",
        "pending",
        parent.id,
        "completed",
    )
    assert await snapshot(harness.database) == before
    await update(harness, parent.id, status="pending", reason="more to do")
    assert (await update(harness, child.id, status="pending", reason="redo")).task.status == "pending"
    assert (await view(harness, parent.id)).ready is False


def gate_next_task(monkeypatch: pytest.MonkeyPatch, parties: int, backend: str) -> list[int]:
    """Hold every next_task until ``parties`` calls are waiting, then let them all go at once.

    PostgreSQL: the gate sits in the claim query (``lock_next_ready``), so every caller is inside its
    transaction and about to pick at the same moment. SQLite admits one writer at a time, so the gate sits
    just before the service opens its transaction and the callers then queue on the write lock.
    """
    arrived: list[int] = []
    released = anyio.Event()

    async def wait_for_all() -> None:
        arrived.append(1)
        if len(arrived) >= parties:
            released.set()
        with anyio.fail_after(30):
            await released.wait()

    if backend == "postgresql":
        real_pick = TaskRepository.lock_next_ready

        async def gated_pick(self: TaskRepository, *args: Any, **kwargs: Any) -> Any:
            if not released.is_set():
                await wait_for_all()
            return await real_pick(self, *args, **kwargs)

        monkeypatch.setattr(TaskRepository, "lock_next_ready", gated_pick)
    else:
        real_next = ExecutionService.next_task

        async def gated_next(self: ExecutionService, *args: Any, **kwargs: Any) -> Any:
            if not released.is_set():
                await wait_for_all()
            return await real_next(self, *args, **kwargs)

        monkeypatch.setattr(ExecutionService, "next_task", gated_next)
    return arrived


async def race(h: Harness, sid: str, monkeypatch: pytest.MonkeyPatch, agents: list[str]) -> dict[str, str | None]:
    """Every agent calls next_task at the same moment; what each one got (a task title, or None)."""
    with monkeypatch.context() as patch:
        arrived = gate_next_task(patch, len(agents), h.backend)
        got: dict[str, str | None] = {}

        async def agent(name: str) -> None:
            picked = (await next_task(h, sid, name)).root
            got[name] = None if isinstance(picked, NoReadyTask) else picked.task.title

        async with anyio.create_task_group() as group:
            for name in agents:
                group.start_soon(agent, name)
        assert len(arrived) == len(agents)
    return got


async def test_two_agents_racing_next_task_never_get_a_parent_early_or_the_same_task(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = await harness.session()
    plan = await harness.plan(title="Root", priority="critical", subtasks=[node("X"), node("Y", priority="low")])
    ids = {t.title: t.id for t in plan.created}
    both = await race(harness, sid, monkeypatch, ["ann", "ben"])
    assert sorted(t for t in both.values() if t) == ["X", "Y"]  # one each, never the (critical) root
    holder_of = {title: agent for agent, title in both.items()}
    await complete(harness, ids["X"], holder_of["X"])
    # Y is still held: the root waits, so neither racer gets anything.
    assert await race(harness, sid, monkeypatch, ["ann", "ben"]) == {"ann": None, "ben": None}
    await complete(harness, ids["Y"], holder_of["Y"])
    last = await race(harness, sid, monkeypatch, ["ann", "ben"])
    assert sorted(last.values(), key=str) == [None, "Root"]  # exactly one claim of the root
    root = await view(harness, ids["Root"])
    assert (root.status, root.assigned_to, root.attempt_count) == (
        "in_progress",
        next(a for a, t in last.items() if t),
        1,
    )
