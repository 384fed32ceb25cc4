"""Why a task is in its status: the reason recorded on the move into it, read back from the event trail.

``complete_task(next_action=blocked)``, ``update_task(reason=…)``, ``cancel_task`` and the lease sweeper
each record why they moved a task; synthesis and status reports show that reason next to the task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from app.db.models import Task, TaskEvent
from app.db.repositories import Repositories
from app.domain.enums import ArtifactKind, TaskStatus

REASON_EVENT_KINDS = ("status_changed", "lease_expired")
NO_REASON = "No reason was recorded."


async def status_reasons(repos: Repositories, tasks: Sequence[Task]) -> dict[str, str]:
    """``task id -> reason`` for each task, from its events (and cancellation notes)."""
    ids = [t.id for t in tasks]
    events: dict[str, list[TaskEvent]] = defaultdict(list)
    for event in await repos.events.list_for_tasks(ids, REASON_EVENT_KINDS):
        events[event.task_id or ""].append(event)
    notes: dict[str, str] = {}
    cancelled = [t.id for t in tasks if t.status == TaskStatus.CANCELLED]
    for art in await repos.artifacts.list_by_task_ids(cancelled):
        if art.kind == ArtifactKind.CANCELLATION:
            notes[art.task_id or ""] = art.content  # the latest one wins (listed oldest first)
    return {t.id: _reason(t, events.get(t.id, []), notes.get(t.id)) for t in tasks}


def _reason(task: Task, events: Sequence[TaskEvent], cancellation: str | None) -> str:
    for event in reversed(events):
        data = event.data or {}
        if event.kind == "lease_expired" and data.get("outcome") == task.status:
            return task.summary or f"Its lease expired {data.get('expiries', data.get('attempt_count'))} time(s)."
        if event.kind == "status_changed" and data.get("to") == task.status:
            reason = data.get("reason")
            if isinstance(reason, str) and reason:
                return reason
            break
    if cancellation is not None:
        return cancellation
    return task.summary or NO_REASON
