"""Rolling subtasks up: ``orchestrator_synthesize_results``.

Reads a parent's direct children with their summaries, artifacts and status history, derives counts, a
timeline and rule-based recommendations from that data, stores the whole roll-up as a Markdown
``synthesis`` artifact on the parent, and, when asked and every child is terminal, completes the parent.
One write transaction; the parent is read under a *row lock* (``FOR UPDATE`` on PostgreSQL, *immediate
transaction* on SQLite), so completing it is ordered against a concurrent claim, completion, reopening or
a subtask planned under it. Completing the parent follows the same rule as ``complete_task``: every child
terminal, the parent's own dependencies completed, no other holder; its completion may in turn make the
grandparent ready (``children_done``).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pydantic import Field

from app import errors
from app.db.models import Artifact, Task
from app.domain import transitions
from app.domain.clock import iso
from app.domain.enums import TERMINAL_STATUSES, ArtifactKind, NextAction, TaskStatus
from app.services.artifacts import new_artifact
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.sessions.status_reasons import status_reasons
from app.services.views import TaskView, View, one_task_view
from app.services.work import synthesis_report
from app.services.work.briefs import ArtifactRef, artifact_ref
from app.services.work.synthesis_report import Child, Recommendation, Timeline


class ChildCounts(View):
    total: int
    by_status: dict[str, int]
    completion_ratio: float = Field(description="completed children / all children (0 to 1).")


class Outcome(View):
    task_id: str
    title: str
    specialist_type: str
    summary: str | None
    completed_at: str | None


class Failure(View):
    task_id: str
    title: str
    status: str
    reason: str
    attempt_count: int


class SynthesizeResult(View):
    parent: TaskView
    children: ChildCounts
    outcomes: list[Outcome]
    failures: list[Failure]
    artifacts: list[ArtifactRef]
    timeline: Timeline
    recommendations: list[Recommendation]
    artifact_id: str
    parent_completed: bool
    parent_not_completed_reason: str | None = Field(description="Why the parent was not completed, when asked to.")


class SynthesisService(Service):
    async def synthesize_results(
        self, caller: Caller, parent_task_id: str, *, complete_parent: bool, request_id: str | None
    ) -> SynthesizeResult:
        """Roll up the children of ``parent_task_id`` into a stored synthesis; optionally complete the parent.

        Raises:
            not_found (parent_task_id); invalid_argument (the task has no subtasks).
        """

        async def work(tx: Tx) -> SynthesizeResult:
            parent = await tx.repos.tasks.get_for_update(parent_task_id)
            if parent is None:
                raise errors.TaskNotFound(parent_task_id, field="parent_task_id")
            # No row locks on the children: reopening a child, and planning a new one, take the parent's row
            # lock first (rules.ensure_parent_open, plan_task), so while this transaction holds it no child can
            # open between the "every child is finished" check and the commit. SQLite: immediate transaction.
            rows = await tx.repos.tasks.list_children([parent.id])
            if not rows:
                raise errors.InvalidArgument(
                    f"Task {parent.id} has no subtasks to synthesize; complete it with orchestrator_complete_task, "
                    "or plan subtasks under it with orchestrator_plan_task(parent_task_id=…).",
                    field="parent_task_id",
                    value=parent.id,
                )
            children = await self._load(tx, rows)
            counts = _counts(rows)
            refs = [artifact_ref(a) for c in children for a in c.artifacts]
            timeline = synthesis_report.timeline(rows)
            unfinished = [c for c in rows if c.status not in TERMINAL_STATUSES]
            blocker = await self._completion_blocker(tx, parent, unfinished) if complete_parent else None
            recommendations = synthesis_report.recommend(
                parent, children, max_attempts=self.config.max_attempts, now=tx.now
            )
            completed = False
            if complete_parent and blocker is None:
                await self._complete_parent(tx, parent, counts)
                completed = True
                recommendations = [r for r in recommendations if r.kind != "complete_parent"]
            else:
                rules.renew_if_holder(tx, parent, self.config.lease_seconds)  # a write by the holder renews
            markdown = synthesis_report.markdown(
                parent, children, counts.by_status, counts.completion_ratio, timeline, recommendations, tx.now
            )
            artifact = await _store(tx, parent, markdown, counts.total, completed)
            await tx.repos.sessions.touch(parent.session_id, tx.now)
            await tx.repos.session.flush()
            return SynthesizeResult(
                parent=await one_task_view(tx.repos, parent),
                children=counts,
                outcomes=_outcomes(children),
                failures=_failures(children),
                artifacts=refs,
                timeline=timeline,
                recommendations=recommendations,
                artifact_id=artifact.id,
                parent_completed=completed,
                parent_not_completed_reason=blocker,
            )

        return await self._write(caller, "orchestrator_synthesize_results", request_id, SynthesizeResult, work)

    async def _load(self, tx: Tx, rows: list[Task]) -> list[Child]:
        ids = [r.id for r in rows]
        artifacts: dict[str, list[Artifact]] = defaultdict(list)
        for art in await tx.repos.artifacts.list_by_task_ids(ids):
            artifacts[art.task_id or ""].append(art)
        reasons = await status_reasons(tx.repos, rows)
        deps = await tx.repos.dependencies.statuses_for(ids)
        grandchildren = await tx.repos.tasks.open_children_of(ids)
        return [
            Child(
                task=row,
                artifacts=artifacts.get(row.id, []),
                reason=reasons[row.id],
                blocked_by=[(d, s) for d, s in deps.get(row.id, []) if s != TaskStatus.COMPLETED],
                open_children=len(grandchildren.get(row.id, ())),
            )
            for row in rows
        ]

    async def _completion_blocker(self, tx: Tx, parent: Task, unfinished: list[Task]) -> str | None:
        """Why the parent cannot be completed now, or None when it can."""
        if unfinished:
            listed = ", ".join(f"{t.id} ({t.status})" for t in unfinished[:10])
            return f"{len(unfinished)} subtask(s) are not finished: {listed}."
        current = TaskStatus(parent.status)
        if current == TaskStatus.COMPLETED:
            return f"The parent {parent.id} is already completed."
        if not transitions.is_allowed(current, TaskStatus.COMPLETED):
            allowed = ", ".join(s.value for s in transitions.allowed_from(current))
            return f"The parent is {current.value}, which cannot move to completed (allowed: {allowed})."
        holder = rules.live_holder(parent, tx.now)
        if holder is not None and holder != tx.caller.actor:
            until = iso(parent.lease_expires_at)
            return f"The parent is claimed by {holder!r} until {until}; only the holder may complete it."
        if current == TaskStatus.PENDING:
            deps = (await tx.repos.dependencies.statuses_for([parent.id])).get(parent.id, [])
            blocking = [d for d, s in deps if s != TaskStatus.COMPLETED]
            if blocking:
                return f"The parent's own dependencies are not completed: {', '.join(blocking)}."
        return None

    async def _complete_parent(self, tx: Tx, parent: Task, counts: ChildCounts) -> None:
        await rules.move(
            tx,
            parent,
            TaskStatus.COMPLETED,
            lease_seconds=self.config.lease_seconds,
            event_data={"via": "synthesize_results"},
        )
        # Its dependents may be ready now, exactly as after complete_task (``dependencies_met``).
        await rules.announce_ready_dependents(tx, parent)
        done = counts.by_status.get(TaskStatus.COMPLETED, 0)
        parent.summary = parent.summary or (
            f"Completed from the synthesis of {counts.total} subtask(s): {done} completed"
            + "".join(f", {n} {s}" for s, n in sorted(counts.by_status.items()) if s != TaskStatus.COMPLETED)
            + "."
        )
        parent.next_action = NextAction.COMPLETE.value
        parent.version += 1


async def _store(tx: Tx, parent: Task, markdown: str, children: int, completed: bool) -> Artifact:
    """The synthesis artifact on the parent, and a ``synthesized`` event pointing at it."""
    artifact = await tx.repos.artifacts.insert(
        new_artifact(
            session_id=parent.session_id,
            task_id=parent.id,
            kind=ArtifactKind.SYNTHESIS.value,
            name=f"Synthesis of {parent.title}",
            content=markdown,
            actor=tx.caller.actor,
            at=tx.now,
        )
    )
    tx.repos.events.append(
        session_id=parent.session_id,
        task_id=parent.id,
        kind="synthesized",
        actor=tx.caller.actor,
        at=tx.now,
        data={"artifact_id": artifact.id, "children": children, "parent_completed": completed},
    )
    return artifact


def _outcomes(children: list[Child]) -> list[Outcome]:
    """What the completed children achieved, in the order they finished."""
    return [
        Outcome(
            task_id=c.task.id,
            title=c.task.title,
            specialist_type=c.task.specialist_type,
            summary=c.task.summary,
            completed_at=iso(c.task.completed_at),
        )
        for c in sorted(children, key=_completion_order)
        if c.task.status == TaskStatus.COMPLETED
    ]


def _failures(children: list[Child]) -> list[Failure]:
    """The children that will not complete as things stand (failed or cancelled), with why."""
    return [
        Failure(
            task_id=c.task.id,
            title=c.task.title,
            status=c.task.status,
            reason=c.reason,
            attempt_count=c.task.attempt_count,
        )
        for c in children
        if c.task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)
    ]


def _counts(rows: list[Task]) -> ChildCounts:
    by_status = dict(sorted(Counter(r.status for r in rows).items()))
    done = by_status.get(TaskStatus.COMPLETED, 0)
    return ChildCounts(total=len(rows), by_status=by_status, completion_ratio=round(done / len(rows), 4))


def _completion_order(child: Child) -> tuple[str, str]:
    return (iso(child.task.completed_at) or "", child.task.id)
