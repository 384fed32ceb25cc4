"""Claiming work: ``orchestrator_execute_task`` (a chosen task) and ``orchestrator_next_task`` (the best one).

A claim moves a ready pending task to in_progress with the caller as holder, a lease of ``lease_seconds``
and one more attempt; the holder renews by claiming again. No task is ever held twice:

- execute_task takes a *row lock* on the task (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the
  *immediate transaction* holds the database write lock), so concurrent claimers queue on the row and
  every one after the first sees the first one's claim and gets ``claimed_by_other``.
- next_task picks with *claim (SKIP LOCKED)*: ``SELECT … FOR UPDATE OF task SKIP LOCKED`` with readiness in
  the WHERE clause, so concurrent workers each lock a different ready row without waiting; on SQLite the
  *immediate transaction* serialises them.

Readiness includes the children (DESIGN §3): a parent is handed out only when every subtask is terminal,
and ``execute_task`` refuses it with ``children_open`` (after ``dependencies_unmet``, which comes first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app import errors
from app.db.models import Task
from app.db.repositories import Repositories
from app.db.uow import UnitOfWork
from app.domain.clock import Clock, iso
from app.domain.enums import TERMINAL_STATUSES, TaskStatus
from app.domain.roles import RoleCatalog
from app.services.base import OutcomeSink, Service, ServiceConfig, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.session_resolution import require_open_session, resolve_session_id
from app.services.work.briefs import ExecuteTaskResult, NextTaskResult, NoReadyTask, build_brief
from app.services.work.leases import end_lapsed_claim
from app.services.work.waiting import NothingReady, WorkWaiters, claim_or_wait

MAX_PICKS = 20  # candidates next_task re-checks before giving up (each one failed its re-check)


class ExecutionService(Service):
    """Claims tasks for agents and hands them the brief to work from."""

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        *,
        roles: RoleCatalog,
        config: ServiceConfig | None = None,
        sink: OutcomeSink | None = None,
        waiters: WorkWaiters | None = None,
    ) -> None:
        super().__init__(uow, clock, config=config, sink=sink)
        self.roles = roles
        self.waiters = waiters or WorkWaiters()

    async def execute_task(
        self, caller: Caller, task_id: str, *, lease_seconds: int | None, request_id: str | None
    ) -> ExecuteTaskResult:
        """Claim ``task_id`` (pending and ready) or renew the caller's own claim, and return the brief.

        Raises:
            not_found; dependencies_unmet (lists the dependencies that are not completed); children_open
            (lists the subtasks that are not terminal; checked after the dependencies); claimed_by_other
            (holder and lease_expires_at); invalid_transition (the task is not pending or in progress, e.g.
            blocked or completed; or another holder's lapsed lease is the last expiry the attempt limit allows).
        """
        lease = lease_seconds or self.config.lease_seconds

        async def work(tx: Tx) -> ExecuteTaskResult:
            # Row lock: concurrent claimers of this task queue here (SQLite: immediate transaction).
            task = await tx.repos.tasks.get_for_update(task_id)
            if task is None:
                raise errors.TaskNotFound(task_id)
            # Read once under the lock: the claim's readiness rule and the brief both use it.
            readiness = await rules.read_readiness(tx.repos, task)
            await claim(tx, task, lease_seconds=lease, max_attempts=self.config.max_attempts, readiness=readiness)
            await tx.repos.sessions.touch(task.session_id, tx.now)
            return await build_brief(
                tx.repos, task, self.roles, max_attempts=self.config.max_attempts, readiness=readiness
            )

        # A refused claim (claimed_by_other) is counted as a "conflict" by Service._write after the rollback.
        return await self._write(caller, "orchestrator_execute_task", request_id, ExecuteTaskResult, work)

    async def next_task(
        self,
        caller: Caller,
        *,
        session_id: str | None,
        specialist_types: Sequence[str],
        lease_seconds: int | None,
        request_id: str | None,
        wait_seconds: float = 0,
    ) -> NextTaskResult:
        """Claim the best ready task of the session (priority desc, due date asc with none last, oldest
        first), optionally only among ``specialist_types``; or say why nothing is ready. With
        ``wait_seconds``, wait that long for a task to become ready (``waiting``: no connection is held).

        Raises:
            not_found (session), invalid_argument (no session given and no current session; an archived
            session).
        """
        lease = lease_seconds or self.config.lease_seconds

        async def work(tx: Tx) -> NextTaskResult:
            # A named session is checked only when nothing is picked: a task found in it proves it exists
            # (the task's foreign key), and the claim is the hot path, so it spares the read.
            sid = session_id if session_id is not None else await resolve_session_id(tx.repos, caller, None)
            picked = await _pick(tx.repos, sid, specialist_types)
            if picked is None:
                # not_found for a session that does not exist; invalid_argument for an archived one, which
                # never has work to hand out (its tasks are archived, and plan_task refuses it).
                await require_open_session(tx.repos, sid, lock=False)
                if wait_seconds > 0:
                    raise NothingReady(sid)  # rolls back: only the wait's final answer is stored
                reason = await _why_none_ready(tx.repos, sid, specialist_types)
                return NextTaskResult(NoReadyTask(task=None, reason=reason))
            task, readiness = picked
            await claim(tx, task, lease_seconds=lease, max_attempts=self.config.max_attempts, readiness=readiness)
            await tx.repos.sessions.touch(sid, tx.now)
            brief = await build_brief(
                tx.repos, task, self.roles, max_attempts=self.config.max_attempts, readiness=readiness
            )
            return NextTaskResult(brief)

        async def claim_once() -> NextTaskResult:
            return await self._write(caller, "orchestrator_next_task", request_id, NextTaskResult, work)

        async def explain(sid: str) -> str:
            return await self._read(lambda repos: _why_none_ready(repos, sid, specialist_types))

        if wait_seconds <= 0:
            return await claim_once()
        return await claim_or_wait(
            self.waiters,
            claim_once,
            seconds=wait_seconds,
            filtered=bool(specialist_types),
            no_task=lambda reason: NextTaskResult(NoReadyTask(task=None, reason=reason)),
            explain=explain,
        )


async def claim(
    tx: Tx, task: Task, *, lease_seconds: int, max_attempts: int, readiness: rules.Readiness | None = None
) -> None:
    """Make the caller the holder of the locked ``task``, or renew its claim.

    A claim whose lease ran out but which the sweeper has not reached yet is ended here exactly as the
    sweeper would end it (``lease_expired``) before the new claim is made; when that expiry would fail the
    task (the ``max_attempts``-th), the claim is refused instead (``leases.end_lapsed_claim``).
    ``readiness``, read under the lock by the caller, spares the readiness rule its own reads.

    Raises:
        claimed_by_other, dependencies_unmet, children_open, invalid_transition (also a lapsed claim at
        the attempt limit).
    """
    actor = tx.caller.actor
    if task.status == TaskStatus.IN_PROGRESS:
        holder = rules.live_holder(task, tx.now)
        if holder is not None and holder != actor:
            raise errors.ClaimedByOther(task.id, holder, iso(task.lease_expires_at))
        if task.assigned_to == actor:
            # Renewal: a fresh lease, same attempt; no status change, so the row version stays.
            rules.apply_claim(task, actor, tx.now, lease_seconds)
            tx.claims.append("renewed")
            return
        await end_lapsed_claim(tx, task, max_attempts=max_attempts)
    event: dict[str, Any] = {"holder": actor, "attempt": task.attempt_count + 1}
    await rules.move(
        tx, task, TaskStatus.IN_PROGRESS, lease_seconds=lease_seconds, event_data=event, readiness=readiness
    )
    task.version += 1


async def _pick(
    repos: Repositories, session_id: str, specialist_types: Sequence[str]
) -> tuple[Task, rules.Readiness] | None:
    """Lock the best ready task (claim: SKIP LOCKED) and re-check its readiness under the lock; the task
    with what the re-check read (the claim and its brief use it instead of reading it again).

    The re-check reads dependencies and children with fresh statements (READ COMMITTED), so a subtask
    planned, or a dependency reopened, between the scan and the lock passes this row over.
    """
    passed_over: list[str] = []
    for _ in range(MAX_PICKS):
        task = await repos.tasks.lock_next_ready(session_id, specialist_types, exclude_ids=passed_over)
        if task is None:
            return None
        readiness = await rules.read_readiness(repos, task)
        if task.status == TaskStatus.PENDING and readiness.ready_for:
            return task, readiness
        # Not ready after all under the lock; this row is ours but must not be handed out.
        passed_over.append(task.id)
    return None


async def _why_none_ready(repos: Repositories, session_id: str, specialist_types: Sequence[str]) -> str:
    """Explain an empty pick from the session's real numbers, with what the caller can do instead."""
    by_status = await repos.tasks.count_by(session_id, "status")
    total = sum(by_status.values())
    if total == 0:
        return f"Session {session_id} has no tasks yet; plan work with orchestrator_plan_task."
    pending = by_status.get(TaskStatus.PENDING, 0)
    in_progress = by_status.get(TaskStatus.IN_PROGRESS, 0)
    blocked = by_status.get(TaskStatus.BLOCKED, 0)
    parts: list[str] = []
    if pending:
        # The ready queue's counts as get_status shows them (one statement): the waits add up to pending.
        board = await repos.tasks.ready_board(session_id, limit=50)
        if specialist_types and board.ready:
            kinds = sorted({t.specialist_type for t in board.top})
            parts.append(
                f"No ready task for specialist_type {', '.join(specialist_types)}; {board.ready} ready task(s) "
                f"need {', '.join(kinds)} (call again without specialist_type to take one)."
            )
        on_dependencies = pending - board.dependencies_met
        on_children = board.dependencies_met - board.ready
        if not parts and on_dependencies:
            parts.append(f"{on_dependencies} pending task(s) wait on dependencies that are not completed yet.")
        if on_children and not (specialist_types and board.ready):
            parts.append(
                f"{on_children} pending parent task(s) wait for their open subtasks; each becomes ready when its "
                "last subtask ends."
            )
    if in_progress:
        parts.append(f"{in_progress} task(s) are in progress with other agents.")
    if blocked:
        parts.append(f"{blocked} task(s) are blocked (see orchestrator_get_status for the reasons).")
    finished = sum(n for status, n in by_status.items() if status in TERMINAL_STATUSES)
    if finished == total:
        parts.append(f"All {total} task(s) of session {session_id} are finished; nothing is left to do.")
    elif pending or in_progress:
        parts.append("Call orchestrator_next_task again when running work completes.")
    return " ".join(parts)
