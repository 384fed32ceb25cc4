"""The execution tools over real HTTP with the real MCP client, on both eras and both backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from app.domain.clock import ManualClock
from app.runtime.lease_sweeper import LeaseSweeper
from app.settings import Settings
from tests.support.execution import gate_row_locks
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client, serve

pytestmark = pytest.mark.anyio
RACERS = 20


async def start(c: Client, agent: str = "planner", **plan: Any) -> dict[str, Any]:
    await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent=agent)
    return await call_ok(c, "orchestrator_plan_task", agent=agent, **plan)


async def test_claim_work_hand_it_back_roll_up_and_see_the_board(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        plan = await start(
            c,
            title="Ship search",
            description="Add full-text search.",
            subtasks=[
                {
                    "key": "design",
                    "title": "Design search",
                    "description": "Pick the index.",
                    "specialist_type": "architect",
                },
                {
                    "title": "Build search",
                    "description": "Implement it.",
                    "depends_on": ["design"],
                    "specialist_type": "coder",
                },
            ],
        )
        parent, design, build = plan["created"]
        sid = parent["session_id"]

        refused = await call_error(c, "orchestrator_execute_task", task_id=build["id"], agent="coder")
        assert (refused["code"], refused["field"], refused["blocking"]) == (
            "dependencies_unmet",
            "task_id",
            [design["id"]],
        )

        brief = await call_ok(
            c, "orchestrator_next_task", session_id=sid, specialist_type=["architect"], agent="architect"
        )
        assert brief["task"]["id"] == design["id"] and brief["task"]["status"] == "in_progress"
        assert brief["claim"]["holder"] == "architect" and brief["claim"]["attempt"] == 1
        assert brief["specialist"]["type"] == "architect" and brief["specialist"]["role"] == "Software architect"
        assert "# Software architect: Design search" in brief["specialist"]["prompt"]
        assert brief["parent"]["id"] == parent["id"]

        done = await call_ok(
            c,
            "orchestrator_complete_task",
            agent="architect",
            task_id=design["id"],
            summary="Use PostgreSQL tsvector with a GIN index.",
            detailed_work="# Design\nGIN over title and body.",
            next_action="continue",
            file_paths=["docs/search.md"],
            artifact_type="design",
            request_id="design-done",
        )
        assert done["task"]["status"] == "completed"
        assert [t["id"] for t in done["unblocked"]] == [build["id"]]
        assert {t["id"] for t in done["next_ready"]} == {build["id"]}  # the parent waits for build
        assert (done["artifact"]["kind"], done["artifact"]["file_paths"]) == ("design", ["docs/search.md"])

        work = await call_ok(c, "orchestrator_execute_task", task_id=build["id"], agent="coder", lease_seconds=600)
        assert work["dependencies"][0]["summary"] == "Use PostgreSQL tsvector with a GIN index."
        assert work["dependencies"][0]["artifacts"][0]["excerpt"] == "# Design\nGIN over title and body."
        assert "Use PostgreSQL tsvector with a GIN index." in work["specialist"]["prompt"]
        await call_ok(
            c,
            "orchestrator_complete_task",
            agent="coder",
            task_id=build["id"],
            summary="Search implemented.",
            detailed_work="search.py",
            next_action="complete",
        )

        rollup = await call_ok(
            c, "orchestrator_synthesize_results", parent_task_id=parent["id"], complete_parent=True, agent="lead"
        )
        assert rollup["children"] == {"total": 2, "by_status": {"completed": 2}, "completion_ratio": 1.0}
        assert rollup["parent_completed"] is True and rollup["parent"]["status"] == "completed"
        assert [o["summary"] for o in rollup["outcomes"]] != []

        nothing = await call_ok(c, "orchestrator_next_task", session_id=sid, agent="idle")
        assert nothing["task"] is None and "nothing is left to do" in nothing["reason"]

        board = await call_ok(
            c,
            "orchestrator_get_status",
            session_id=sid,
            include_completed=True,
            include_performance_metrics=True,
            include_resource_usage=True,
            agent="lead",
        )
        assert board["counts"]["by_status"] == {"completed": 3} and board["counts"]["total"] == 3
        assert len(board["completed"]) == 3
        perf = board["performance_metrics"]
        assert perf["orchestrator_complete_task"]["calls"] == 2
        assert perf["orchestrator_execute_task"]["errors"] == 1  # the refused claim
        assert board["resource_usage"]["rss_bytes"] > 0 and board["resource_usage"]["open_fds"] > 0
        health = board["system_health"]
        assert health["reboot_manager"]["ok"] is True and health["reboot_manager"]["state"] == "ready"
        assert health["monitors"]["ok"] is True
        assert health["monitors"]["monitors"]["lease_sweeper"]["alive"] is True
        assert health["database"]["ok"] is True


async def test_twenty_clients_racing_for_one_task_get_one_holder(
    server: RunningServer, era: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client(server, era) as c:
        task = (await start(c, title="Hot task", description="Everyone wants it."))["task"]
    arrived = gate_row_locks(monkeypatch, task["id"], RACERS, backend)
    results: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(server, era)) for _ in range(RACERS)]

        async def racer(n: int, c: Client) -> None:
            result = await c.call_tool("orchestrator_execute_task", {"task_id": task["id"], "agent": f"agent-{n:02d}"})
            results.append({"error": result.is_error, **(result.structured_content or {})})

        async with anyio.create_task_group() as group:
            for n, c in enumerate(clients):
                group.start_soon(racer, n, c)

    assert len(arrived) == RACERS  # all twenty calls were inside the server at once
    winners = [r for r in results if not r["error"]]
    losers = [r["error"] for r in results if r["error"] is not False]
    assert len(winners) == 1 and len(losers) == RACERS - 1
    holder = winners[0]["claim"]["holder"]
    assert {(e["code"], e["holder"], e["lease_expires_at"]) for e in losers} == {
        ("claimed_by_other", holder, winners[0]["claim"]["lease_expires_at"])
    }


class DropFirstAnswer(httpx2.AsyncBaseTransport):
    """Forwards requests, but replaces the answer to the first call of ``tool`` with a 502, as a proxy that
    lost the response would: the server did the work, the client never heard."""

    def __init__(self, tool: str) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._tool = tool
        self.dropped = 0
        self.lost_answer: dict[str, Any] | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        body = request.content
        if self.dropped == 0 and b'"tools/call"' in body and self._tool.encode() in body:
            # The server has answered, so its transaction is committed; keep what the client never saw.
            self.lost_answer = json.loads(await response.aread())["result"]["structuredContent"]
            await response.aclose()
            self.dropped += 1
            return httpx2.Response(502, text="upstream connection reset")
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def dropping_client(server: RunningServer, era: str, transport: DropFirstAnswer) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(transport=transport, timeout=30) as http:
        mode = "legacy" if era == "legacy" else "2026-07-28"
        async with Client(streamable_http_client(server.mcp_url, http_client=http), mode=mode) as c:
            yield c


async def test_a_retry_after_a_dropped_answer_returns_the_first_result_and_stores_the_work_once(
    server: RunningServer, era: str
) -> None:
    transport = DropFirstAnswer("orchestrator_complete_task")
    arguments = {
        "agent": "worker",
        "summary": "Done.",
        "detailed_work": "All of it.",
        "next_action": "complete",
        "request_id": "complete-7f3a",
    }
    async with dropping_client(server, era, transport) as c:
        task = (await start(c, agent="worker", title="T", description="D"))["task"]
        await call_ok(c, "orchestrator_execute_task", task_id=task["id"], agent="worker")
        with pytest.raises(MCPError):
            await c.call_tool("orchestrator_complete_task", {"task_id": task["id"], **arguments})
        assert transport.dropped == 1
    async with client(server, era) as c:
        retried = await call_ok(c, "orchestrator_complete_task", task_id=task["id"], **arguments)
        again = await call_ok(c, "orchestrator_complete_task", task_id=task["id"], **arguments)
        assert again == retried
        assert retried == transport.lost_answer  # the stored first result, not a second execution
        assert retried["task"]["status"] == "completed"
        page = await call_ok(c, "orchestrator_query_tasks", agent="worker", include_artifacts=True)
    [stored] = [t for t in page["tasks"] if t["id"] == task["id"]]
    assert [a["id"] for a in stored["artifacts"]] == [retried["artifact"]["id"]]


async def test_execution_tools_declare_their_annotations_and_schemas(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in (
        "orchestrator_execute_task",
        "orchestrator_next_task",
        "orchestrator_complete_task",
        "orchestrator_synthesize_results",
    ):
        assert tools[name].annotations is not None
        assert (tools[name].annotations.read_only_hint, tools[name].annotations.destructive_hint) == (False, False)
    status = tools["orchestrator_get_status"]
    assert status.annotations is not None and status.annotations.read_only_hint is True
    lease = tools["orchestrator_execute_task"].input_schema["properties"]["lease_seconds"]
    assert (lease["type"], lease["minimum"], lease["maximum"]) == ("integer", 30, 86400)
    actions = tools["orchestrator_complete_task"].input_schema["properties"]["next_action"]["enum"]
    assert actions == ["continue", "needs_revision", "blocked", "complete"]
    # next_task's output schema admits both the brief and {task: null, reason}, beside the error envelope.
    success = tools["orchestrator_next_task"].output_schema["anyOf"][0]
    brief, nothing = success["anyOf"]
    assert set(brief["required"]) == {"task", "claim", "specialist", "dependencies", "parent", "instructions"}
    assert (nothing["required"], nothing["properties"]["task"]["type"]) == (["task", "reason"], "null")


async def test_the_running_server_sweeps_lapsed_leases_on_its_clock(
    database_url: str, tmp_path: Path, era: str
) -> None:
    clock = ManualClock()
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings, clock=clock) as running:
        async with client(running, era) as c:
            task = (await start(c, agent="w", title="T", description="D"))["task"]
            await call_ok(c, "orchestrator_execute_task", task_id=task["id"], agent="w", lease_seconds=30)
            clock.advance(31)
            sweeper = running.runtime.supervisor.get("lease_sweeper")
            assert isinstance(sweeper, LeaseSweeper)
            await sweeper.run_once()
            board = await call_ok(c, "orchestrator_get_status", session_id=task["session_id"])
            assert board["in_progress"] == [] and board["ready"]["count"] == 1
            assert board["ready"]["top"][0]["attempt_count"] == 1
            async with httpx2.AsyncClient() as http:
                metrics = (await http.get(f"{running.base_url}/metrics")).text
    assert 'orchestrator_claims_total{outcome="expired"} 1.0' in metrics
    assert 'orchestrator_claims_total{outcome="acquired"} 1.0' in metrics


async def test_a_lapsed_claim_at_the_attempt_limit_is_refused_with_the_stored_state(
    database_url: str, tmp_path: Path, era: str
) -> None:
    # The third lapse fails the task (ORCHESTRATOR_MAX_ATTEMPTS=3), so a new claimer is refused with what is
    # stored (in_progress, the lapsed holder) and the next step; the sweeper then records the failure.
    clock = ManualClock()
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings, clock=clock) as running:
        async with client(running, era) as c:
            task = (await start(c, agent="w0", title="T", description="D"))["task"]
            for n in range(3):
                await call_ok(c, "orchestrator_execute_task", task_id=task["id"], agent=f"w{n}", lease_seconds=30)
                clock.advance(31)
            error = await call_error(c, "orchestrator_execute_task", task_id=task["id"], agent="w3")
            assert (error["code"], error["current"], error["holder"], error["expiries"]) == (
                "invalid_transition",
                "in_progress",
                "w2",
                3,
            )
            assert "orchestrator_update_task" in error["message"]
            sweeper = running.runtime.supervisor.get("lease_sweeper")
            assert isinstance(sweeper, LeaseSweeper)
            await sweeper.run_once()
            error = await call_error(c, "orchestrator_execute_task", task_id=task["id"], agent="w3")
            assert (error["code"], error["current"]) == ("invalid_transition", "failed")
