"""Every dependency edge records the session of its two tasks (migration 0006), whichever write made it:
get_status's ready set reads a session's edges by that column alone."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.models import TaskDependency
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


async def edge_sessions(h: Harness) -> dict[tuple[str, str], str]:
    async with h.database.engine.connect() as conn:
        rows = await conn.execute(
            select(TaskDependency.task_id, TaskDependency.depends_on_id, TaskDependency.session_id)
        )
        return {(task_id, on): session for task_id, on, session in rows}


async def root_a_b(h: Harness, session_id: str) -> tuple[str, str, str]:
    """A root with subtasks A and B, B depending on A; their ids."""
    planned = await h.plan(
        session_id=session_id,
        title="Root",
        subtasks=[
            {"key": "a", "title": "A", "description": "a"},
            {"title": "B", "description": "b", "depends_on": ["a"]},
        ],
    )
    root, a, b = (t.id for t in planned.created)
    return root, a, b


async def test_plan_and_update_write_each_edge_with_its_tasks_session(harness: Harness) -> None:
    ours = await harness.session("alice", "/repo/ours")
    theirs = await harness.session("bob", "/repo/theirs")
    root, a, b = await root_a_b(harness, ours)
    x = (await harness.plan("bob", session_id=theirs, title="X")).task.id
    y = (await harness.plan("bob", session_id=theirs, title="Y", dependencies=[x])).task.id
    await harness.update("alice", root, add_dependencies=[a])

    assert await edge_sessions(harness) == {(b, a): ours, (root, a): ours, (y, x): theirs}


async def test_a_session_ready_count_ignores_another_sessions_unfinished_dependencies(harness: Harness) -> None:
    sessions = [await harness.session("alice", f"/repo/{n}") for n in ("one", "two")]
    first_steps = [(await root_a_b(harness, sid))[1] for sid in sessions]  # the same shape in both
    await harness.complete("alice", first_steps[0])  # A of the first session only

    boards = {}
    for sid in sessions:
        status = await harness.services.status.get_status(
            caller("alice"),
            session_id=sid,
            include_completed=False,
            include_performance_metrics=False,
            include_resource_usage=False,
        )
        boards[sid] = status.ready

    assert (boards[sessions[0]].count, boards[sessions[0]].waiting_on_dependencies) == (1, 0)  # B is ready
    assert (boards[sessions[1]].count, boards[sessions[1]].waiting_on_dependencies) == (1, 1)  # A ready, B waits
