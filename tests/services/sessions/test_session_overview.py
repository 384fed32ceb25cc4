"""list_sessions, resume_session and session_status on both backends, with a manual clock."""

from __future__ import annotations

import pytest

from app import errors
from app.services.maintenance.coordinator import MaintenanceRequest
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


async def list_ids(h: Harness, **kwargs: object) -> tuple[list[str], int]:
    args = {"include_completed": False, "working_directory": None, "limit": 10, "offset": 0, **kwargs}
    result = await h.services.session_overview.list_sessions(**args)  # type: ignore[arg-type]
    return [s.id for s in result.sessions], result.total_count


async def test_list_sessions_hides_completed_and_archived_sessions_unless_asked(harness: Harness) -> None:
    h = harness
    open_sid = await h.session("alice", "/repo/open")
    h.clock.advance(10)
    done_sid = await h.session("alice", "/repo/done")
    task = (await h.plan(session_id=done_sid)).task
    await h.complete("alice", task.id)
    h.clock.advance(10)
    empty_sid = await h.session("alice", "/repo/empty")

    assert await list_ids(h) == ([empty_sid, open_sid], 2)
    ids, total = await list_ids(h, include_completed=True)
    assert (ids, total) == ([empty_sid, done_sid, open_sid], 3)
    full = await h.services.session_overview.list_sessions(
        include_completed=True, working_directory="/repo/done", limit=10, offset=0
    )
    assert [(s.id, s.completed, s.counts.by_status, s.counts.total) for s in full.sessions] == [
        (done_sid, True, {"completed": 1}, 1)
    ]
    assert full.sessions[0].last_activity_at == "2026-01-01T00:00:10Z"


async def test_list_sessions_pages_with_a_total_of_all_matches(harness: Harness) -> None:
    sids = []
    for n in range(5):
        sids.append(await harness.session("alice", f"/repo/{n}"))
        harness.clock.advance(10)
    newest_first = list(reversed(sids))
    assert await list_ids(harness, limit=2) == (newest_first[:2], 5)
    assert await list_ids(harness, limit=2, offset=4) == (newest_first[4:], 5)


async def test_resume_session_returns_exactly_the_events_since_the_actors_last_visit(harness: Harness) -> None:
    h = harness
    sid = await h.session("alice")
    first, second = (await h.plan(title="First")).task, (await h.plan(title="Second")).task
    await h.session("bob")  # bob's visit: he has seen everything up to here
    h.clock.advance(5)
    await h.update("alice", first.id, title="First, renamed")
    await h.update("carol", second.id, status="in_progress")

    resumed = await h.services.session_overview.resume_session(caller("bob"), sid)
    assert [(e.kind, e.task_id, e.actor) for e in resumed.recent_events] == [
        ("task_updated", first.id, "alice"),
        ("status_changed", second.id, "carol"),
        ("task_updated", second.id, "carol"),
    ]
    assert resumed.recent_events[1].data == {"from": "pending", "to": "in_progress"}
    assert resumed.recent_events_omitted == 0

    again = await h.services.session_overview.resume_session(caller("bob"), sid)
    assert again.recent_events == []
    await h.update("carol", second.id, status="pending")
    after = await h.services.session_overview.resume_session(caller("bob"), sid)
    assert [(e.kind, e.task_id) for e in after.recent_events] == [
        ("status_changed", second.id),
        ("task_updated", second.id),
    ]

    # An actor who never visited sees the whole trail, oldest first.
    newcomer = await h.services.session_overview.resume_session(caller("dave"), sid)
    assert [e.kind for e in newcomer.recent_events] == [
        "session_created",
        "task_created",
        "task_created",
        "task_updated",
        "status_changed",
        "task_updated",
        "status_changed",
        "task_updated",
    ]


