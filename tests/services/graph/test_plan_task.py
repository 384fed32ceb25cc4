"""plan_task on both backends: subtree creation, sibling keys, dependency checks, parents, limits, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import update as sa_update

from app import errors
from app.db.models import OrchestrationSession
from app.db.repositories import Repositories
from app.services import idempotency
from app.services.graph.planning import MAX_PLANNED_TASKS, SubtaskSpec
from app.services.graph.updates import TaskChanges
from tests.support.calls import cancel, delete, query_ids, update
from tests.support.execution import complete, execute, view
from tests.support.harness import Harness, caller
from tests.support.snapshot import row_counts, snapshot

pytestmark = pytest.mark.anyio


def node(title: str, **fields: Any) -> dict[str, Any]:
    return {"title": title, "description": f"Do {title}.", **fields}


async def test_plan_creates_the_whole_subtree_parents_first_in_one_call(harness: Harness) -> None:
    session_id = await harness.session()
    result = await harness.plan(
        title="Root",
        task_type="breakdown",
        complexity="complex",
        specialist_type="architect",
        priority="high",
        estimated_effort="3d",
        due_date="2026-03-01",
        context={"repo": "x"},
        subtasks=[
            node("A", key="a", subtasks=[node("A1"), node("A2", priority="critical")]),
            node("B", key="b", depends_on=["a"]),
            node("C", depends_on=["a", "b"], specialist_type="tester"),
        ],
    )
    root, a, a1, a2, b, c = result.created
    assert result.task == root
    assert [t.title for t in result.created] == ["Root", "A", "A1", "A2", "B", "C"]
    assert [t.parent_id for t in result.created] == [None, root.id, a.id, a.id, root.id, root.id]
    assert {t.session_id for t in result.created} == {session_id}
    assert b.dependencies == [a.id] and b.blocked_by == [a.id] and b.ready is False
    assert sorted(c.dependencies) == sorted([a.id, b.id]) and c.ready is False
    # A parent waits for its subtasks: only the leaves without dependencies are ready.
    assert [t.ready for t in (root, a, a1, a2)] == [False, False, True, True]
    assert [t.open_children for t in (root, a, a1, a2, b, c)] == [3, 2, 0, 0, 0, 0]
    now = "2026-01-01T00:00:00Z"
    assert root.model_dump() == {
        "id": root.id,
        "session_id": session_id,
        "parent_id": None,
        "title": "Root",
        "description": "Do the thing.",
        "task_type": "breakdown",
        "status": "pending",
        "ready": False,
        "blocked_by": [],
        "complexity": "complex",
        "specialist_type": "architect",
        "priority": "high",
        "estimated_effort": "3d",
        "due_date": "2026-03-01T00:00:00Z",
        "context": {"repo": "x"},
        "dependencies": [],
        "assigned_to": None,
        "lease_expires_at": None,
        "attempt_count": 0,
        "summary": None,
        "version": 1,
        "created_by": "alice",
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "completed_at": None,
        "open_children": 3,
    }
    assert (a2.priority, c.specialist_type, a1.task_type) == ("critical", "tester", "standard")
    # Created in the order listed, a microsecond apart, so sorting by created_at keeps that order.
    assert await query_ids(harness) == [t.id for t in result.created]


async def test_subtask_dependencies_on_existing_tasks_are_wired(harness: Harness) -> None:
    await harness.session()
    existing = (await harness.plan(title="Existing")).task
    result = await harness.plan(subtasks=[node("child", dependencies=[existing.id, existing.id])])
    assert result.created[1].dependencies == [existing.id]
    assert result.created[1].blocked_by == [existing.id]


async def test_due_date_with_a_zone_is_stored_in_utc(harness: Harness) -> None:
    await harness.session()
    assert (await harness.plan(due_date="2026-03-01T10:00:00+02:00")).task.due_date == "2026-03-01T08:00:00Z"
    assert (await harness.plan(due_date="2026-03-01T10:00:00")).task.due_date == "2026-03-01T10:00:00Z"


@pytest.mark.parametrize(
    ("subtasks", "field", "value", "allowed"),
    [
        ([node("x", key="x", depends_on=["y"]), node("y", key="y")], "subtasks[0].depends_on[0]", "y", []),
        ([node("x", key="x"), node("y", depends_on=["x", "z"])], "subtasks[1].depends_on[1]", "z", ["x"]),
        (
            [node("p", subtasks=[node("q", key="q"), node("r", depends_on=["nope"])])],
            "subtasks[0].subtasks[1].depends_on[0]",
            "nope",
            ["q"],
        ),
        ([node("x", key="same"), node("y", key="same")], "subtasks[1].key", "same", None),
    ],
    ids=["later-sibling", "unknown-key", "nested-unknown-key", "duplicate-key"],
)
async def test_bad_sibling_keys_are_refused_before_anything_is_written(
    harness: Harness, subtasks: list[dict[str, Any]], field: str, value: str, allowed: list[str] | None
) -> None:
    await harness.session()
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan(subtasks=subtasks)
    assert (caught.value.field, caught.value.value, caught.value.allowed) == (field, value, allowed)
    assert await snapshot(harness.database) == before


async def test_unknown_dependency_is_not_found_with_its_exact_path(harness: Harness) -> None:
    await harness.session()
    real = (await harness.plan()).task.id
    before = await snapshot(harness.database)
    missing = "task_00000000000000ff"
    with pytest.raises(errors.NotFound) as caught:
        await harness.plan(dependencies=[real, real, missing])
    assert (caught.value.code, caught.value.field, caught.value.value) == ("not_found", "dependencies[2]", missing)
    with pytest.raises(errors.NotFound) as caught:
        await harness.plan(subtasks=[node("a"), node("b", subtasks=[node("c", dependencies=[missing])])])
    assert caught.value.field == "subtasks[1].subtasks[0].dependencies[0]"
    assert await snapshot(harness.database) == before


async def test_dependency_in_another_session_is_refused(harness: Harness) -> None:
    await harness.session("bob", "/work/other")
    foreign = (await harness.plan("bob")).task.id
    await harness.session("alice", "/work/project")
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan(dependencies=[foreign])
    assert (caught.value.field, caught.value.value) == ("dependencies[0]", foreign)
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan(subtasks=[node("child", dependencies=[foreign])])
    assert caught.value.field == "subtasks[0].dependencies[0]"
    assert await snapshot(harness.database) == before


async def test_parent_must_exist_and_share_the_session(harness: Harness) -> None:
    other = await harness.session("bob", "/work/other")
    foreign_parent = (await harness.plan("bob")).task.id
    mine = await harness.session("alice", "/work/project")
    before = await snapshot(harness.database)
    with pytest.raises(errors.NotFound) as missing:
        await harness.plan(parent="task_00000000000000ee")
    assert (missing.value.field, missing.value.value) == ("parent_task_id", "task_00000000000000ee")
    with pytest.raises(errors.InvalidArgument) as crossed:
        await harness.plan(parent=foreign_parent, session_id=mine)
    assert (crossed.value.field, crossed.value.value) == ("parent_task_id", foreign_parent)
    assert await snapshot(harness.database) == before
    # Without session_id the parent's session is used, whatever the caller's current session.
    child = (await harness.plan(parent=foreign_parent)).task
    assert (child.session_id, child.parent_id) == (other, foreign_parent)


@pytest.mark.parametrize("closed", ["completed", "failed", "cancelled", "archived"])
async def test_terminal_parent_is_refused(harness: Harness, closed: str) -> None:
    await harness.session()
    parent = (await harness.plan(title="Parent")).task.id
    if closed == "completed":
        await complete(harness, parent, "alice")
    elif closed == "failed":
        await update(harness, parent, status="in_progress")
        await update(harness, parent, status="failed")
    elif closed == "cancelled":
        await cancel(harness, parent)
    else:
        await delete(harness, parent)
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan(parent=parent, title="Child")
    assert (caught.value.field, caught.value.value) == ("parent_task_id", parent)
    assert caught.value.allowed == ["pending", "in_progress", "blocked"]
    assert await snapshot(harness.database) == before


@pytest.mark.parametrize("status", ["in_progress", "blocked"])
async def test_open_parent_accepts_subtasks(harness: Harness, status: str) -> None:
    await harness.session()
    parent = (await harness.plan()).task.id
    await update(harness, parent, status=status)
    assert (await harness.plan(parent=parent)).task.parent_id == parent


def _tree(total: int) -> list[dict[str, Any]]:
    """Subtasks making ``total`` tasks with the root: 100 children, the rest spread as grandchildren."""
    children, grandchildren = 100, total - 101
    return [
        node(
            f"c{i}",
            subtasks=[node(f"g{i}.{j}") for j in range(grandchildren // children + (i < grandchildren % children))],
        )
        for i in range(children)
    ]


async def test_a_plan_of_more_than_500_tasks_is_refused_and_500_is_accepted(harness: Harness) -> None:
    await harness.session()
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan(subtasks=_tree(MAX_PLANNED_TASKS + 1))
    assert (caught.value.field, caught.value.value) == ("subtasks", MAX_PLANNED_TASKS + 1)
    assert await snapshot(harness.database) == before
    result = await harness.plan(subtasks=_tree(MAX_PLANNED_TASKS))
    assert len(result.created) == MAX_PLANNED_TASKS
    assert (await row_counts(harness.database))["task"] == MAX_PLANNED_TASKS


async def test_a_deep_tree_counts_every_level(harness: Harness) -> None:
    await harness.session()
    chain: list[dict[str, Any]] = []
    for depth in range(100):  # 100 levels, each with 4 leaves beside the next level: 501 with the root
        chain = [node(f"level {depth}", subtasks=[*chain, *(node(f"leaf {depth}.{i}") for i in range(4))])]
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan(subtasks=chain)
    assert (caught.value.field, caught.value.value) == ("subtasks", MAX_PLANNED_TASKS + 1)
    assert (await row_counts(harness.database))["task"] == 0


async def test_same_request_id_returns_the_first_result_and_writes_once(harness: Harness) -> None:
    await harness.session()
    first = await harness.plan(request_id="plan-1", subtasks=[node("child")])
    before = await snapshot(harness.database)
    harness.clock.advance(60)  # a second write would leave later timestamps behind
    again = await harness.plan(request_id="plan-1", subtasks=[node("child")])
    assert again == first
    assert await snapshot(harness.database) == before
    counts = await row_counts(harness.database)
    assert counts["task"] == 2 and counts["request_record"] == 1
    # The key is per actor: bob's plan-1 is another operation.
    await harness.session("bob")
    assert (await harness.plan("bob", request_id="plan-1")).task.id != first.task.id


async def test_request_id_reused_for_another_tool_is_an_idempotency_conflict(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan(request_id="r-1")).task
    before = await snapshot(harness.database)
    with pytest.raises(errors.IdempotencyConflict) as caught:
        await harness.services.updates.update_task(
            caller(), task.id, TaskChanges(title="x"), expected_version=None, reason=None, force=False, request_id="r-1"
        )
    assert (caught.value.field, caught.value.value, caught.value.details["first_tool"]) == (
        "request_id",
        "r-1",
        "orchestrator_plan_task",
    )
    assert await snapshot(harness.database) == before


async def test_request_id_reused_with_other_arguments_is_an_idempotency_conflict(harness: Harness) -> None:
    await harness.session()
    with idempotency.bound_arguments({"title": "A task", "request_id": "r-1"}):
        first = await harness.plan(request_id="r-1")
    before = await snapshot(harness.database)
    with idempotency.bound_arguments({"title": "A task", "request_id": "r-1"}):
        assert await harness.plan(request_id="r-1") == first
    with (
        idempotency.bound_arguments({"title": "Another task", "request_id": "r-1"}),
        pytest.raises(errors.IdempotencyConflict) as caught,
    ):
        await harness.plan(request_id="r-1", title="Another task")
    assert (caught.value.code, caught.value.field, caught.value.value) == ("idempotency_conflict", "request_id", "r-1")
    assert await snapshot(harness.database) == before


async def test_plan_without_a_session_needs_a_current_one(harness: Harness) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await harness.plan("newcomer")
    assert (caught.value.field, caught.value.value) == ("session_id", None)
    with pytest.raises(errors.NotFound) as missing:
        await harness.plan("newcomer", session_id="sess_0000000000000000")
    assert (missing.value.field, missing.value.value) == ("session_id", "sess_0000000000000000")
    assert (await row_counts(harness.database))["task"] == 0


async def test_plan_spec_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        SubtaskSpec(title="t", description="d", bogus=1)  # type: ignore[call-arg]


async def test_a_subtask_depending_on_its_own_key_is_a_dependency_cycle(harness: Harness) -> None:
    await harness.session()
    before = await snapshot(harness.database)
    with pytest.raises(errors.DependencyCycle) as caught:
        await harness.plan(subtasks=[node("x", key="x"), node("y", key="y", depends_on=["x", "y"])])
    assert (caught.value.code, caught.value.field, caught.value.value, caught.value.to_dict()["cycle"]) == (
        "dependency_cycle",
        "subtasks[1].depends_on[1]",
        "y",
        ["y", "y"],
    )
    assert await snapshot(harness.database) == before


async def test_a_new_subtask_depending_on_what_waits_for_its_parent_is_a_dependency_cycle(harness: Harness) -> None:
    await harness.session()
    root = (await harness.plan(title="Root", subtasks=[node("Mid")])).created
    after_root = (await harness.plan(title="After root", dependencies=[root[0].id])).task
    before = await snapshot(harness.database)
    for dependency in (root[1].id, root[0].id, after_root.id):
        with pytest.raises(errors.DependencyCycle) as caught:
            await harness.plan(parent=root[1].id, subtasks=[node("Leaf", dependencies=[dependency])])
        cycle = caught.value.to_dict()["cycle"]
        assert (caught.value.field, caught.value.value) == ("subtasks[0].dependencies[0]", dependency)
        assert (cycle[1], cycle[-2], cycle[0] == cycle[-1]) == (dependency, root[1].id, True)
    assert await snapshot(harness.database) == before


@pytest.mark.parametrize("claimed", [False, True], ids=["ready", "claimed"])
async def test_a_subtask_makes_a_ready_or_claimed_parent_wait_again(harness: Harness, claimed: bool) -> None:
    await harness.session()
    parent = (await harness.plan(title="Parent")).task
    assert parent.ready is True
    if claimed:
        await execute(harness, parent.id, "holder")
    child = (await harness.plan(parent=parent.id, title="Late subtask")).task
    assert child.ready is True
    after = await view(harness, parent.id)
    expected_status, expected_holder = ("in_progress", "holder") if claimed else ("pending", None)
    assert (after.status, after.assigned_to, after.ready, after.open_children) == (
        expected_status,
        expected_holder,
        False,
        1,
    )


async def test_a_single_task_plan_writes_the_task_and_its_event_in_one_statement_on_postgresql(
    harness: Harness,
) -> None:
    """The hot path (issue 14): the session check, the task and its ``task_created`` event in one statement on
    PostgreSQL, three on SQLite; what it writes and answers is what the general path writes and answers."""
    session_id = await harness.session()
    await harness.plan(session_id=session_id)  # the actor's first write records it; not counted
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's BEGIN IMMEDIATE; asyncpg's is not a cursor statement
            statements.append(statement)

    engine = harness.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        planned = await harness.plan(session_id=session_id, title="Hot", priority="high", context={"n": 1})
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert len(statements) == (1 if harness.backend == "postgresql" else 3), statements
    stored = await view(harness, planned.task.id)
    assert stored == planned.task and planned.created == [planned.task]
    assert (stored.title, stored.priority, stored.status, stored.context) == ("Hot", "high", "pending", {"n": 1})

    async def events(repos: Repositories) -> list[tuple[str, str, dict[str, Any]]]:
        return [(e.kind, e.actor, e.data) for e in await repos.events.list_for_task(planned.task.id)]

    assert await harness.uow.run(events, write=False) == [
        ("task_created", "alice", {"title": "Hot", "parent_id": None})
    ]


async def test_a_single_task_plan_into_an_archived_session_writes_nothing(harness: Harness) -> None:
    """The one statement finds no open session and writes nothing; the general path then names the error."""
    session_id = await harness.session()

    async def archive(repos: Repositories) -> None:
        await repos.session.execute(
            sa_update(OrchestrationSession).where(OrchestrationSession.id == session_id).values(status="archived")
        )

    await harness.uow.run(archive, write=True)
    before = await snapshot(harness.database)
    with pytest.raises(errors.SessionArchived) as caught:
        await harness.plan(session_id=session_id)
    assert (caught.value.field, caught.value.value) == ("session_id", session_id)
    assert await snapshot(harness.database) == before
