"""Service calls with every optional argument defaulted, so a test names only what it is about."""

from __future__ import annotations

from typing import Any

from app.services.graph.queries import QueryTasksResult
from app.services.graph.removal import CancelTaskResult, DeleteTaskResult
from app.services.graph.updates import TaskChanges, UpdateTaskResult
from tests.support.harness import Harness, caller

QUERY_DEFAULTS: dict[str, Any] = {
    "session_id": None,
    "statuses": [],
    "task_types": [],
    "specialist_types": [],
    "complexities": [],
    "priorities": [],
    "parent_task_id": None,
    "assigned_to": None,
    "ready_only": False,
    "search_text": None,
    "created_after": None,
    "created_before": None,
    "include_children": False,
    "include_artifacts": False,
    "sort": "created_at",
    "order": "asc",
    "limit": 500,
    "offset": 0,
    "view": "summary",
    "task_ids": None,
}


async def query(h: Harness, actor: str = "alice", *, admin: bool = True, **overrides: Any) -> QueryTasksResult:
    unknown = set(overrides) - set(QUERY_DEFAULTS)
    assert not unknown, f"not a query_tasks argument: {unknown}"
    return await h.services.queries.query_tasks(caller(actor, admin=admin), **{**QUERY_DEFAULTS, **overrides})


async def query_ids(h: Harness, actor: str = "alice", **overrides: Any) -> list[str]:
    return [t.id for t in (await query(h, actor, **overrides)).tasks]


async def update(
    h: Harness,
    task_id: str,
    actor: str = "alice",
    *,
    admin: bool = True,
    expected_version: int | None = None,
    reason: str | None = None,
    force: bool = False,
    request_id: str | None = None,
    **changes: Any,
) -> UpdateTaskResult:
    return await h.services.updates.update_task(
        caller(actor, admin=admin),
        task_id,
        TaskChanges(**changes),
        expected_version=expected_version,
        reason=reason,
        force=force,
        request_id=request_id,
    )


async def delete(
    h: Harness,
    task_id: str,
    actor: str = "alice",
    *,
    admin: bool = True,
    archive_instead: bool = True,
    force: bool = False,
    request_id: str | None = None,
) -> DeleteTaskResult:
    return await h.services.removal.delete_task(
        caller(actor, admin=admin), task_id, archive_instead=archive_instead, force=force, request_id=request_id
    )


async def cancel(
    h: Harness,
    task_id: str,
    actor: str = "alice",
    *,
    reason: str | None = None,
    preserve_work: bool = True,
    cascade: bool = False,
    request_id: str | None = None,
) -> CancelTaskResult:
    return await h.services.removal.cancel_task(
        caller(actor), task_id, reason=reason, preserve_work=preserve_work, cascade=cascade, request_id=request_id
    )
