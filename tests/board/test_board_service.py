"""BoardService on a real database (both backends) with a manual clock: what the board's pages are made of."""

from __future__ import annotations

import pytest

from app import errors
from app.services.graph.planning import SubtaskSpec
from app.services.sessions.board import (
    ARTIFACT_PREVIEW_CHARS,
    BoardService,
    BoardSession,
    TaskRef,
)
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


def by_id(ref: TaskRef) -> str:
    return ref.id


def board(h: Harness) -> BoardService:
    return BoardService(h.uow, h.clock)


async def plan_tree(h: Harness) -> tuple[str, list[str]]:
    """P with subtasks A and B (B depends on A), and a lone task C; returns the session and the ids."""
    sid = await h.session("lead")
    plan = await h.plan(
        "lead",
        title="P",
        subtasks=[
            SubtaskSpec(key="a", title="A", description="First."),
            SubtaskSpec(title="B", description="Second.", depends_on=["a"]),
        ],
    )
    h.clock.advance(1)
    lone = await h.plan("lead", title="C")
    return sid, [t.id for t in plan.created] + [lone.task.id]


async def test_session_board_puts_each_task_in_its_column_and_says_what_it_waits_on(harness: Harness) -> None:
    sid, (p, a, b, c) = await plan_tree(harness)
    await harness.services.execution.execute_task(caller("coder"), c, lease_seconds=600, request_id=None)
    harness.clock.advance(90)

    shown = await board(harness).session_board(sid)

    assert [t.id for t in shown.ready] == [a]
    # Compared as sets: the order of the waiting list is not what this test is about.
    assert sorted((w.task.id, w.on_dependencies, sorted(w.on_children, key=by_id)) for w in shown.waiting) == sorted(
        [
            (
                p,
                [],
                sorted(
                    [TaskRef(id=a, title="A", status="pending"), TaskRef(id=b, title="B", status="pending")], key=by_id
                ),
            ),
            (b, [TaskRef(id=a, title="A", status="pending")], []),
        ]
    )
    [held] = shown.in_progress
    assert (held.task.id, held.holder, held.lease_seconds_left, held.attempt) == (c, "coder", 510, 1)
    assert (shown.blocked, shown.done, shown.done_omitted) == ([], [], 0)
    assert [(n.task.id, sorted((k.task.id, k.depends_on) for k in n.children)) for n in shown.tree] == [
        (p, sorted([(a, []), (b, [TaskRef(id=a, title="A", status="pending")])])),
        (c, []),
    ]
    assert [(g.actor, g.holding) for g in shown.agents] == [
        ("coder", [TaskRef(id=c, title="C", status="in_progress")]),
        ("lead", []),
    ]
    assert shown.counts.by_status == {"pending": 3, "in_progress": 1}
    assert [e.kind for e in shown.recent_events][:2] == ["status_changed", "task_created"]


async def test_blocked_tasks_show_the_reason_and_finished_ones_move_to_done(harness: Harness) -> None:
    sid, (_p, a, b, c) = await plan_tree(harness)
    await harness.services.execution.execute_task(caller("coder"), c, lease_seconds=600, request_id=None)
    await harness.update("coder", c, status="blocked", reason="Waiting for the staging database.")
    await harness.services.execution.execute_task(caller("coder"), a, lease_seconds=600, request_id=None)
    await harness.services.completion.complete_task(
        caller("coder"),
        a,
        summary="Done A.",
        detailed_work="All of A.",
        next_action="continue",
        file_paths=[],
        artifact_type="general",
        force=False,
        request_id=None,
    )

    shown = await board(harness).session_board(sid)

    assert [(x.task.id, x.reason) for x in shown.blocked] == [(c, "Waiting for the staging database.")]
    assert [(t.id, t.status, t.summary) for t in shown.done] == [(a, "completed", "Done A.")]
    assert [t.id for t in shown.ready] == [b]
    assert shown.progress_ratio == 0.25


async def test_task_detail_shows_dependencies_both_ways_children_and_truncated_artifacts(harness: Harness) -> None:
    _sid, (p, a, b, _c) = await plan_tree(harness)
    await harness.services.execution.execute_task(caller("coder"), a, lease_seconds=600, request_id=None)
    big = "<b>" + "x" * (ARTIFACT_PREVIEW_CHARS + 100)
    await harness.services.completion.complete_task(
        caller("coder"),
        a,
        summary="Done A.",
        detailed_work=big,
        next_action="continue",
        file_paths=["src/a.py"],
        artifact_type="code",
        force=False,
        request_id=None,
    )

    detail = await board(harness).task_detail(a)

    assert detail.parent == TaskRef(id=p, title="P", status="pending")
    assert (detail.depends_on, detail.dependents, detail.children) == (
        [],
        [TaskRef(id=b, title="B", status="pending")],
        [],
    )
    [artifact] = detail.artifacts
    assert (artifact.content, artifact.truncated, artifact.size_bytes, artifact.file_paths) == (
        big[:ARTIFACT_PREVIEW_CHARS],
        True,
        len(big),
        ["src/a.py"],
    )
    assert [e.kind for e in detail.events] == ["status_changed", "status_changed", "task_created"]
    parent = await board(harness).task_detail(p)
    assert sorted(r.id for r in parent.children) == sorted([a, b])
    assert [r.id for r in (await board(harness).task_detail(b)).depends_on] == [a]


async def test_sessions_list_counts_progress_and_active_agents(harness: Harness) -> None:
    sid, (_p, _a, _b, c) = await plan_tree(harness)
    await harness.services.execution.execute_task(caller("coder"), c, lease_seconds=600, request_id=None)

    listed = await board(harness).list_sessions()

    [item] = listed.sessions
    assert isinstance(item, BoardSession)
    assert (item.session.id, item.counts.by_status, item.progress_ratio, item.active_agents) == (
        sid,
        {"pending": 3, "in_progress": 1},
        0.0,
        ["coder", "lead"],
    )


async def test_unknown_ids_are_not_found(harness: Harness) -> None:
    with pytest.raises(errors.SessionNotFound):
        await board(harness).session_board("sess_0000000000000000")
    with pytest.raises(errors.TaskNotFound):
        await board(harness).task_detail("task_0000000000000000")
