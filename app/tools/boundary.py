"""The error boundary of the MCP edge: every failure becomes a structured ``isError`` result.

Known conditions (``OrchestratorError``) keep their code and fields. Argument validation failures are
rewritten from pydantic's text into ``invalid_argument`` naming the field path, the value and what is
allowed; so are arguments the tool does not declare. Anything else is ``internal``: logged here with a
reference id and a traceback, while the result carries only the id. This module is the only
``except Exception`` on a request path.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError

from app import errors

log = logging.getLogger("app.tools")
MAX_VALUE_CHARS = 200
# What a wrong-typed argument should have been, by pydantic error type (JSON words, for a model to read).
TYPE_ERRORS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "datetime_type": "an ISO 8601 date or date-time",
    "datetime_parsing": "an ISO 8601 date or date-time",
    "datetime_from_date_parsing": "an ISO 8601 date or date-time",
}

# The codes an error may carry (DESIGN §6); the served schema keeps only the envelope's shape, since it is
# repeated in every tool's output schema (DESIGN §4 budget) and the codes are listed in docs/tools.md.
ERROR_CODES = (
    "invalid_argument",
    "not_found",
    "invalid_transition",
    "version_conflict",
    "claimed_by_other",
    "not_claimed",
    "dependencies_unmet",
    "dependency_cycle",
    "children_open",
    "idempotency_conflict",
    "rate_limited",
    "forbidden",
    "unavailable",
    "internal",
)
ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "hint": {"type": "string"},
            },
            "required": ["code", "message", "retryable"],
        }
    },
    "required": ["error"],
}


def closed_input(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema with ``additionalProperties: false``: unknown arguments are refused, say so."""
    return {**schema, "additionalProperties": False}


def with_error_envelope(success: dict[str, Any] | None) -> dict[str, Any] | None:
    """An output schema that admits the success shape or the error envelope (typescript-sdk #1943)."""
    if success is None:
        return None
    body = {k: v for k, v in success.items() if k != "$defs"}
    schema: dict[str, Any] = {"type": "object", "anyOf": [body, ERROR_ENVELOPE_SCHEMA]}
    if "$defs" in success:
        schema["$defs"] = success["$defs"]
    return schema


def error_result(err: errors.OrchestratorError) -> CallToolResult:
    payload = {"error": err.to_dict()}
    text = json.dumps(payload, indent=2, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=payload, is_error=True)


def to_orchestrator_error(tool: str, exc: BaseException) -> errors.OrchestratorError:
    """Classify what a tool call raised; unknown failures are logged with a reference and hidden."""
    cause = exc.__cause__
    if isinstance(exc, errors.OrchestratorError):
        return exc
    if isinstance(cause, errors.OrchestratorError):
        return cause
    # Only the SDK's argument validation is the caller's mistake; a ValidationError inside the tool body or
    # its output conversion arrives as UnexpectedToolError (a ToolError subclass) and is our bug: internal.
    if isinstance(exc, ToolError) and not isinstance(exc, UnexpectedToolError) and isinstance(cause, ValidationError):
        return invalid_arguments(cause)
    if isinstance(exc, ToolError) and str(exc).startswith("Unknown tool"):
        return errors.InvalidArgument(
            f"There is no tool named {tool!r}; call tools/list for the available tools.",
            field="name",
            value=tool,
            hint="tools/list",
        )
    reference = secrets.token_hex(6)
    log.error(
        "tool_internal_error",
        exc_info=(type(cause or exc), cause or exc, (cause or exc).__traceback__),
        extra={"event": "tool_internal_error", "tool": tool, "reference": reference},
    )
    return errors.Internal(reference)


def check_argument_names(parameters: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Refuse arguments the tool does not declare: the SDK would silently drop them, so a misspelt name
    (``parent_id`` for ``parent_task_id``) would quietly do something other than what was asked.

    Raises:
        invalid_argument: naming the first unknown argument and the tool's argument names.
    """
    known = sorted(parameters.get("properties", {}))
    unknown = [name for name in arguments if name not in known]
    if unknown:
        first = unknown[0]
        raise errors.InvalidArgument(
            f"Unknown argument {first[:64]!r}; this tool takes: {', '.join(known)}. Fix the name and call again.",
            field=first[:64],
            value=_short(arguments[first]),
            allowed=known,
        )


def invalid_arguments(exc: ValidationError) -> errors.InvalidArgument:
    """pydantic's errors as one ``invalid_argument`` (the first problem leads; all are listed)."""
    return invalid_from_errors(exc.errors(include_url=False))


def invalid_from_errors(details: Sequence[Any]) -> errors.InvalidArgument:
    """Like :func:`invalid_arguments`, from pydantic's error dicts (``ValidationError.errors()``), which the
    edge may have filtered or rewritten first."""
    problems = [_problem(err) for err in details]
    first = problems[0]
    more = f" ({len(problems) - 1} more problem(s) listed in 'problems')" if len(problems) > 1 else ""
    return errors.InvalidArgument(
        f"Invalid value for '{first['field']}': {first['reason']}.{more} Fix the argument and call again.",
        field=first["field"],
        value=first["value"],
        allowed=first["allowed"],
        details={"problems": problems} if len(problems) > 1 else None,
    )


def _problem(err: Any) -> dict[str, Any]:
    path = _path(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    allowed: Any = None
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    elif kind in ("string_too_short", "string_too_long", "too_short", "too_long"):
        key = "min_length" if kind.endswith("short") else "max_length"
        allowed = {key: ctx.get(key)}
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        allowed = {k: v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt")}
    elif kind == "string_pattern_mismatch":
        allowed = {"pattern": ctx.get("pattern")}
    elif kind in TYPE_ERRORS:
        allowed = TYPE_ERRORS[kind]
    elif kind == "missing":
        allowed = "a value (required)"
    elif kind == "extra_forbidden":
        allowed = "no such field"
    message = str(err["msg"]).rstrip(".")
    # Lower-case only the first letter: the rest may quote a pattern or enum values, which are case-sensitive.
    reason = "it is required" if kind == "missing" else message[:1].lower() + message[1:]
    # A missing argument has no value; pydantic's "input" is then the whole enclosing object.
    value = None if kind == "missing" else _short(err.get("input"))
    return {"field": path, "value": value, "allowed": allowed, "reason": reason}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "arguments"


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"… ({len(value)} characters)"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return value if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"
    return value
