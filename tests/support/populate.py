"""A realistic graph written through the services: what export/import and backups must carry over."""

from __future__ import annotations

from app.services.maintenance.coordinator import MaintenanceRequest
from tests.support.harness import Harness, caller


async def populate(h: Harness) -> dict[str, str]:
    """Two sessions with subtasks, dependencies, claims, a blocker, completions, a cancellation, documents,
    visits, odd JSON and Unicode. Returns the ids a test may want."""
    main = await h.session("alice", "/work/ünïcode project")
    plan = await h.plan(
        session_id=main,
        title="Ship 🚀 the release",
        description='Quotes " and \\ backslashes,\nnew lines and tabs\t.',
        priority="high",
        due_date="2026-02-01T12:30:00.123456Z",
        context={"nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}, "float": 1e-7, "big": 2**53},
        subtasks=[
            {"key": "design", "title": "Design", "description": "d", "specialist_type": "architect"},
            {"key": "build", "title": "Build", "description": "b", "depends_on": ["design"], "complexity": "complex"},
            {"title": "Test", "description": "t", "depends_on": ["build"], "specialist_type": "tester"},
            {"title": "Keys", "description": "k", "estimated_effort": "2h"},
            {"title": "Spike", "description": "s", "task_type": "research"},
        ],
    )
    root, design, build, _test, keys, spike = (t.id for t in plan.created)
    await h.session("bob", "/work/ünïcode project")

    h.clock.advance(60)
    await h.update("bob", design, status="in_progress")
    await h.complete("bob", design)
    await h.update("bob", build, status="in_progress")
    await h.update("bob", build, reason="parser done", context={"progress": 0.5})
    await h.update("carol", keys, reason="vendor has not answered", status="blocked")
    await h.services.removal.cancel_task(
        caller("alice"), spike, reason="out of scope", preserve_work=True, cascade=False, request_id="cancel-1"
    )
    await h.services.maintenance.maintenance_coordinator(
        caller("alice"), MaintenanceRequest(action="prepare_handover", session_id=main), request_id=None
    )
    h.clock.advance(60)
    await h.services.session_overview.resume_session(caller("carol"), main)
    side = await h.session("dave", "/work/side")
    await h.plan(session_id=side, title="Side quest", description="x")
    return {"main": main, "side": side, "root": root, "build": build}
