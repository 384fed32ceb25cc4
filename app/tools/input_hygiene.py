"""Input hygiene at the MCP edge (DESIGN §3): clean text, bounded free-form JSON, strict JSON types.

Runs on the raw arguments of every tool call, before the SDK's own validation and before any database
work, so both backends see exactly the same values:

1. every string, object keys included, is valid Unicode without NUL or lone surrogates;
2. every free-form JSON value (an input-schema object without declared properties: ``context``, at any
   depth of a plan's subtasks) is at most ``ORCHESTRATOR_MAX_CONTEXT_BYTES`` serialized and 16 levels deep,
   and holds only finite numbers (a parser reads ``1e400`` as infinity, which JSON cannot hold);
3. the arguments validate against the tool's argument model in pydantic's *strict* JSON mode: ``"true"``
   is not a boolean, ``"5"`` not an integer, ``5`` not a date. (The SDK's own validation is lax and would
   coerce them.) Strict JSON mode is what the published input schema says, so one generic check covers
   every tool, present and future.

Each refusal is ``invalid_argument`` naming the field path (``subtasks[0].title``, ``context.a.b``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from mcp.server.mcpserver.tools import Tool
from pydantic import TypeAdapter, ValidationError

from app import errors
from app.domain import json_bounds
from app.tools import boundary

TEMPORAL_TYPE_ERRORS = frozenset({"datetime_type", "date_type"})
ISO_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]|$)")
ISO_DATE_OR_TIME: TypeAdapter[datetime | date] = TypeAdapter(datetime | date)


def check(tool: Tool, arguments: dict[str, Any], *, max_context_bytes: int) -> None:
    """Refuse arguments that are not clean, bounded and strictly typed.

    Raises:
        invalid_argument: naming the first offending field, its value (shortened) and what is allowed.
    """
    bad = None if json_bounds.surely_clean(arguments) else json_bounds.first_bad_text(arguments, "")
    if bad is not None:
        path, shown, character = bad
        raise errors.InvalidArgument(
            f"'{path}' contains {character}, which text may not hold (NUL or a lone surrogate); send valid "
            "Unicode text without it and call again.",
            field=path,
            value=shown,
            allowed=json_bounds.CLEAN_TEXT,
        )
    for path, value in free_form_values(tool.parameters, arguments, free_form_arguments(tool.parameters)):
        json_bounds.check_free_form(path, value, max_bytes=max_context_bytes)
    try:
        tool.fn_metadata.arg_model.model_validate(arguments, strict=True)
    except ValidationError as exc:
        problems = strict_problems(exc)
        if problems:
            raise boundary.invalid_from_errors(problems) from None


def strict_problems(exc: ValidationError) -> list[Any]:
    """Strict mode's errors, less a date or date-time given as an ISO 8601 string (how JSON sends one);
    any other string for a date is reported as not ISO 8601."""
    problems = []
    for err in exc.errors(include_url=False):
        if err["type"] in TEMPORAL_TYPE_ERRORS and isinstance(err["input"], str):
            if is_iso_date_or_time(err["input"]):
                continue
            err = {**err, "type": "datetime_parsing", "msg": "Input should be an ISO 8601 date or date-time"}
        problems.append(err)
    return problems


def is_iso_date_or_time(text: str) -> bool:
    """An ISO 8601 date or date-time (pydantic alone would also read ``"5"`` as a Unix time)."""
    if ISO_SHAPE.match(text) is None:
        return False
    try:
        ISO_DATE_OR_TIME.validate_json(json.dumps(text), strict=True)
    except ValidationError:
        return False
    return True


def free_form_values(
    schema: dict[str, Any], arguments: dict[str, Any], names: frozenset[str]
) -> Iterator[tuple[str, Any]]:
    """``(path, value)`` of every argument value the input schema leaves free-form (an object without
    declared properties), found by walking the arguments ``names`` alongside the schema (``$ref`` resolved,
    so a recursive tree of subtasks is followed as deep as the arguments go)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    properties = schema.get("properties", {})
    stack = [(properties[name], arguments[name], name) for name in properties if name in names and name in arguments]
    stack.reverse()  # the first argument is checked first
    while stack:
        node, value, path = stack.pop()
        node = _branch_for(_resolve(node, defs), value, defs)
        if isinstance(value, dict):
            properties = node.get("properties")
            if properties is None:
                if _is_free_form(node):
                    yield path, value
                continue
            for key, inner in value.items():
                if key in properties:
                    stack.append((properties[key], inner, f"{path}.{key}" if path else key))
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            stack.extend((node["items"], inner, f"{path}[{i}]") for i, inner in enumerate(value))


def free_form_arguments(schema: dict[str, Any]) -> frozenset[str]:
    """The argument names whose schema holds a free-form object somewhere (none for most tools), worked
    out once per schema object."""
    cached = _FREE_FORM_NAMES.get(id(schema))
    if cached is None or cached[0] is not schema:
        defs = schema.get("$defs", {})
        names = frozenset(n for n, prop in schema.get("properties", {}).items() if _reaches_free_form(prop, defs))
        cached = _FREE_FORM_NAMES[id(schema)] = (schema, names)
    return cached[1]


_FREE_FORM_NAMES: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}


def _is_free_form(node: dict[str, Any]) -> bool:
    return (
        node.get("type") == "object"
        and "properties" not in node
        and node.get("additionalProperties", True) is not False
    )


def _reaches_free_form(node: dict[str, Any], defs: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix("#/$defs/")
        return name not in seen and _reaches_free_form(defs.get(name, {}), defs, seen | {name})
    if _is_free_form(node):
        return True
    children = [*node.get("anyOf", ()), *node.get("properties", {}).values()]
    if isinstance(node.get("items"), dict):
        children.append(node["items"])
    return any(_reaches_free_form(child, defs, seen) for child in children if isinstance(child, dict))


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved = defs.get(ref.removeprefix("#/$defs/"), {})
        return resolved if isinstance(resolved, dict) else {}
    return node


def _branch_for(node: dict[str, Any], value: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The ``anyOf`` branch that describes ``value``'s JSON type (``X | None`` unions), else ``node``."""
    wanted = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else None
    for branch in node.get("anyOf", ()):
        resolved = _resolve(branch, defs)
        if wanted is not None and resolved.get("type") == wanted:
            return resolved
    return node
