"""The judgement and the write-up of a synthesis: rule-based recommendations and the Markdown report.

Pure functions over the children as loaded by :mod:`app.services.work.synthesis`: every recommendation is
triggered by a fact of the data (a failed child, a blocker, a dependency that can never complete, …) and
names the tasks it is about and the tool call that acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from app.db.models import Artifact, Task
from app.domain.clock import iso
from app.domain.enums import TERMINAL_STATUSES, NextAction, TaskStatus
from app.services.views import View

NEVER_COMPLETING = (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.ARCHIVED)
# Most urgent first: broken work, then work that cannot start, then work to pick up, then the wrap-up.
KIND_ORDER = (
    "reassign",
    "retry",
    "fix_dependency",
    "resolve_blocker",
    "revise",
    "claim_ready",
    "wait",
    "review_failures",
    "complete_parent",
)


class Duration(View):
    task_id: str
    title: str
    started_at: str
    completed_at: str
    seconds: float


class Timeline(View):
    first_started_at: str | None
    last_completed_at: str | None
    span_seconds: float | None = Field(description="From the first start to the last completion.")
    durations: list[Duration] = Field(description="Each completed child from its start to its completion.")
    average_seconds: float | None


class Recommendation(View):
    kind: str = Field(
        description="retry, reassign, resolve_blocker, fix_dependency, revise, claim_ready, wait, "
        "complete_parent or review_failures"
    )
    message: str
    task_ids: list[str]


@dataclass(frozen=True)
class Child:
    """One child of the parent, with what a roll-up needs to know about it."""

    task: Task
    artifacts: Sequence[Artifact]
    reason: str  # why it is in its current status
    blocked_by: Sequence[tuple[str, str]]  # (dependency id, status) of the dependencies not completed
    open_children: int = 0  # its own subtasks not yet terminal (it waits for them, DESIGN §3)


def recommend(parent: Task, children: Sequence[Child], *, max_attempts: int, now: datetime) -> list[Recommendation]:
    """What should happen next, one recommendation per fact that calls for action."""
    out: list[Recommendation] = []

    def add(kind: str, message: str, tasks: Sequence[Task]) -> None:
        out.append(Recommendation(kind=kind, message=message, task_ids=[t.id for t in tasks]))

    for child in children:
        task = child.task
        if task.status == TaskStatus.FAILED:
            if task.attempt_count >= max_attempts:
                add(
                    "reassign",
                    f"{task.title!r} failed after {task.attempt_count} attempt(s): {child.reason} Split it into "
                    "smaller subtasks or hand it to another agent, then set it back to pending with "
                    "orchestrator_update_task.",
                    [task],
                )
            else:
                add(
                    "retry",
                    f"{task.title!r} failed: {child.reason} Retry it: orchestrator_update_task(status='pending', "
                    "reason=…).",
                    [task],
                )
        elif task.status == TaskStatus.BLOCKED:
            add(
                "resolve_blocker",
                f"{task.title!r} is blocked: {child.reason} Resolve that, then move it back to pending with "
                "orchestrator_update_task.",
                [task],
            )
        elif task.status == TaskStatus.PENDING:
            dead = [d for d, s in child.blocked_by if s in NEVER_COMPLETING]
            if dead:
                add(
                    "fix_dependency",
                    f"{task.title!r} waits on {', '.join(dead)}, which will never complete as things stand; retry "
                    "those or drop the dependency (orchestrator_update_task remove_dependencies).",
                    [task],
                )
    revise = [c.task for c in children if _pending_ready(c) and c.task.next_action == NextAction.NEEDS_REVISION]
    if revise:
        add(
            "revise",
            f"{len(revise)} subtask(s) were sent back for revision; claim them with orchestrator_execute_task and "
            "address their revision notes.",
            revise,
        )
    ready = [c.task for c in children if _pending_ready(c) and c.task not in revise]
    if ready:
        add(
            "claim_ready", f"{len(ready)} subtask(s) are ready to start: claim them with orchestrator_next_task.", ready
        )
    running = [c.task for c in children if c.task.status == TaskStatus.IN_PROGRESS]
    if running:
        lapsed = [t for t in running if t.lease_expires_at is not None and t.lease_expires_at <= now]
        holders = sorted({t.assigned_to or "?" for t in running})
        message = f"{len(running)} subtask(s) are in progress ({', '.join(holders)}); wait for them."
        if lapsed:
            message += f" {len(lapsed)} of them have lapsed leases and will return to the queue at the next sweep."
        add("wait", message, running)
    if all(c.task.status in TERMINAL_STATUSES for c in children):
        unsuccessful = [c.task for c in children if c.task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]
        if unsuccessful:
            add(
                "review_failures",
                f"Every subtask is finished, but {len(unsuccessful)} did not complete; review them before "
                "completing the parent.",
                unsuccessful,
            )
        if parent.status != TaskStatus.COMPLETED:
            add(
                "complete_parent",
                f"Every subtask is finished; complete {parent.title!r} with "
                "orchestrator_synthesize_results(complete_parent=true).",
                [parent],
            )
    return sorted(out, key=lambda r: KIND_ORDER.index(r.kind))


def timeline(rows: Sequence[Task]) -> Timeline:
    """First start, last completion, and how long each completed child took."""
    starts = [r.started_at for r in rows if r.started_at is not None]
    finished = sorted(
        (r for r in rows if r.status == TaskStatus.COMPLETED and r.completed_at is not None),
        key=lambda r: (r.completed_at, r.id),
    )
    durations = [
        Duration(
            task_id=r.id,
            title=r.title,
            started_at=iso(r.started_at) or "",
            completed_at=iso(r.completed_at) or "",
            seconds=(r.completed_at - r.started_at).total_seconds(),
        )
        for r in finished
        if r.started_at is not None and r.completed_at is not None
    ]
    first = min(starts) if starts else None
    last = max(r.completed_at for r in finished if r.completed_at is not None) if finished else None
    return Timeline(
        first_started_at=iso(first),
        last_completed_at=iso(last),
        span_seconds=(last - first).total_seconds() if first and last else None,
        durations=durations,
        average_seconds=round(sum(d.seconds for d in durations) / len(durations), 3) if durations else None,
    )


def _pending_ready(child: Child) -> bool:
    """``ready`` as the claim query derives it: pending, no dependency left and no open subtask."""
    return child.task.status == TaskStatus.PENDING and not child.blocked_by and child.open_children == 0


def markdown(
    parent: Task,
    children: Sequence[Child],
    by_status: Mapping[str, int],
    completion_ratio: float,
    timeline: Timeline,
    recommendations: Sequence[Recommendation],
    now: datetime,
) -> str:
    """The synthesis as a document a person or an agent can read on its own."""
    counts = ", ".join(f"{n} {status}" for status, n in by_status.items())
    out = [
        f"# Synthesis: {parent.title}",
        "",
        f"Parent `{parent.id}` ({parent.status}), {len(children)} subtask(s): {counts}. "
        f"Completion {completion_ratio:.0%}. Generated {iso(now)}.",
        "",
        "| Subtask | Specialist | Status | Summary |",
        "|---|---|---|---|",
    ]
    for c in children:
        out.append(
            f"| {_cell(c.task.title)} (`{c.task.id}`) | {c.task.specialist_type} | {c.task.status} | "
            f"{_cell(c.task.summary or '')} |"
        )
    done = sorted(
        (c for c in children if c.task.status == TaskStatus.COMPLETED), key=lambda c: (c.task.completed_at, c.task.id)
    )
    if done:
        out += ["", "## Outcomes"]
        for c in done:
            out += ["", f"### {c.task.title} (`{c.task.id}`)", "", c.task.summary or "(no summary recorded)"]
            for art in c.artifacts:
                files = f" — files: {', '.join(art.file_paths)}" if art.file_paths else ""
                out.append(f"- {art.kind} artifact **{art.name}** (`{art.id}`, {art.size_bytes} bytes){files}")
    troubled = [c for c in children if c.task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.BLOCKED)]
    if troubled:
        out += ["", "## Failures and blockers", ""]
        out += [
            f"- **{c.task.title}** (`{c.task.id}`, {c.task.status}, {c.task.attempt_count} attempt(s)): {c.reason}"
            for c in troubled
        ]
    out += ["", "## Timeline", ""]
    out.append(
        f"First start {timeline.first_started_at or '—'}; last completion {timeline.last_completed_at or '—'}"
        + (f"; span {timeline.span_seconds:.0f} s." if timeline.span_seconds is not None else ".")
    )
    if timeline.durations:
        out += ["", "| Subtask | Started | Completed | Duration (s) |", "|---|---|---|---|"]
        out += [
            f"| {_cell(d.title)} | {d.started_at} | {d.completed_at} | {d.seconds:.0f} |" for d in timeline.durations
        ]
    out += ["", "## Recommendations", ""]
    if recommendations:
        out += [f"{n}. **{r.kind}**: {r.message}" for n, r in enumerate(recommendations, 1)]
    else:
        out.append("None: nothing needs attention.")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= 200 else flat[:200] + "…"
