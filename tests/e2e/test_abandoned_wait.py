"""A waiting next_task whose client has gone ends there and claims nothing (DESIGN §4.7, both eras).

On 2026-07-28 the client's only way to cancel is to close its response stream; on 2025-11-25 it sends
``notifications/cancelled``. Either way the wait must end at once: before, on 2026-07-28 with JSON
responses, it waited on and then claimed the next ready task for a caller that would never see it.
"""

from __future__ import annotations

import anyio
import pytest

from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client
from tests.support.waiting import LONG_WAIT, new_session, plan, until, waiters

pytestmark = pytest.mark.anyio


def calls(server: RunningServer, tool: str, outcome: str) -> float:
    value = server.runtime.holder.metrics.registry.get_sample_value(
        "orchestrator_tool_calls_total", {"tool": tool, "outcome": outcome, "code": outcome}
    )
    return float(value or 0)


async def test_a_waiting_next_task_whose_client_goes_away_ends_at_once_and_claims_nothing(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as planner:
        session_id = await new_session(planner)
        async with client(server, era) as leaving, anyio.create_task_group() as group:

            async def wait_for_work() -> None:
                await leaving.call_tool(
                    "orchestrator_next_task", {"session_id": session_id, "agent": "leaver", "wait_seconds": LONG_WAIT}
                )

            group.start_soon(wait_for_work)
            await until(lambda: waiters(server) == 1)  # parked: nothing is ready
            group.cancel_scope.cancel()  # the agent gives up (a timeout, Ctrl-C, a crash)

        # The wait ended with its client, not LONG_WAIT seconds later, and freed its place in flight.
        await until(lambda: waiters(server) == 0)
        await until(lambda: calls(server, "orchestrator_next_task", "cancelled") == 1)
        assert server.runtime.holder.metrics.tool_in_flight._value.get() == 0

        task = await plan(planner, session_id, "Nobody is waiting for this")
        page = await call_ok(planner, "orchestrator_query_tasks", session_id=session_id, view="full")
        (row,) = page["tasks"]
        assert (row["id"], row["status"], row["assigned_to"], row["attempt_count"]) == (task["id"], "pending", None, 0)
