"""validate_structure finds each fault seeded directly in the database, on both backends.

Every fault is written with raw SQL on a connection of its own, bypassing the services that would refuse
it (foreign keys off where the fault needs it), then the report must name it with the right task ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from app.services.maintenance.coordinator import MaintenanceRequest, MaintenanceResult
from tests.support.harness import Harness, caller
from tests.support.rows import execute_raw, table_snapshot

pytestmark = pytest.mark.anyio
MISSING = "task_ffffffffffffffff"
WHEN = "2026-01-01 00:00:00"


@dataclass
class Graph:
    """session: root R with children A, B (B depends on A), C; a cancelled D; another session with X."""

    session: str
    other: str
    root: str
    a: str
    b: str
    c: str
    d: str
    x: str


async def build(h: Harness) -> Graph:
    sid = await h.session("alice", "/repo/main")
    plan = await h.plan(
        session_id=sid,
        title="R",
        subtasks=[
            {"key": "a", "title": "A", "description": "a"},
            {"title": "B", "description": "b", "depends_on": ["a"]},
            {"title": "C", "description": "c"},
            {"title": "D", "description": "d"},
        ],
    )
    root, a, b, c, d = (t.id for t in plan.created)
    await h.services.removal.cancel_task(
        caller("alice"), d, reason="not needed", preserve_work=True, cascade=False, request_id=None
    )
    other = await h.session("alice", "/repo/other")
    x = (await h.plan(session_id=other, title="X")).task.id
    return Graph(sid, other, root, a, b, c, d, x)


async def validate(
    h: Harness, level: str = "basic", scope: str = "full_project", **kwargs: object
) -> MaintenanceResult:
    request = MaintenanceRequest(action="validate_structure", scope=scope, validation_level=level, **kwargs)  # type: ignore[arg-type]
    return await h.services.maintenance.maintenance_coordinator(caller("alice"), request, request_id=None)


Fault = Callable[[Graph], list[str]]
FAULTS: list[tuple[str, str, Fault, bool, Callable[[Graph], set[str]], str]] = [
    # (kind, level, statements, foreign keys off, expected task ids, severity)
    (
        "dependency_cycle",
        "basic",
        lambda g: [
            f"INSERT INTO task_dependency (task_id, depends_on_id, session_id, created_at) VALUES ('{g.a}', '{g.b}', '{g.session}', '{WHEN}')"
        ],
        False,
        lambda g: {g.a, g.b},
        "error",
    ),
    (
        "dependency_on_missing_task",
        "basic",
        lambda g: [
            f"INSERT INTO task_dependency (task_id, depends_on_id, session_id, created_at) VALUES ('{g.c}', '{MISSING}', '{g.session}', '{WHEN}')"
        ],
        True,
        lambda g: {g.c},
        "error",
    ),
    (
        "open_child_of_closed_parent",
        "basic",
        lambda g: [f"UPDATE task SET status = 'completed' WHERE id = '{g.root}'"],
        False,
        lambda g: {g.a, g.root},
        "error",  # a parent completes only after its subtasks: this one was closed too early
    ),
    (
        "open_child_of_closed_parent",
        "basic",
        lambda g: [f"UPDATE task SET status = 'archived' WHERE id = '{g.root}'"],
        False,
        lambda g: {g.c, g.root},
        "warning",
    ),
    (
        "cross_session_parent",
        "basic",
        lambda g: [f"UPDATE task SET session_id = '{g.other}' WHERE id = '{g.c}'"],
        False,
        lambda g: {g.c, g.root},
        "error",
    ),
    (
        "missing_parent",
        "basic",
        lambda g: [f"UPDATE task SET parent_id = '{MISSING}' WHERE id = '{g.c}'"],
        True,
        lambda g: {g.c},
        "error",
    ),
    (
        "in_progress_without_claim",
        "basic",
        lambda g: [f"UPDATE task SET status = 'in_progress' WHERE id = '{g.a}'"],
        False,
        lambda g: {g.a},
        "error",
    ),
    (
        "holder_on_inactive_task",
        "basic",
        lambda g: [f"UPDATE task SET assigned_to = 'ghost' WHERE id = '{g.c}'"],
        False,
        lambda g: {g.c},
        "warning",
    ),
    (
        "parent_cycle",
        "comprehensive",
        lambda g: [f"UPDATE task SET parent_id = '{g.a}' WHERE id = '{g.root}'"],
        False,
        lambda g: {g.a, g.root},
        "error",
    ),
    (
        "cross_session_dependency",
        "comprehensive",
        lambda g: [
            f"INSERT INTO task_dependency (task_id, depends_on_id, session_id, created_at) VALUES ('{g.c}', '{g.x}', '{g.session}', '{WHEN}')"
        ],
        False,
        lambda g: {g.c, g.x},
        "error",
    ),
    (  # the edge's own session column (what get_status's ready set reads) disagrees with its tasks'
        "cross_session_dependency",
        "comprehensive",
        lambda g: [f"UPDATE task_dependency SET session_id = '{g.other}' WHERE task_id = '{g.b}'"],
        False,
        lambda g: {g.b, g.a},
        "error",
    ),
    (
        "dependency_never_completes",
        "comprehensive",
        lambda g: [
            f"INSERT INTO task_dependency (task_id, depends_on_id, session_id, created_at) VALUES ('{g.c}', '{g.d}', '{g.session}', '{WHEN}')"
        ],
        False,
        lambda g: {g.c, g.d},
        "warning",
    ),
    (
        "artifact_digest_mismatch",
        "comprehensive",
        lambda g: [f"UPDATE artifact SET content = 'tampered' WHERE task_id = '{g.d}'"],
        False,
        lambda g: {g.d},
        "error",
    ),
    (
        "event_log_mismatch",
        "full_audit",
        lambda g: [f"UPDATE task SET status = 'blocked' WHERE id = '{g.c}'"],
        False,
        lambda g: {g.c},
        "warning",
    ),
    (
        "schema_revision",
        "full_audit",
        lambda g: ["UPDATE alembic_version SET version_num = '0000_older'"],
        False,
        lambda g: set(),
        "error",
    ),
]


@pytest.mark.parametrize(
    ("kind", "level", "fault", "fk_off", "expected_ids", "severity"),
    FAULTS,
    ids=[f"{f[0]}-{n}" for n, f in enumerate(FAULTS)],
)
async def test_each_seeded_fault_is_reported_with_its_tasks_and_a_fix(
    harness: Harness,
    kind: str,
    level: str,
    fault: Fault,
    fk_off: bool,
    expected_ids: Callable[[Graph], set[str]],
    severity: str,
) -> None:
    graph = await build(harness)
    await execute_raw(harness.settings.resolved_database_url(), fault(graph), foreign_keys_off=fk_off)
    before = await table_snapshot(harness.database)

    result = await validate(harness, level)

    matching = [i for i in result.issues if i.kind == kind and set(i.task_ids) == expected_ids(graph)]
    assert len(matching) == 1, [i.model_dump() for i in result.issues]
    assert matching[0].severity == severity and matching[0].fix and matching[0].message
    assert (result.found, result.fixed, result.artifact, result.dry_run) == ([], [], None, False)
    assert await table_snapshot(harness.database) == before  # validate_structure is read-only
    if level != "basic":  # a lower level does not run the check
        lower = "basic" if level == "comprehensive" else "comprehensive"
        assert kind not in {i.kind for i in (await validate(harness, lower)).issues}


async def test_a_graph_built_through_the_services_has_no_issues_even_at_full_audit(harness: Harness) -> None:
    await build(harness)
    result = await validate(harness, "full_audit")
    assert (result.issues, result.summary) == (
        [],
        "validate_structure (full_audit) of full project (every session): no issues; nothing was changed (read-only).",
    )


async def test_session_scope_reports_only_that_sessions_faults(harness: Harness) -> None:
    graph = await build(harness)
    await execute_raw(
        harness.settings.resolved_database_url(),
        [
            f"UPDATE task SET status = 'in_progress' WHERE id = '{graph.a}'",
            f"UPDATE task SET status = 'in_progress' WHERE id = '{graph.x}'",
        ],
    )
    mine = await validate(harness, scope="current_session", session_id=graph.session)
    assert [(i.kind, i.task_ids) for i in mine.issues] == [("in_progress_without_claim", [graph.a])]
    theirs = await validate(harness, scope="current_session", session_id=graph.other)
    assert [(i.kind, i.task_ids) for i in theirs.issues] == [("in_progress_without_claim", [graph.x])]
    subtree = await validate(harness, scope="specific_subtask", target_task_id=graph.b)
    assert subtree.issues == []
    everything = await validate(harness)
    assert sorted(i.task_ids[0] for i in everything.issues) == sorted([graph.a, graph.x])
    assert everything.summary.startswith("validate_structure (basic) of full project (every session): 2 error(s)")


async def test_a_completed_parent_with_an_open_subtask_left_from_before_is_reported_as_an_error(
    harness: Harness,
) -> None:
    sid = await harness.session("alice", "/repo/old")
    parent, child = (
        await harness.plan(session_id=sid, title="Old parent", subtasks=[{"title": "Open child", "description": "c"}])
    ).created
    # Older data: the parent was completed while its subtask stayed pending (no write path does that now).
    await execute_raw(
        harness.settings.resolved_database_url(),
        [f"UPDATE task SET status = 'completed', completed_at = '{WHEN}' WHERE id = '{parent.id}'"],
    )
    result = await validate(harness)
    assert [issue.model_dump() for issue in result.issues] == [
        {
            "kind": "open_child_of_closed_parent",
            "severity": "error",
            "task_ids": [child.id, parent.id],
            "session_id": sid,
            "message": f"Task {child.id} is pending under parent {parent.id}, which is completed: a parent completes "
            "only after all its subtasks end, so the parent was closed too early (data from before that rule, or "
            "changed outside the service).",
            "fix": f"Reopen the parent (orchestrator_update_task task_id={parent.id} status=pending reason=...) so it "
            f"waits for the subtask again, or cancel the subtask (orchestrator_cancel_task task_id={child.id}) if the "
            "parent's completion stands.",
        }
    ]
    # The advised fix works: reopening the parent makes it wait for its subtask, and the report is clean.
    await harness.update("alice", parent.id, status="pending", reason="its subtask is still open")
    assert (await validate(harness)).issues == []
