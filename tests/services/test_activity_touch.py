"""What every write records about who was active: the actor's last_seen_at and the session's activity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from app import errors
from app.db.recent_touches import ACTIVITY_GRANULARITY, RecentTouches
from app.db.repositories import Repositories
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio


async def _agent(harness: Harness, actor: str) -> tuple[str | None, object] | None:
    async def read(repos: Repositories) -> tuple[str | None, object] | None:
        row = await repos.agents.get(actor)
        return None if row is None else (row.current_session_id, row.last_seen_at)

    return await harness.uow.run(read, write=False)


async def _activity(harness: Harness, session_id: str) -> object:
    async def read(repos: Repositories) -> object:
        row = await repos.sessions.get(session_id)
        assert row is not None
        return row.last_activity_at

    return await harness.uow.run(read, write=False)


async def test_first_write_of_a_new_actor_records_it_without_a_current_session(harness: Harness) -> None:
    session_id = await harness.session("alice")

    await harness.plan("newcomer", session_id=session_id)

    assert await _agent(harness, "newcomer") == (None, harness.clock.now())


async def test_later_writes_move_last_seen_and_keep_the_current_session(harness: Harness) -> None:
    session_id = await harness.session("alice")
    harness.clock.advance(60)

    await harness.plan("alice")

    assert await _agent(harness, "alice") == (session_id, harness.clock.now())


async def test_session_activity_moves_at_most_once_per_granularity(harness: Harness) -> None:
    session_id = await harness.session("alice")
    started = harness.clock.now()
    half = ACTIVITY_GRANULARITY.total_seconds() / 2 + 0.5

    harness.clock.advance(half)
    await harness.plan("alice", session_id=session_id)
    after_first = await _activity(harness, session_id)
    harness.clock.advance(half)
    await harness.plan("alice", session_id=session_id)
    after_second = await _activity(harness, session_id)
    harness.clock.advance(half)
    await harness.plan("alice")  # the current-session path, which has not read the session row
    after_third = await _activity(harness, session_id)

    assert after_first == started
    assert after_second == started + timedelta(seconds=2 * half)
    assert after_third == after_second


async def test_last_seen_moves_at_most_once_per_granularity_per_process(harness: Harness) -> None:
    session_id = await harness.session("alice")
    seen_first = harness.clock.now()
    half = ACTIVITY_GRANULARITY.total_seconds() / 2 + 0.5

    harness.clock.advance(half)
    await harness.plan("alice", session_id=session_id)
    after_first = await _agent(harness, "alice")
    harness.clock.advance(half)
    await harness.plan("alice", session_id=session_id)
    after_second = await _agent(harness, "alice")

    # initialize_session wrote last_seen itself (its own upsert) and then touched it: within the
    # granularity the plan skips the upsert; past it the next write records the new time.
    assert after_first == (session_id, seen_first)
    assert after_second == (session_id, seen_first + timedelta(seconds=2 * half))


async def test_a_failed_write_does_not_count_as_seen(harness: Harness) -> None:
    session_id = await harness.session("alice")

    with pytest.raises(errors.SessionNotFound):
        await harness.plan("late-comer", session_id="sess_0000000000000000")
    await harness.plan("late-comer", session_id=session_id)  # same instant: must still record the actor

    assert await _agent(harness, "late-comer") == (None, harness.clock.now())


async def test_another_process_records_the_actor_itself(harness: Harness) -> None:
    """Each replica remembers only its own upserts: one that never touched the actor writes it."""
    session_id = await harness.session("alice")
    harness.clock.advance(1)
    harness.uow.actor_touches = RecentTouches()  # what a second replica starts with

    await harness.plan("alice", session_id=session_id)

    assert await _agent(harness, "alice") == (session_id, harness.clock.now())


async def test_a_process_touches_a_session_at_most_once_per_granularity(harness: Harness) -> None:
    """Writes that never read the session row (the current-session path) skip the UPDATE itself."""
    await harness.session("alice")
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE ORCHESTRATION_SESSION"):
            statements.append(statement)

    engine = harness.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        harness.clock.advance(ACTIVITY_GRANULARITY.total_seconds() + 1)
        await harness.plan("alice")
        await harness.plan("bob-reads-alice-session", session_id=await _current_session(harness, "alice"))
        harness.clock.advance(1)
        await harness.plan("alice")
        after_quiet = len(statements)
        harness.clock.advance(ACTIVITY_GRANULARITY.total_seconds())
        await harness.plan("alice")
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert after_quiet == 1
    assert len(statements) == 2


async def _current_session(harness: Harness, actor: str) -> str:
    row = await _agent(harness, actor)
    assert row is not None and row[0] is not None
    return row[0]
