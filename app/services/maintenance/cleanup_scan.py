"""scan_cleanup: find, and unless it is a dry run fix, what the service cannot prevent by itself.

Fixed: claims whose lease ran out (released through :func:`app.services.work.leases.expire_leases`, the lease
sweeper's own logic, or failed at the attempt limit), in-progress rows with no holder or no lease (back
to pending), holders left on tasks that are not in progress (cleared), idempotency records past 24 h and
``maintenance_run`` records past 30 days (purged). Reported only: pending work nobody touched for
``stale_pending_days``. :func:`detect` is the read-only twin of :func:`scan_and_fix`, so a dry run
reports exactly the kinds a real run would act on. Concurrency: fixes read their rows under a *row lock*
(``FOR UPDATE``; expired claims with ``SKIP LOCKED``; SQLite: *immediate transaction*).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.db.models import Task
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskScope
from app.domain.clock import iso
from app.domain.enums import TaskStatus
from app.services.base import Tx
from app.services.graph import rules
from app.services.views import View
from app.services.work import leases

REQUEST_RECORD_TTL = timedelta(hours=24)
MAINTENANCE_RUN_TTL = timedelta(days=30)  # the monitor records a run every few minutes; keep a month
MAINTENANCE_RUN = "maintenance_run"
MAX_LISTED_IDS = 200


class Finding(View):
    kind: str
    task_ids: list[str]
    session_id: str | None
    count: int
    detail: str


@dataclass(frozen=True)
class ScanPolicy:
    max_attempts: int
    lease_seconds: int
    stale_pending_days: int


def _finding(kind: str, task: Task, detail: str) -> Finding:
    return Finding(kind=kind, task_ids=[task.id], session_id=task.session_id, count=1, detail=detail)


def _expired(task: Task) -> Finding:
    return _finding("expired_lease", task, f"held by {task.assigned_to}; lease ran out at {iso(task.lease_expires_at)}")


def _holderless(task: Task) -> Finding:
    lacking = "holder" if task.assigned_to is None else "lease expiry"
    return _finding("in_progress_without_claim", task, f"in_progress without a {lacking}; goes back to pending")


def _stale_holder(task: Task) -> Finding:
    return _finding(
        "holder_on_inactive_task", task, f"{task.status} but still names holder {task.assigned_to!r}; holder cleared"
    )


def _purge(kind: str, count: int, what: str) -> list[Finding]:
    if not count:
        return []
    return [Finding(kind=kind, task_ids=[], session_id=None, count=count, detail=f"{count} {what}; purged")]


def _request_records(count: int) -> list[Finding]:
    return _purge("expired_request_records", count, "idempotency record(s) older than 24 h (not per session)")


def _old_runs(count: int) -> list[Finding]:
    return _purge("expired_maintenance_runs", count, "maintenance_run record(s) older than 30 days")


async def _stale_pending(repos: Repositories, scope: TaskScope, now: datetime, days: int) -> list[Finding]:
    cutoff = now - timedelta(days=days)
    stale = await repos.integrity.stale_pending(cutoff, scope, listed=MAX_LISTED_IDS)
    if not stale.count:
        return []
    return [
        Finding(
            kind="stale_pending",
            task_ids=stale.oldest_ids,
            session_id=scope.session_id,
            count=stale.count,
            detail=f"{stale.count} pending task(s) untouched for more than {days} day(s) (since before {iso(cutoff)}); "
            "reported only: reprioritise, plan or cancel them",
        )
    ]


async def detect(repos: Repositories, scope: TaskScope, now: datetime, policy: ScanPolicy) -> list[Finding]:
    """What a real scan would find, read without locks and without changing anything."""
    integrity = repos.integrity
    return [
        *[_expired(t) for t in await integrity.expired_claims(now, scope)],
        *[_holderless(t) for t in await integrity.in_progress_without_claim(scope, lock=False)],
        *[_stale_holder(t) for t in await integrity.claims_on_inactive_tasks(scope, lock=False)],
        *_request_records(await repos.requests.count_older_than(now - REQUEST_RECORD_TTL)),
        *_old_runs(await repos.system_events.count_older_than(MAINTENANCE_RUN, now - MAINTENANCE_RUN_TTL)),
        *await _stale_pending(repos, scope, now, policy.stale_pending_days),
    ]


async def scan_and_fix(tx: Tx, scope: TaskScope, policy: ScanPolicy) -> tuple[list[Finding], list[Finding]]:
    """Find and fix in this transaction; returns ``(found, fixed)``."""
    repos = tx.repos
    expired = await repos.integrity.expired_claims(tx.now, scope)
    found = [_expired(t) for t in expired]
    sessions = {t.id: t.session_id for t in expired}
    fixed = [
        Finding(
            kind="expired_lease",
            task_ids=[e.task_id],
            session_id=sessions.get(e.task_id),
            count=1,
            detail=f"claim of {e.holder} released after attempt {e.attempt_count}: task {e.outcome}"
            if e.outcome == "released"
            else f"attempt {e.attempt_count} of {e.holder} expired: task failed ({e.expiries} expired leases)",
        )
        for e in await leases.expire_leases(tx, max_attempts=policy.max_attempts, scope=scope)
    ]
    await repos.session.flush()  # the next scans must see the rows just released
    for task in await repos.integrity.in_progress_without_claim(scope, lock=True):
        found.append(_holderless(task))
        await rules.move(
            tx,
            task,
            TaskStatus.PENDING,
            lease_seconds=policy.lease_seconds,
            reason="maintenance: in_progress without a holder or lease",
        )
        task.version += 1
        fixed.append(_finding("in_progress_without_claim", task, "returned to pending"))
    await repos.session.flush()
    for task in await repos.integrity.claims_on_inactive_tasks(scope, lock=True):
        found.append(_stale_holder(task))
        holder = task.assigned_to
        rules.release_claim(task)
        task.version += 1
        task.updated_at = tx.now
        repos.events.append(
            session_id=task.session_id,
            task_id=task.id,
            kind="claim_cleared",
            actor=tx.caller.actor,
            at=tx.now,
            data={"holder": holder, "status": task.status, "reason": "maintenance: holder on an inactive task"},
        )
        fixed.append(_finding("holder_on_inactive_task", task, f"holder {holder!r} cleared"))
    for purged in (
        _request_records(await repos.requests.delete_older_than(tx.now - REQUEST_RECORD_TTL)),
        _old_runs(await repos.system_events.delete_older_than(MAINTENANCE_RUN, tx.now - MAINTENANCE_RUN_TTL)),
    ):
        found += purged
        fixed += purged
    found += await _stale_pending(repos, scope, tx.now, policy.stale_pending_days)
    return found, fixed


def counts(items: list[Finding]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for item in items:
        totals[item.kind] += item.count
    return dict(sorted(totals.items()))


def describe(items: list[Finding]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts(items).items()) or "nothing"
