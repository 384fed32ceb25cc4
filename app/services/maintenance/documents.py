"""The Markdown documents of maintenance: the progress report and the handover.

Both are built from the rows of one transaction, so they describe one consistent moment. The progress
report shows the scope's tree with statuses, what finished work produced, and what is still open. The
handover is what the next agent needs: who holds what (with their last notes), what blocks what and why,
the ready queue in ``next_task`` order, and what was completed recently. A holder's "last notes" are their
latest artifact on the task, else the latest ``reason`` they recorded on it, else the task's summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.db.models import OrchestrationSession, Task
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskScope
from app.domain.clock import iso
from app.domain.enums import OPEN_STATUSES, TERMINAL_STATUSES, TaskStatus
from app.services.sessions.overview import STATUS_EVENT, blocked_tasks, held_tasks
from app.services.views import TaskView, task_views

EXCERPT_CHARS = 400
MAX_TREE_LINES = 1000
READY_QUEUE_LIMIT = 20
RECENT_COMPLETIONS = 10
NOTE_EVENTS = 50  # how far back in a held task's trail the holder's last note is looked for
MARKS = {
    TaskStatus.COMPLETED: "[x]",
    TaskStatus.PENDING: "[ ]",
    TaskStatus.IN_PROGRESS: "[~]",
    TaskStatus.BLOCKED: "[!]",
}


@dataclass(frozen=True)
class Part:
    """One session's share of a document: the session and which of its tasks are covered."""

    session: OrchestrationSession
    scope: TaskScope


@dataclass(frozen=True)
class DocumentSpec:
    parts: Sequence[Part]
    scope_label: str
    actor: str
    now: datetime


