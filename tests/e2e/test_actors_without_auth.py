"""With auth off the actor is ``agent``, else the client's ``clientInfo.name``, else ``anonymous``."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.types import Implementation

from app.settings import Settings
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client, serve

pytestmark = pytest.mark.anyio


async def test_actor_is_agent_else_client_name(server: RunningServer, era: str) -> None:
    async with client(server, era, client_info=Implementation(name="ide-client", version="1.0")) as c:
        session = await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
        by_client = await call_ok(c, "orchestrator_plan_task", title="T", description="D.")
        by_agent = await call_ok(
            c, "orchestrator_plan_task", title="U", description="D.", agent="bot-1", session_id=session["session"]["id"]
        )
    assert session["session"]["created_by"] == "ide-client"
    assert by_client["task"]["created_by"] == "ide-client"
    assert by_agent["task"]["created_by"] == "bot-1"


async def test_a_client_name_with_nul_or_control_characters_is_stored_readable(server: RunningServer, era: str) -> None:
    # PostgreSQL cannot store NUL (the call answered internal) and SQLite stored it: alike now, and readable.
    async with client(server, era, client_info=Implementation(name="bot\x00one\n", version="1.0")) as c:
        session = await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
        task = await call_ok(c, "orchestrator_plan_task", title="T", description="D.")
    assert session["session"]["created_by"] == task["task"]["created_by"] == "bot\ufffdone\ufffd"


async def test_actor_is_anonymous_when_the_transport_carries_no_client_name(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console", stateless_http=True)
    async with serve(settings) as running:
        async with Client(running.mcp_url, mode="legacy") as c:  # legacy stateless: no initialize reaches tools
            session = await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
    assert session["session"]["created_by"] == "anonymous"
