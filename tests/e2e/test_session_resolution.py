"""One session per actor on every call (DESIGN §3 Actors), resume in one call (§4.3), summary rows (§4.1)."""

from __future__ import annotations

import pytest
from mcp.types import Implementation

from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio


async def test_a_read_without_session_id_finds_the_session_the_same_agent_started(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        started = await call_ok(c, "orchestrator_initialize_session", working_directory="/a", agent="ann")
        await call_ok(c, "orchestrator_initialize_session", working_directory="/b", agent="bob")
        status = await call_ok(c, "orchestrator_session_status", agent="ann")
        board = await call_ok(c, "orchestrator_get_status", agent="ann")
    assert status["session"]["id"] == started["session"]["id"] == board["session"]["id"]


async def test_a_new_agent_of_the_same_client_falls_back_to_its_only_active_session(
    server: RunningServer, era: str
) -> None:
    async with client(server, era, client_info=Implementation(name="ide", version="1")) as c:
        started = await call_ok(c, "orchestrator_initialize_session", working_directory="/only")
        found = await call_ok(c, "orchestrator_query_tasks", agent="newcomer")
        status = await call_ok(c, "orchestrator_session_status", agent="newcomer")
    assert (found["tasks"], found["total_count"]) == ([], 0)
    assert status["session"]["id"] == started["session"]["id"]


async def test_without_a_session_and_several_to_choose_from_the_error_lists_them(
    server: RunningServer, era: str
) -> None:
    async with client(server, era, client_info=Implementation(name="ide", version="1")) as c:
        first = await call_ok(c, "orchestrator_initialize_session", working_directory="/one")
        second = await call_ok(c, "orchestrator_initialize_session", working_directory="/two", new_session=True)
        error = await call_error(c, "orchestrator_query_tasks", agent="stranger")
    assert (error["code"], error["field"], error["hint"]) == (
        "invalid_argument",
        "session_id",
        "orchestrator_initialize_session",
    )
    assert sorted(error["allowed"]) == sorted([first["session"]["id"], second["session"]["id"]])
    assert "orchestrator_initialize_session" in error["message"]


async def test_resume_from_a_fresh_connection_returns_the_held_briefs_and_what_waits(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/resume", agent="ann")
        plan = await call_ok(
            c,
            "orchestrator_plan_task",
            title="Root",
            description="D.",
            agent="ann",
            subtasks=[
                {"key": "a", "title": "A", "description": "D."},
                {"key": "b", "title": "B", "description": "D.", "depends_on": ["a"]},
            ],
        )
        ids = {t["title"]: t["id"] for t in plan["created"]}
        claimed = await call_ok(c, "orchestrator_execute_task", task_id=ids["A"], agent="ann")
    async with client(server, era) as fresh:
        resumed = await call_ok(fresh, "orchestrator_resume_session", agent="ann")
        brief = await call_ok(fresh, "orchestrator_execute_task", task_id=claimed["task"]["id"], agent="ann")
    assert claimed["task"]["id"] == ids["A"]
    assert [h["task"]["id"] for h in resumed["held"]] == [ids["A"]]
    held = resumed["held"][0]
    # The same brief execute_task gives (the renewal moved only the lease times).
    assert (held["specialist"]["role"], held["dependencies"], held["parent"], held["claim"]["holder"]) == (
        brief["specialist"]["role"],
        brief["dependencies"],
        brief["parent"],
        "ann",
    )
    assert resumed["in_progress"] == []
    assert sorted(
        (w["id"], w["why"]["dependencies"], sorted(w["why"]["children"])) for w in resumed["waiting"]
    ) == sorted([(ids["Root"], [], sorted([ids["A"], ids["B"]])), (ids["B"], [ids["A"]], [])])


async def test_query_tasks_gives_summary_rows_whole_tasks_and_named_tasks(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/q", agent="ann")
        planned = await call_ok(c, "orchestrator_plan_task", title="Only", description="D.", agent="ann")
        summary = await call_ok(c, "orchestrator_query_tasks", agent="ann")
        full = await call_ok(c, "orchestrator_query_tasks", agent="ann", view="full")
        named = await call_ok(c, "orchestrator_query_tasks", task_ids=[planned["task"]["id"]])
        too_many = await call_error(c, "orchestrator_query_tasks", agent="ann", view="full", limit=101)
    task = planned["task"]
    row = {
        k: task[k]
        for k in (
            "id",
            "parent_id",
            "title",
            "status",
            "ready",
            "priority",
            "specialist_type",
            "task_type",
            "assigned_to",
            "lease_expires_at",
            "open_children",
            "blocked_by",
            "version",
            "created_at",
            "updated_at",
        )
    }
    page = {"total_count": 1, "limit": 50, "offset": 0, "next_offset": None}
    assert summary == {"tasks": [row], **page}
    assert full == {"tasks": [{**task, "children": None, "artifacts": None}], **page}
    assert named == full
    assert (too_many["code"], too_many["field"]) == ("invalid_argument", "limit")


async def test_an_archived_session_takes_no_work_and_the_agent_moves_to_a_new_one(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        old = (await call_ok(c, "orchestrator_initialize_session", working_directory="/gone", agent="ann"))["session"]
        cleaned = await call_ok(c, "orchestrator_cleanup_sessions", cleanup_type="orphaned", dry_run=False)
        named = await call_error(
            c, "orchestrator_plan_task", title="T", description="D.", session_id=old["id"], agent="ann"
        )
        claimed = await call_error(c, "orchestrator_next_task", session_id=old["id"], agent="ann")
        current = await call_error(c, "orchestrator_plan_task", title="T", description="D.", agent="ann")
        new = (await call_ok(c, "orchestrator_initialize_session", working_directory="/gone", agent="ann"))["session"]
        planned = await call_ok(c, "orchestrator_plan_task", title="T", description="D.", agent="ann")
    assert [m["session_id"] for m in cleaned["matched"]] == [old["id"]]
    for error in (named, claimed):
        assert (error["code"], error["field"], error["value"], error["hint"], error["session_status"]) == (
            "invalid_argument",
            "session_id",
            old["id"],
            "orchestrator_initialize_session",
            "archived",
        )
    # The archived current session counts as none, so nothing is planned into it.
    assert (current["code"], current["field"], current["hint"]) == (
        "invalid_argument",
        "session_id",
        "orchestrator_initialize_session",
    )
    assert new["id"] != old["id"] and planned["task"]["session_id"] == new["id"]
