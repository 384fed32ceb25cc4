"""An actor's first calls may arrive together (one agent, several parallel tool calls)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tests.support.harness import Harness

pytestmark = pytest.mark.anyio


async def test_concurrent_first_calls_of_a_new_actor_all_succeed_and_record_one_agent(harness: Harness) -> None:
    session_id = await harness.session("planner")
    created: list[str] = []
    gate = anyio.Event()

    async def plan(index: int) -> None:
        await gate.wait()
        result = await harness.plan("newcomer", session_id=session_id, title=f"parallel {index}")
        created.append(result.task.created_by)

    async with anyio.create_task_group() as group:
        for index in range(5):
            group.start_soon(plan, index)
        await anyio.lowlevel.checkpoint()
        gate.set()

    assert created == ["newcomer"] * 5

    async def agent_row(repos):  # type: ignore[no-untyped-def]
        return await repos.agents.get("newcomer")

    row = await harness.uow.run(agent_row, write=False)
    assert row is not None
    assert row.last_seen_at == harness.clock.now()
