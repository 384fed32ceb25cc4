"""What an agent gets when it claims a task: the task, its claim, the specialist role and a ready prompt.

``orchestrator_execute_task`` and ``orchestrator_next_task`` both answer with :class:`ExecuteTaskResult`,
built here from the claimed row, its dependencies (with their summaries and artifacts), its parent, its
subtasks and revision notes, and the role catalog. Everything in it comes from the database or the
catalog; nothing is canned.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence

from pydantic import Field, RootModel

from app.db.models import Artifact, Task
from app.db.repositories import Repositories
from app.db.repositories.artifacts import ArtifactHead
from app.db.repositories.tasks import Neighbour
from app.domain.clock import iso
from app.domain.enums import OPEN_STATUSES, ArtifactKind
from app.domain.roles import Role, RoleCatalog
from app.services.graph import rules
from app.services.views import (
    ArtifactKindName,
    SpecialistName,
    TaskStatusName,
    TaskView,
    View,
    task_view,
    task_views,
)

EXCERPT_CHARS = 600
MAX_REVISION_NOTES = 3


class ArtifactRef(View):
    """An artifact without its full content: enough to decide whether to read it."""

    id: str
    kind: ArtifactKindName
    name: str
    file_paths: list[str]
    size_bytes: int
    created_by: str
    created_at: str
    excerpt: str = Field(description=f"The first {EXCERPT_CHARS} characters of the content.")


class ClaimView(View):
    holder: str
    claimed_at: str | None
    lease_expires_at: str | None
    attempt: int = Field(description="How many times this task has been claimed, this claim included.")


class SpecialistBrief(View):
    type: SpecialistName
    role: str
    expertise: list[str]
    approach: list[str]
    output_format: str
    prompt: str = Field(description="A Markdown prompt for the agent doing the work, built from the role and task.")


class DependencyBrief(View):
    task_id: str
    title: str
    status: TaskStatusName
    summary: str | None
    completed_at: str | None
    artifacts: list[ArtifactRef]


class ExecuteTaskResult(View):
    task: TaskView
    claim: ClaimView
    specialist: SpecialistBrief
    dependencies: list[DependencyBrief]
    parent: TaskView | None
    instructions: list[str]


class NoReadyTask(View):
    task: None = Field(description="null: nothing was claimed.")
    reason: str = Field(description="Why nothing is ready, with the numbers, and what to do instead.")


class NextTaskResult(RootModel[ExecuteTaskResult | NoReadyTask]):
    """The claimed task's brief, or ``{task: null, reason}`` when no task is ready."""


def artifact_ref(row: Artifact | ArtifactHead) -> ArtifactRef:
    """The reference to ``row``; a head needs at least ``EXCERPT_CHARS + 1`` characters of content."""
    excerpt = row.content if len(row.content) <= EXCERPT_CHARS else row.content[:EXCERPT_CHARS] + "…"
    return ArtifactRef(
        id=row.id,
        kind=row.kind,
        name=row.name,
        file_paths=list(row.file_paths or []),
        size_bytes=row.size_bytes,
        created_by=row.created_by,
        created_at=iso(row.created_at) or "",
        excerpt=excerpt,
    )


