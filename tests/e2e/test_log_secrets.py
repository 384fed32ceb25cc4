"""Secrets never reach the log: the served app's whole output is searched for the DSN password and tokens."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.engine import make_url

from tests.support.databases import PostgresTemplate
from tests.support.mcp import call_error, call_ok
from tests.support.process import app_process, child_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def with_password(url: str, password: str) -> str:
    """The plain ``postgresql://user:password@host/db`` form an operator writes (the cluster trusts any password)."""
    parsed = make_url(url).set(drivername="postgresql", password=password)
    return parsed.render_as_string(hide_password=False)


async def test_log_is_json_lines_without_the_database_password_or_bearer_tokens(
    postgres_template: PostgresTemplate, tmp_path: Path
) -> None:
    database = await postgres_template.copy()
    password = f"pw-{secrets.token_hex(12)}"
    header_token = f"ghp_{secrets.token_hex(18)}"
    argument_token = f"sk_live_{secrets.token_hex(16)}"
    env = child_env(
        ORCHESTRATOR_DATABASE_URL=with_password(database, password),
        ORCHESTRATOR_DATA_DIR=str(tmp_path / "data"),
        ORCHESTRATOR_LOG_LEVEL="DEBUG",  # the most the service (and the SDK, uvicorn, SQLAlchemy) ever logs
    )
    try:
        async with app_process(env, tmp_path) as app:
            headers = {"Authorization": f"Bearer {header_token}"}
            async with httpx2.AsyncClient(headers=headers) as http:
                async with Client(streamable_http_client(app.mcp_url, http_client=http)) as c:
                    await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="leaky")
                    await call_ok(
                        c,
                        "orchestrator_plan_task",
                        agent="leaky",
                        title="Rotate credentials",
                        description=f"Use Authorization: Bearer {argument_token} against the staging API.",
                        context={"api_token": argument_token, "notes": f"password={password}"},
                    )
                    refused = await call_error(
                        c, "orchestrator_plan_task", agent="leaky", title="x", description="y", priority=argument_token
                    )
                    assert refused["code"] == "invalid_argument"  # the value is echoed to the caller only
                metrics = await http.get(f"{app.base_url}/metrics")
                assert metrics.status_code == 200
            await app.stop()
    finally:
        await postgres_template.drop(database)

    output = app.text()
    records = [json.loads(line) for line in app.output["stdout"].decode().splitlines()]
    assert all({"event", "level", "time", "logger"} <= record.keys() for record in records)
    events = [record["event"] for record in records]
    assert "database_open" in events and "tool_call" in events  # the log really ran
    tool_calls = [r for r in records if r["event"] == "tool_call"]
    assert [(r["tool"], r["actor"], r["outcome"]) for r in tool_calls] == [
        ("orchestrator_initialize_session", "leaky", "ok"),
        ("orchestrator_plan_task", "leaky", "ok"),
        ("orchestrator_plan_task", "leaky", "invalid_argument"),
    ]
    assert all(r["mcp_request_id"] for r in tool_calls)
    assert password not in output
    assert header_token not in output
    assert argument_token not in output
