"""Idempotent writes over MCP (DESIGN §3 "Idempotency"), on both eras and both backends: the same call
again replays its stored result and writes nothing; the same request_id with other arguments or another
tool is ``idempotency_conflict`` naming the request_id and the first tool, and writes nothing."""

from __future__ import annotations

import pytest

from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client
from tests.support.snapshot import snapshot

pytestmark = pytest.mark.anyio
PLAN = {"agent": "planner", "title": "Write the parser", "description": "Parse the input.", "priority": "high"}


async def test_the_same_call_again_replays_the_first_result_and_writes_nothing(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="planner")
        first = await call_ok(c, "orchestrator_plan_task", request_id="plan-1", **PLAN)
        before = await snapshot(server.runtime.database)

        again = await call_ok(c, "orchestrator_plan_task", request_id="plan-1", **PLAN)

        assert again == first
        assert await snapshot(server.runtime.database) == before


async def test_a_request_id_reused_with_other_arguments_is_an_idempotency_conflict(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="planner")
        await call_ok(c, "orchestrator_plan_task", request_id="plan-1", **PLAN)
        before = await snapshot(server.runtime.database)

        error = await call_error(c, "orchestrator_plan_task", request_id="plan-1", **{**PLAN, "title": "Other"})

        assert {k: error[k] for k in ("code", "field", "value", "request_id", "first_tool", "retryable")} == {
            "code": "idempotency_conflict",
            "field": "request_id",
            "value": "plan-1",
            "request_id": "plan-1",
            "first_tool": "orchestrator_plan_task",
            "retryable": False,
        }
        assert await snapshot(server.runtime.database) == before


async def test_a_request_id_reused_for_another_tool_is_an_idempotency_conflict(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="planner")
        task = (await call_ok(c, "orchestrator_plan_task", request_id="op-1", **PLAN))["task"]
        before = await snapshot(server.runtime.database)

        error = await call_error(
            c, "orchestrator_update_task", agent="planner", task_id=task["id"], title="Renamed", request_id="op-1"
        )

        assert (error["code"], error["field"], error["first_tool"]) == (
            "idempotency_conflict",
            "request_id",
            "orchestrator_plan_task",
        )
        assert await snapshot(server.runtime.database) == before


async def test_the_same_request_id_from_another_agent_is_another_operation(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="planner")
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="helper")
        first = await call_ok(c, "orchestrator_plan_task", request_id="plan-1", **PLAN)
        other = await call_ok(c, "orchestrator_plan_task", request_id="plan-1", **{**PLAN, "agent": "helper"})
        assert other["task"]["id"] != first["task"]["id"]
