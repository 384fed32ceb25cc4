"""cleanup_sessions on both backends: what each type matches, that a dry run writes nothing, and what
archive and delete leave behind."""

from __future__ import annotations

import pytest

from app.services.sessions.cleanup import CleanupSessionsResult
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
