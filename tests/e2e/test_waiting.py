"""Waiting for work and the change feed (DESIGN §4.7) over real HTTP, with the real MCP client.

On PostgreSQL every test runs two replicas (two uvicorn apps on one database): waiters and subscribers
on replica A, writes through replica B, so what reaches A went through LISTEN/NOTIFY. On SQLite one app
plays both parts (the in-process signal). The periodic re-check (SQLite) and the listener's liveness
check (PostgreSQL) are set far beyond every test's bounds, so a waiter that wakes was woken by a signal. Waits are bounded (``fail_after``) and end on conditions.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.types import ResourceUpdatedNotification

from app.domain.clock import SystemClock
from app.services.caller import Caller
from app.services.graph.planning import SubtaskSpec, TaskPlanningService
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client
from tests.support.waiting import BOUND, LONG_WAIT, Waiters, new_session, plan, replicas, until, waiters, wakeups

pytestmark = pytest.mark.anyio


async def test_a_task_planned_through_one_replica_is_claimed_by_the_oldest_waiter_on_another_and_the_rest_wait_on(
    database_url: str, backend: str, tmp_path: Path, era: str
) -> None:
    async with replicas(database_url, backend, tmp_path) as (a, b), client(a, era) as ca, client(b, era) as cb:
        session_id = await new_session(cb)
        async with anyio.create_task_group() as group:
            parked = Waiters(ca, a, session_id, group)
            for agent in ("first", "second", "third"):
                await parked.start(agent)

            one = await plan(cb, session_id, "One")
            await until(lambda: len(parked.results) == 1)
            assert parked.claimed() == {"first": one["id"]}  # exactly one waiter, the oldest, got it
            assert waiters(a) == 2  # the others keep waiting

            two = await plan(cb, session_id, "Two")
            await until(lambda: len(parked.results) == 2)
            three = await plan(cb, session_id, "Three")
            await until(lambda: len(parked.results) == 3)
        assert parked.claimed() == {"first": one["id"], "second": two["id"], "third": three["id"]}
        assert {r["claim"]["holder"] for r in parked.results.values()} == {"first", "second", "third"}
        assert wakeups(a, "signal") >= 3 and wakeups(a, "interval") == 0
        assert waiters(a) == 0


async def test_completing_the_last_blocker_through_one_replica_wakes_a_waiter_on_another_for_the_dependent(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with replicas(database_url, backend, tmp_path) as (a, b), client(a, "2026-07-28") as ca:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            blocker = await plan(cb, session_id, "Blocker")
            dependent = await plan(cb, session_id, "Dependent", dependencies=[blocker["id"]])
            await call_ok(cb, "orchestrator_execute_task", task_id=blocker["id"], agent="builder")
            async with anyio.create_task_group() as group:
                parked = Waiters(ca, a, session_id, group)
                await parked.start("next-worker")
                assert parked.results == {}  # nothing ready: the dependent waits on its blocker
                await call_ok(
                    cb,
                    "orchestrator_complete_task",
                    task_id=blocker["id"],
                    summary="Done.",
                    detailed_work="All of it.",
                    next_action="complete",
                    agent="builder",
                )
                await until(lambda: len(parked.results) == 1)
        assert parked.claimed() == {"next-worker": dependent["id"]}
        assert parked.results["next-worker"]["dependencies"][0]["task_id"] == blocker["id"]


async def test_a_waiter_for_another_specialist_keeps_waiting_while_one_for_this_specialist_gets_the_task(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with replicas(database_url, backend, tmp_path) as (a, b), client(a, "2026-07-28") as ca:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            async with anyio.create_task_group() as group:
                parked = Waiters(ca, a, session_id, group)
                await parked.start("tester", specialist_type=["tester"])
                await parked.start("coder", specialist_type=["coder"])
                code = await plan(cb, session_id, "Code it", specialist_type="coder")
                await until(lambda: len(parked.results) == 1)
                assert parked.claimed() == {"coder": code["id"]}
                assert waiters(a) == 1
                test = await plan(cb, session_id, "Test it", specialist_type="tester")
                await until(lambda: len(parked.results) == 2)
        assert parked.claimed() == {"coder": code["id"], "tester": test["id"]}


async def test_a_wait_that_runs_out_answers_no_task_with_the_reason_and_stores_nothing_under_its_request_id(
    server: RunningServer,
) -> None:
    async with client(server, "2026-07-28") as c:
        session_id = await new_session(c)
        args = {"session_id": session_id, "agent": "w", "request_id": "wait-1"}
        with anyio.fail_after(BOUND):
            ended = await call_ok(c, "orchestrator_next_task", wait_seconds=0.2, **args)
        assert ended["task"] is None
        assert ended["reason"].startswith("Nothing became ready within 0.2 s. Session ")
        task = await plan(c, session_id, "Later")
        again = await call_ok(c, "orchestrator_next_task", wait_seconds=0.2, **args)  # same request_id: a new try
        assert again["task"]["id"] == task["id"]
        replay = await call_ok(c, "orchestrator_next_task", wait_seconds=0.2, **args)
        assert replay == again  # the claim is what was stored


async def test_a_drain_ends_every_wait_at_once_with_reason_draining(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with replicas(database_url, backend, tmp_path) as (a, _), client(a, "2026-07-28") as c:
        session_id = await new_session(c)
        async with anyio.create_task_group() as group:
            parked = Waiters(c, a, session_id, group)
            await parked.start("one")
            await parked.start("two")
            prepared = await call_ok(c, "orchestrator_shutdown_prepare", begin_drain=True)
            assert prepared["draining"] is True
            with anyio.fail_after(BOUND):  # far below LONG_WAIT: the waits ended because of the drain
                await until(lambda: len(parked.results) == 2)
        assert parked.results == {
            "one": {"task": None, "reason": "draining"},
            "two": {"task": None, "reason": "draining"},
        }
        assert wakeups(a, "draining") == 2


async def test_a_restart_ends_the_waits_at_once_and_waiting_works_again_after_it(server: RunningServer) -> None:
    async with client(server, "2026-07-28") as c:
        session_id = await new_session(c)
        async with anyio.create_task_group() as group:
            parked = Waiters(c, server, session_id, group)
            await parked.start("early")
            restart = await call_ok(c, "orchestrator_restart_server", timeout=LONG_WAIT, reason="manual_request")
            await until(lambda: len(parked.results) == 1)
        assert restart["outcome"] == "succeeded"
        drain = next(p for p in restart["phases"] if p["name"] == "drain")
        assert drain["outcome"] == "ok"
        assert parked.results == {"early": {"task": None, "reason": "draining"}}
        async with anyio.create_task_group() as group:
            parked = Waiters(c, server, session_id, group)
            await parked.start("late")
            task = await plan(c, session_id, "After the restart")
            await until(lambda: len(parked.results) == 1)
        assert parked.claimed() == {"late": task["id"]}


async def test_ten_waiters_hold_no_pool_connection_and_other_calls_are_served_meanwhile(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with replicas(database_url, backend, tmp_path, db_pool_size=2) as (a, b), client(a, "2026-07-28") as ca:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            agents = [f"agent-{n}" for n in range(10)]
            async with anyio.create_task_group() as group:
                parked = Waiters(ca, a, session_id, group)
                for agent in agents:
                    await parked.start(agent)
                assert a.runtime.database.pool_stats()["checked_out"] == 0
                assert a.runtime.uow.open_transactions == 0
                status = await call_ok(ca, "orchestrator_get_status", session_id=session_id)  # served on A
                assert status["counts"]["total"] == 0
                planned = [await plan(ca, session_id, f"Task {n}") for n in range(10)]
                await until(lambda: len(parked.results) == 10)
        assert sorted(parked.claimed().values()) == sorted(t["id"] for t in planned)
        assert [parked.claimed()[agent] for agent in agents] == [t["id"] for t in planned]  # in arrival order


def _updated_uri(message: object) -> str | None:
    if isinstance(message, ResourceUpdatedNotification):
        return str(message.params.uri)
    return None


async def test_a_subscriber_on_one_replica_hears_of_a_task_changed_through_another(
    database_url: str, backend: str, tmp_path: Path, era: str
) -> None:
    async with replicas(database_url, backend, tmp_path) as (a, b), client(b, "2026-07-28") as cb:
        session_id = await new_session(cb)
        task = await plan(cb, session_id, "Watched")
        wanted = {f"orchestrator://tasks/{task['id']}", f"orchestrator://sessions/{session_id}"}
        heard: set[str] = set()

        async def change() -> None:
            await call_ok(cb, "orchestrator_update_task", task_id=task["id"], priority="high", agent="planner")

        if era == "2026-07-28":
            async with client(a, era) as ca, ca.listen(resource_subscriptions=sorted(wanted)) as stream:
                await change()
                with anyio.fail_after(BOUND):
                    async for event in stream:
                        heard.add(str(getattr(event, "uri", "")))
                        if heard >= wanted:
                            break
        else:

            async def on_message(message: object) -> None:
                uri = _updated_uri(message)
                if uri is not None:
                    heard.add(uri)

            async with client(a, era, message_handler=on_message) as ca:
                for uri in sorted(wanted):
                    await ca.subscribe_resource(uri)
                await change()
                await until(lambda: heard >= wanted)
        assert heard == wanted


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_lost_signal_never_strands_a_waiter_the_periodic_recheck_finds_the_task(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    # A write whose signal never comes: a planning service with no sink (as another process writing the
    # SQLite file). On PostgreSQL no commit can lose its signal (the NOTIFY is part of its transaction) and
    # idle waiters make no queries; a lost LISTEN connection is covered in test_waiting_listener.
    async with replicas(database_url, backend, tmp_path, wait_recheck_seconds=0.2) as (a, _):
        async with client(a, "2026-07-28") as c:
            session_id = await new_session(c)
            silent = TaskPlanningService(a.runtime.uow, SystemClock())
            async with anyio.create_task_group() as group:
                parked = Waiters(c, a, session_id, group)
                await parked.start("patient")
                planned = await silent.plan_task(
                    Caller(actor="elsewhere"),
                    SubtaskSpec(title="Unsignalled", description="Nobody was told."),
                    parent_task_id=None,
                    session_id=session_id,
                    request_id=None,
                )
                await until(lambda: len(parked.results) == 1)
        assert parked.claimed() == {"patient": planned.task.id}
        assert wakeups(a, "interval") >= 1
