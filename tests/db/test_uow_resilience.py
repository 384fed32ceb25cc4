"""The unit of work under trouble: cancelled transactions roll back, deadlocks are retried, a dead database
fails fast and trips the circuit breaker."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio
import asyncpg
import pytest
from sqlalchemy import text

from app import errors
from app.db.circuit_breaker import CircuitBreaker, CircuitState
from app.db.engine import create_database
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.observability.metrics import Metrics
from tests.support.harness import Harness
from tests.support.locks import hold_write_lock, plain_dsn

pytestmark = pytest.mark.anyio
AT = datetime(2026, 1, 1, tzinfo=UTC)


async def count_probes(uow: UnitOfWork) -> int:
    async def work(repos: Repositories) -> int:
        return len(await repos.system_events.list_by_kinds(["probe"], limit=100))

    return await uow.run(work, write=False)


async def insert_probe(repos: Repositories) -> None:
    await repos.system_events.insert(kind="probe", actor="test", at=AT, data={})


async def test_a_cancelled_transaction_rolls_back_and_leaves_the_database_writable(harness: Harness) -> None:
    uow = harness.uow
    inserted = anyio.Event()

    async def work(repos: Repositories) -> None:
        await insert_probe(repos)
        inserted.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(uow.run, work)
        await inserted.wait()
        assert uow.open_transactions == 1
        group.cancel_scope.cancel()

    assert uow.open_transactions == 0
    assert await count_probes(uow) == 0
    # A writer gets through at once: the cancelled one released its locks (SQLite: the write lock).
    with anyio.fail_after(10):
        await uow.run(insert_probe)
    assert await count_probes(uow) == 1


@pytest.mark.parametrize("backend", ["postgresql"])  # a long statement to cancel (pg_sleep)
async def test_a_statement_cancelled_mid_flight_on_postgresql_rolls_back(harness: Harness) -> None:
    uow = harness.uow
    inserted = anyio.Event()

    async def work(repos: Repositories) -> None:
        await insert_probe(repos)
        inserted.set()
        await repos.session.execute(text("SELECT pg_sleep(30)"))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(uow.run, work)
            await inserted.wait()
            group.cancel_scope.cancel()
        assert await count_probes(uow) == 0
        await uow.run(insert_probe)
    assert await count_probes(uow) == 1


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite writers never interleave (BEGIN IMMEDIATE)
async def test_a_deadlock_on_postgresql_is_retried_inside_the_unit_of_work_and_both_commit(
    harness: Harness, database_url: str
) -> None:
    admin = await asyncpg.connect(plain_dsn(database_url))
    try:
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '50ms'")
    finally:
        await admin.close()
    await harness.database.dispose()  # new connections pick up the shorter deadlock_timeout
    await harness.session()
    first = (await harness.plan(title="first")).task.id
    second = (await harness.plan(title="second")).task.id
    locked = {first: anyio.Event(), second: anyio.Event()}
    attempts: list[str] = []

    def crosswise(mine: str, theirs: str) -> Callable[[Repositories], Awaitable[str]]:
        async def work(repos: Repositories) -> str:
            attempts.append(mine)
            task = await repos.tasks.get_for_update(mine)
            assert task is not None
            locked[mine].set()
            await locked[theirs].wait()  # both hold one row lock before either asks for the other
            other = await repos.tasks.get_for_update(theirs)
            assert other is not None
            task.title = f"{task.title} (touched)"
            await repos.session.flush()
            return mine

        return work

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(harness.uow.run, crosswise(first, second))
            group.start_soon(harness.uow.run, crosswise(second, first))

    assert len(attempts) == 3 and set(attempts) == {first, second}  # one deadlock victim, retried once
    conflicts = harness.metrics.registry.get_sample_value("orchestrator_db_errors_total", {"kind": "conflict"})
    assert conflicts == 1

    async def titles(repos: Repositories) -> list[str]:
        return [t.title for t in await repos.tasks.get_many([first, second])]

    assert await harness.uow.run(titles, write=False) == ["first (touched)", "second (touched)"]


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


async def test_an_unreachable_database_fails_fast_with_unavailable_then_the_circuit_refuses_without_trying() -> None:
    metrics = Metrics("test")
    breaker = CircuitBreaker(failure_threshold=2, first_backoff_seconds=60, max_backoff_seconds=60)
    database = create_database(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/postgres", connect_timeout=2.0)
    uow = UnitOfWork(database, errors_sink=metrics, gate=breaker)

    async def nothing(repos: Repositories) -> None:
        return None

    try:
        with anyio.fail_after(10):  # connection refused: no connect timeout is even needed
            for _ in range(2):
                with pytest.raises(errors.Unavailable) as failed:
                    await uow.run(nothing)
                assert failed.value.retryable is True
            assert breaker.state == CircuitState.OPEN
            with pytest.raises(errors.Unavailable) as refused:
                await uow.run(nothing)
    finally:
        await database.dispose()
    assert "circuit open" in refused.value.message
    sample = metrics.registry.get_sample_value
    assert sample("orchestrator_db_errors_total", {"kind": "connection"}) == 2
    assert sample("orchestrator_db_errors_total", {"kind": "circuit_open"}) == 1


async def test_a_call_held_up_by_the_database_answers_unavailable_at_the_call_bound_and_the_pool_recovers(
    database_url: str,
) -> None:
    # A call bound of half a second: the write waits on a lock held outside, past the bound.
    metrics = Metrics("test")
    database = create_database(database_url, call_timeout=0.5, pool_size=1)
    uow = UnitOfWork(database, errors_sink=metrics, gate=CircuitBreaker(failure_threshold=100))

    async def touch_tasks(repos: Repositories) -> None:
        await repos.session.execute(text("UPDATE task SET title = title"))

    try:
        async with hold_write_lock(database_url):
            with anyio.fail_after(5):  # without the bound: SQLite's 30 s busy wait, PostgreSQL's lock wait
                with pytest.raises(errors.Unavailable) as failed:
                    await uow.run(touch_tasks)
            assert uow.open_transactions == 0
        assert failed.value.retryable is True
        with anyio.fail_after(5):
            await uow.run(touch_tasks)  # the lock is gone, and the pool's one connection works again
    finally:
        await database.dispose()