async def build_brief(
    repos: Repositories,
    task: Task,
    roles: RoleCatalog,
    *,
    max_attempts: int,
    readiness: rules.Readiness | None = None,
) -> ExecuteTaskResult:
    """The full answer to a successful claim of ``task`` (the row as it is after the claim).

    ``readiness`` is what the claim read under the row lock (dependencies' statuses, subtasks); without it
    (a brief of a claim already held) it is read here.
    """
    await repos.session.flush()
    if readiness is None:
        readiness = await rules.read_readiness(repos, task)
    children = readiness.children
    view = task_view(task, readiness.dependencies, len(readiness.open_children))
    dep_rows = await repos.tasks.get_many(view.dependencies)
    parent_row = await repos.tasks.get(task.parent_id) if task.parent_id else None
    # The excerpts, cut in the database: a dependency's megabyte of detailed work is not read for 600
    # characters. Revision notes are shown whole.
    artifacts = await repos.artifacts.heads_by_task_ids(
        [*view.dependencies, task.id], chars=EXCERPT_CHARS + 1, whole_kinds=[ArtifactKind.REVISION_NOTE]
    )
    by_task: dict[str, list[ArtifactHead]] = defaultdict(list)
    for row in artifacts:
        by_task[row.task_id or ""].append(row)
    dependencies = [
        DependencyBrief(
            task_id=dep.id,
            title=dep.title,
            status=dep.status,
            summary=dep.summary,
            completed_at=iso(dep.completed_at),
            artifacts=[artifact_ref(a) for a in by_task.get(dep.id, [])],
        )
        for dep in dep_rows
    ]
    parent = (await task_views(repos, [parent_row]))[0] if parent_row is not None else None
    notes = [a for a in by_task.get(task.id, []) if a.kind == ArtifactKind.REVISION_NOTE][-MAX_REVISION_NOTES:]
    claim = ClaimView(
        holder=task.assigned_to or "",
        claimed_at=iso(task.claimed_at),
        lease_expires_at=iso(task.lease_expires_at),
        attempt=task.attempt_count,
    )
    role = roles.get(task.specialist_type)
    instructions = _instructions(view, claim, role, dependencies, parent, children, notes, max_attempts)
    prompt = render_prompt(role, view, dependencies, parent, children, notes, instructions)
    return ExecuteTaskResult(
        task=view,
        claim=claim,
        specialist=SpecialistBrief(
            type=role.specialist_type,
            role=role.role,
            expertise=list(role.expertise),
            approach=list(role.approach),
            output_format=role.output_format,
            prompt=prompt,
        ),
        dependencies=dependencies,
        parent=parent,
        instructions=instructions,
    )


def _instructions(
    task: TaskView,
    claim: ClaimView,
    role: Role,
    dependencies: Sequence[DependencyBrief],
    parent: TaskView | None,
    children: Sequence[Neighbour],
    notes: Sequence[ArtifactHead],
    max_attempts: int,
) -> list[str]:
    """The concrete next steps for this claim, derived from the task's data.

    A parent is handed out once its subtasks are done, so its brief says to roll them up; a claimed parent
    that gained (or got back) an open subtask is told that it cannot complete until that one ends.
    """
    steps = [
        # The limit is on lapsed leases, not on attempts (DESIGN §3; leases.expire_lease): "attempt N of M"
        # would announce a failure that claims handed back for revision never cause.
        f"You hold {task.id} as {claim.holder!r} until {claim.lease_expires_at} (attempt {claim.attempt}). Call "
        "orchestrator_execute_task again with the same agent before then to renew the lease; if it lapses, the "
        f"task goes back to the queue, and after {max_attempts} lapsed leases it fails.",
    ]
    if notes:
        steps.append(
            f"An earlier attempt was sent back for revision; address the {len(notes)} revision note(s) in the "
            "prompt before anything else."
        )
    if dependencies:
        steps.append(
            f"Build on the results of the {len(dependencies)} dependenc{'y' if len(dependencies) == 1 else 'ies'} "
            "listed; read an artifact in full with orchestrator_query_tasks(include_artifacts=true) when its "
            "excerpt is not enough."
        )
    if parent is not None:
        steps.append(f"This is part of {parent.title!r} ({parent.id}); keep your work consistent with it.")
    steps += _subtask_steps(task, children)
    if task.context:
        steps.append(f"Respect the task context (keys: {', '.join(sorted(task.context))}).")
    if task.due_date:
        steps.append(f"It is due by {task.due_date}.")
    steps.append(f"Write detailed_work in this format: {role.output_format}")
    steps.append(
        f"Finish with orchestrator_complete_task(task_id={task.id!r}, summary=<one paragraph>, "
        "detailed_work=<the full result>, next_action=complete or continue (continue also returns the next "
        "ready tasks), file_paths=<files you created or changed>). If you cannot go on, use next_action=blocked "
        "and put the reason in summary; use needs_revision to send the work back to the queue with a note."
    )
    return steps


