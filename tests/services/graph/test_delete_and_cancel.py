"""delete_task and cancel_task on both backends: archive, hard delete, cascade, artifacts, claims."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import errors
from app.db.models import Artifact, TaskDependency, TaskEvent
from app.db.repositories import Repositories
from app.services.artifacts import new_artifact
from tests.support.calls import cancel, delete, query, update
from tests.support.execution import complete
from tests.support.harness import Harness
from tests.support.snapshot import snapshot

pytestmark = pytest.mark.anyio


def node(title: str, **fields: Any) -> dict[str, Any]:
    return {"title": title, "description": f"Do {title}.", **fields}


async def tree(h: Harness) -> dict[str, str]:
    """root -> (a -> (a1, a2), b); ids by title."""
    result = await h.plan(title="root", subtasks=[node("a", subtasks=[node("a1"), node("a2")]), node("b")])
    return {t.title: t.id for t in result.created}


async def add_artifact(h: Harness, task_id: str, kind: str = "code", name: str = "work") -> str:
    async def work(repos: Repositories) -> str:
        task = await repos.tasks.get(task_id)
        assert task is not None
        row = new_artifact(
            session_id=task.session_id,
            task_id=task_id,
            kind=kind,
            name=name,
            content="x",
            actor="alice",
            at=h.clock.now(),
        )
        await repos.artifacts.insert(row)
        return row.id

    return await h.uow.run(work)


async def rows(h: Harness, model: Any) -> list[Any]:
    async def work(repos: Repositories) -> list[Any]:
        return list((await repos.session.scalars(select(model))).all())

    return await h.uow.run(work, write=False)


async def statuses(h: Harness) -> dict[str, str]:
    return {t.title: t.status for t in (await query(h)).tasks}


# --- delete_task: archive ------------------------------------------------------------------------


async def test_archive_moves_the_whole_subtree_and_skips_what_is_archived(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    await complete(harness, ids["a1"], "alice")
    await cancel(harness, ids["b"])
    await delete(harness, ids["a2"])
    result = await delete(harness, ids["root"])
    assert result.action == "archived" and result.task_id == ids["root"]
    assert sorted(result.affected) == sorted(ids[n] for n in ("root", "a", "a1", "b"))
    assert await statuses(harness) == dict.fromkeys(("root", "a", "a1", "a2", "b"), "archived")
    archived = {t.title: t for t in (await query(harness)).tasks}
    assert archived["root"].version == 2 and archived["a2"].version == 2  # a2 was archived once, by itself


async def test_archive_of_a_leaf_leaves_its_parent_alone(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    assert (await delete(harness, ids["a1"])).affected == [ids["a1"]]
    assert (await statuses(harness))["a"] == "pending"


async def test_archive_refuses_work_in_progress_unless_forced(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    await update(harness, ids["a1"], status="in_progress")
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidTransition) as own:
        await delete(harness, ids["root"])
    assert own.value.to_dict()["current"] == "in_progress"
    with pytest.raises(errors.ClaimedByOther) as other:
        await delete(harness, ids["root"], "bob")
    assert other.value.to_dict()["holder"] == "alice"
    with pytest.raises(errors.Forbidden):
        await delete(harness, ids["root"], "bob", admin=False, force=True)
    assert await snapshot(harness.database) == before
    released_before = harness.metrics.registry.get_sample_value("orchestrator_claims_total", {"outcome": "released"})
    result = await delete(harness, ids["root"], "root", force=True)
    assert sorted(result.affected) == sorted(ids.values())
    task = next(t for t in (await query(harness)).tasks if t.id == ids["a1"])
    assert (task.status, task.assigned_to, task.lease_expires_at) == ("archived", None, None)
    # The set-aside claim is counted and recorded like any other release.
    released = harness.metrics.registry.get_sample_value("orchestrator_claims_total", {"outcome": "released"})
    assert (released or 0) - (released_before or 0) == 1
    [event] = [e for e in await rows(harness, TaskEvent) if e.task_id == ids["a1"] and e.data.get("to") == "archived"]
    assert (event.actor, event.data["released_claim_of"]) == ("root", "alice")


# --- delete_task: hard delete --------------------------------------------------------------------


async def test_hard_delete_of_a_leaf_removes_it_and_its_own_edges(harness: Harness) -> None:
    await harness.session()
    dep = (await harness.plan(title="dep")).task.id
    leaf = (await harness.plan(title="leaf", dependencies=[dep])).task.id
    await add_artifact(harness, leaf)
    result = await delete(harness, leaf, archive_instead=False)
    assert result.model_dump() == {"task_id": leaf, "action": "deleted", "affected": [leaf]}
    assert [t.id for t in (await query(harness)).tasks] == [dep]
    assert await rows(harness, TaskDependency) == [] and await rows(harness, Artifact) == []
    deleted_events = [e for e in await rows(harness, TaskEvent) if e.kind == "task_deleted"]
    assert [(e.task_id, e.actor) for e in deleted_events] == [(leaf, "alice")]


async def test_hard_delete_is_refused_with_children_or_dependents_unless_forced(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    dependent = (await harness.plan(title="dependent", dependencies=[ids["b"]])).task.id
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidArgument) as children:
        await delete(harness, ids["a"], archive_instead=False)
    assert (children.value.field, children.value.value) == ("force", False)
    with pytest.raises(errors.InvalidArgument) as dependents:
        await delete(harness, ids["b"], archive_instead=False)
    assert (dependents.value.field, dependents.value.to_dict()["dependents"]) == ("force", [dependent])
    with pytest.raises(errors.Forbidden):
        await delete(harness, ids["a"], admin=False, archive_instead=False, force=True)
    assert await snapshot(harness.database) == before


async def test_forced_hard_delete_removes_the_subtree_its_edges_and_its_artifacts(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    outside = (await harness.plan(title="outside")).task.id
    # Edges into, out of and inside the subtree.
    await update(harness, outside, add_dependencies=[ids["a1"]])
    await update(harness, ids["a2"], add_dependencies=[ids["a1"], ids["b"]])
    await update(harness, ids["a"], add_dependencies=[outside])
    kept = await add_artifact(harness, ids["b"])
    for name in ("a", "a1", "a2"):
        await add_artifact(harness, ids[name])
    await cancel(harness, ids["a2"])  # adds a cancellation artifact in the subtree too
    result = await delete(harness, ids["a"], archive_instead=False, force=True)
    assert result.action == "deleted"
    assert sorted(result.affected) == sorted([ids["a"], ids["a1"], ids["a2"]])
    assert sorted(t.title for t in (await query(harness)).tasks) == ["b", "outside", "root"]
    assert await rows(harness, TaskDependency) == []
    assert [a.id for a in await rows(harness, Artifact)] == [kept]
    remaining = {t.title: t for t in (await query(harness, view="full", limit=100)).tasks}
    assert (remaining["outside"].dependencies, remaining["outside"].ready) == ([], True)


async def test_hard_delete_is_refused_while_another_actor_holds_the_task(harness: Harness) -> None:
    await harness.session()
    task_id = (await harness.plan()).task.id
    await update(harness, task_id, "bob", status="in_progress")
    with pytest.raises(errors.ClaimedByOther) as caught:
        await delete(harness, task_id, archive_instead=False)
    assert caught.value.to_dict()["holder"] == "bob"
    assert (await delete(harness, task_id, archive_instead=False, force=True)).affected == [task_id]


async def test_delete_of_an_unknown_task_is_not_found(harness: Harness) -> None:
    await harness.session()
    for archive in (True, False):
        with pytest.raises(errors.NotFound) as caught:
            await delete(harness, "task_0000000000000000", archive_instead=archive)
        assert caught.value.field == "task_id"


# --- cancel_task ---------------------------------------------------------------------------------


async def test_cancel_records_why_in_a_cancellation_artifact(harness: Harness) -> None:
    await harness.session()
    task_id = (await harness.plan(title="t")).task.id
    harness.clock.advance(5)
    result = await cancel(harness, task_id, reason="Out of scope", request_id="c-1")
    assert (result.previous_status, result.cancelled, result.dependents_now_blocked) == ("pending", [task_id], [])
    assert (result.task.status, result.task.version) == ("cancelled", 2)
    [artifact] = await rows(harness, Artifact)
    assert (artifact.task_id, artifact.kind, artifact.content, artifact.created_by) == (
        task_id,
        "cancellation",
        "Out of scope",
        "alice",
    )
    assert await cancel(harness, task_id, reason="Out of scope", request_id="c-1") == result


async def test_cancel_without_cascade_leaves_descendants_open(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    result = await cancel(harness, ids["a"])
    assert result.cancelled == [ids["a"]]
    assert (await statuses(harness))["a1"] == "pending"


async def test_cascade_cancels_only_the_open_descendants(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    await complete(harness, ids["a1"], "alice")
    await update(harness, ids["b"], status="in_progress")
    result = await cancel(harness, ids["root"], cascade=True, reason="Project dropped")
    assert result.cancelled[0] == ids["root"]
    assert sorted(result.cancelled) == sorted(ids[n] for n in ("root", "a", "a2", "b"))
    assert await statuses(harness) == {
        "root": "cancelled",
        "a": "cancelled",
        "a1": "completed",
        "a2": "cancelled",
        "b": "cancelled",
    }
    b = next(t for t in (await query(harness)).tasks if t.id == ids["b"])
    assert (b.assigned_to, b.lease_expires_at) == (None, None)
    cancellations = [a.task_id for a in await rows(harness, Artifact) if a.kind == "cancellation"]
    assert sorted(cancellations) == sorted(result.cancelled)


async def test_preserve_work_false_removes_artifacts_but_keeps_the_cancellation(harness: Harness) -> None:
    await harness.session()
    kept_task, wiped_task = (await harness.plan(title="keep")).task.id, (await harness.plan(title="wipe")).task.id
    kept = await add_artifact(harness, kept_task)
    await add_artifact(harness, wiped_task, "code")
    await add_artifact(harness, wiped_task, "analysis")
    await cancel(harness, kept_task)
    await cancel(harness, wiped_task, preserve_work=False, reason="Start over")
    by_task = {(a.task_id, a.kind) for a in await rows(harness, Artifact)}
    assert by_task == {(kept_task, "code"), (kept_task, "cancellation"), (wiped_task, "cancellation")}
    assert kept in {a.id for a in await rows(harness, Artifact)}


async def test_dependents_left_waiting_on_a_cancelled_task_are_reported(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    open_dep = (await harness.plan(title="open", dependencies=[ids["a1"]])).task.id
    done_dep = (await harness.plan(title="done")).task.id
    await update(harness, done_dep, add_dependencies=[ids["a1"]])
    await update(harness, ids["a1"], status="in_progress")
    await complete(harness, ids["a1"], "alice")
    await complete(harness, done_dep, "alice")
    await update(harness, ids["a1"], status="pending", reason="redo")
    # a2 (inside the cascade) also waits on a1; it is cancelled, so it is not "now blocked".
    await update(harness, ids["a2"], add_dependencies=[ids["a1"]])
    result = await cancel(harness, ids["a"], cascade=True)
    assert result.dependents_now_blocked == [open_dep]


@pytest.mark.parametrize("closed", ["completed", "cancelled", "archived", "failed"])
async def test_a_closed_task_cannot_be_cancelled(harness: Harness, closed: str) -> None:
    await harness.session()
    task_id = (await harness.plan()).task.id
    if closed == "completed":
        await complete(harness, task_id, "alice")
    elif closed == "cancelled":
        await cancel(harness, task_id)
    elif closed == "archived":
        await delete(harness, task_id)
    else:
        await update(harness, task_id, status="in_progress")
        await update(harness, task_id, status="failed")
    before = await snapshot(harness.database)
    with pytest.raises(errors.InvalidTransition) as caught:
        await cancel(harness, task_id, reason="too late")
    assert (caught.value.to_dict()["current"], caught.value.value) == (closed, "cancelled")
    assert await snapshot(harness.database) == before


async def test_cancel_of_another_actors_claim_is_refused(harness: Harness) -> None:
    await harness.session()
    ids = await tree(harness)
    await update(harness, ids["a2"], "bob", status="in_progress")
    before = await snapshot(harness.database)
    for task_id, cascade in ((ids["a2"], False), (ids["root"], True)):
        with pytest.raises(errors.ClaimedByOther) as caught:
            await cancel(harness, task_id, cascade=cascade)
        assert caught.value.to_dict()["holder"] == "bob"
    assert await snapshot(harness.database) == before
    own = await cancel(harness, ids["a2"], "bob")
    assert (own.previous_status, own.task.assigned_to) == ("in_progress", None)


async def test_cancel_of_an_unknown_task_is_not_found(harness: Harness) -> None:
    await harness.session()
    with pytest.raises(errors.NotFound) as caught:
        await cancel(harness, "task_0000000000000000")
    assert (caught.value.field, caught.value.value) == ("task_id", "task_0000000000000000")
