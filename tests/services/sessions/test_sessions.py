"""initialize_session on both backends: resume by directory, new sessions, the actor's current session."""

from __future__ import annotations

import anyio
import pytest

from app import errors
from app.db.repositories.sessions import SessionRepository
from app.services.sessions.sessions import InitializeSessionResult
from tests.support.calls import cancel, query_ids
from tests.support.gates import hold_together
from tests.support.harness import Harness, caller
from tests.support.snapshot import row_counts

pytestmark = pytest.mark.anyio


async def initialize(
    h: Harness,
    actor: str = "alice",
    working_directory: str | None = "/work/project",
    *,
    name: str | None = None,
    description: str | None = None,
    new_session: bool = False,
) -> InitializeSessionResult:
    return await h.services.sessions.initialize_session(
        caller(actor), working_directory=working_directory, name=name, description=description, new_session=new_session
    )


async def test_first_call_creates_the_session_and_makes_it_current(harness: Harness) -> None:
    result = await initialize(harness, name="Checkout", description="The checkout rewrite")
    assert result.resumed is False
    assert result.session.model_dump() == {
        "id": result.session.id,
        "name": "Checkout",
        "working_directory": "/work/project",
        "description": "The checkout rewrite",
        "status": "active",
        "completed": False,
        "created_by": "alice",
        "created_at": "2026-01-01T00:00:00Z",
        "last_activity_at": "2026-01-01T00:00:00Z",
        "version": 1,
    }
    assert result.counts.model_dump() == {"by_status": {}, "total": 0}
    task = (await harness.plan()).task
    assert task.session_id == result.session.id


async def test_the_default_name_is_the_directory_name(harness: Harness) -> None:
    assert (await initialize(harness, working_directory="/home/dev/shop/")).session.name == "shop"
    assert (await initialize(harness, "bob", working_directory=None)).session.name == "session"


async def test_same_working_directory_resumes_the_active_session_for_anyone(harness: Harness) -> None:
    first = await initialize(harness)
    await harness.plan(title="one")
    await harness.plan(title="two")
    harness.clock.advance(60)
    again = await initialize(harness, "bob")
    assert again.resumed is True and again.session.id == first.session.id
    assert again.session.last_activity_at == "2026-01-01T00:01:00Z"  # the resume is activity, as stored
    assert again.counts.model_dump() == {"by_status": {"pending": 2}, "total": 2}
    # bob's current session is now that one too.
    assert len(await query_ids(harness, "bob")) == 2
    assert (await row_counts(harness.database))["orchestration_session"] == 1


async def test_one_directory_spelled_differently_resumes_its_session_and_lists_it(harness: Harness) -> None:
    first = await initialize(harness, working_directory="/work/project/")
    assert first.session.working_directory == "/work/project"
    for spelling in ("/work/project", "/work//project/.", "/work/./project//"):
        again = await initialize(harness, "bob", working_directory=spelling)
        assert (again.resumed, again.session.id) == (True, first.session.id), spelling
    listed = await harness.services.session_overview.list_sessions(
        include_completed=True, working_directory="/work/project/", limit=10, offset=0
    )
    assert [s.id for s in listed.sessions] == [first.session.id]
    other = await initialize(harness, working_directory="/work/project/../project")  # ".." may cross a link
    assert other.resumed is False and other.session.working_directory == "/work/project/../project"
    assert (await row_counts(harness.database))["orchestration_session"] == 2


async def test_agents_starting_on_one_directory_at_once_share_one_session(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL: both calls are held inside their transactions just before they look for the directory's
    # active session (or until one is seen waiting for a lock); SQLite runs one writer at a time.
    hold_together(monkeypatch, harness.database, SessionRepository, "get_active_for_directory", parties=2)
    results: dict[str, InitializeSessionResult] = {}

    async def agent(actor: str) -> None:
        results[actor] = await initialize(harness, actor, working_directory="/repo/shop")

    async with anyio.create_task_group() as group:
        group.start_soon(agent, "agent-a")
        group.start_soon(agent, "agent-b")
    a, b = results["agent-a"], results["agent-b"]
    assert a.session.id == b.session.id, "one working directory, two active sessions"
    assert sorted([a.resumed, b.resumed]) == [False, True]
    assert (await row_counts(harness.database))["orchestration_session"] == 1
    # Each agent's current session is that one: a plan without session_id lands in it.
    assert (await harness.plan("agent-b")).task.session_id == a.session.id


async def test_new_session_starts_another_one_for_the_same_directory(harness: Harness) -> None:
    first = await initialize(harness)
    await harness.plan(title="old work")
    harness.clock.advance(60)
    second = await initialize(harness, new_session=True, name="Fresh start")
    assert second.resumed is False and second.session.id != first.session.id
    assert second.session.name == "Fresh start"
    assert await query_ids(harness) == []  # the new session is the current one
    # Resuming the directory later lands on the most recently active session.
    harness.clock.advance(60)
    assert (await initialize(harness, "bob")).session.id == second.session.id


async def test_current_session_is_used_when_session_id_is_omitted(harness: Harness) -> None:
    project = (await initialize(harness, working_directory="/work/project")).session.id
    in_project = (await harness.plan(title="p")).task
    other = (await initialize(harness, working_directory="/work/other")).session.id
    in_other = (await harness.plan(title="o")).task
    assert (in_project.session_id, in_other.session_id) == (project, other)
    assert await query_ids(harness) == [in_other.id]
    assert await query_ids(harness, session_id=project) == [in_project.id]
    # Switching back by directory switches the current session back.
    assert (await initialize(harness, working_directory="/work/project")).resumed is True
    assert await query_ids(harness) == [in_project.id]


async def test_without_a_directory_the_current_active_session_is_resumed(harness: Harness) -> None:
    project = (await initialize(harness)).session.id
    resumed = await initialize(harness, working_directory=None)
    assert (resumed.resumed, resumed.session.id) == (True, project)
    fresh = await initialize(harness, working_directory=None, new_session=True)
    assert fresh.resumed is False and fresh.session.id != project and fresh.session.working_directory is None


async def test_tools_without_session_id_need_a_current_session(harness: Harness) -> None:
    await initialize(harness)  # alice has one; the newcomer has none
    for call in (lambda: harness.plan("newcomer"), lambda: query_ids(harness, "newcomer")):
        with pytest.raises(errors.InvalidArgument) as caught:
            await call()
        assert (caught.value.field, caught.value.value) == ("session_id", None)
        assert "orchestrator_initialize_session" in caught.value.message


async def test_counts_and_completed_reflect_the_tasks(harness: Harness) -> None:
    await initialize(harness)
    a, b = (await harness.plan(title="a")).task.id, (await harness.plan(title="b")).task.id
    await harness.complete("alice", a)
    await cancel(harness, b)
    result = await initialize(harness)
    assert result.counts.model_dump() == {"by_status": {"completed": 1, "cancelled": 1}, "total": 2}
    assert result.session.completed is True
