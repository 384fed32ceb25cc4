"""Writers that contend for one row are served in the order they came, and a writer that waits past the
call bound gives its place up cleanly.

On PostgreSQL the row lock's queue does this; on SQLite the process's write queue
(``Database.write_queue``) does, in front of ``BEGIN IMMEDIATE``: SQLite's own busy handler polls and
serves waiters in no order, which let a few of 50 concurrent writers time out while later ones went through.
"""

from __future__ import annotations

import anyio
import pytest

from app import errors
from app.db.engine import create_database
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio
WRITERS = 6


async def test_writers_waiting_for_one_row_are_served_in_arrival_order(harness: Harness) -> None:
    sid = await harness.session()
    held, release = anyio.Event(), anyio.Event()
    order: list[int] = []

    async def holder(repos: Repositories) -> None:
        await repos.sessions.lock(sid)
        held.set()
        await release.wait()

    def writer(index: int):  # type: ignore[no-untyped-def]
        async def work(repos: Repositories) -> None:
            await repos.sessions.lock(sid)  # SQLite: the write lock is already ours (BEGIN IMMEDIATE)
            order.append(index)

        return work

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(harness.uow.run, holder)
            await held.wait()
            for index in range(WRITERS):
                group.start_soon(harness.uow.run, writer(index))
                await anyio.sleep(0.05)  # each is waiting before the next one comes
            assert order == []
            release.set()

    assert order == list(range(WRITERS))
    assert harness.uow.open_transactions == 0


async def test_a_writer_queued_past_the_call_bound_answers_unavailable_and_gives_its_place_up(
    harness: Harness, database_url: str
) -> None:
    sid = await harness.session()
    database = create_database(database_url, call_timeout=0.5, pool_size=2)
    uow = UnitOfWork(database)
    held, release = anyio.Event(), anyio.Event()

    async def hold() -> None:
        async with uow.transaction(write=True, deadline=anyio.current_time() + 10) as repos:
            await repos.sessions.lock(sid)
            held.set()
            await release.wait()

    async def lock_session(repos: Repositories) -> str:
        await repos.sessions.lock(sid)
        return "locked"

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(hold)
                await held.wait()
                with pytest.raises(errors.Unavailable) as waited:
                    await uow.run(lock_session)  # waits behind the holder past its 0.5 s bound
                assert waited.value.retryable is True
                assert uow.open_transactions == 1  # the holder's
                release.set()
            assert uow.open_transactions == 0
            assert await uow.run(lock_session) == "locked"  # nothing is left holding the queue or the lock
    finally:
        await database.dispose()