def _one_line(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _ref(task: Task | TaskView) -> str:
    return f"**{_one_line(task.title, 200)}** (`{task.id}`)"


def _header(kind: str, spec: DocumentSpec) -> list[str]:
    names = ", ".join(_one_line(p.session.name, 200) for p in spec.parts) or "no sessions"
    return [
        f"# {kind}: {names}",
        "",
        f"Prepared {iso(spec.now)} by {spec.actor}; scope: {spec.scope_label}.",
        "",
    ]


def _session_heading(part: Part, level: str) -> list[str]:
    row = part.session
    where = f" in `{row.working_directory}`" if row.working_directory else ""
    return [
        f"{level} Session {_one_line(row.name, 200)} (`{row.id}`)",
        "",
        f"Session status {row.status}{where}; last activity {iso(row.last_activity_at)}.",
        "",
    ]


async def progress_report(repos: Repositories, spec: DocumentSpec) -> str:
    """The Markdown progress report of every part: counts, tree, finished work, open items."""
    lines = _header("Progress report", spec)
    for part in spec.parts:
        tasks = await repos.tasks.list_in_scope(part.scope)
        views = {v.id: v for v in await task_views(repos, tasks)}
        lines += _session_heading(part, "##")
        lines += _counts(tasks)
        lines += ["### Task tree", "", *_tree(tasks, views), ""]
        finished = [t for t in tasks if t.status in TERMINAL_STATUSES]
        lines += ["### Finished work", ""]
        lines += [
            f"- {_ref(t)}: {t.status}"
            + (f" at {iso(t.completed_at)}" if t.completed_at else "")
            + f". {_one_line(t.summary) or 'No summary recorded.'}"
            for t in sorted(finished, key=lambda t: (t.completed_at or t.updated_at, t.id))
        ] or ["- Nothing finished yet."]
        lines += ["", "### Open items", ""]
        lines += [_open_item(views[t.id]) for t in tasks if t.status in OPEN_STATUSES] or ["- No open items."]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _counts(tasks: Sequence[Task]) -> list[str]:
    by_status = Counter(t.status for t in tasks)
    finished = sum(n for s, n in by_status.items() if s in TERMINAL_STATUSES)
    ratio = f"{100 * finished / len(tasks):.0f}%" if tasks else "0%"
    lines = [f"**Progress:** {finished} of {len(tasks)} task(s) finished ({ratio}).", ""]
    if tasks:
        lines += ["| status | tasks |", "|---|---|"]
        lines += [f"| {status} | {by_status[status]} |" for status in TaskStatus if by_status[status]]
        lines.append("")
    return lines


def _tree(tasks: Sequence[Task], views: dict[str, TaskView]) -> list[str]:
    """Indented list, parents before children; cycle-safe, since it may describe a damaged graph."""
    ids = {t.id for t in tasks}
    children: dict[str | None, list[Task]] = {}
    for task in tasks:
        parent = task.parent_id if task.parent_id in ids else None
        children.setdefault(parent, []).append(task)
    lines: list[str] = []
    seen: set[str] = set()
    stack: list[tuple[Task, int]] = [(t, 0) for t in reversed(children.get(None, []))]
    while stack and len(lines) < MAX_TREE_LINES:
        task, depth = stack.pop()
        if task.id in seen:
            continue
        seen.add(task.id)
        view = views[task.id]
        mark = MARKS.get(TaskStatus(task.status), "[-]")
        state = task.status + (f", held by {task.assigned_to}" if task.assigned_to else "")
        if view.ready:
            state += ", ready"
        lines.append(f"{'  ' * depth}- {mark} {_ref(task)}: {state}; {task.specialist_type}, {task.priority} priority")
        stack += [(c, depth + 1) for c in reversed(children.get(task.id, []))]
    if len(seen) < len(tasks):
        lines.append(f"- … {len(tasks) - len(seen)} more task(s) not shown")
    return lines or ["- No tasks."]


def _open_item(view: TaskView) -> str:
    if view.status == "in_progress":
        detail = f"in progress, held by {view.assigned_to} (lease until {view.lease_expires_at})"
    elif view.status == "blocked":
        detail = "blocked"
    elif view.ready:
        detail = "pending, ready to start"
    else:
        # Not ready: dependencies not completed, or subtasks still open (a parent waits for its children).
        waits = [f"`{d}`" for d in view.blocked_by]
        if view.open_children:
            waits.append(f"{view.open_children} open subtask(s)")
        detail = f"pending, waits on {', '.join(waits)}"
    return f"- {_ref(view)}: {detail}."


async def handover(repos: Repositories, spec: DocumentSpec) -> str:
    """The Markdown handover of every part: holders and notes, blockers, ready queue, recent completions."""
    lines = _header("Handover", spec)
    for part in spec.parts:
        tasks = await repos.tasks.list_in_scope(part.scope)
        views = {v.id: v for v in await task_views(repos, tasks)}
        titles = {t.id: t for t in tasks}
        lines += _session_heading(part, "##")
        lines += ["### Who holds what", ""]
        held = sorted(
            (t for t in tasks if t.status == TaskStatus.IN_PROGRESS),
            key=lambda t: (t.assigned_to or "", t.created_at, t.id),
        )
        lines += await _holders(repos, held, spec.now)
        lines += ["", "### Blockers", ""]
        blocked = await blocked_tasks(repos, [t for t in tasks if t.status == TaskStatus.BLOCKED])
        items = [
            f"- {_ref(b)} is blocked: {_one_line(b.reason) or 'no reason recorded'}"
            + (f" (reported by {b.reported_by} at {b.blocked_at})" if b.reported_by else "")
            + "."
            for b in blocked
        ]
        for view in views.values():
            if view.status == "pending" and view.blocked_by:
                waits = ", ".join(
                    f"{_ref(titles[d])} ({titles[d].status})" if d in titles else f"`{d}`" for d in view.blocked_by
                )
                items.append(f"- {_ref(view)} waits on {waits}.")
        lines += items or ["- Nothing is blocked."]
        lines += ["", "### Ready queue (in next_task order)", ""]
        ready = await repos.tasks.list_ready_in_scope(part.scope, limit=READY_QUEUE_LIMIT)
        lines += [
            f"{n}. {_ref(t)}: {t.priority} priority"
            + (f", due {iso(t.due_at)}" if t.due_at else "")
            + f", {t.specialist_type}."
            for n, t in enumerate(ready, 1)
        ] or ["- No task is ready."]
        lines += ["", "### Recent completions", ""]
        lines += await _completions(repos, [t for t in tasks if t.status == TaskStatus.COMPLETED])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


async def _holders(repos: Repositories, tasks: Sequence[Task], now: datetime) -> list[str]:
    if not tasks:
        return ["- Nobody holds a claim."]
    holder_of = {t.id: t.assigned_to for t in tasks}
    notes: dict[str, str] = {}
    for art in reversed(await repos.artifacts.list_by_task_ids(list(holder_of))):  # newest first
        task_id = art.task_id or ""
        if task_id not in notes and art.created_by == holder_of.get(task_id):
            notes[task_id] = f"{art.kind} artifact {art.name!r}: {_one_line(art.content)}"
    lines = []
    for held in await held_tasks(repos, tasks, now):
        lease = "live" if held.lease_live else "expired"
        lines.append(
            f"- {held.holder or 'nobody'} holds {_ref(held)} (attempt {held.attempt_count}; lease until "
            f"{held.lease_expires_at}, {lease}; holder last seen {held.holder_last_seen_at or 'never'})."
        )
        note = notes.get(held.id) or await _reason_note(repos, held.id, held.holder)
        if note is None and held.summary:
            note = f"summary: {_one_line(held.summary)}"
        lines.append(f"  - Last notes: {note or 'none recorded'}.")
    return lines


async def _reason_note(repos: Repositories, task_id: str, holder: str | None) -> str | None:
    """The latest reason the holder wrote on the task (``orchestrator_update_task reason=…``)."""
    for event in await repos.events.list_latest_for_task(task_id, limit=NOTE_EVENTS):
        reason = (event.data or {}).get("reason")
        if event.actor == holder and reason:
            return f"{_one_line(str(reason))} ({event.kind} at {iso(event.at)})"
    return None


async def _completions(repos: Repositories, tasks: Sequence[Task]) -> list[str]:
    recent = sorted(tasks, key=lambda t: (t.completed_at or t.updated_at, t.id), reverse=True)[:RECENT_COMPLETIONS]
    events = await repos.events.latest_by_kinds([STATUS_EVENT], task_ids=[t.id for t in recent])
    return [
        f"- {_ref(t)} completed at {iso(t.completed_at)}"
        + (f" by {events[t.id].actor}" if t.id in events else "")
        + f": {_one_line(t.summary) or 'no summary recorded'}."
        for t in recent
    ] or ["- Nothing completed yet."]
