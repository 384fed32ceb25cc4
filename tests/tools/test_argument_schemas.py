"""The input schemas the task-graph tools declare, and the boundary's handling of undeclared arguments."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import Tool
from pydantic import TypeAdapter, ValidationError

from app import errors
from app.observability.metrics import Metrics
from app.runtime.reboot_manager import RebootManager
from app.settings import Settings
from app.tools import boundary
from app.tools.holder import ServiceHolder
from app.tools.server import build_server
from tests.support.mcp import TASK_GRAPH_TOOLS

pytestmark = pytest.mark.anyio


async def listed_tools() -> dict[str, Tool]:
    server = build_server(ServiceHolder(Settings(), RebootManager(), Metrics("test")), version="test")
    return {tool.name: tool for tool in await server.list_tools()}


async def test_input_schemas_refuse_undeclared_arguments() -> None:
    tools = await listed_tools()
    assert set(tools) >= TASK_GRAPH_TOOLS
    for tool in tools.values():
        assert tool.input_schema["additionalProperties"] is False, tool.name
        if tool.annotations is not None and not tool.annotations.read_only_hint:
            # DESIGN §3: every mutating tool accepts an optional agent name.
            assert "agent" in tool.input_schema["properties"], tool.name
        if "session_id" in tool.input_schema["properties"]:
            # DESIGN §3: every tool that takes session_id takes agent too (reads included).
            assert "agent" in tool.input_schema["properties"], tool.name


async def test_due_date_accepts_a_date_or_a_date_time_wherever_it_appears() -> None:
    tools = await listed_tools()
    plan = tools["orchestrator_plan_task"].input_schema
    expected = [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]
    for where in (
        plan["properties"]["due_date"],
        plan["$defs"]["SubtaskSpec"]["properties"]["due_date"],
        tools["orchestrator_update_task"].input_schema["properties"]["due_date"],
    ):
        assert sorted(where["anyOf"], key=str) == sorted(expected, key=str)
        assert "ISO 8601" in where["description"]


async def test_bounds_and_enums_are_declared_for_the_model_without_null_wrappers() -> None:
    tools = await listed_tools()
    query = tools["orchestrator_query_tasks"].input_schema["properties"]
    assert (query["limit"]["minimum"], query["limit"]["maximum"], query["limit"]["default"]) == (1, 500, 50)
    assert query["offset"]["minimum"] == 0
    assert query["order"]["enum"] == ["asc", "desc"]
    assert query["status"]["items"]["enum"][0] == "pending"
    assert query["view"] == {
        "default": "summary",
        "description": query["view"]["description"],
        "enum": ["summary", "full"],
    }
    update = tools["orchestrator_update_task"].input_schema["properties"]
    assert update["task_id"]["maxLength"] == 64
    assert update["expected_version"] == {
        "minimum": 1,
        "type": "integer",
        "description": update["expected_version"]["description"],
    }
    session = tools["orchestrator_initialize_session"].input_schema["properties"]
    assert (session["working_directory"]["type"], session["working_directory"]["maxLength"]) == ("string", 1024)


def test_an_undeclared_argument_is_named_with_the_tools_arguments() -> None:
    parameters = {"properties": {"task_id": {}, "title": {}, "agent": {}}}
    boundary.check_argument_names(parameters, {"task_id": "t", "title": "x"})
    with pytest.raises(errors.InvalidArgument) as caught:
        boundary.check_argument_names(parameters, {"task_id": "t", "titel": "x", "other": 1})
    assert (caught.value.field, caught.value.value, caught.value.allowed) == (
        "titel",
        "x",
        ["agent", "task_id", "title"],
    )
    assert "titel" in caught.value.message and "title" in caught.value.message


def _validation_error() -> ValidationError:
    try:
        TypeAdapter(int).validate_python("not a number")
    except ValidationError as exc:
        return exc
    raise AssertionError("pydantic accepted a non-number")


def test_bad_arguments_are_the_callers_mistake_but_a_validation_error_inside_a_tool_is_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cause = _validation_error()
    try:
        raise ToolError("Error executing tool orchestrator_query_tasks") from cause
    except ToolError as exc:
        assert boundary.to_orchestrator_error("orchestrator_query_tasks", exc).code == "invalid_argument"
    try:
        raise UnexpectedToolError("Error executing tool orchestrator_query_tasks") from cause
    except ToolError as exc:
        error = boundary.to_orchestrator_error("orchestrator_query_tasks", exc)
    assert error.code == "internal"
    assert (error.field, error.value) == (None, None)
    assert "not a number" not in error.message
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "tool_internal_error"]
    assert getattr(record, "reference", None) == error.details["reference"]


def test_boundary_errors_send_a_hint_only_when_it_names_the_next_call() -> None:
    invalid = boundary.error_result(boundary.invalid_arguments(_validation_error())).structured_content or {}
    unknown_error = boundary.to_orchestrator_error("orchestrator_nope", ToolError("Unknown tool: orchestrator_nope"))
    unknown = boundary.error_result(unknown_error).structured_content or {}
    assert "hint" not in invalid["error"]
    assert (unknown["error"]["code"], unknown["error"]["hint"]) == ("invalid_argument", "tools/list")


async def test_a_write_that_creates_something_each_time_is_not_marked_idempotent() -> None:
    """``idempotentHint`` tells a client it may repeat the call freely; initialize_session with
    ``new_session: true`` starts another session each time."""
    tools = await listed_tools()
    annotations = tools["orchestrator_initialize_session"].annotations
    assert annotations is not None and annotations.idempotent_hint is False
