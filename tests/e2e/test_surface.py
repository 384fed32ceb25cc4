"""What an agent's client sees: the tool list within its budget (DESIGN §4), prompts and resources (§4.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS, Implementation, ListToolsResult, Request

from app.tools import surface
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio

MODEL_BUDGET = 24_000  # names, titles, descriptions and input schemas
FULL_BUDGET = 60_000  # the whole tools/list, output schemas included
MODEL_KEYS = ("name", "title", "description", "inputSchema")


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


async def test_tool_list_fits_the_budget_and_describes_every_parameter(
    server: RunningServer, era: str, record_property: Any
) -> None:
    async with client(server, era) as c:
        tools = (await c.list_tools()).tools
    served = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    model_view = sum(size({k: t[k] for k in MODEL_KEYS if k in t}) for t in served)
    whole = size(served)
    per_tool = {t["name"]: size({k: t[k] for k in MODEL_KEYS if k in t}) for t in served}
    record_property("surface", {"model_chars": model_view, "full_chars": whole, "per_tool": per_tool})
    print(f"tools/list on {era}: {model_view} characters for the model, {whole} in all; {per_tool}")
    assert model_view <= MODEL_BUDGET
    assert whole <= FULL_BUDGET
    undescribed = {t["name"]: surface.undescribed(t["inputSchema"]) for t in served}
    assert {name: paths for name, paths in undescribed.items() if paths} == {}
    text = json.dumps(served)
    assert '"title": "' not in json.dumps([t["inputSchema"] for t in served])
    assert '{"type": "null"}' not in json.dumps([t["inputSchema"] for t in served])
    assert "$ref" not in [key for t in served for key in t["inputSchema"]]
    for tool in served:
        assert tool["inputSchema"]["type"] == "object" and tool["outputSchema"]["type"] == "object"
        assert any("error" in branch.get("properties", {}) for branch in tool["outputSchema"]["anyOf"]), tool["name"]
    assert "status=pending" in text  # how to release a claim is said where agents look


async def test_tool_list_is_built_once_per_protocol_version_and_every_caller_gets_the_same_answer(
    server: RunningServer, era: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ToolListCache``: the SDK's handler runs for the first plain ``tools/list`` of a protocol version;
    later ones, from other clients too, get that answer. A cursor goes to the handler as before, and
    parameters the SDK refuses are still refused by it."""
    mcp_server = server.app.state.server
    built = mcp_server.list_tools
    handler_runs = 0

    async def counted() -> Any:
        nonlocal handler_runs
        handler_runs += 1
        return await built()

    monkeypatch.setattr(mcp_server, "list_tools", counted)
    answers = []
    for _ in range(2):
        async with client(server, era) as c:
            for _ in range(2):
                answers.append((await c.list_tools(cache_mode="bypass")).model_dump(mode="json"))
    assert handler_runs == 1
    assert all(answer == answers[0] for answer in answers)
    assert len(answers[0]["tools"]) == len(mcp_server._tool_manager.list_tools())
    async with client(server, era) as c:
        paged = await c.list_tools(cursor="page-2", cache_mode="bypass")
        with pytest.raises(MCPError) as refused:
            await c.session.send_request(Request[Any, Any](method="tools/list", params={"cursor": 5}), ListToolsResult)
    assert handler_runs == 2  # the cursor reached the handler, which serves the whole list whatever the cursor
    assert paged.model_dump(mode="json") == answers[0]
    assert refused.value.error.code == INVALID_PARAMS