async def test_resume_session_makes_it_current_and_shows_holders_blockers_and_ready_queue(harness: Harness) -> None:
    h = harness
    sid = await h.session("alice", "/repo/a")
    other = await h.session("bob", "/repo/b")
    low = (await h.plan(session_id=sid, title="low", priority="low")).task
    h.clock.advance(1)
    high_late = (await h.plan(session_id=sid, title="high late", priority="high", due_date="2026-03-01")).task
    h.clock.advance(1)
    high_none = (await h.plan(session_id=sid, title="high no due", priority="high")).task
    h.clock.advance(1)
    high_soon = (await h.plan(session_id=sid, title="high soon", priority="high", due_date="2026-02-01")).task
    h.clock.advance(1)
    critical = (await h.plan(session_id=sid, title="critical", priority="critical")).task
    h.clock.advance(1)
    held = (await h.plan(session_id=sid, title="held")).task
    stuck = (await h.plan(session_id=sid, title="stuck")).task
    await h.update("carol", held.id, status="in_progress")
    await h.update("carol", stuck.id, status="blocked", reason="waiting for the API keys")

    resumed = await h.services.session_overview.resume_session(caller("bob"), sid)
    assert resumed.session.id == sid and resumed.counts.by_status == {"pending": 5, "in_progress": 1, "blocked": 1}
    assert [t.id for t in resumed.ready_next] == [critical.id, high_soon.id, high_late.id, high_none.id, low.id]
    assert [(t.id, t.holder, t.lease_live, t.holder_last_seen_at) for t in resumed.in_progress] == [
        (held.id, "carol", True, "2026-01-01T00:00:05Z")
    ]
    assert [(t.id, t.reason, t.reported_by, t.blocked_at) for t in resumed.blocked] == [
        (stuck.id, "waiting for the API keys", "carol", "2026-01-01T00:00:05Z")
    ]
    assert resumed.latest_handover is None
    # bob's current session moved from /repo/b to this one: a query without session_id lands here now.
    assert other != sid
    page = await h.query("bob")
    assert page.total_count == 7

    handover = await h.services.maintenance.maintenance_coordinator(
        caller("carol"), MaintenanceRequest(action="prepare_handover", session_id=sid), request_id=None
    )
    assert handover.artifact is not None
    h.clock.advance(1)
    newer = await h.services.maintenance.maintenance_coordinator(
        caller("carol"), MaintenanceRequest(action="prepare_handover", session_id=sid), request_id=None
    )
    resumed = await h.services.session_overview.resume_session(caller("bob"), sid)
    assert resumed.latest_handover == newer.artifact


async def test_resume_of_an_unknown_session_is_not_found(harness: Harness) -> None:
    with pytest.raises(errors.SessionNotFound) as caught:
        await harness.services.session_overview.resume_session(caller("bob"), "sess_0000000000000000")
    assert (caught.value.code, caught.value.field) == ("not_found", "session_id")


async def test_session_status_counts_progress_and_the_agents_at_work(harness: Harness) -> None:
    h = harness
    sid = await h.session("alice")
    await h.session("bob")
    tasks = [
        (await h.plan(title=f"t{n}", specialist_type=kind)).task
        for n, kind in enumerate(["coder", "coder", "tester", "generic"])
    ]
    await h.complete("alice", tasks[0].id)
    await h.update("carol", tasks[1].id, status="in_progress")
    await h.update("carol", tasks[2].id, status="in_progress")
    h.clock.advance(60)
    await h.session("bob")  # bob seen later than carol

    status = await h.services.session_overview.session_status(caller("alice"), sid)
    # Tasks planned at one instant are ordered by id, so carol's holdings are listed in id order.
    assert status.counts.model_dump() == {
        "by_status": {"completed": 1, "in_progress": 2, "pending": 1},
        "total": 4,
        "by_specialist": {"coder": 2, "tester": 1, "generic": 1},
    }
    assert status.progress_ratio == 0.25
    assert [a.model_dump() for a in status.active_agents] == [
        {"actor": "bob", "holding": [], "last_seen_at": "2026-01-01T00:01:00Z"},
        {"actor": "alice", "holding": [], "last_seen_at": "2026-01-01T00:00:00Z"},
        {"actor": "carol", "holding": sorted([tasks[1].id, tasks[2].id]), "last_seen_at": "2026-01-01T00:00:00Z"},
    ]
    assert status.last_activity_at == "2026-01-01T00:01:00Z"

    h.clock.advance(3600)  # carol's leases (900 s) ran out: she holds nothing any more
    later = await h.services.session_overview.session_status(caller("alice"), sid)
    assert [(a.actor, a.holding) for a in later.active_agents] == [("bob", []), ("alice", [])]
