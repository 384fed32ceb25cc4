"""Waiting survives a PostgreSQL restart: the LISTEN connection comes back and signals flow again.

Two replicas on a throwaway cluster (the one ``test_database_outage`` uses, because this test stops it).
The periodic re-check is set beyond the test's bounds, so the waiter is woken by the signal.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.e2e.test_database_outage import Cluster, cluster, outage_database, outage_settings, wait_until_ready
from tests.support.mcp import call_ok
from tests.support.server import client, serve
from tests.support.waiting import NO_RECHECK, Waiters, new_session, plan, until, wakeups

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
__all__ = ["cluster", "outage_database"]  # fixtures, used by name


async def test_the_listener_survives_a_database_restart_and_a_task_planned_after_it_wakes_a_waiter(
    cluster: Cluster, outage_database: str, tmp_path: Path
) -> None:
    settings = outage_settings(outage_database, tmp_path, wait_recheck_seconds=NO_RECHECK)
    async with serve(settings) as a, serve(settings) as b, client(a, "2026-07-28") as ca:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            listener = a.runtime.supervisor.get("change_listener")
            await until(lambda: listener.connected)
            async with anyio.create_task_group() as group:
                parked = Waiters(ca, a, session_id, group)
                await parked.start("patient")

                await cluster.stop()
                await until(lambda: not listener.connected)
                await cluster.start()
                await wait_until_ready(a)
                await wait_until_ready(b)
                await until(lambda: listener.connected)
                assert parked.results == {}  # the wait went on through the outage

                task = await plan(cb, session_id, "After the outage")
                await until(lambda: len(parked.results) == 1)
        assert parked.claimed() == {"patient": task["id"]}
        registry = a.runtime.holder.metrics.registry
        assert registry.get_sample_value("orchestrator_change_listener_reconnects_total") == 1
        assert wakeups(a, "signal") >= 1 and wakeups(a, "interval") == 0
        assert (await call_ok(ca, "orchestrator_get_status", session_id=session_id))["counts"]["total"] == 1


async def test_a_wait_that_runs_out_while_the_database_is_away_says_so_instead_of_nothing_ready(
    cluster: Cluster, outage_database: str, tmp_path: Path
) -> None:
    settings = outage_settings(outage_database, tmp_path, wait_recheck_seconds=NO_RECHECK)
    async with serve(settings) as a, client(a, "2026-07-28") as c:
        session_id = await new_session(c)
        async with anyio.create_task_group() as group:
            parked = Waiters(c, a, session_id, group)
            await parked.start("patient", wait_seconds=3)
            await cluster.stop()
            await until(lambda: len(parked.results) == 1)
        await cluster.start()
        await wait_until_ready(a)
        after = await call_ok(c, "orchestrator_next_task", session_id=session_id, agent="patient")
    answer = parked.results["patient"]
    assert answer["task"] is None
    assert answer["reason"].startswith("Nothing became ready within 3 s. ")
    assert answer["reason"].endswith(
        "The database could not be reached (the connection was refused or dropped); retry shortly."
    )
    assert after["task"] is None and "database" not in after["reason"].lower()  # back: the usual explanation
