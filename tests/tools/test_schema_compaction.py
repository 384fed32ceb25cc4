"""Compact output schemas: optional fields as type lists, accepting and rejecting exactly what pydantic's did."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema.validators import validator_for
from mcp.server.mcpserver import MCPServer

from app.main import create_app
from app.settings import Settings
from app.tools.schema_compaction import compact

pytestmark = pytest.mark.anyio

PROBES: list[Any] = [None, "", "x", "x" * 600, 0, -1, 3, 1.5, True, [], ["a"], [1], {}, {"a": 1}, {"id": "x"}]


def test_optional_field_becomes_a_type_list_keeping_its_constraints() -> None:
    schema = {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}], "title": "Note", "default": None}

    assert compact(schema) == {"title": "Note", "default": None, "type": ["string", "null"], "maxLength": 5}


def test_optional_enum_admits_null_in_its_enum() -> None:
    schema = {"anyOf": [{"type": "null"}, {"type": "string", "enum": ["low", "high"]}]}

    assert compact(schema) == {"type": ["string", "null"], "enum": ["low", "high", None]}


def test_refs_nested_combinators_and_clashing_keys_are_left_alone() -> None:
    untouched = [
        {"anyOf": [{"$ref": "#/$defs/TaskView"}, {"type": "null"}]},
        {"anyOf": [{"type": "string", "description": "inner"}, {"type": "null"}], "description": "outer"},
        {"anyOf": [{"type": "string", "const": "a"}, {"type": "null"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    ]

    assert [compact(schema) for schema in untouched] == untouched


def test_nested_optional_fields_are_compacted_everywhere() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}},
        "$defs": {"T": {"properties": {"a": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}}},
    }

    assert compact(schema) == {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": ["integer", "null"]}}},
        "$defs": {"T": {"properties": {"a": {"type": ["boolean", "null"]}}}},
    }


async def test_listed_output_schemas_use_type_lists_for_optional_fields() -> None:
    server = create_app(Settings()).state.server

    listed = {tool.name: tool.output_schema for tool in await server.list_tools()}

    [success, _] = listed["orchestrator_query_tasks"]["anyOf"]
    assert success["properties"]["next_offset"] == {"type": ["integer", "null"]}
    assert success["properties"]["tasks"] == {"type": "array", "items": {"type": "object"}}


async def test_every_collapsed_subschema_accepts_and_rejects_the_same_values_as_the_original() -> None:
    server = create_app(Settings()).state.server
    originals = await MCPServer.list_tools(server)
    checked = 0

    for tool in originals:
        root = tool.output_schema or {}
        for subschema in _nullable_unions(root):
            probes = PROBES + [v for branch in subschema["anyOf"] for v in branch.get("enum", [])]
            before = validator_for(root)({**subschema, "$defs": root.get("$defs", {})})
            after = validator_for(root)({**compact(subschema), "$defs": root.get("$defs", {})})
            assert [after.is_valid(p) for p in probes] == [before.is_valid(p) for p in probes], (tool.name, subschema)
            checked += 1

    assert checked > 10  # the tools do declare optional fields: the comparison ran


def _nullable_unions(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("anyOf"), list) and {"type": "null"} in node["anyOf"]:
            found.append(node)
        for value in node.values():
            found.extend(_nullable_unions(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_nullable_unions(value))
    return found
