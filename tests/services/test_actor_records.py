"""An actor's first calls may arrive together (one agent, several parallel tool calls)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from app.services.work.leases import SWEEPER_ACTOR
from tests.support.execution import execute
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


async def test_an_agent_whose_name_starts_with_system_is_still_an_agent_and_the_sweeper_is_not(
    harness: Harness,
) -> None:
    """Only the monitors are system callers (a flag they set), not any name an agent may choose."""
    session_id = await harness.session("planner")
    task = (await harness.plan("planner", session_id=session_id)).task
    await execute(harness, task.id, "system:impostor", lease_seconds=30)  # a lease that lapses
    harness.clock.advance(60)
    swept = await harness.services.leases.sweep_expired()

    async def agent_rows(repos):  # type: ignore[no-untyped-def]
        return await repos.agents.get("system:impostor"), await repos.agents.get(SWEEPER_ACTOR)

    impostor, sweeper = await harness.uow.run(agent_rows, write=False)
    assert [e.task_id for e in swept.expired] == [task.id]
    assert impostor is not None and impostor.last_seen_at is not None  # recorded like any agent
    assert sweeper is None  # the monitor keeps no agent row