async def test_prompts_are_listed_and_filled_with_the_sessions_numbers(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/loop", agent="ann")
        await call_ok(c, "orchestrator_plan_task", title="A", description="D.", agent="ann")
        listed = sorted(p.name for p in (await c.list_prompts()).prompts)
        loop = await c.get_prompt("orchestrator_work_loop", {"agent": "ann", "specialist_type": "coder"})
        plan = await c.get_prompt("orchestrator_break_down", {"goal": "Ship feature X"})
    assert listed == ["orchestrator_break_down", "orchestrator_work_loop"]
    [loop_text] = [m.content.text for m in loop.messages]  # type: ignore[union-attr]
    assert "1 tasks: 1 pending" in loop_text and "orchestrator_next_task(agent='ann', specialist_type=['coder'])" in (
        loop_text
    )
    assert "wait_seconds=60 instead of polling" in loop_text  # the loop waits for work (DESIGN §4.7)
    [plan_text] = [m.content.text for m in plan.messages]  # type: ignore[union-attr]
    assert "Goal: Ship feature X" in plan_text and "depends_on" in plan_text


async def test_an_unknown_prompt_is_invalid_params_naming_the_prompts(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        with pytest.raises(MCPError) as caught:
            await c.get_prompt("orchestrator_nothing", {})
    assert caught.value.error.code == -32602
    assert "orchestrator_work_loop" in caught.value.error.message


PROMPT_REFUSALS = [
    ("orchestrator_break_down", {}, "goal", None),
    ("orchestrator_break_down", {"goal": ""}, "goal", ""),
    ("orchestrator_break_down", {"goal": "Ship\x00it"}, "goal", "Ship\\u0000it"),
    ("orchestrator_work_loop", {"agent": "a\x00b"}, "agent", "a\\u0000b"),
    ("orchestrator_work_loop", {"agent": "x" * 5000}, "agent", "x" * 200 + "… (5000 characters)"),
    ("orchestrator_work_loop", {"agent": "two words"}, "agent", "two words"),
    ("orchestrator_work_loop", {"agent": "ann", "specialist_type": "wizard"}, "specialist_type", "wizard"),
]


async def test_a_prompts_missing_or_bad_argument_is_invalid_params_naming_it(server: RunningServer, era: str) -> None:
    # Before: a missing goal was -32603 (2026 era) or 0 (legacy), a NUL internal on PostgreSQL only, and a
    # 5000-character agent or specialist_type "wizard" was written into calls that would fail.
    answers = []
    async with client(server, era) as c:
        for name, arguments, _, _ in PROMPT_REFUSALS:
            with pytest.raises(MCPError) as caught:
                await c.get_prompt(name, arguments)
            answers.append((caught.value.error.code, caught.value.error.data, caught.value.error.message))
        fine = await c.get_prompt("orchestrator_work_loop", {"agent": "", "specialist_type": ""})
    for (code, data, message), (name, _, field, value) in zip(answers, PROMPT_REFUSALS, strict=True):
        assert code == INVALID_PARAMS and f"argument '{field}'" in message, (name, field, code, message)
        assert data["field"] == field and data["value"] == value and data["allowed"], data
    assert "orchestrator_next_task(agent=" in fine.messages[0].content.text  # type: ignore[union-attr]


async def test_resources_list_the_callers_sessions_and_read_boards_and_tasks(server: RunningServer, era: str) -> None:
    async with client(server, era, client_info=Implementation(name="res-client", version="1")) as c:
        started = await call_ok(c, "orchestrator_initialize_session", working_directory="/res")
        sid = started["session"]["id"]
        planned = await call_ok(
            c,
            "orchestrator_plan_task",
            title="Root",
            description="D.",
            agent="ann",
            subtasks=[{"key": "a", "title": "A", "description": "D."}],
        )
        listed = (await c.list_resources()).resources
        board = json.loads((await c.read_resource(f"orchestrator://sessions/{sid}")).contents[0].text)  # type: ignore[union-attr]
        root = planned["task"]["id"]
        task = json.loads((await c.read_resource(f"orchestrator://tasks/{root}")).contents[0].text)  # type: ignore[union-attr]
        with pytest.raises(MCPError) as missing_task:
            await c.read_resource("orchestrator://tasks/task_0000000000000000")
        with pytest.raises(MCPError) as missing_session:
            await c.read_resource("orchestrator://sessions/sess_0000000000000000")
    assert [(r.uri, r.mime_type) for r in listed] == [(f"orchestrator://sessions/{sid}", "application/json")]
    child = planned["created"][1]["id"] if planned["created"][0]["id"] == root else planned["created"][0]["id"]
    assert board["counts"] == {"by_status": {"pending": 2}, "total": 2}
    assert [t["id"] for t in board["waiting"]] == [root]
    assert board["waiting"][0]["why"] == {"dependencies": [], "children": [child]}
    assert board["claims"] == []
    assert task == {**planned["task"], "artifacts": []}
    assert (missing_task.value.error.code, missing_session.value.error.code) == (-32602, -32602)