def _subtask_steps(task: TaskView, children: Sequence[Neighbour]) -> list[str]:
    """What a parent's holder does about its subtasks: wait for open ones, or roll up finished ones."""
    if not children:
        return []
    open_children = [c for c in children if c.status in OPEN_STATUSES]
    if open_children:
        ids = ", ".join(f"{c.id} ({c.status})" for c in open_children[:10])
        return [
            f"{len(open_children)} subtask(s) of this task are open ({ids}): it cannot be completed until they "
            "end (orchestrator_complete_task answers children_open). Work on them first (orchestrator_next_task "
            f"hands them out); then roll them up with orchestrator_synthesize_results(parent_task_id={task.id!r}, "
            "complete_parent=true)."
        ]
    counts = Counter(c.status for c in children)
    done = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return [
        f"All {len(children)} subtask(s) of this task are done ({done}). Roll them up with "
        f"orchestrator_synthesize_results(parent_task_id={task.id!r}, complete_parent=true): it stores a synthesis "
        "of their outcomes and completes this task. Or, if you add work of your own, finish with "
        "orchestrator_complete_task and your own summary."
    ]


def render_prompt(
    role: Role,
    task: TaskView,
    dependencies: Sequence[DependencyBrief],
    parent: TaskView | None,
    subtasks: Sequence[Neighbour],
    notes: Sequence[ArtifactHead],
    instructions: Sequence[str],
) -> str:
    """The Markdown prompt: who you are, what to do, what others already did, and how to hand back."""
    out = [f"# {role.role}: {task.title}", ""]
    out.append(
        f"You are the **{role.role}** (specialist type `{role.specialist_type}`) working on task `{task.id}` of "
        "a task graph shared with other agents."
    )
    out += ["", "## Your expertise", *[f"- {item}" for item in role.expertise]]
    out += ["", "## How you work", *[f"{n}. {step}" for n, step in enumerate(role.approach, 1)]]
    facts = [
        f"type {task.task_type}",
        f"priority {task.priority}",
        f"complexity {task.complexity}",
    ]
    if task.estimated_effort:
        facts.append(f"estimated effort {task.estimated_effort}")
    if task.due_date:
        facts.append(f"due {task.due_date}")
    out += ["", "## The task", f"**{task.title}** (`{task.id}`; {', '.join(facts)})", "", task.description]
    if task.context:
        out += ["", "### Context", "```json", json.dumps(task.context, indent=2, sort_keys=True), "```"]
    if notes:
        out += ["", "## Revision notes (address these first)"]
        for note in notes:
            out += ["", f"From {note.created_by} at {iso(note.created_at)}:", "", _quote(note.content)]
    if parent is not None:
        out += [
            "",
            "## Parent task",
            f"**{parent.title}** (`{parent.id}`, {parent.status})",
            "",
            _clip(parent.description),
        ]
    if dependencies:
        out += ["", "## Completed work you build on"]
        for dep in dependencies:
            out += ["", f"### {dep.title} (`{dep.task_id}`, {dep.status})", ""]
            out.append(f"Summary: {dep.summary}" if dep.summary else "Summary: (none recorded)")
            for art in dep.artifacts:
                files = f"; files: {', '.join(art.file_paths)}" if art.file_paths else ""
                out += ["", f"- Artifact **{art.name}** (`{art.id}`, {art.kind}, {art.size_bytes} bytes{files})"]
                out.append(_quote(art.excerpt, indent="  "))
    if subtasks:
        out += ["", "## Subtasks", *[f"- `{c.id}` {c.title} ({c.status})" for c in subtasks]]
    out += ["", "## Expected output", role.output_format]
    out += ["", "## Instructions", *[f"{n}. {step}" for n, step in enumerate(instructions, 1)]]
    return "\n".join(out) + "\n"


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _quote(text: str, *, indent: str = "") -> str:
    return "\n".join(f"{indent}> {line}".rstrip() for line in _clip(text).splitlines() or [""])
