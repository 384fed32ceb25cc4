"""The session and maintenance tools over real HTTP with the real MCP client, on both eras and backends.

The server runs with a manual clock so leases and idle sessions age on command; each test first waits
for the maintenance monitor's start-up pass, so nothing else writes while a dry run is being compared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from app.domain.clock import ManualClock
from app.runtime.maintenance_monitor import MaintenanceMonitor
from app.settings import Settings
from tests.support.mcp import call_error, call_ok
from tests.support.rows import table_snapshot
from tests.support.server import RunningServer, client, serve

pytestmark = pytest.mark.anyio
DAY = 86400


@dataclass
class Clocked:
    server: RunningServer
    clock: ManualClock
    monitor: MaintenanceMonitor

    async def snapshot(self) -> dict[str, Any]:
        return await table_snapshot(self.server.runtime.database)


@pytest.fixture
async def clocked(database_url: str, tmp_path: Path) -> AsyncIterator[Clocked]:
    clock = ManualClock()
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings, clock=clock) as running:
        monitor = cast(MaintenanceMonitor, running.runtime.supervisor.get("maintenance"))
        await monitor.wait_for_runs(1)
        yield Clocked(running, clock, monitor)


async def test_list_resume_and_status_over_mcp(clocked: Clocked, era: str) -> None:
    async with client(clocked.server, era) as c:
        init = await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/repo/a")
        sid = init["session"]["id"]
        plan = await call_ok(
            c,
            "orchestrator_plan_task",
            agent="alice",
            title="Root",
            description="r",
            subtasks=[
                {"key": "a", "title": "A", "description": "a"},
                {"title": "B", "description": "b", "depends_on": ["a"]},
            ],
        )
        _, a, b = plan["created"]
        await call_ok(c, "orchestrator_initialize_session", agent="bob", working_directory="/repo/a")
        clocked.clock.advance(30)
        await call_ok(c, "orchestrator_update_task", agent="carol", task_id=a["id"], status="in_progress")
        await call_ok(c, "orchestrator_update_task", agent="alice", task_id=b["id"], title="B, renamed")

        resumed = await call_ok(c, "orchestrator_resume_session", agent="bob", session_id=sid)
        assert [(e["kind"], e["task_id"], e["actor"]) for e in resumed["recent_events"]] == [
            ("status_changed", a["id"], "carol"),
            ("task_updated", a["id"], "carol"),
            ("task_updated", b["id"], "alice"),
        ]
        assert [(t["id"], t["holder"], t["lease_live"]) for t in resumed["in_progress"]] == [(a["id"], "carol", True)]
        assert resumed["ready_next"] == []  # A is held, B waits for A, Root waits for its subtasks
        assert (resumed["blocked"], resumed["latest_handover"], resumed["recent_events_omitted"]) == ([], None, 0)
        again = await call_ok(c, "orchestrator_resume_session", agent="bob", session_id=sid)
        assert again["recent_events"] == []

        await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/repo/b")
        listed = await call_ok(c, "orchestrator_list_sessions", limit=1)
        assert listed["total_count"] == 2 and len(listed["sessions"]) == 1
        page = await call_ok(c, "orchestrator_list_sessions", working_directory="/repo/a")
        assert [(s["id"], s["counts"]) for s in page["sessions"]] == [
            (sid, {"by_status": {"pending": 2, "in_progress": 1}, "total": 3})
        ]
        status = await call_ok(c, "orchestrator_session_status", session_id=sid)
        assert status["counts"] == {
            "by_status": {"pending": 2, "in_progress": 1},
            "by_specialist": {"generic": 3},
            "total": 3,
        }
        assert status["progress_ratio"] == 0.0
        assert [(x["actor"], x["holding"]) for x in status["active_agents"]] == [("bob", []), ("carol", [a["id"]])]

        unknown = await call_error(c, "orchestrator_resume_session", agent="bob", session_id="sess_0000000000000000")
        assert (unknown["code"], unknown["field"]) == ("not_found", "session_id")
        bad = await call_error(c, "orchestrator_list_sessions", limit=500)
        assert (bad["code"], bad["field"]) == ("invalid_argument", "limit")


async def test_cleanup_sessions_every_type_over_mcp(clocked: Clocked, era: str) -> None:
    async with client(clocked.server, era) as c:
        old = (await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/old"))["session"][
            "id"
        ]
        await call_ok(c, "orchestrator_plan_task", agent="alice", title="Forgotten", description="f")
        clocked.clock.advance(10 * DAY)
        done = (await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/done"))[
            "session"
        ]["id"]
        task = (await call_ok(c, "orchestrator_plan_task", agent="alice", title="Done", description="d"))["task"]
        await call_ok(
            c,
            "orchestrator_complete_task",
            agent="alice",
            task_id=task["id"],
            summary="Done.",
            detailed_work="All of it.",
            next_action="complete",
        )
        empty = (await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/empty"))[
            "session"
        ]["id"]

        before = await clocked.snapshot()
        expected = {"completed": [done], "orphaned": [empty], "old": [old], "all": [old, done, empty]}
        for cleanup_type, sessions in expected.items():
            preview = await call_ok(c, "orchestrator_cleanup_sessions", agent="admin", cleanup_type=cleanup_type)
            assert (preview["dry_run"], preview["changed_count"]) == (True, 0)
            assert sorted(m["session_id"] for m in preview["matched"]) == sorted(sessions), cleanup_type
        assert await clocked.snapshot() == before  # four dry runs wrote nothing at all

        archived = await call_ok(c, "orchestrator_cleanup_sessions", agent="admin", cleanup_type="old", dry_run=False)
        assert (archived["matched"], archived["changed_count"]) == (
            [{"session_id": old, "name": "old", "reason": "old", "detail": "no activity since 2026-01-01T00:00:00Z"}],
            1,
        )
        deleted = await call_ok(
            c, "orchestrator_cleanup_sessions", agent="admin", cleanup_type="all", action="delete", dry_run=False
        )
        assert sorted(m["session_id"] for m in deleted["matched"]) == sorted([old, done, empty])
        listed = await call_ok(c, "orchestrator_list_sessions", include_completed=True)
        assert listed == {"sessions": [], "total_count": 0}
        bad = await call_error(c, "orchestrator_cleanup_sessions", cleanup_type="stale")
        assert (bad["code"], bad["field"], bad["allowed"]) == (
            "invalid_argument",
            "cleanup_type",
            ["completed", "orphaned", "old", "all"],
        )


async def test_every_maintenance_action_over_mcp(clocked: Clocked, era: str) -> None:
    async with client(clocked.server, era) as c:
        sid = (await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/m"))["session"][
            "id"
        ]
        plan = await call_ok(
            c,
            "orchestrator_plan_task",
            agent="alice",
            title="Release",
            description="r",
            subtasks=[{"title": "API", "description": "a"}, {"title": "Docs", "description": "d", "priority": "high"}],
        )
        root, api, docs = plan["created"]
        await call_ok(c, "orchestrator_update_task", agent="bob", task_id=api["id"], status="in_progress")

        # prepare_handover names bob's claim; resume_session returns that very document.
        handover = await call_ok(c, "orchestrator_maintenance_coordinator", agent="alice", action="prepare_handover")
        assert handover["artifact"]["kind"] == "handover" and handover["dry_run"] is False
        assert f"- bob holds **API** (`{api['id']}`)" in handover["artifact"]["content"]
        assert f"1. **Docs** (`{docs['id']}`): high priority" in handover["artifact"]["content"]
        resumed = await call_ok(c, "orchestrator_resume_session", agent="carol", session_id=sid)
        assert resumed["latest_handover"] == handover["artifact"]

        report = await call_ok(c, "orchestrator_maintenance_coordinator", agent="alice", action="update_documentation")
        assert report["artifact"]["kind"] == "report"
        assert f"  - [~] **API** (`{api['id']}`): in_progress, held by bob" in report["artifact"]["content"]

        clocked.clock.advance(DAY)  # bob's lease runs out
        before = await clocked.snapshot()
        preview = await call_ok(
            c, "orchestrator_maintenance_coordinator", agent="alice", action="scan_cleanup", dry_run=True
        )
        assert await clocked.snapshot() == before
        assert [(f["kind"], f["task_ids"]) for f in preview["found"]] == [("expired_lease", [api["id"]])]
        fixed = await call_ok(c, "orchestrator_maintenance_coordinator", agent="alice", action="scan_cleanup")
        assert [(f["kind"], f["task_ids"]) for f in fixed["fixed"]] == [("expired_lease", [api["id"]])]

        valid = await call_ok(
            c,
            "orchestrator_maintenance_coordinator",
            agent="alice",
            action="validate_structure",
            validation_level="full_audit",
            scope="full_project",
        )
        assert (valid["issues"], valid["found"], valid["fixed"], valid["artifact"]) == ([], [], [], None)

        subtree = await call_ok(
            c,
            "orchestrator_maintenance_coordinator",
            agent="alice",
            action="update_documentation",
            scope="specific_subtask",
            target_task_id=docs["id"],
        )
        assert subtree["artifact"]["task_id"] == docs["id"] and "**Release**" not in subtree["artifact"]["content"]
        missing = await call_error(
            c, "orchestrator_maintenance_coordinator", agent="alice", action="scan_cleanup", scope="specific_subtask"
        )
        assert (missing["code"], missing["field"]) == ("invalid_argument", "target_task_id")
        assert root["id"] != docs["id"]


async def test_the_maintenance_monitor_runs_under_the_supervisor_and_records_each_run(
    clocked: Clocked, era: str
) -> None:
    async with client(clocked.server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", agent="alice", working_directory="/mon")
        task = (await call_ok(c, "orchestrator_plan_task", agent="alice", title="T", description="t"))["task"]
        await call_ok(c, "orchestrator_update_task", agent="bob", task_id=task["id"], status="in_progress")
        clocked.clock.advance(DAY)
        clocked.server.runtime.supervisor.wake("maintenance")
        await clocked.monitor.wait_for_runs(2)
        page = await call_ok(c, "orchestrator_query_tasks", agent="alice")
        assert [(t["status"], t["assigned_to"]) for t in page["tasks"]] == [("pending", None)]
    runs = [row for row in (await clocked.snapshot())["system_event"] if row[1] == "maintenance_run"]
    assert [(r[2], r[4]["trigger"], r[4]["fixed"]) for r in runs] == [
        ("system:maintenance", "monitor", {}),
        ("system:maintenance", "monitor", {"expired_lease": 1}),
    ]
    assert clocked.server.runtime.supervisor.status()["maintenance"].last_error is None


async def test_the_new_tools_declare_their_annotations(clocked: Clocked, era: str) -> None:
    async with client(clocked.server, era) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    hints = {
        name: (tools[name].annotations.read_only_hint, tools[name].annotations.destructive_hint)  # type: ignore[union-attr]
        for name in (
            "orchestrator_list_sessions",
            "orchestrator_resume_session",
            "orchestrator_session_status",
            "orchestrator_cleanup_sessions",
            "orchestrator_maintenance_coordinator",
        )
    }
    assert hints == {
        "orchestrator_list_sessions": (True, False),
        "orchestrator_resume_session": (False, False),
        "orchestrator_session_status": (True, False),
        "orchestrator_cleanup_sessions": (False, True),
        "orchestrator_maintenance_coordinator": (False, True),
    }
    schema = tools["orchestrator_maintenance_coordinator"].input_schema
    assert schema["required"] == ["action"]
    assert schema["properties"]["scope"]["default"] == "current_session"
