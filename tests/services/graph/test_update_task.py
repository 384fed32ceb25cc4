"""update_task on both backends: fields, merge-patch, versions, the status machine, the holder rule, edges."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from app import errors
from app.domain.clock import iso
from tests.support.calls import cancel, delete, query, update
from tests.support.execution import complete, execute
from tests.support.harness import Harness, caller
from tests.support.snapshot import snapshot

pytestmark = pytest.mark.anyio
LEASE = 900


async def new_task(h: Harness, actor: str = "alice", **fields: Any) -> str:
    return (await h.plan(actor, **fields)).task.id


async def test_every_given_field_lands_in_one_version(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    harness.clock.advance(30)
    result = await update(
        harness,
        task_id,
        title="New title",
        description="New description.",
        specialist_type="coder",
        complexity="trivial",
        priority="critical",
        estimated_effort="1h",
        due_date=date(2026, 2, 1),
        context={"k": "v"},
    )
    assert result.changed == [
        "title",
        "description",
        "specialist_type",
        "complexity",
        "priority",
        "estimated_effort",
        "due_date",
        "context",
    ]
    task = result.task
    assert (task.title, task.description, task.specialist_type, task.complexity, task.priority) == (
        "New title",
        "New description.",
        "coder",
        "trivial",
        "critical",
    )
    assert (task.estimated_effort, task.due_date, task.context) == ("1h", "2026-02-01T00:00:00Z", {"k": "v"})
    assert task.version == 2
    assert task.updated_at == iso(harness.clock.now()) != task.created_at


async def test_values_equal_to_the_stored_ones_change_nothing(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness, title="Same", priority="high")
    before = await snapshot(harness.database)
    result = await update(harness, task_id, title="Same", priority="high")
    assert result.changed == [] and result.task.version == 1
    after = await snapshot(harness.database)
    assert after["task"] == before["task"] and after["task_event"] == before["task_event"]


async def test_context_is_a_json_merge_patch_and_null_deletes_nested_keys(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness, context={"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2]})
    result = await update(harness, task_id, context={"b": {"c": None, "e": 4}, "f": 5, "list": [3]})
    assert result.task.context == {"a": 1, "b": {"d": 3, "e": 4}, "f": 5, "list": [3]}
    result = await update(harness, task_id, context={"b": None, "a": None})
    assert result.task.context == {"f": 5, "list": [3]}
    assert result.task.version == 3


@pytest.mark.parametrize(("before", "after"), [(True, 1), (False, 0), (1, 1.0), ([1], [True])])
async def test_a_context_patch_that_changes_only_the_json_type_lands(harness: Harness, before: Any, after: Any) -> None:
    # Python holds True == 1 == 1.0, JSON does not: the patch must land, as a new version, and read back typed.
    await harness.session()
    task_id = await new_task(harness, context={"flag": before})
    result = await update(harness, task_id, context={"flag": after})
    assert (result.changed, result.task.version) == (["context"], 2)
    stored = (await query(harness, task_ids=[task_id], view="full", limit=10)).tasks[0].context["flag"]
    assert repr(stored) == repr(after)


async def test_stale_expected_version_is_a_conflict_and_changes_nothing(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    assert (await update(harness, task_id, expected_version=1, title="v2")).task.version == 2
    before = await snapshot(harness.database)
    with pytest.raises(errors.VersionConflict) as caught:
        await update(harness, task_id, expected_version=1, title="lost", status="blocked")
    assert caught.value.to_dict() | {"message": None} == {
        "code": "version_conflict",
        "message": None,
        "field": "expected_version",
        "value": 1,
        "allowed": None,
        "retryable": True,
        "expected": 1,
        "actual": 2,
    }
    assert await snapshot(harness.database) == before
    assert (await update(harness, task_id, expected_version=2, title="v3")).task.title == "v3"


async def test_nothing_to_update_is_invalid_argument(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    with pytest.raises(errors.InvalidArgument) as caught:
        await update(harness, task_id, reason="no fields", expected_version=1)
    assert caught.value.field == "task_id"
    assert "title" in caught.value.allowed and "add_dependencies" in caught.value.allowed


async def test_unknown_task_is_not_found(harness: Harness) -> None:
    await harness.session()
    with pytest.raises(errors.NotFound) as caught:
        await update(harness, "task_0000000000000000", title="x")
    assert (caught.value.field, caught.value.value) == ("task_id", "task_0000000000000000")


async def test_claim_through_update_sets_holder_lease_and_attempt(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    harness.clock.advance(10)
    claimed = (await update(harness, task_id, status="in_progress")).task
    now = harness.clock.now()
    assert (claimed.status, claimed.assigned_to, claimed.attempt_count) == ("in_progress", "alice", 1)
    assert claimed.lease_expires_at == iso(now + _seconds(LEASE))
    assert claimed.started_at == iso(now) and claimed.ready is False

    harness.clock.advance(100)
    renewed = (await update(harness, task_id, status="in_progress")).task
    assert renewed.lease_expires_at == iso(harness.clock.now() + _seconds(LEASE))
    assert (renewed.attempt_count, renewed.started_at) == (1, claimed.started_at)

    released = (await update(harness, task_id, status="pending")).task
    assert (released.status, released.assigned_to, released.lease_expires_at) == ("pending", None, None)
    assert released.attempt_count == 1 and released.ready is True

    again = (await update(harness, task_id, status="in_progress")).task
    assert again.attempt_count == 2


async def test_any_write_by_the_holder_renews_the_lease(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    await update(harness, task_id, status="in_progress")
    harness.clock.advance(600)
    task = (await update(harness, task_id, context={"progress": "half"})).task
    assert task.lease_expires_at == iso(harness.clock.now() + _seconds(LEASE))
    harness.clock.advance(60)
    # A non-holder's edit does not move the holder's lease.
    untouched = (await update(harness, task_id, "bob", title="Annotated by bob")).task
    assert untouched.lease_expires_at == task.lease_expires_at and untouched.assigned_to == "alice"


async def test_a_write_by_the_holder_never_shortens_a_longer_lease_it_claimed(harness: Harness) -> None:
    """An agent that claimed for an hour keeps its hour when it records progress: a renewal to the default
    lease would cut it short and hand its work to another agent mid-way."""
    await harness.session()
    task_id = await new_task(harness)
    claimed = (await execute(harness, task_id, "alice", lease_seconds=LEASE * 4)).claim
    harness.clock.advance(60)
    kept = (await update(harness, task_id, context={"progress": "started"})).task
    assert kept.lease_expires_at == claimed.lease_expires_at
    harness.clock.advance(LEASE * 4 - 120)  # less than the default lease is left: a write extends it
    extended = (await update(harness, task_id, context={"progress": "nearly"})).task
    assert extended.lease_expires_at == iso(harness.clock.now() + _seconds(LEASE))


@pytest.mark.parametrize("write", ["plan_task", "synthesize_results"])
async def test_the_holder_planning_under_or_synthesizing_its_claimed_task_renews_the_lease(
    harness: Harness, write: str
) -> None:
    # DESIGN §3: "any write by the holder also renews", not only update_task's.
    await harness.session()
    task_id = await new_task(harness)
    await update(harness, task_id, status="in_progress")
    await harness.plan("bob", title="First step", parent=task_id)
    claimed = (await update(harness, task_id, "bob", title="Annotated by bob")).task  # bob does not renew

    async def write_as(actor: str) -> None:
        if write == "plan_task":
            await harness.plan(actor, title=f"Step by {actor}", parent=task_id)
        else:
            await harness.services.synthesis.synthesize_results(
                caller(actor, admin=False), task_id, complete_parent=False, request_id=None
            )

    harness.clock.advance(600)
    await write_as("bob")
    assert (await update(harness, task_id, "bob", title="Still bob's note")).task.lease_expires_at == (
        claimed.lease_expires_at
    )
    harness.clock.advance(60)
    await write_as("alice")
    task = (await query(harness, task_ids=[task_id], view="full", limit=10)).tasks[0]
    assert task.lease_expires_at == iso(harness.clock.now() + _seconds(LEASE))
    assert (task.assigned_to, task.attempt_count) == ("alice", 1)


async def test_status_machine_walk_through_update(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    statuses = []
    for target in ("blocked", "pending", "in_progress", "blocked", "pending", "in_progress", "failed", "pending"):
        harness.clock.advance(1)
        statuses.append((await update(harness, task_id, status=target)).task.status)
    assert statuses == ["blocked", "pending", "in_progress", "blocked", "pending", "in_progress", "failed", "pending"]
    await update(harness, task_id, status="in_progress")
    harness.clock.advance(5)
    done = (await complete(harness, task_id, "alice")).task  # only completion completes
    assert (done.status, done.completed_at, done.assigned_to, done.lease_expires_at) == (
        "completed",
        iso(harness.clock.now()),
        None,
        None,
    )
    reopened = (await update(harness, task_id, status="pending", reason="The tests were wrong")).task
    assert (reopened.status, reopened.completed_at) == ("pending", None)
    await cancel(harness, task_id)
    restored = (await update(harness, task_id, status="pending")).task
    assert restored.status == "pending"


@pytest.mark.parametrize(
    ("setup", "target", "allowed"),
    [
        ([], "failed", ["in_progress", "blocked", "completed", "cancelled", "archived"]),
        (["blocked"], "completed", ["pending", "cancelled", "archived"]),
        (["in_progress", "completed"], "in_progress", ["pending", "archived"]),
        (["in_progress", "completed"], "cancelled", ["pending", "archived"]),
        (["in_progress"], "archived", ["pending", "in_progress", "blocked", "completed", "failed", "cancelled"]),
    ],
    ids=[
        "pending-to-failed",
        "blocked-to-completed",
        "completed-to-in_progress",
        "completed-to-cancelled",
        "in_progress-to-archived",
    ],
)
async def test_illegal_move_is_invalid_transition_naming_the_allowed_moves(
    harness: Harness, setup: list[str], target: str, allowed: list[str]
) -> None:
    await harness.session()
    task_id = await new_task(harness)
    for status in setup:
        if status == "completed":
            await complete(harness, task_id, "alice")
        else:
            await update(harness, task_id, status=status)
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidTransition) as caught:
        await update(harness, task_id, status=target, title="not applied either")
    error = caught.value.to_dict()
    assert (error["field"], error["value"], error["requested"], error["allowed"]) == ("status", target, target, allowed)
    assert error["current"] == (setup[-1] if setup else "pending")
    assert await snapshot(harness.database) == before


async def test_archived_task_refuses_every_update(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    await delete(harness, task_id)
    before = await snapshot(harness.database)
    messages = []
    attempts: list[dict[str, Any]] = [{"status": "pending"}, {"title": "edit history"}]
    for changes in attempts:
        with pytest.raises(errors.InvalidTransition) as caught:
            await update(harness, task_id, **changes)
        assert (caught.value.to_dict()["current"], caught.value.allowed) == ("archived", [])
        messages.append(caught.value.message)
    assert await snapshot(harness.database) == before
    assert "cannot move from archived to pending" in messages[0]
    # An edit that asks for no move is refused as read-only, not as a move from archived to itself.
    assert "archived tasks are read-only" in messages[1]
    assert "to archived" not in messages[1]


async def test_archiving_a_parent_with_open_subtasks_is_children_open_and_changes_nothing(harness: Harness) -> None:
    # Archived is final: the subtask would stay open and claimable under an archived parent.
    await harness.session()
    parent_id = await new_task(harness, title="Epic")
    child_id = (await harness.plan(title="Step", parent=parent_id)).task.id
    done_id = (await harness.plan(title="Done step", parent=parent_id)).task.id
    await complete(harness, done_id, "alice")
    before = await snapshot(harness.database)
    with pytest.raises(errors.ChildrenOpen) as caught:
        await update(harness, parent_id, status="archived")
    error = caught.value.to_dict()
    assert (error["code"], error["field"], error["value"], error["hint"]) == (
        "children_open",
        "status",
        "archived",
        "orchestrator_delete_task",
    )
    assert error["children"] == [{"task_id": child_id, "status": "pending"}]
    assert await snapshot(harness.database) == before
    # With no open subtask left (cancelled), the parent archives.
    await cancel(harness, child_id)
    assert (await update(harness, parent_id, status="archived")).task.status == "archived"


async def test_reopen_needs_a_reason(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    await complete(harness, task_id, "alice")
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as caught:
        await update(harness, task_id, status="pending")
    assert (caught.value.field, caught.value.value) == ("reason", None)
    assert await snapshot(harness.database) == before


async def test_claim_needs_every_dependency_completed(harness: Harness) -> None:
    await harness.session()
    dep = await new_task(harness, title="dep")
    task_id = await new_task(harness, dependencies=[dep])
    with pytest.raises(errors.DependenciesUnmet) as caught:
        await update(harness, task_id, status="in_progress")
    assert caught.value.to_dict()["blocking"] == [dep]
    await complete(harness, dep, "alice")
    assert (await update(harness, task_id, status="in_progress")).task.status == "in_progress"


async def test_another_actor_cannot_move_a_claimed_task(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    claim = (await update(harness, task_id, status="in_progress")).task
    before = await snapshot(harness.database)
    for target in ("pending", "failed", "blocked", "in_progress"):
        with pytest.raises(errors.ClaimedByOther) as caught:
            await update(harness, task_id, "bob", status=target)
        error = caught.value.to_dict()
        assert (error["holder"], error["lease_expires_at"], error["field"]) == (
            "alice",
            claim.lease_expires_at,
            "task_id",
        )
    assert await snapshot(harness.database) == before


async def test_admin_force_overrides_the_claim_and_non_admin_force_is_forbidden(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    await update(harness, task_id, status="in_progress")
    with pytest.raises(errors.Forbidden) as caught:
        await update(harness, task_id, "bob", admin=False, force=True, status="pending")
    assert caught.value.field == "force"
    released = (await update(harness, task_id, "root", force=True, status="pending")).task
    assert (released.status, released.assigned_to) == ("pending", None)


async def test_an_expired_lease_no_longer_protects_the_task(harness: Harness) -> None:
    await harness.session()
    task_id = await new_task(harness)
    await update(harness, task_id, status="in_progress")
    harness.clock.advance(LEASE + 1)
    taken = (await update(harness, task_id, "bob", status="in_progress")).task
    assert (taken.assigned_to, taken.attempt_count) == ("bob", 2)


async def test_dependencies_are_added_and_removed(harness: Harness) -> None:
    await harness.session()
    a, b, c = [await new_task(harness, title=t) for t in "abc"]
    added = await update(harness, c, add_dependencies=[a, b, a])
    assert added.changed == ["add_dependencies"]
    assert sorted(added.task.dependencies) == sorted([a, b]) and added.task.ready is False
    await complete(harness, a, "alice")
    removed = await update(harness, c, remove_dependencies=[b])
    assert removed.changed == ["remove_dependencies"]
    assert (removed.task.dependencies, removed.task.blocked_by, removed.task.ready) == ([a], [], True)
    assert removed.task.version == 3


async def test_dependencies_are_listed_in_the_order_they_were_given(harness: Harness) -> None:
    """Ids are random, so two opposite orders are tried: at least one differs from id order."""
    await harness.session()
    a, b, c = [await new_task(harness, title=t) for t in "abc"]
    for title, given in (("d", [c, a, b]), ("e", [b, a, c])):
        task = await new_task(harness, title=title)
        first = await update(harness, task, add_dependencies=given[:2])
        harness.clock.advance(1)
        later = await update(harness, task, add_dependencies=[given[2], given[0]])
        assert first.task.dependencies == given[:2]
        assert later.task.dependencies == given  # a later call's edges come after, the repeated one stays
    steps = [{"title": t, "description": f"Do {t}.", "key": t} for t in "xyz"]
    planned = await harness.plan(
        subtasks=[*steps, {"title": "w", "description": "Do w.", "depends_on": ["z", "x", "y"]}]
    )
    _, x, y, z, w = planned.created
    assert w.dependencies == [z.id, x.id, y.id]  # plan_task keeps the order of depends_on too


async def test_edges_that_already_exist_or_do_not_exist_change_nothing(harness: Harness) -> None:
    await harness.session()
    a, b, c = [await new_task(harness, title=t) for t in "abc"]
    await update(harness, c, add_dependencies=[a])
    before = await snapshot(harness.database)
    again = await update(harness, c, add_dependencies=[a], remove_dependencies=[b])
    assert (again.changed, again.task.version, again.task.dependencies) == ([], 2, [a])
    assert await snapshot(harness.database) == before
    mixed = await update(harness, c, add_dependencies=[a, b])
    assert (mixed.changed, mixed.task.version, sorted(mixed.task.dependencies)) == (
        ["add_dependencies"],
        3,
        sorted([a, b]),
    )


@pytest.mark.parametrize(
    ("edges", "source", "add", "cycle"),
    [
        ([("a", "b")], "b", ["a"], ["b", "a", "b"]),
        ([("a", "b"), ("b", "c")], "c", ["a"], ["c", "a", "b", "c"]),
        ([("a", "b"), ("b", "c")], "c", ["d", "d", "a"], ["c", "a", "b", "c"]),
    ],
    ids=["two", "three", "third-argument"],
)
async def test_a_dependency_closing_a_cycle_is_refused_with_the_cycle(
    harness: Harness, edges: list[tuple[str, str]], source: str, add: list[str], cycle: list[str]
) -> None:
    await harness.session()
    ids = {name: await new_task(harness, title=name) for name in "abcd"}
    for task, dep in edges:
        await update(harness, ids[task], add_dependencies=[ids[dep]])
    before = await snapshot(harness.database)
    with pytest.raises(errors.DependencyCycle) as caught:
        await update(harness, ids[source], add_dependencies=[ids[n] for n in add], title="not applied")
    assert (caught.value.field, caught.value.value) == (f"add_dependencies[{add.index('a')}]", ids["a"])
    assert caught.value.to_dict()["cycle"] == [ids[n] for n in cycle]
    assert await snapshot(harness.database) == before


async def test_bad_dependencies_name_their_index(harness: Harness) -> None:
    await harness.session("bob", "/work/other")
    foreign = await new_task(harness, "bob")
    await harness.session()
    task_id, other = await new_task(harness), await new_task(harness)
    missing = "task_00000000000000aa"
    cases = [
        ([other, other, missing], errors.NotFound, "add_dependencies[2]"),
        ([foreign], errors.InvalidArgument, "add_dependencies[0]"),
    ]
    before = await snapshot(harness.database)
    for add, kind, field in cases:
        with pytest.raises(kind) as caught:
            await update(harness, task_id, add_dependencies=add)
        assert (caught.value.field, caught.value.value) == (field, add[int(field[-2])])
    assert await snapshot(harness.database) == before


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


@pytest.mark.parametrize("claimed", [False, True], ids=["pending", "in_progress"])
async def test_update_to_completed_is_invalid_transition_naming_complete_task(harness: Harness, claimed: bool) -> None:
    await harness.session()
    task_id = await new_task(harness)
    if claimed:
        await update(harness, task_id, status="in_progress")
    current = "in_progress" if claimed else "pending"
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidTransition) as caught:
        await update(harness, task_id, status="completed", title="not applied either")
    error = caught.value.to_dict()
    allowed = (
        ["pending", "in_progress", "blocked", "failed", "cancelled"]
        if claimed
        else ["in_progress", "blocked", "cancelled", "archived"]
    )
    assert {k: error[k] for k in ("code", "field", "value", "allowed", "current", "requested", "hint")} == {
        "code": "invalid_transition",
        "field": "status",
        "value": "completed",
        "allowed": allowed,
        "current": current,
        "requested": "completed",
        "hint": "orchestrator_complete_task",
    }
    assert "orchestrator_complete_task" in error["message"]
    assert await snapshot(harness.database) == before


async def test_a_task_depending_on_itself_is_a_dependency_cycle(harness: Harness) -> None:
    await harness.session()
    task_id, other = await new_task(harness), await new_task(harness)
    before = await snapshot(harness.database)
    with pytest.raises(errors.DependencyCycle) as caught:
        await update(harness, task_id, add_dependencies=[other, task_id])
    error = caught.value.to_dict()
    assert (error["code"], error["field"], error["value"], error["cycle"]) == (
        "dependency_cycle",
        "add_dependencies[1]",
        task_id,
        [task_id, task_id],
    )
    assert await snapshot(harness.database) == before


async def test_a_subtask_depending_on_its_ancestor_is_a_dependency_cycle(harness: Harness) -> None:
    """The ancestor waits for the subtask, so the subtask could never start: a loop of waits."""
    await harness.session()
    plan = await harness.plan(
        title="Root",
        subtasks=[{"title": "Mid", "description": "m", "subtasks": [{"title": "Leaf", "description": "l"}]}],
    )
    root, mid, leaf = (t.id for t in plan.created)
    before = await snapshot(harness.database)
    with pytest.raises(errors.DependencyCycle) as caught:
        await update(harness, leaf, add_dependencies=[root])
    error = caught.value.to_dict()
    assert (error["field"], error["value"], error["cycle"]) == ("add_dependencies[0]", root, [leaf, root, mid, leaf])
    assert await snapshot(harness.database) == before
    # The other way round is only redundant (a parent waits for its subtasks anyway), not a loop.
    assert (await update(harness, root, add_dependencies=[leaf])).changed == ["add_dependencies"]
