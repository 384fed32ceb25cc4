"""One changed task and its events in one statement on PostgreSQL (app.db.row_flush); the ORM's flush on SQLite.

Both backends must store the same rows and raise the same errors; only the number of statements differs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm.exc import StaleDataError

from app.db.models import Task, TaskEvent
from app.db.repositories import Repositories
from tests.support.execution import execute, read, recorded_statements, view
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio


async def _events(harness: Harness, task_id: str) -> list[TaskEvent]:
    async def work(repos: Repositories) -> list[TaskEvent]:
        return list(await repos.events.list_for_task(task_id))

    events: list[TaskEvent] = await read(harness, work)
    return events


async def test_a_claim_writes_its_task_and_its_event_together(harness: Harness) -> None:
    """The claim's UPDATE and its status_changed event: one statement on PostgreSQL, and on both backends the
    stored task is what the brief showed and the event says what happened, when, and by whom."""
    await harness.session()
    task = (await harness.plan(title="build", context={"flag": True})).task
    harness.clock.advance(3)
    with recorded_statements(harness) as statements:
        brief = await execute(harness, task.id, "worker")

    writes = [s for s in statements if "UPDATE task " in s or "INSERT INTO task_event" in s]
    if harness.backend == "postgresql":
        assert len(writes) == 1 and "UPDATE task " in writes[0] and "INSERT INTO task_event" in writes[0]
    else:
        assert len(writes) == 2
    stored = await view(harness, task.id)
    assert stored.status == "in_progress" and stored.assigned_to == "worker"
    assert stored.version == brief.task.version == task.version + 1
    assert stored.lease_expires_at == brief.task.lease_expires_at
    assert stored.context == {"flag": True}
    claimed = (await _events(harness, task.id))[-1]
    assert (claimed.kind, claimed.actor, claimed.session_id) == ("status_changed", "worker", task.session_id)
    assert claimed.data == {"from": "pending", "to": "in_progress", "holder": "worker", "attempt": 1}
    assert claimed.at == harness.clock.now()


async def test_events_are_stored_in_the_order_they_were_appended(harness: Harness) -> None:
    """Several events of one flush keep their order (ids increase as appended), with their JSON intact."""
    session_id = await harness.session()
    task = (await harness.plan(title="build")).task
    now = harness.clock.now()
    kinds = ["third_party_note", "status_changed", "a_last_one"]

    async def work(repos: Repositories) -> None:
        row = await repos.tasks.get_for_update(task.id)
        assert row is not None
        row.summary = "noted"
        row.version += 1
        for index, kind in enumerate(kinds):
            repos.events.append(
                session_id=session_id,
                task_id=task.id,
                kind=kind,
                actor="worker",
                at=now + timedelta(seconds=index),
                data={"index": index, "nested": {"list": [1, "two", None]}, "unicode": "é→✓"},
            )
        await repos.session.flush()

    await harness.uow.run(work)
    stored = [e for e in await _events(harness, task.id) if e.kind in kinds]
    assert [e.kind for e in stored] == kinds
    assert [e.id for e in stored] == sorted(e.id for e in stored)
    assert [e.data["index"] for e in stored] == [0, 1, 2]
    assert stored[2].data == {"index": 2, "nested": {"list": [1, "two", None]}, "unicode": "é→✓"}
    assert [e.at for e in stored] == [now + timedelta(seconds=i) for i in range(3)]
    assert (await view(harness, task.id)).version == task.version + 1


async def test_events_alone_are_written_without_a_task_change(harness: Harness) -> None:
    session_id = await harness.session()
    task = (await harness.plan(title="build")).task

    async def work(repos: Repositories) -> None:
        repos.events.append(session_id=session_id, task_id=None, kind="session_note", actor="a", at=harness.clock.now())
        repos.events.append(session_id=session_id, task_id=task.id, kind="task_note", actor="a", at=harness.clock.now())
        await repos.session.flush()

    await harness.uow.run(work)

    async def kinds(repos: Repositories) -> list[tuple[str | None, str]]:
        rows = await repos.session.execute(
            select(TaskEvent.task_id, TaskEvent.kind)
            .where(TaskEvent.kind.in_(["session_note", "task_note"]))
            .order_by(TaskEvent.id)
        )
        return [(task_id, kind) for task_id, kind in rows]

    assert await read(harness, kinds) == [(None, "session_note"), (task.id, "task_note")]


async def test_an_update_of_a_task_that_is_gone_fails_as_the_orm_fails(harness: Harness) -> None:
    """An UPDATE that matches no row raises the ORM's StaleDataError on both backends, and nothing is kept."""
    session_id = await harness.session()
    task = (await harness.plan(title="build")).task

    async def work(repos: Repositories) -> None:
        row = await repos.tasks.get(task.id)
        assert row is not None
        await repos.session.execute(delete(Task).where(Task.id == task.id).execution_options(synchronize_session=False))
        row.title = "renamed"
        repos.events.append(session_id=session_id, task_id=task.id, kind="renamed", actor="a", at=harness.clock.now())
        await repos.session.flush()

    with pytest.raises(StaleDataError, match="expected to update 1 row"):
        await harness.uow.run(work)
    assert (await view(harness, task.id)).title == "build"
    assert [e.kind for e in await _events(harness, task.id) if e.kind == "renamed"] == []
