"""``Mcp-Param-*`` header checks: the SDK gets a tool's schema only when the tool declares such a header."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from mcp.shared.inbound import validate_mcp_param_headers
from pydantic import Field

from app.main import create_app
from app.settings import Settings
from app.tools.server import OrchestratorMCP

pytestmark = pytest.mark.anyio

HEADER_SETS: list[dict[str, str]] = [
    {},
    {"mcp-param-agent": "alice"},
    {"mcp-param-region": "eu", "mcp-param-region2": "x"},
]
ARGUMENT_SETS: list[dict[str, Any]] = [{}, {"agent": "alice", "session_id": "sess_1", "region": "eu"}]


def served(tmp_path: Any) -> OrchestratorMCP:
    server: OrchestratorMCP = create_app(Settings(data_dir=tmp_path)).state.server
    return server


async def test_no_served_tool_hands_the_sdk_a_schema_and_the_verdicts_are_the_full_schemas(tmp_path: Any) -> None:
    server = served(tmp_path)
    names = [tool.name for tool in await server.list_tools()]

    assert len(names) > 20
    for name in names:
        full = server._tool_manager.get_tool(name).parameters  # type: ignore[union-attr]
        assert server._tool_input_schema(name) is None, name
        for headers in HEADER_SETS:
            for arguments in ARGUMENT_SETS:
                # What the SDK would have answered with the whole schema: nothing to reject either way.
                assert validate_mcp_param_headers(full, arguments, headers) is None, (name, headers)


def test_a_tool_that_declares_a_header_still_has_it_checked(tmp_path: Any) -> None:
    server = served(tmp_path)

    @server.tool(name="regional_probe")
    async def regional_probe(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
        return region

    schema = server._tool_input_schema("regional_probe")

    assert schema is not None and schema["properties"]["region"]["x-mcp-header"] == "Region"
    assert server._tool_input_schema("regional_probe") is schema  # worked out once
    assert validate_mcp_param_headers(schema, {"region": "eu"}, {"mcp-param-region": "eu"}) is None
    mismatch = validate_mcp_param_headers(schema, {"region": "eu"}, {"mcp-param-region": "us"})
    missing = validate_mcp_param_headers(schema, {"region": "eu"}, {})
    assert mismatch is not None and "does not match" in mismatch.message
    assert missing is not None and "missing" in missing.message


def test_an_unknown_tool_has_no_schema_and_is_not_remembered(tmp_path: Any) -> None:
    server = served(tmp_path)

    assert server._tool_input_schema("later_tool") is None

    @server.tool(name="later_tool")
    async def later_tool(zone: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Zone"})]) -> str:
        return zone

    assert server._tool_input_schema("later_tool") is not None
