"""scan_cleanup, the two document actions and the maintenance monitor, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import errors
from app.db.models import SystemEvent
from app.db.repositories import Repositories
from app.db.repositories.integrity import StalePending
from app.db.repositories.tasks import TaskScope
from app.runtime.maintenance_monitor import MaintenanceMonitor
from app.services.maintenance.cleanup_scan import Finding
from app.services.maintenance.coordinator import MaintenanceRequest, MaintenanceResult
from tests.support.harness import Harness, caller
from tests.support.rows import execute_raw, row_counts, table_snapshot

pytestmark = pytest.mark.anyio
DAY = 86400


async def maintain(h: Harness, action: str, actor: str = "alice", **kwargs: object) -> MaintenanceResult:
    request = MaintenanceRequest(action=action, **kwargs)  # type: ignore[arg-type]
    return await h.services.maintenance.maintenance_coordinator(caller(actor), request, request_id=None)


async def task_row(h: Harness, task_id: str) -> dict[str, object]:
    return next(t.model_dump() for t in (await h.query()).tasks if t.id == task_id)


def kinds(items: list[Finding]) -> list[tuple[str, list[str], int]]:
    return sorted((f.kind, f.task_ids, f.count) for f in items)


async def test_scan_cleanup_dry_run_reports_and_the_real_run_fixes_every_kind(harness: Harness) -> None:
    h = harness
    await h.session("alice")
    expired, holderless, stale_holder, idle = [
        (await h.plan(title=name, request_id=f"plan-{name}")).task.id
        for name in ("expired", "holderless", "stale", "idle")
    ]
    await h.update("bob", expired, status="in_progress")
    url = h.settings.resolved_database_url()
    await execute_raw(
        url,
        [
            f"UPDATE task SET status = 'in_progress' WHERE id = '{holderless}'",
            f"UPDATE task SET assigned_to = 'ghost' WHERE id = '{stale_holder}'",
        ],
    )
    h.clock.advance(8 * DAY)  # bob's lease, the 4 idempotency records and the pending work are all old now

    before = await table_snapshot(h.database)
    preview = await maintain(h, "scan_cleanup", dry_run=True)
    assert await table_snapshot(h.database) == before
    expected_found = [
        ("expired_lease", [expired], 1),
        ("expired_request_records", [], 4),
        ("holder_on_inactive_task", [stale_holder], 1),
        ("in_progress_without_claim", [holderless], 1),
        ("stale_pending", sorted([stale_holder, idle]), 2),  # planned at one instant: id order
    ]
    assert (kinds(preview.found), preview.fixed, preview.dry_run) == (expected_found, [], True)

    result = await maintain(h, "scan_cleanup")
    assert kinds(result.found) == expected_found
    assert kinds(result.fixed) == [
        ("expired_lease", [expired], 1),
        ("expired_request_records", [], 4),
        ("holder_on_inactive_task", [stale_holder], 1),
        ("in_progress_without_claim", [holderless], 1),
    ]
    assert result.summary.endswith("stale pending work is reported only.")
    for task_id in (expired, holderless, stale_holder):
        row = await task_row(h, task_id)
        assert (row["status"], row["assigned_to"], row["lease_expires_at"]) == ("pending", None, None)
    assert (await task_row(h, idle))["version"] == 1  # reported only: untouched
    after = await table_snapshot(h.database)
    assert row_counts(after)["request_record"] == 0
    runs = [row for row in after["system_event"] if row[1] == "maintenance_run"]
    assert [(r[2], r[4]) for r in runs] == [
        (
            "alice",
            {
                "trigger": "tool",
                "scope": "current_session",
                "session_id": (await task_row(h, idle))["session_id"],
                "found": {
                    "expired_lease": 1,
                    "expired_request_records": 4,
                    "holder_on_inactive_task": 1,
                    "in_progress_without_claim": 1,
                    "stale_pending": 2,
                },
                "fixed": {
                    "expired_lease": 1,
                    "expired_request_records": 4,
                    "holder_on_inactive_task": 1,
                    "in_progress_without_claim": 1,
                },
            },
        )
    ]
    assert (await maintain(h, "validate_structure", validation_level="full_audit")).issues == []
    again = await maintain(h, "scan_cleanup")
    assert kinds(again.fixed) == []


async def test_stale_pending_counts_every_row_and_lists_the_oldest_first(harness: Harness) -> None:
    h = harness
    await h.session("alice")
    planned = []
    for n in range(5):
        planned.append((await h.plan(title=f"old {n}")).task.id)
        h.clock.advance(60)
    h.clock.advance(8 * DAY)
    fresh = (await h.plan(title="fresh")).task.id  # touched now: not stale

    async def stale(repos: Repositories) -> StalePending:
        return await repos.integrity.stale_pending(h.clock.now() - timedelta(days=7), TaskScope(), listed=2)

    found = await h.uow.run(stale, write=False)
    preview = await maintain(h, "scan_cleanup", dry_run=True)

    assert found == StalePending(count=5, oldest_ids=planned[:2])
    (finding,) = [f for f in preview.found if f.kind == "stale_pending"]
    assert (finding.count, finding.task_ids) == (5, planned)
    assert fresh not in finding.task_ids


async def test_specific_subtask_scope_fixes_only_that_subtree(harness: Harness) -> None:
    h = harness
    await h.session("alice")
    first = await h.plan(title="first", subtasks=[{"title": "one", "description": "x"}])
    second = await h.plan(title="second", subtasks=[{"title": "two", "description": "x"}])
    inside, outside = first.created[1].id, second.created[1].id
    await h.update("bob", inside, status="in_progress")
    await h.update("bob", outside, status="in_progress")
    h.clock.advance(DAY)
    result = await maintain(h, "scan_cleanup", scope="specific_subtask", target_task_id=first.task.id)
    assert kinds(result.fixed) == [("expired_lease", [inside], 1)]
    assert (await task_row(h, inside))["status"] == "pending"
    assert (await task_row(h, outside))["status"] == "in_progress"


async def test_scope_and_target_task_must_agree(harness: Harness) -> None:
    h = harness
    sid = await h.session("alice")
    task = (await h.plan()).task
    other = await h.session("alice", "/repo/other")
    with pytest.raises(errors.InvalidArgument) as missing:
        await maintain(h, "scan_cleanup", scope="specific_subtask")
    assert (missing.value.code, missing.value.field) == ("invalid_argument", "target_task_id")
    with pytest.raises(errors.InvalidArgument) as stray:
        await maintain(h, "prepare_handover", target_task_id=task.id)
    assert stray.value.field == "target_task_id"
    with pytest.raises(errors.InvalidArgument) as mismatch:
        await maintain(h, "validate_structure", scope="specific_subtask", target_task_id=task.id, session_id=other)
    assert mismatch.value.field == "session_id"
    with pytest.raises(errors.TaskNotFound) as unknown:
        await maintain(h, "update_documentation", scope="specific_subtask", target_task_id="task_0000000000000000")
    assert unknown.value.field == "target_task_id"
    with pytest.raises(errors.InvalidArgument) as no_session:
        await maintain(h, "scan_cleanup", actor="stranger")
    assert no_session.value.field == "session_id"
    assert sid != other


async def test_progress_report_shows_tree_status_finished_work_and_open_items(harness: Harness) -> None:
    h = harness
    await h.session("alice")
    plan = await h.plan(
        title="Ship it",
        subtasks=[
            {"key": "design", "title": "Design the API", "description": "x"},
            {"title": "Build the API", "description": "x", "depends_on": ["design"]},
        ],
    )
    root, design, build = plan.created
    await h.update("bob", design.id, status="in_progress")
    await h.complete("bob", design.id)
    result = await maintain(h, "update_documentation")
    assert result.artifact is not None and (result.artifact.kind, result.artifact.task_id) == ("report", None)
    text = result.artifact.content
    assert text.startswith("# Progress report: project\n")
    assert "**Progress:** 1 of 3 task(s) finished (33%)." in text
    assert f"- [ ] **Ship it** (`{root.id}`): pending; generic, medium priority\n" in text  # waits for Build
    assert f"  - [x] **Design the API** (`{design.id}`): completed; generic, medium priority\n" in text
    assert f"- **Design the API** (`{design.id}`): completed at 2026-01-01T00:00:00Z. Done by bob" in text
    assert f"- **Ship it** (`{root.id}`): pending, waits on 1 open subtask(s)." in text
    assert f"- **Build the API** (`{build.id}`): pending, ready to start." in text
    stored = await h.services.session_overview.resume_session(caller("carol"), root.session_id)
    assert stored.latest_handover is None  # a report is not a handover
    sub = await maintain(h, "update_documentation", scope="specific_subtask", target_task_id=build.id)
    assert sub.artifact is not None and sub.artifact.task_id == build.id
    assert "Ship it" not in sub.artifact.content and "Build the API" in sub.artifact.content


async def test_handover_names_holders_with_notes_blockers_ready_queue_and_completions(harness: Harness) -> None:
    h = harness
    sid = await h.session("alice")
    plan = await h.plan(
        title="Release",
        subtasks=[
            {"key": "api", "title": "Write the API", "description": "x", "priority": "high"},
            {"key": "ui", "title": "Write the UI", "description": "x"},
            {"title": "Deploy", "description": "x", "depends_on": ["api"]},
            {"title": "Get keys", "description": "x"},
            {"title": "Docs", "description": "x", "priority": "critical"},
            {"title": "Spike", "description": "x"},
        ],
    )
    _, api, ui, deploy, keys, docs, spike = plan.created
    await h.update("bob", api.id, status="in_progress")
    await h.update("bob", api.id, context={"branch": "api"}, reason="handlers done, tests missing")
    await h.update("carol", ui.id, status="in_progress")
    await h.update("dave", keys.id, status="blocked", reason="waiting for the vendor")
    await h.complete("erin", spike.id)

    result = await maintain(h, "prepare_handover", actor="alice")
    assert result.artifact is not None and result.artifact.kind == "handover"
    text = result.artifact.content
    holders = text.split("### Who holds what\n\n")[1].split("\n\n")[0].splitlines()
    assert holders[0].startswith(f"- bob holds **Write the API** (`{api.id}`) (attempt 1; lease until")
    assert holders[1] == "  - Last notes: handlers done, tests missing (task_updated at 2026-01-01T00:00:00Z)."
    assert holders[2].startswith(f"- carol holds **Write the UI** (`{ui.id}`)")
    assert holders[3] == "  - Last notes: none recorded."
    blockers = text.split("### Blockers\n\n")[1].split("\n\n")[0].splitlines()
    assert blockers == [
        f"- **Get keys** (`{keys.id}`) is blocked: waiting for the vendor (reported by dave at 2026-01-01T00:00:00Z).",
        f"- **Deploy** (`{deploy.id}`) waits on **Write the API** (`{api.id}`) (in_progress).",
    ]
    ready = text.split("### Ready queue (in next_task order)\n\n")[1].split("\n\n")[0].splitlines()
    assert ready == [
        f"1. **Docs** (`{docs.id}`): critical priority, generic.",
    ]  # Release waits for its open subtasks
    assert f"- **Spike** (`{spike.id}`) completed at 2026-01-01T00:00:00Z by erin: Done by erin." in text
    resumed = await h.services.session_overview.resume_session(caller("frank"), sid)
    assert resumed.latest_handover == result.artifact


async def test_document_dry_run_returns_the_text_and_stores_nothing(harness: Harness) -> None:
    await harness.session("alice")
    await harness.plan()
    before = await table_snapshot(harness.database)
    for action in ("update_documentation", "prepare_handover"):
        preview = await maintain(harness, action, dry_run=True)
        assert preview.dry_run and preview.artifact is not None and preview.artifact.content.startswith("# ")
        assert preview.summary.startswith("Dry run:")
    assert await table_snapshot(harness.database) == before


async def test_full_project_documents_cover_every_active_session(harness: Harness) -> None:
    h = harness
    home = await h.session("alice", "/repo/one")
    await h.plan(session_id=home, title="In one")
    h.clock.advance(1)
    two = await h.session("bob", "/repo/two")
    await h.plan(session_id=two, title="In two")
    result = await maintain(h, "update_documentation", scope="full_project", session_id=home)
    assert result.artifact is not None and result.artifact.session_id == home
    assert "**In one**" in result.artifact.content and "**In two**" in result.artifact.content
    assert result.artifact.content.startswith("# Progress report: one, two\n")


async def test_the_monitor_runs_the_fixes_everywhere_and_records_each_run(harness: Harness) -> None:
    h = harness
    first = await h.session("alice", "/repo/one")
    second = await h.session("alice", "/repo/two")
    one = (await h.plan(session_id=first)).task.id
    two = (await h.plan(session_id=second)).task.id
    await h.update("bob", one, status="in_progress")
    await h.update("bob", two, status="in_progress")
    h.clock.advance(DAY)
    monitor = MaintenanceMonitor(lambda: h.services.maintenance, interval=60)
    await monitor.run_once()
    await monitor.wait_for_runs(1)
    assert monitor.last_result is not None
    assert kinds(monitor.last_result.fixed) == sorted([("expired_lease", [one], 1), ("expired_lease", [two], 1)])
    runs = [r for r in (await table_snapshot(h.database))["system_event"] if r[1] == "maintenance_run"]
    assert [(r[2], r[4]["trigger"], r[4]["scope"], r[4]["fixed"]) for r in runs] == [
        ("system:maintenance", "monitor", "full_project", {"expired_lease": 2})
    ]
    assert SystemEvent.__tablename__ == "system_event"


async def test_maintenance_run_records_older_than_30_days_are_purged(harness: Harness) -> None:
    monitor = MaintenanceMonitor(lambda: harness.services.maintenance, interval=60)
    await monitor.run_once()
    harness.clock.advance(29 * DAY)
    await monitor.run_once()
    assert monitor.last_result is not None and kinds(monitor.last_result.fixed) == []
    harness.clock.advance(2 * DAY)
    await monitor.run_once()
    assert kinds(monitor.last_result.fixed) == [("expired_maintenance_runs", [], 1)]
    runs = [r for r in (await table_snapshot(harness.database))["system_event"] if r[1] == "maintenance_run"]
    assert [r[3].isoformat() for r in runs] == ["2026-01-30T00:00:00+00:00", "2026-02-01T00:00:00+00:00"]
