"""The PostgreSQL signal path (DESIGN §4.7): the NOTIFY is part of each write's transaction, idle waiters cost
the database nothing while the LISTEN connection is up, and a lost LISTEN connection strands nobody.

A raw asyncpg connection LISTENing on the channel observes what the replicas send. Windows are framed by the
listener's own liveness checks (``ChangeListener.checks``), never by wall-clock time; every wait is bounded.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.clock import SystemClock
from app.runtime.monitors import MonitorSupervisor
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.runtime.work_signals import CHANNEL, ChangeListener, ChangeRouter, SignallingSink, decode, listen_dsn
from app.services.caller import Caller
from app.services.changes import Change
from app.services.graph.planning import SubtaskSpec, TaskPlanningService
from app.services.work.claims import ExecutionService
from app.services.work.waiting import WorkWaiters
from tests.support.mcp import call_ok
from tests.support.server import client
from tests.support.tcp_proxy import freezable_proxy
from tests.support.waiting import LONG_WAIT, NO_RECHECK, Waiters, new_session, plan, replicas, until, waiters, wakeups

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgresql"])]


@asynccontextmanager
async def observer(database_url: str) -> AsyncIterator[list[Change]]:
    """Every change notified on the channel while entered, in delivery order."""
    dsn = listen_dsn(database_url)
    assert dsn is not None
    heard: list[Change] = []

    def on_notification(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        decoded = decode(payload)
        assert decoded is not None
        heard.append(decoded[1])

    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(CHANNEL, on_notification)
        yield heard
    finally:
        await conn.close()


class FailsAfterItsNotify(SignallingSink):
    """A sink whose transaction fails after the NOTIFY statement ran (its last statement, then an error)."""

    async def publish(self, session: AsyncSession, change: Change) -> None:
        await super().publish(session, change)
        raise RuntimeError("the transaction fails after its NOTIFY")


async def test_a_write_that_rolls_back_after_its_notify_sends_nothing_and_the_next_commit_is_heard_first(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with replicas(database_url, backend, tmp_path) as (a, b), observer(database_url) as heard:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            await until(lambda: len(heard) == 1)  # the session's own creation
            heard.clear()
            failing = TaskPlanningService(
                a.runtime.uow, SystemClock(), sink=FailsAfterItsNotify(a.runtime.holder.metrics, a.runtime.signals)
            )
            with pytest.raises(RuntimeError, match="after its NOTIFY"):
                await failing.plan_task(
                    Caller(actor="planner"),
                    SubtaskSpec(title="Rolled back", description="Never kept."),
                    parent_task_id=None,
                    session_id=session_id,
                    request_id=None,
                )
            kept = await plan(cb, session_id, "Kept")
            await until(lambda: len(heard) >= 1)
            # Had the rolled-back write's NOTIFY gone out, it would have been delivered before this one.
            assert [(c.session_ids, c.task_ids, c.wakes) for c in heard] == [((session_id,), (kept["id"],), True)]
            status = await call_ok(cb, "orchestrator_get_status", session_id=session_id)
            assert status["counts"]["total"] == 1


async def test_a_claim_reaches_the_channel_after_its_commit_through_the_listener(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    async with replicas(database_url, backend, tmp_path) as (_, b), observer(database_url) as heard:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            task = await plan(cb, session_id, "Claimed")
            await until(lambda: len(heard) == 2)  # the session, the plan
            heard.clear()
            claimed = await call_ok(cb, "orchestrator_next_task", session_id=session_id, agent="worker")
            assert claimed["task"]["id"] == task["id"]
            await until(lambda: len(heard) == 1)  # sent by B's listener on its next tick
    assert [(c.session_ids, c.task_ids, c.wakes) for c in heard] == [((session_id,), (task["id"],), False)]


async def test_idle_waiters_issue_no_query_on_the_pool_while_the_listener_is_up(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    # The old safety net would re-check every tick at this setting; now it only paces the liveness check.
    quiet = {"wait_recheck_seconds": 0.05, "lease_sweep_interval_seconds": 3600, "maintenance_interval_seconds": 3600}
    async with replicas(database_url, backend, tmp_path, **quiet) as (a, b), client(a, "2026-07-28") as ca:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            listener = a.runtime.supervisor.get("change_listener")
            await until(lambda: listener.connected)
            statements: list[str] = []

            def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                statements.append(statement)

            engines = {a.runtime.database.write_engine.sync_engine, a.runtime.database.read_engine.sync_engine}
            async with anyio.create_task_group() as group:
                parked = Waiters(ca, a, session_id, group)
                for agent in ("one", "two", "three"):
                    await parked.start(agent)
                for engine in engines:
                    event.listen(engine, "before_cursor_execute", record)
                try:
                    checked = listener.checks
                    await until(lambda: listener.checks >= checked + 5)  # five liveness checks on its connection
                finally:
                    for engine in engines:
                        event.remove(engine, "before_cursor_execute", record)
                assert statements == []
                assert waiters(a) == 3 and parked.results == {}
                planned = []
                for n in range(3):  # still waiting, and still served by signals
                    planned.append(await plan(cb, session_id, f"Task {n}"))
                    await until(lambda n=n: len(parked.results) == n + 1)
        assert parked.claimed() == {agent: t["id"] for agent, t in zip(("one", "two", "three"), planned, strict=True)}
        assert wakeups(a, "interval") == 0 and wakeups(a, "reconnect") == 0


async def wait_for_work(execution: ExecutionService, session_id: str, results: list[Any]) -> None:
    """A next_task that waits (long) for work in the session; its answer goes to ``results``."""
    results.append(
        await execution.next_task(
            Caller(actor="patient"),
            session_id=session_id,
            specialist_types=[],
            lease_seconds=None,
            request_id=None,
            wait_seconds=LONG_WAIT,
        )
    )


class Causes:
    """Records why waiters woke (the WaitMetrics seam)."""

    def __init__(self) -> None:
        self.woken: list[str] = []

    def waiters_changed(self, delta: int) -> None:
        return None

    def waiter_woken(self, cause: str, latency_seconds: float | None) -> None:
        self.woken.append(cause)


async def test_a_waiter_is_served_after_its_listen_connection_was_terminated_while_work_was_planned_elsewhere(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    # "Replica A" here is a listener, its waiters and a next_task service, driven by hand (run_once);
    # replica B is a served app. B plans while A's LISTEN connection is gone, so A never hears that NOTIFY.
    causes = Causes()
    mine = WorkWaiters(causes)
    router = ChangeRouter(mine, "replica-a")
    name = "test-listener-a"
    listener = ChangeListener(
        router, dsn=listen_dsn(database_url), recheck_seconds=NO_RECHECK, connect_timeout=5, application_name=name
    )
    dsn = listen_dsn(database_url)
    assert dsn is not None
    async with replicas(database_url, backend, tmp_path) as (_, b), client(b, "2026-07-28") as cb:
        session_id = await new_session(cb)
        execution = ExecutionService(b.runtime.uow, SystemClock(), roles=b.runtime.roles, waiters=mine)
        await listener.run_once()
        assert listener.connected
        results: list[Any] = []
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(wait_for_work, execution, session_id, results)
                await until(lambda: mine.count == 1)
                admin = await asyncpg.connect(dsn)
                try:
                    ended = await admin.fetchval(
                        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = $1) AS t",
                        name,
                    )
                finally:
                    await admin.close()
                assert ended == 1
                await until(lambda: not listener.connected)
                task = await plan(cb, session_id, "Planned while A was deaf")
                assert mine.count == 1 and results == []  # nobody heard it
                await listener.run_once()  # the monitor's next tick: reconnects, and the waiters look again
                assert listener.connected
                await until(lambda: len(results) == 1)
        finally:
            await listener.aclose()
    assert results[0].root.task.id == task["id"]
    assert causes.woken == ["reconnect"]


async def test_a_half_open_listen_connection_is_replaced_within_the_connect_timeout_and_strands_nobody(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    # A's LISTEN connection goes through a proxy that then freezes it: open at both ends, nothing passes,
    # as when a NAT drops its state. B's NOTIFY for a new task is lost on it; A's next liveness check gets
    # no answer within the connect timeout, and the replacement connection re-checks the waiters.
    dsn = listen_dsn(database_url)
    assert dsn is not None
    target = make_url(dsn)
    assert target.port is not None
    causes = Causes()
    mine = WorkWaiters(causes)
    listener_timeout = 0.5
    async with freezable_proxy(target.port) as proxy:
        listener = ChangeListener(
            ChangeRouter(mine, "replica-a"),
            dsn=target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            recheck_seconds=0.0,  # every tick checks the connection: the test drives the ticks
            connect_timeout=listener_timeout,
            application_name="test-listener-half-open",
        )
        async with replicas(database_url, backend, tmp_path) as (_, b), client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            execution = ExecutionService(b.runtime.uow, SystemClock(), roles=b.runtime.roles, waiters=mine)
            await listener.run_once()
            assert listener.connected
            results: list[Any] = []
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(wait_for_work, execution, session_id, results)
                    await until(lambda: mine.count == 1)
                    assert proxy.freeze_open_connections() == 1
                    task = await plan(cb, session_id, "Planned while A's connection was half open")
                    await anyio.sleep(0.2)  # time enough for a NOTIFY that could arrive to arrive
                    assert results == [] and listener.connected  # nothing came, and A cannot tell yet
                    with anyio.fail_after(listener_timeout + 5):
                        started = anyio.current_time()
                        await listener.run_once()  # the check hangs, is cut at the timeout, and reconnects
                        took = anyio.current_time() - started
                    assert listener.connected
                    assert listener_timeout <= took < listener_timeout + 2
                    await until(lambda: len(results) == 1)
            finally:
                await listener.aclose()
    assert results[0].root.task.id == task["id"]
    assert causes.woken == ["reconnect"]


async def test_a_database_url_with_sqlalchemy_only_options_still_gets_a_listen_connection_that_wakes_waiters(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    # The engine accepts `prepared_statement_cache_size` (an option of SQLAlchemy's asyncpg dialect); the
    # listener handed the URL to asyncpg as a DSN, which sent it to the server as a setting: refused, so
    # the replica never listened and a waiter there slept through the other replica's work.
    url = make_url(database_url).update_query_dict({"prepared_statement_cache_size": "100"})
    option_url = url.render_as_string(hide_password=False)
    async with replicas(option_url, backend, tmp_path) as (a, b), client(a, "2026-07-28") as ca:
        async with client(b, "2026-07-28") as cb:
            session_id = await new_session(cb)
            listener = a.runtime.supervisor.get("change_listener")
            await until(lambda: listener.connected)
            async with anyio.create_task_group() as group:
                parked = Waiters(ca, a, session_id, group)
                await parked.start("worker")
                task = await plan(cb, session_id, "Planned on the other replica")
                await until(lambda: len(parked.results) == 1)
        assert parked.claimed() == {"worker": task["id"]}
        assert wakeups(a, "signal") >= 1 and wakeups(a, "interval") == 0


async def test_a_listen_connection_that_cannot_connect_shows_in_health_and_its_waiters_re_check_at_the_interval(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    # Replica A's listener cannot reach the database (here: a closed port) while its waiters can: after one
    # re-check interval it reports itself degraded (failures, last_error) without turning readiness false,
    # and its waiters look at the queue every interval instead, so B's work is not missed.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    causes = Causes()
    mine = WorkWaiters(causes)
    listener = ChangeListener(
        ChangeRouter(mine, "replica-a"),
        dsn=f"postgresql://orchestrator:pw@127.0.0.1:{port}/orchestrator",
        recheck_seconds=0.5,
        connect_timeout=1,
        application_name="test-listener-down",
    )
    reboot = RebootManager()
    reboot.move_to(ServiceState.READY)
    results: list[Any] = []
    async with replicas(database_url, backend, tmp_path) as (_, b), client(b, "2026-07-28") as cb:
        session_id = await new_session(cb)
        execution = ExecutionService(b.runtime.uow, SystemClock(), roles=b.runtime.roles, waiters=mine)
        async with MonitorSupervisor(reboot, [listener]) as supervisor:
            async with anyio.create_task_group() as group:
                group.start_soon(wait_for_work, execution, session_id, results)
                await until(lambda: mine.count == 1)
                task = await plan(cb, session_id, "Planned while A could not listen")
                await until(lambda: len(results) == 1)
            status = supervisor.status()["change_listener"]
            assert status.failures == 1 and status.alive
            assert status.last_error is not None and status.last_error.startswith("no LISTEN connection for ")
            assert "connect attempts failed, the last: ConnectionRefusedError" in status.last_error
            assert "waiters re-check the queue every 0.5 s instead" in status.last_error
            assert not supervisor.healthy
            assert reboot.readiness() == (True, [])  # degraded, not unready: nothing is missed
    assert results[0].root.task.id == task["id"]
    assert set(causes.woken) == {"interval"}
