"""Structured logs: one JSON object per line on stdout, with secrets redacted in the formatter itself.

Redaction lives in the formatter so no call site can forget it: bearer tokens, ``password=`` pairs and
passwords inside URLs are masked in the message and in every extra field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

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
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+(@)"), r"\1***\2"),
)
STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
}
CONTEXT_FIELDS = ("request_id", "actor", "tool", "task_id")


def redact(text: str) -> str:
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
    return isinstance(key, str) and any(s in key.lower() for s in ("password", "token", "secret", "authorization"))


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
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRS and key != "event":
                payload[key] = "***" if _secret_key(key) else value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(_clean(payload), default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable single-line logs for a developer's terminal, redacted the same way."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in STANDARD_ATTRS and k != "event")
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
