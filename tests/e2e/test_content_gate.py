"""Resource reads, resource lists and prompts pass the gates tool calls pass (DESIGN §7, §8), on both eras.

Before, only tool calls took a place in the actor's fair share and were admitted by the RebootManager:
one client could read resources in a loop past every per-actor limit, and reads went on through a drain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.types import ErrorData, Implementation

from app.settings import Settings
from tests.support.mcp import call_ok
from tests.support.server import client, serve

pytestmark = pytest.mark.anyio


def named(name: str) -> dict[str, Any]:
    return {"client_info": Implementation(name=name, version="1")}


async def refused_reads(c: Client, board: str) -> list[ErrorData]:
    """A resource read, a resource list and a prompt, each of which must be refused: their JSON-RPC errors."""
    refusals = []
    for request in (
        lambda: c.read_resource(board),
        lambda: c.list_resources(),
        lambda: c.get_prompt("orchestrator_work_loop", {"agent": "ann"}),
    ):
        with pytest.raises(MCPError) as refused:
            await request()
        refusals.append(refused.value.error)
    return refusals


async def test_a_client_over_its_rate_is_refused_resources_and_prompts_while_another_is_served(
    database_url: str, tmp_path: Path, era: str
) -> None:
    # A bucket of 4 that refills one call a minute: the fifth request of a burst is over the rate.
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_format="console",
        rate_limit_burst=4,
        rate_limit_per_minute=1,
    )
    async with serve(settings) as server:
        async with client(server, era, **named("flood")) as flood, client(server, era, **named("calm")) as calm:
            started = await call_ok(flood, "orchestrator_initialize_session", working_directory="/w")  # 1
            board = f"orchestrator://sessions/{started['session']['id']}"
            await flood.read_resource(board)  # 2
            await flood.list_resources()  # 3
            await flood.get_prompt("orchestrator_work_loop", {"agent": "ann"})  # 4
            refusals = await refused_reads(flood, board)
            served = await calm.read_resource(board)  # another principal is not held back

    assert [(e.code, e.data["code"], e.data["retryable"]) for e in refusals] == [(-32000, "rate_limited", True)] * 3
    assert all(e.data["retry_after_seconds"] > 0 for e in refusals)
    assert "'flood'" in refusals[0].message and "ORCHESTRATOR_RATE_LIMIT_PER_MINUTE" in refusals[0].message
    assert served.contents[0].text  # type: ignore[union-attr]


async def test_resources_and_prompts_are_refused_as_unavailable_while_the_service_drains(
    database_url: str, tmp_path: Path, era: str
) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings) as server, client(server, era) as c:
        started = await call_ok(c, "orchestrator_initialize_session", working_directory="/w")
        board = f"orchestrator://sessions/{started['session']['id']}"
        await call_ok(c, "orchestrator_shutdown_prepare", begin_drain=True, check_active_tasks=False)
        refusals = await refused_reads(c, board)

    assert [(e.code, e.data["code"], e.data["retryable"]) for e in refusals] == [(-32000, "unavailable", True)] * 3
    assert all("draining" in e.message for e in refusals)
