"""Cleaning up sessions: archive or delete the completed, orphaned (no tasks) or long idle ones.

A session where someone holds a live claim is never touched: it is in use, whatever its age. A dry run
reads and reports in a read-only transaction, so it changes nothing at all (not even the caller's
``last_seen_at``). Concurrency: the session rows are taken under a *row lock* (``FOR UPDATE``; SQLite:
*immediate transaction*), then each matched session's tasks are locked and the match is decided again on
the locked rows, so a claim taken meanwhile keeps its session alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from app.db.models import OrchestrationSession, Task
from app.db.repositories import Repositories
from app.db.repositories.sessions import SessionStats
from app.db.repositories.tasks import TaskScope
from app.domain.clock import iso
from app.domain.enums import OPEN_STATUSES
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.graph import rules
from app.services.graph.removal import archive_tasks
from app.services.views import View

CleanupType = Literal["completed", "orphaned", "old", "all"]
CleanupAction = Literal["archive", "delete"]
Reason = Literal["completed", "orphaned", "old"]


class CleanupMatch(View):
    session_id: str
    name: str
    reason: Reason
    detail: str


class CleanupSessionsResult(View):
    dry_run: bool
    matched: list[CleanupMatch]
    changed_count: int


def match_session(
    stats: SessionStats, *, cleanup_type: CleanupType, action: CleanupAction, cutoff: datetime
) -> CleanupMatch | None:
    """Whether cleanup applies to this session and why (the first reason that holds, in type order)."""
    row = stats.session
    if stats.live_claims or (action == "archive" and row.status == "archived"):
        return None
    found: tuple[Reason, str] | None = None
    if cleanup_type in ("completed", "all") and stats.completed:
        found = ("completed", f"all {stats.total} task(s) are terminal")
    elif cleanup_type in ("orphaned", "all") and stats.total == 0:
        found = ("orphaned", "the session has no tasks")
    elif cleanup_type in ("old", "all") and row.last_activity_at < cutoff:
        found = ("old", f"no activity since {iso(row.last_activity_at)}")
    if found is None:
        return None
    return CleanupMatch(session_id=row.id, name=row.name, reason=found[0], detail=found[1])


def _stats_of(row: OrchestrationSession, tasks: Sequence[Task], now: datetime) -> SessionStats:
    return SessionStats(
        session=row,
        total=len(tasks),
        open=sum(1 for t in tasks if t.status in OPEN_STATUSES),
        live_claims=sum(1 for t in tasks if rules.live_holder(t, now) is not None),
    )


class SessionCleanupService(Service):
    async def cleanup_sessions(
        self,
        caller: Caller,
        *,
        cleanup_type: CleanupType,
        older_than_days: int,
        action: CleanupAction,
        dry_run: bool,
        request_id: str | None,
    ) -> CleanupSessionsResult:
        """Find the sessions the cleanup applies to and, unless ``dry_run``, archive or delete them.

        Archive moves the session and all its tasks to archived (expired claims are released first);
        delete removes the session with its tasks, edges, artifacts, visits and event trail, and records
        a ``session_deleted`` system event.
        """
        if dry_run:
            now = self.clock.now()
            cutoff = now - timedelta(days=older_than_days)

            async def preview(repos: Repositories) -> CleanupSessionsResult:
                matched = [
                    m
                    for stats in await repos.sessions.list_with_stats(now)
                    if (m := match_session(stats, cleanup_type=cleanup_type, action=action, cutoff=cutoff))
                ]
                return CleanupSessionsResult(dry_run=True, matched=matched, changed_count=0)

            return await self._read(preview)

        async def work(tx: Tx) -> CleanupSessionsResult:
            cutoff = tx.now - timedelta(days=older_than_days)
            matched: list[CleanupMatch] = []
            for stats in await tx.repos.sessions.list_with_stats(tx.now, lock=True):
                if match_session(stats, cleanup_type=cleanup_type, action=action, cutoff=cutoff) is None:
                    continue
                row = stats.session
                tasks = await tx.repos.tasks.list_in_scope(TaskScope(session_id=row.id), for_update=True)
                found = match_session(
                    _stats_of(row, tasks, tx.now), cleanup_type=cleanup_type, action=action, cutoff=cutoff
                )
                if found is None:
                    continue  # a claim or a task arrived between the scan and the lock
                matched.append(found)
                if action == "archive":
                    await archive_tasks(tx, tasks, force=True)
                    await tx.repos.sessions.archive(row, tx.now)
                    tx.repos.events.append(
                        session_id=row.id,
                        task_id=None,
                        kind="session_archived",
                        actor=caller.actor,
                        at=tx.now,
                        data={"reason": found.reason, "detail": found.detail, "tasks": len(tasks)},
                    )
                else:
                    await tx.repos.system_events.insert(
                        kind="session_deleted",
                        actor=caller.actor,
                        at=tx.now,
                        data={"session_id": row.id, "name": row.name, "reason": found.reason, "tasks": len(tasks)},
                    )
            if action == "delete":
                await tx.repos.sessions.delete_with_contents([m.session_id for m in matched])
            return CleanupSessionsResult(dry_run=False, matched=matched, changed_count=len(matched))

        return await self._write(caller, "orchestrator_cleanup_sessions", request_id, CleanupSessionsResult, work)
