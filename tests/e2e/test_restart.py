"""A warm restart while several clients write: nothing half-done, nothing lost, readiness and history follow.

Every writer's first call is held inside the server by a lock the test takes on the database (no test-only
code in the product), so the restart really finds calls in flight: the graceful drain waits for them, the
abrupt one cancels them (their transactions roll back and their clients get a retryable ``unavailable``,
which they retry with the same request_id).
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest

from app.runtime.reboot_manager import ServiceState
from tests.support.locks import hold_write_lock
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio

WRITERS = 3
PLANS = 3
SUBTASKS = 3
WAIT = 60  # bound on every wait below; they end on events, not on time
PHASES = ["drain", "stop_monitors", "dispose_engine", "rebuild_engine", "schema_check", "start_monitors", "ready"]


async def readyz(server: RunningServer) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{server.base_url}/readyz")
    return response.status_code, response.json()


async def write_plans(server: RunningServer, era: str, name: str, session_id: str, seen: list[dict[str, Any]]) -> None:
    """PLANS plan_task calls with subtasks; an ``unavailable`` is retried with the same request_id once ready."""
    reboot = server.runtime.holder.reboot
    async with client(server, era) as c:
        for index in range(PLANS):
            arguments = {
                "agent": name,
                "session_id": session_id,
                "request_id": f"{name}-{index}",
                "title": f"plan {name} {index}",
                "description": "Planned during a restart.",
                "subtasks": [{"title": f"step {k}", "description": "A step."} for k in range(SUBTASKS)],
            }
            for _attempt in range(20):
                result = await c.call_tool("orchestrator_plan_task", arguments)
                if not result.is_error:
                    assert result.structured_content is not None
                    assert len(result.structured_content["created"]) == 1 + SUBTASKS
                    break
                assert result.structured_content is not None
                seen.append(result.structured_content["error"])
                assert await reboot.wait_until(lambda: reboot.state == ServiceState.READY, WAIT)
            else:
                pytest.fail(f"{name} never got plan {index} through")


async def all_tasks(c: Any, session_id: str) -> list[dict[str, Any]]:
    page = await call_ok(c, "orchestrator_query_tasks", session_id=session_id, limit=500, sort="created_at")
    assert page["next_offset"] is None
    return list(page["tasks"])


def assert_every_plan_whole(tasks: list[dict[str, Any]]) -> None:
    roots = [t for t in tasks if t["title"].startswith("plan ")]
    assert sorted(t["title"] for t in roots) == sorted(f"plan w{w} {i}" for w in range(WRITERS) for i in range(PLANS))
    for root in roots:
        children = [t for t in tasks if t["parent_id"] == root["id"]]
        assert sorted(t["title"] for t in children) == [f"step {k}" for k in range(SUBTASKS)]


@pytest.mark.parametrize("mode", ["graceful", "abrupt"])
async def test_restart_during_writes_keeps_every_write_whole_and_records_history(
    server: RunningServer, era: str, database_url: str, mode: str
) -> None:
    reboot = server.runtime.holder.reboot
    graceful = mode == "graceful"
    seen: list[dict[str, Any]] = []
    restart: dict[str, Any] = {}
    async with client(server, era) as admin:
        session_id = (await call_ok(admin, "orchestrator_initialize_session", working_directory="/repo"))["session"][
            "id"
        ]
        held = (await call_ok(admin, "orchestrator_plan_task", title="held", description="A claimed task."))["task"]
        await call_ok(admin, "orchestrator_update_task", agent="holder", task_id=held["id"], status="in_progress")

        async def run_restart() -> None:
            restart.update(
                await call_ok(
                    admin,
                    "orchestrator_restart_server",
                    agent="operator",
                    graceful=graceful,
                    preserve_state=graceful,
                    timeout=WAIT,
                    reason="manual_request" if graceful else "error_recovery",
                )
            )

        async with hold_write_lock(database_url) as lock, anyio.create_task_group() as group:
            for w in range(WRITERS):
                group.start_soon(write_plans, server, era, f"w{w}", session_id, seen)
            assert await reboot.wait_until(lambda: reboot.in_flight == WRITERS, WAIT)
            group.start_soon(run_restart)
            if graceful:
                assert await reboot.wait_until(lambda: reboot.state == ServiceState.DRAINING, WAIT)
            else:
                assert await reboot.wait_until(lambda: reboot.cancelled_calls >= WRITERS, WAIT)
            status, body = await readyz(server)
            assert (status, body["ready"]) == (503, False)
            assert body["reasons"][0] in ("service is draining", "service is restarting")
            async with client(server, era) as late:
                refused = await call_error(late, "orchestrator_plan_task", title="late", description="Too late.")
            assert (refused["code"], refused["retryable"]) == ("unavailable", True)
            await lock.release()

        status, body = await readyz(server)
        assert (status, body) == (200, {"ready": True, "state": "ready", "reasons": []})
        assert restart["outcome"] == "succeeded" and restart["state"] == "ready"
        expected_phases = PHASES if graceful else [PHASES[0], "release_claims", *PHASES[1:]]
        assert [p["name"] for p in restart["phases"]] == expected_phases
        assert {p["outcome"] for p in restart["phases"]} == {"ok"}
        drain = restart["phases"][0]["details"]
        assert (drain["waited_for"], drain["cancelled"], drain["timed_out"]) == (
            WRITERS,
            0 if graceful else WRITERS,
            False,
        )
        assert all((e["code"], e["retryable"]) == ("unavailable", True) for e in seen)
        if not graceful:
            assert len(seen) >= WRITERS  # the cancelled calls answered unavailable
            assert restart["phases"][1]["details"] == {"released": [held["id"]]}

        tasks = await all_tasks(admin, session_id)
        assert_every_plan_whole(tasks)
        assert len(tasks) == 1 + WRITERS * PLANS * (1 + SUBTASKS)
        (held_now,) = [t for t in tasks if t["id"] == held["id"]]
        if graceful:
            assert (held_now["status"], held_now["assigned_to"]) == ("in_progress", "holder")
        else:
            assert (held_now["status"], held_now["assigned_to"]) == ("pending", None)

        history = await call_ok(admin, "orchestrator_restart_status", include_history=True)
        assert history["state"] == "ready" and history["current"] is None
        assert history["last"] == {k: v for k, v in restart.items() if k != "state"}
        assert history["history"][0] == history["last"]

    print(  # numbers for the report; never asserted
        f"\n{mode} restart: drain {drain['seconds']:.3f} s (calls held by the test's lock until it let go), "
        f"whole restart {restart['duration_ms']:.0f} ms"
    )
    lifecycle = server.runtime.components.lifecycle()
    started = await lifecycle.system_event_data("restart_started", limit=5)
    phases = await lifecycle.system_event_data("restart_phase", limit=50)
    assert [e["restart_id"] for e in started] == [restart["restart_id"]]
    assert [e["name"] for e in reversed(phases) if e["restart_id"] == restart["restart_id"]] == expected_phases


async def test_a_second_restart_while_one_runs_is_refused_as_unavailable(
    server: RunningServer, era: str, database_url: str
) -> None:
    reboot = server.runtime.holder.reboot
    async with client(server, era) as first, client(server, era) as second, client(server, era) as writer:
        session_id = (await call_ok(writer, "orchestrator_initialize_session", working_directory="/repo"))["session"][
            "id"
        ]
        outcome: dict[str, Any] = {}
        async with hold_write_lock(database_url) as lock, anyio.create_task_group() as group:

            async def blocked_write() -> None:
                await call_ok(writer, "orchestrator_plan_task", session_id=session_id, title="t", description="d")

            async def restart() -> None:
                outcome.update(await call_ok(first, "orchestrator_restart_server", timeout=WAIT))

            group.start_soon(blocked_write)
            assert await reboot.wait_until(lambda: reboot.in_flight == 1, WAIT)
            group.start_soon(restart)
            assert await reboot.wait_until(lambda: reboot.state == ServiceState.DRAINING, WAIT)
            during = await call_ok(second, "orchestrator_restart_status")
            assert during["state"] == "draining"
            assert during["current"]["phase"] == "drain" and during["current"]["progress"] == 0
            refused = await call_error(second, "orchestrator_restart_server", timeout=10)
            assert (refused["code"], refused["retryable"]) == ("unavailable", True)
            await lock.release()
        assert outcome["outcome"] == "succeeded"
