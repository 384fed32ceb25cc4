"""The lifecycle and health tools over real HTTP, on both eras and both backends: live numbers, not constants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy import text

from app.db import schema
from app.main import server_version
from app.runtime.reboot_manager import ServiceState
from app.settings import Settings
from tests.support.locks import hold_write_lock
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client, serve

pytestmark = pytest.mark.anyio
WAIT = 30


async def readyz(server: RunningServer) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{server.base_url}/readyz")
    return response.status_code, response.json()


async def claimed_task(c: Any, actor: str = "holder") -> dict[str, Any]:
    await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent=actor)
    task = (await call_ok(c, "orchestrator_plan_task", agent=actor, title="Held", description="Being worked on."))[
        "task"
    ]
    return dict(
        (await call_ok(c, "orchestrator_update_task", agent=actor, task_id=task["id"], status="in_progress"))["task"]
    )


BUILTIN_MONITORS = ("lease_sweeper", "maintenance", "schema_watch", "change_listener")


def pop_builtin_monitors(monitors: dict[str, dict[str, object]]) -> None:
    """The built-in monitors are alive and clean (how many runs they finished depends on timing)."""
    for name in BUILTIN_MONITORS:
        state = monitors.pop(name)
        assert (state["alive"], state["failures"], state["last_error"]) == (True, 0, None), name


async def test_health_check_answers_live_checks_of_every_part(server: RunningServer, era: str, backend: str) -> None:
    async with client(server, era) as c:
        report = await call_ok(c, "orchestrator_health_check")
        database = report["checks"]["database"]
        assert database.pop("latency_ms") > 0
        connections = report["checks"]["connections"]
        assert connections["pool"].pop("idle") >= 0
        pop_builtin_monitors(report["checks"]["monitors"]["monitors"])
        # Nothing of this call holds a connection; a background monitor may be mid-run.
        assert 0 <= connections["pool"].pop("checked_out") <= len(BUILTIN_MONITORS)
        assert connections["pool"].pop("capacity") == 2 * server.runtime.settings.db_pool_size
        assert report == {
            "healthy": True,
            "server_version": server_version(),
            "server_instance_id": server.runtime.holder.reboot.instance_id,
            "checks": {
                "database": {
                    "ok": True,
                    "reason": None,
                    "revision": schema.head_revision(),
                    "head": schema.head_revision(),
                    "backend": backend,
                },
                "reboot_manager": {"ok": True, "reason": None, "state": "ready", "problems": {}},
                "monitors": {"ok": True, "reason": None, "monitors": {}},
                "connections": {
                    "ok": True,
                    "reason": None,
                    "in_flight_calls": 0,
                    "pool": {"overflow": 0},
                    "circuit": "closed",
                },
            },
        }
        only_db = await call_ok(
            c, "orchestrator_health_check", include_reboot_readiness=False, include_connection_status=False
        )
        assert only_db["checks"]["reboot_manager"] is None and only_db["checks"]["connections"] is None
        assert only_db["checks"]["monitors"] is None and only_db["checks"]["database"]["ok"] is True


async def test_shutdown_prepare_counts_what_is_running_and_begin_drain_turns_readiness_off(
    server: RunningServer, era: str, database_url: str
) -> None:
    reboot = server.runtime.holder.reboot
    # Legacy sessions other than the caller's own: the extra legacy client, and the writer on that era.
    sessions = 2 if era == "legacy" else 1
    async with client(server, era) as c, client(server, "legacy") as other_session, client(server, era) as writer:
        await claimed_task(c)
        await call_ok(other_session, "orchestrator_health_check")
        idle = await call_ok(c, "orchestrator_shutdown_prepare", check_active_tasks=False)
        assert idle["checks"] == {
            "active_claims": None,
            "in_flight_calls": 0,
            "db_connections_checked_out": 0,
            "open_transactions": 0,
            "mcp_sessions": sessions,
        }
        async with hold_write_lock(database_url) as lock, anyio.create_task_group() as group:

            async def blocked_write() -> None:
                await call_ok(writer, "orchestrator_plan_task", agent="holder", title="Blocked", description="Waits.")

            group.start_soon(blocked_write)
            assert await reboot.wait_until(lambda: reboot.in_flight == 1, WAIT)
            busy = await call_ok(c, "orchestrator_shutdown_prepare")
            await lock.release()
        assert busy["checks"] == {
            "active_claims": 1,
            "in_flight_calls": 1,
            "db_connections_checked_out": 1,
            "open_transactions": 1,
            "mcp_sessions": sessions,
        }
        assert busy["ready_for_shutdown"] is False and busy["draining"] is False
        assert [issue["check"] for issue in busy["blocking_issues"]] == [
            "active_claims",
            "in_flight_calls",
            "open_transactions",
            "mcp_sessions",
        ]

        drained = await call_ok(c, "orchestrator_shutdown_prepare", begin_drain=True, check_active_tasks=False)
        assert drained["draining"] is True and reboot.state == ServiceState.DRAINING
        status, body = await readyz(server)
        assert (status, body["reasons"]) == (503, ["service is draining"])
        refused = await call_error(c, "orchestrator_query_tasks")
        assert (refused["code"], refused["retryable"]) == ("unavailable", True)
        assert (await call_ok(c, "orchestrator_health_check"))["healthy"] is False

        back = await call_ok(c, "orchestrator_restart_server", timeout=10)
        assert back["state"] == "ready"
        assert (await readyz(server))[0] == 200
        events = await server.runtime.components.lifecycle().system_event_data("drain_started", limit=5)
        assert events == [{"trigger": "orchestrator_shutdown_prepare"}]


async def set_revision(server: RunningServer, revision: str) -> None:
    async with server.runtime.database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


async def test_readyz_follows_the_schema_revision_while_serving_behind_ahead_and_back_at_head(
    server: RunningServer, era: str
) -> None:
    # DESIGN §1: ready means "schema at head" now, not only when the service started (a database restored
    # from an older backup; one migrated by a newer build during a rolling upgrade).
    head = schema.head_revision()
    older = sorted(schema.known_revisions())[-2]
    assert (await readyz(server))[0] == 200
    async with client(server, era) as c:
        await set_revision(server, older)
        behind = (
            f"database schema is at {older}, this build needs {head}: run `task-orchestrator migrate` "
            "(or set ORCHESTRATOR_AUTO_MIGRATE=true)"
        )
        assert await readyz(server) == (503, {"ready": False, "state": "ready", "reasons": [f"schema: {behind}"]})
        assert (await call_ok(c, "orchestrator_health_check"))["checks"]["database"]["reason"] == behind

        await set_revision(server, "9999")
        ahead = (
            f"database schema is at 9999, which this build does not know (its newest is {head}): a newer build "
            "migrated this database; run that build (or newer) against it"
        )
        assert await readyz(server) == (503, {"ready": False, "state": "ready", "reasons": [f"schema: {ahead}"]})
        assert (await call_ok(c, "orchestrator_health_check"))["checks"]["database"]["reason"] == ahead

        await set_revision(server, head)  # as `task-orchestrator migrate` would leave it
        assert await readyz(server) == (200, {"ready": True, "state": "ready", "reasons": []})
        assert server.runtime.holder.reboot.problems == {}


async def test_reconnect_test_proves_the_same_session_process_and_claims_after_a_restart(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        held = await claimed_task(c)
        before = await call_ok(c, "orchestrator_reconnect_test", agent="holder")
        assert before["protocol_version"] == ("2025-11-25" if era == "legacy" else "2026-07-28")
        assert (before["mcp_session_id"] is not None) == (era == "legacy")
        assert before["actor"] == "holder"
        assert before["server_instance_id"] == server.runtime.holder.reboot.instance_id
        assert before["database"]["ok"] is True
        assert before["claims"] == [held]

        await call_ok(c, "orchestrator_restart_server", timeout=10, reason="configuration_update")
        after = await call_ok(c, "orchestrator_reconnect_test", agent="holder", session_id=held["session_id"])
        assert after["uptime_seconds"] > before["uptime_seconds"]
        for key in ("protocol_version", "mcp_session_id", "actor", "server_instance_id"):
            assert after[key] == before[key]
        assert after["claims"] == [held]

        other = await call_ok(c, "orchestrator_initialize_session", working_directory="/elsewhere", agent="holder")
        elsewhere = await call_ok(c, "orchestrator_reconnect_test", agent="holder", session_id=other["session"]["id"])
        assert elsewhere["claims"] == []
        missing = await call_error(c, "orchestrator_reconnect_test", session_id="sess_0000000000000000")
        assert (missing["code"], missing["field"]) == ("not_found", "session_id")


async def test_restart_status_before_any_restart_has_nothing_to_report(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        status = await call_ok(c, "orchestrator_restart_status", include_history=True)
        assert status == {"state": "ready", "current": None, "last": None, "history": []}
        assert (await call_ok(c, "orchestrator_restart_status"))["history"] is None


class SwitchableMonitor:
    """A monitor whose run raises while ``failing`` is set."""

    name = "disk-checker"
    interval = 3600.0

    def __init__(self) -> None:
        self.failing = False

    async def run_once(self) -> None:
        if self.failing:
            raise RuntimeError("disk on fire")


async def test_a_monitor_that_raises_makes_readyz_503_naming_it_until_it_runs_clean(
    database_url: str, tmp_path: Path, era: str
) -> None:
    monitor = SwitchableMonitor()
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings, monitors=[monitor]) as server, client(server, era) as c:
        reboot = server.runtime.holder.reboot
        supervisor = server.runtime.supervisor
        assert await reboot.wait_until(lambda: supervisor.status()["disk-checker"].runs == 1, WAIT)
        assert (await readyz(server))[0] == 200

        monitor.failing = True
        supervisor.wake("disk-checker")
        assert await reboot.wait_until(lambda: "monitor disk-checker" in reboot.problems, WAIT)
        assert await readyz(server) == (
            503,
            {"ready": False, "state": "ready", "reasons": ["monitor disk-checker: RuntimeError: disk on fire"]},
        )
        health = await call_ok(c, "orchestrator_health_check")
        assert health["healthy"] is False
        pop_builtin_monitors(health["checks"]["monitors"]["monitors"])
        assert health["checks"]["monitors"] == {
            "ok": False,
            "reason": "disk-checker: RuntimeError: disk on fire",
            "monitors": {
                "disk-checker": {"alive": True, "runs": 1, "failures": 1, "last_error": "RuntimeError: disk on fire"},
            },
        }

        monitor.failing = False
        supervisor.wake("disk-checker")
        assert await reboot.wait_until(lambda: not reboot.problems, WAIT)
        assert (await readyz(server))[0] == 200
