"""Secrets never reach the log: the formatter masks Authorization headers and tokens in every shape."""

from __future__ import annotations

import json
import logging

from app.auth.tokens import new_token
from app.observability.logging import ConsoleFormatter, JsonFormatter

TOKEN = new_token()
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.c2lnbmF0dXJl"
BASIC = "dXNlcjpwYXNzd29yZA"  # not our token format: only the header patterns can catch it


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("app.test", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_authorization_headers_are_masked_in_messages_and_extras() -> None:
    records = [
        record("Authorization: Bearer %s", TOKEN),
        record("authorization=%s", f"Basic {TOKEN}"),
        record("headers %r", [(b"authorization", f"Basic {TOKEN}".encode())]),
        record("headers %r", [(b"host", b"x"), (b"authorization", f"Basic {BASIC}".encode())]),
        record("headers %r", {"Authorization": f"Basic {BASIC}"}),
        record("Authorization: Basic %s", BASIC),
        record("headers %r", {"Authorization": f"Bearer {JWT}"}),
        record("request", headers={"authorization": f"Bearer {TOKEN}"}, scope={"auth_header": TOKEN}),
        record("token seen in an error: %s", TOKEN),
        record("a jwt %s", JWT),
        record("call", authorization=f"Bearer {TOKEN}"),
    ]
    for formatter in (JsonFormatter(), ConsoleFormatter()):
        for rec in records:
            line = formatter.format(rec)
            assert TOKEN[5:] not in line, line
            assert "c2lnbmF0dXJl" not in line, line
            assert BASIC not in line, line
    assert json.loads(JsonFormatter().format(records[0]))["event"] == "Authorization: ***"
