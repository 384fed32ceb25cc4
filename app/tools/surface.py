"""What ``tools/list`` serves: the tools as a model reads them, built once per process (DESIGN §4 budget).

Every client puts the whole list in its model's context, so the list is a budget (24,000 characters for
names, titles, descriptions and input schemas; 60,000 with output schemas). pydantic's schemas spend it
on things no model needs: a generated ``title`` on every property, ``anyOf [X, null]`` around every
optional parameter (optional means "not required" here; the server still accepts an explicit null) and
``default: null``. This module writes the same contract without them: input schemas closed
(``additionalProperties: false``), output schemas compact (``schema_compaction``) and widened to admit
the error envelope (``boundary.with_error_envelope``). The root of every schema stays an object.
"""

from __future__ import annotations

import re
from typing import Any

from mcp.types import Tool as MCPTool

from app.tools import boundary, schema_compaction, schemas

NULL_BRANCH = {"type": "null"}
# An id pattern (``^task_[0-9a-f]{16}$``): served as a bounded string, checked by the server.
FIXED_LENGTH = re.compile(r"\^[a-z_]+\[0-9a-f\]\{\d+\}\$")
# Keys whose value maps names to schemas (the names are data, not keywords).
NAMED_SCHEMAS = frozenset({"properties", "$defs", "patternProperties"})


def served(tools: list[MCPTool]) -> list[MCPTool]:
    """The tools with their served input and output schemas."""
    return [
        tool.model_copy(
            update={
                # A docstring's line breaks and indentation are not for the model.
                "description": " ".join((tool.description or "").split()),
                "input_schema": boundary.closed_input(served_input(tool.input_schema)),
                "output_schema": boundary.with_error_envelope(served_output(tool.output_schema)),
            }
        )
        for tool in tools
    ]


def served_input(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema without generated titles, ``anyOf [X, null]`` wrappers or ``default: null``.

    ``minLength: 1`` goes too (the server still refuses an empty string, naming the field), and so does
    the pattern of an id (task_…, sess_…: agents copy ids from results; the server still checks it and
    names a malformed one); a ``$defs`` model's docstring is for us.
    """
    result = _rewrite(schema, optional_is_absent=True)
    assert isinstance(result, dict)
    for name, model in (result.get("$defs") or {}).items():
        result["$defs"][name] = {k: v for k, v in model.items() if k != "description"}
    return result


def served_output(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """An output schema without generated titles, optional fields as type lists (``[T, "null"]``)."""
    if schema is None:
        return None
    result = schema_compaction.compact(one_level(_rewrite(schema, optional_is_absent=False)))
    assert isinstance(result, dict)
    return result


def _rewrite(node: Any, *, optional_is_absent: bool) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, optional_is_absent=optional_is_absent) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: _rewrite(sub, optional_is_absent=optional_is_absent) for name, sub in value.items()}
        else:
            out[key] = _rewrite(value, optional_is_absent=optional_is_absent)
    return _drop_null(out) if optional_is_absent else out


def _drop_null(node: dict[str, Any]) -> dict[str, Any]:
    """``{anyOf: [X, null], description, default: null}`` becomes ``X`` with the description; defaults that
    say nothing (null, an empty list, false: what an absent optional value means) and
    ``additionalProperties: true`` (the default) go, and so does an array item's description when the
    array has one (it repeats it). The agent name's pattern is checked by the server (naming the field)."""
    node = {
        k: v
        for k, v in node.items()
        if not (
            (k == "default" and (v is None or v is False or v == [])) or (k == "additionalProperties" and v is True)
        )
        and not (k == "pattern" and v == schemas.AGENT_PATTERN)
    }
    if isinstance(node.get("enum"), list) and node.get("type") == "string":
        node.pop("type")  # an enum of strings says its type
    if node.get("minLength") == 1:
        node.pop("minLength")
    if isinstance(node.get("pattern"), str) and FIXED_LENGTH.fullmatch(node["pattern"]):
        node.pop("pattern")  # ids are copied from results; the server names a malformed one
    items = node.get("items")
    if node.get("description") and isinstance(items, dict) and "description" in items:
        node["items"] = {k: v for k, v in items.items() if k != "description"}
    branches = node.get("anyOf")
    if not isinstance(branches, list) or NULL_BRANCH not in branches:
        return node
    others = [b for b in branches if b != NULL_BRANCH]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(others) != 1 or not isinstance(others[0], dict):
        return {**rest, "anyOf": others}
    inner = others[0]
    return {**inner, **rest} if not (set(inner) & set(rest) - {"description"}) else {**rest, "anyOf": others}


def undescribed(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the parameters (nested ones too, ``$defs`` included) that have no description."""
    found: list[str] = []
    for name, sub in (schema.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if not isinstance(sub, dict) or not sub.get("description"):
            found.append(where)
    for name, sub in (schema.get("$defs") or {}).items():
        found += undescribed(sub, f"$defs.{name}")
    return found


def one_level(schema: dict[str, Any]) -> dict[str, Any]:
    """The result's own fields with their types; the objects inside them are only ``{"type": "object"}``.

    The full shapes (TaskView, briefs, …) are in docs/tools.md; in every client's context they would cost
    about four times the whole budget, for fields a model reads from the result itself.
    """
    defs = schema.get("$defs", {})
    body = _resolve({k: v for k, v in schema.items() if k != "$defs"}, defs)
    if "anyOf" in body:  # a union at the root (next_task: the brief, or nothing ready)
        body = {**body, "anyOf": [_opaque_refs(_resolve(branch, defs)) for branch in body["anyOf"]]}
    result = _opaque_refs(body)
    assert isinstance(result, dict)
    return result


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        return {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _opaque_refs(node: Any) -> Any:
    """Each ``$ref`` (a nested model) becomes a plain object, keeping its description."""
    if isinstance(node, list):
        return [_opaque_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {**{k: v for k, v in node.items() if k != "$ref"}, "type": "object"}
    out = {key: _opaque_refs(value) if key != "enum" else value for key, value in node.items()}
    branches = out.get("anyOf")
    if isinstance(branches, list) and branches and all(b == branches[0] for b in branches) and "type" not in out:
        # A union of models (summary or full rows) whose branches are all plain objects now: one is enough.
        return {**{k: v for k, v in out.items() if k != "anyOf"}, **branches[0]}
    return out
