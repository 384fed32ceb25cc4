"""Structured logs: one JSON object per line on stdout, with secrets redacted in the formatter itself.

Redaction lives in the formatter so no call site can forget it: bearer tokens, ``password=`` pairs and
passwords inside URLs are masked in the message and in every extra field.

Every line carries the call's context — ``request_id``, ``actor``, ``tool``, ``task_id`` (DESIGN §9) —
when it is logged inside a tool call: the MCP edge binds them once with :func:`log_context`, so a line
logged deep in the unit of work still says whose call it was. Lines logged under a recording span also
carry ``trace_id`` and ``span_id``, to jump from a log line to its trace.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",\s]+(\s+[^'\",\s]+)?"), r"\1***"),
    # ASGI header pairs as Python reprs: (b'authorization', b'Basic …')
    (re.compile(r"(?i)(authorization['\"]\s*,\s*b?['\"])[^'\"]+"), r"\1***"),
    # Our own token format, wherever it appears (``task-orchestrator token new``).
    (re.compile(r"\borch_[A-Za-z0-9_-]{16,}"), "orch_***"),
    # A JWT (header.payload.signature, base64url JSON objects), wherever it appears.
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), "eyJ***"),
    (re.compile(r"(?i)((?:password|passwd|pwd|secret|token)['\"]?\s*[:=]\s*['\"]?)[^'\",\s&]+"), r"\1***"),
    # scheme://user:password@host — greedy up to the last "@", so a password holding "@" is masked whole.
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)[^\s'\"]+(@)"), r"\1***\2"),
)
# Every secret pattern above needs one of these words or marks in the text: one scan for them decides
# whether the patterns run at all, so an ordinary line (a tool name, an actor, a task id) costs one
# search instead of seven substitutions (issue 14: the log line was most of the edge's cost per call).
# For ASCII text the scan is ``in`` tests on a lower-cased copy (a microsecond); the case-insensitive
# regex made from the same words (tens of µs: it has no literal prefix to skip ahead with) decides the rest.
SECRET_WORDS = ("bearer", "authorization", "authorisation", "orch_", "eyj", "passw", "pwd", "secret", "token", "://")
SECRET_TRIGGER = re.compile("(?i)" + "|".join(re.escape(word) for word in SECRET_WORDS))
STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
EXTRA_SKIPPED = STANDARD_ATTRS | {"event"}
_context: ContextVar[dict[str, Any] | None] = ContextVar("orchestrator_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` to every line logged in this block (this task and the tasks it starts)."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def may_hold_secret(text: str) -> bool:
    """Whether ``text`` holds a word of ``SECRET_TRIGGER`` (only then can a secret pattern match)."""
    if not text.isascii():  # case folding beyond ASCII (the Kelvin sign is a "k") is the regex's to decide
        return SECRET_TRIGGER.search(text) is not None
    lowered = text.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redact(text: str) -> str:
    if not may_hold_secret(text):
        return text
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: ("***" if _secret_key(k) else _clean(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and _secret_name(key)


@functools.lru_cache(maxsize=1024)
def _secret_name(key: str) -> bool:
    """Whether a field name holds a secret; the names of log fields repeat, so each is decided once."""
    lowered = key.lower()
    return any(s in lowered for s in ("password", "token", "secret", "authorization"))


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "event", …context, …extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        message = record.getMessage()
        if message != payload["event"]:
            payload["message"] = message
        payload.update(_context.get() or {})
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            payload["trace_id"] = format(span_context.trace_id, "032x")
            payload["span_id"] = format(span_context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in EXTRA_SKIPPED:
                payload[key] = value  # a secret field name is masked by _redacted_json (its name is a trigger)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return _redacted_json(payload)


def _redacted_json(payload: dict[str, Any]) -> str:
    """``payload`` as one JSON line with every secret masked, serialized once when nothing can be a secret.

    Every secret pattern and every secret field name holds a word of ``SECRET_TRIGGER``, and those words
    are ASCII letters and ``:/`` that JSON never escapes, so a line without a trigger (and without any
    escaped non-ASCII character, which a case-insensitive match could equate with a trigger's letter) has
    nothing to mask; only a line with one walks the payload field by field (``_clean``).
    """
    line = json.dumps(payload, default=str)
    if "\\u" not in line and not may_hold_secret(line):
        return line
    return json.dumps(_clean(payload), default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable single-line logs for a developer's terminal, redacted the same way."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**(_context.get() or {}), **{k: v for k, v in vars(record).items() if k not in STANDARD_ATTRS}}
        extras = " ".join(f"{k}={'***' if _secret_key(k) else v}" for k, v in fields.items() if k != "event")
        event = getattr(record, "event", None) or record.getMessage()
        line = f"{record.levelname:<7} {record.name}: {event} {extras}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger (ours, uvicorn's, the SDK's) to one stdout handler with our formatter."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp", "sqlalchemy", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("sqlalchemy.engine").setLevel("WARNING")
