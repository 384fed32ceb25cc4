"""cleanup_sessions on both backends: what each type matches, that a dry run writes nothing, and what
archive and delete leave behind."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from app import errors
from app.db.repositories.sessions import SessionRepository
from app.db.repositories.tasks import TaskRepository
from app.services.sessions.cleanup import CleanupSessionsResult
from tests.support.calls import query
from tests.support.harness import Harness, caller
from tests.support.rows import row_counts, table_snapshot

pytestmark = pytest.mark.anyio
DAY = 86400


async def cleanup(
    h: Harness, cleanup_type: str, *, action: str = "archive", dry_run: bool, days: int = 7
) -> CleanupSessionsResult:
    return await h.services.session_cleanup.cleanup_sessions(
        caller("admin"),
        cleanup_type=cleanup_type,
        older_than_days=days,
        action=action,
        dry_run=dry_run,  # type: ignore[arg-type]
        request_id=None,
    )


async def landscape(h: Harness) -> dict[str, str]:
    """Sessions of every kind: old (idle 10 days, open work), completed, orphaned, active, busy (live claim)."""
    sids: dict[str, str] = {}
    sids["old"] = await h.session("alice", "/repo/old")
    await h.plan(session_id=sids["old"], title="forgotten")
    h.clock.advance(10 * DAY)
    sids["completed"] = await h.session("alice", "/repo/completed")
    done = (await h.plan(session_id=sids["completed"], title="done")).task
    await h.complete("alice", done.id)
    sids["orphaned"] = await h.session("alice", "/repo/orphaned")
    sids["active"] = await h.session("alice", "/repo/active")
    await h.plan(session_id=sids["active"], title="open")
    sids["busy"] = await h.session("alice", "/repo/busy")
    busy = (await h.plan(session_id=sids["busy"], title="busy")).task
    await h.update("bob", busy.id, status="in_progress")
    return sids


@pytest.mark.parametrize(
    ("cleanup_type", "expected"),
    [
        ("completed", ["completed"]),
        ("orphaned", ["orphaned"]),
        ("old", ["old"]),
        ("all", ["old", "completed", "orphaned"]),
    ],
)
async def test_dry_run_lists_what_each_type_matches_and_writes_nothing(
    harness: Harness, cleanup_type: str, expected: list[str]
) -> None:
    sids = await landscape(harness)
    before = await table_snapshot(harness.database)
    result = await cleanup(harness, cleanup_type, dry_run=True)
    assert await table_snapshot(harness.database) == before
    by_id = {v: k for k, v in sids.items()}
    # Oldest activity first; sessions active at the same instant follow in id order.
    assert sorted((by_id[m.session_id], m.reason) for m in result.matched) == sorted((n, n) for n in expected)
    assert by_id[result.matched[0].session_id] == expected[0]
    assert (result.dry_run, result.changed_count) == (True, 0)
    details = {by_id[m.session_id]: m.detail for m in result.matched}
    assert details.get("old", "no activity since 2026-01-01T00:00:00Z") == "no activity since 2026-01-01T00:00:00Z"
    assert details.get("completed", "all 1 task(s) are terminal") == "all 1 task(s) are terminal"


async def test_archive_moves_the_session_and_its_tasks_to_archived(harness: Harness) -> None:
    h = harness
    sids = await landscape(h)
    old_task = (await h.plan(session_id=sids["old"], title="claimed long ago")).task
    await h.update("bob", old_task.id, status="in_progress")
    h.clock.advance(10 * DAY)  # bob's lease ran out long ago; only "busy" will be renewed
    await h.update("bob", (await h.plan(session_id=sids["busy"], title="x")).task.id, title="y")
    result = await cleanup(h, "old", dry_run=False)
    assert (result.dry_run, result.changed_count) == (False, 4)
    assert sorted(m.session_id for m in result.matched) == sorted(
        [sids["old"], sids["completed"], sids["orphaned"], sids["active"]]
    )
    listed = await h.services.session_overview.list_sessions(
        include_completed=True, working_directory="/repo/old", limit=10, offset=0
    )
    assert [(s.status, s.counts.by_status) for s in listed.sessions] == [("archived", {"archived": 2})]
    resumed = await h.services.session_overview.resume_session(caller("carol"), sids["old"])
    moves = [(e.task_id, e.data.get("to")) for e in resumed.recent_events if e.kind == "status_changed"]
    assert (old_task.id, "archived") in moves
    assert resumed.recent_events[-1].kind == "session_archived"
    # An archived session is not archived again, and the busy one was never touched.
    again = await cleanup(h, "all", dry_run=True, days=0)
    assert [m.session_id for m in again.matched] == []
    status = await h.services.session_overview.session_status(caller("carol"), sids["busy"])
    assert status.session.status == "active"


async def test_delete_removes_the_session_with_every_row_that_belongs_to_it(harness: Harness) -> None:
    h = harness
    sids = await landscape(h)
    before = row_counts(await table_snapshot(h.database))
    result = await cleanup(h, "completed", action="delete", dry_run=False)
    assert [m.session_id for m in result.matched] == [sids["completed"]]
    after_snapshot = await table_snapshot(h.database)
    after = row_counts(after_snapshot)
    assert after["orchestration_session"] == before["orchestration_session"] - 1
    assert after["task"] == before["task"] - 1
    assert after["agent_visit"] == before["agent_visit"] - 1
    assert not any(sids["completed"] in repr(row) for row in after_snapshot["task_event"])
    deleted = [row for row in after_snapshot["system_event"] if row[1] == "session_deleted"]
    assert len(deleted) == 1 and deleted[0][4]["session_id"] == sids["completed"]
    assert sids["completed"] not in repr(after_snapshot["agent"])  # nobody's current session any more


async def test_a_session_with_a_live_claim_is_never_cleaned_up(harness: Harness) -> None:
    sids = await landscape(harness)
    harness.clock.advance(1)  # older_than_days=0: everything idle since before now is "old"
    result = await cleanup(harness, "all", dry_run=False, days=0)
    assert sids["busy"] not in [m.session_id for m in result.matched]
    assert result.changed_count == 4


async def test_an_archived_session_takes_no_new_work_and_hands_none_out(harness: Harness) -> None:
    h = harness
    sid = await h.session("alice", "/repo/shop")
    done = (await h.plan(title="Only step")).task
    await h.complete("alice", done.id)
    assert [m.session_id for m in (await cleanup(h, "completed", dry_run=False)).matched] == [sid]
    before = await table_snapshot(h.database)
    with pytest.raises(errors.SessionArchived) as named:
        await h.plan(session_id=sid, title="Into history")
    with pytest.raises(errors.SessionArchived) as claimed:
        await h.services.execution.next_task(
            caller("alice", admin=False), session_id=sid, specialist_types=[], lease_seconds=None, request_id=None
        )
    # The archived current session counts as none: with no other active session there is nowhere to go.
    with pytest.raises(errors.InvalidArgument) as current:
        await h.plan(title="Into history")
    assert await table_snapshot(h.database) == before
    for caught in (named, claimed):
        error = caught.value.to_dict()
        assert (error["code"], error["field"], error["value"], error["hint"], error["session_status"]) == (
            "invalid_argument",
            "session_id",
            sid,
            "orchestrator_initialize_session",
            "archived",
        )
    assert (current.value.field, current.value.value, current.value.hint) == (
        "session_id",
        None,
        "orchestrator_initialize_session",
    )
    # History stays readable by id; initialize_session starts a new session that takes the work.
    assert [(t.id, t.status) for t in (await query(h, session_id=sid)).tasks] == [(done.id, "archived")]
    fresh = await h.session("alice", "/repo/shop")
    assert fresh != sid
    assert (await h.plan(title="Next step")).task.session_id == fresh


# PostgreSQL only: SQLite's immediate transactions never overlap, the plan starts after the cleanup commits.
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_plan_racing_an_archive_of_its_session_is_refused(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cleanup holds the session row (FOR UPDATE) and is mid-archive when the plan reads the session: the plan's
    key-share lock waits for the archive and sees it, instead of adding a pending task to an archived session."""
    h = harness
    sid = await h.session("alice", "/repo/empty")  # orphaned: no tasks
    plan_reads = anyio.Event()
    cleanup_locked = anyio.Event()
    real_scope, real_get = TaskRepository.list_in_scope, SessionRepository.get
    real_insert = TaskRepository.insert_in_open_session

    async def scope_after_plan_reads(self: TaskRepository, *args: Any, **kw: Any) -> Any:
        cleanup_locked.set()  # the session rows are locked (FOR UPDATE) by now
        with anyio.fail_after(30):
            await plan_reads.wait()
        return await real_scope(self, *args, **kw)

    async def get_and_signal(self: SessionRepository, *args: Any, **kw: Any) -> Any:
        plan_reads.set()
        return await real_get(self, *args, **kw)

    async def insert_and_signal(self: TaskRepository, *args: Any, **kw: Any) -> Any:
        plan_reads.set()  # a single task's plan locks its session in the statement that inserts it
        return await real_insert(self, *args, **kw)

    monkeypatch.setattr(TaskRepository, "list_in_scope", scope_after_plan_reads)
    outcome: list[Any] = []

    async def plan() -> None:
        with anyio.fail_after(30):
            await cleanup_locked.wait()
        monkeypatch.setattr(SessionRepository, "get", get_and_signal)
        monkeypatch.setattr(TaskRepository, "insert_in_open_session", insert_and_signal)
        try:
            outcome.append(await h.plan(session_id=sid, title="Late"))
        except errors.OrchestratorError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(plan)
        result = await cleanup(h, "orphaned", dry_run=False)
    assert [m.session_id for m in result.matched] == [sid]
    assert isinstance(outcome[0], errors.SessionArchived), outcome
    assert [t.status for t in (await query(h, session_id=sid)).tasks] == []
