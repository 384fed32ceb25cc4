"""The JSON log formatter: one object per line, call context on every line, secrets masked wherever they hide."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from app.observability.logging import ConsoleFormatter, JsonFormatter, log_context, redact


def record(message: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.LogRecord("app.test", logging.INFO, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def formatted(rec: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.abc-123_x", "Authorization: ***"),
        ("sent bearer ghp_0123456789abcdef to the API", "sent bearer *** to the API"),
        ("postgresql://orch:s3cret@db:5432/orch", "postgresql://orch:***@db:5432/orch"),
        ("postgresql+asyncpg://orch:p@ss:word@db/orch", "postgresql+asyncpg://orch:***@db/orch"),
        ("redis://:onlypass@cache:6379/0", "redis://:***@cache:6379/0"),
        ("password=hunter2&user=bob", "password=***&user=bob"),
        ("{'api_token': 'tok_abc', 'n': 1}", "{'api_token': '***', 'n': 1}"),
        ('"client_secret": "xyz"', '"client_secret": "***"'),
        ("http://127.0.0.1:8000/mcp is up", "http://127.0.0.1:8000/mcp is up"),
        ("token_count=5 tokens: 7", "token_count=5 tokens: 7"),
    ],
)
def test_redact_masks_secrets_and_keeps_ordinary_text(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_json_line_masks_secrets_in_message_extras_nested_values_and_tracebacks() -> None:
    try:
        raise ConnectionError("cannot reach postgresql://orch:tr0ub4dor@db/orch")
    except ConnectionError as caught:
        exc = caught
    out = formatted(
        record(
            "connecting to %s",
            "postgresql://orch:tr0ub4dor@db/orch",
            exc=exc,
            event="db_connect",
            password="tr0ub4dor",
            headers={"Authorization": "Bearer abc.def", "accept": "json"},
            attempts=[{"dsn": "postgresql://orch:tr0ub4dor@db/orch"}],
        )
    )
    assert "tr0ub4dor" not in json.dumps(out) and "abc.def" not in json.dumps(out)
    assert out["event"] == "db_connect"
    assert out["message"] == "connecting to postgresql://orch:***@db/orch"
    assert out["password"] == "***"
    assert out["headers"] == {"Authorization": "***", "accept": "json"}
    assert out["attempts"] == [{"dsn": "postgresql://orch:***@db/orch"}]
    assert "ConnectionError: cannot reach postgresql://orch:***@db/orch" in str(out["exception"])


def test_json_line_has_time_level_event_and_the_bound_call_context() -> None:
    with log_context(tool="orchestrator_plan_task", actor="planner", request_id="r-1", task_id=None):
        with log_context(task_id="task_0123456789abcdef"):
            inner = formatted(record("tool_call", event="tool_call", outcome="ok"))
        outer = formatted(record("after"))
    outside = formatted(record("outside"))

    assert inner["time"].endswith("Z") and inner["level"] == "info"  # type: ignore[union-attr]
    assert {k: inner[k] for k in ("event", "tool", "actor", "request_id", "task_id", "outcome")} == {
        "event": "tool_call",
        "tool": "orchestrator_plan_task",
        "actor": "planner",
        "request_id": "r-1",
        "task_id": "task_0123456789abcdef",
        "outcome": "ok",
    }
    assert "task_id" not in outer and outer["actor"] == "planner"
    assert not {"tool", "actor", "request_id", "task_id"} & outside.keys()


def test_console_line_is_redacted_too() -> None:
    with log_context(actor="ops"):
        line = ConsoleFormatter().format(
            record("dsn %s", "postgresql://u:pw123@h/db", event="db", token="abc", note="Bearer zzz")
        )
    assert "pw123" not in line and "abc" not in line and "zzz" not in line
    assert "actor=ops" in line and "token=***" in line


def test_exception_outside_the_redaction_patterns_keeps_its_text() -> None:
    try:
        raise ValueError("plain failure")
    except ValueError:
        out = formatted(record("boom", exc=sys.exc_info()[1]))
    assert "ValueError: plain failure" in str(out["exception"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # No trigger anywhere: the line is serialized once and kept as it is.
        ({"actor": "planner", "note": "ordinary text"}, {"actor": "planner", "note": "ordinary text"}),
        # A secret field name alone is a trigger, whatever the value looks like.
        ({"api_token": "plain", "n": 1}, {"api_token": "***", "n": 1}),
        # Non-ASCII text is escaped in the line; a Kelvin sign still reads as "k" in "toKen=" and is masked.
        ({"note": "to\u212aen=hunter2 café"}, {"note": "to\u212aen=*** café"}),
        ({"note": "café au lait"}, {"note": "café au lait"}),
        # Mixed case and a trigger in a nested value.
        ({"deep": {"list": ["PASSWORD=abc"]}}, {"deep": {"list": ["PASSWORD=***"]}}),
    ],
)
def test_json_line_masks_exactly_what_the_field_by_field_redaction_masks(
    extra: dict[str, object], expected: dict[str, object]
) -> None:
    out = formatted(record("tool_call", event="tool_call", **extra))
    assert {key: out[key] for key in expected} == expected
