"""What a committed write changed, in ids: the input of the wait signal and the change feed (DESIGN §4.7).

A write's ORM session is watched while its work runs (``watch``): every flush records the tasks it
inserted, changed or deleted and the ``task_event`` rows it appended (which also name the tasks changed
by bulk statements, and sessions changed without a task). The sink hears of the change twice, when it
takes changes (:class:`ChangeSink`): ``announce`` runs inside the transaction, as its last statement, so
the sink can publish the ids to the other replicas in the same transaction (PostgreSQL delivers a
``NOTIFY`` exactly at commit and drops it on rollback: no commit can lose its signal, no rollback can
send one); ``report`` runs after the commit and wakes this process's own waiters and feed. The ids are
all a listener gets: payloads stay small, and clients re-read.

A change *wakes* waiters unless all it did was claim or renew claims: a claim never makes work ready.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.db.models import Task, TaskEvent

INFO_KEY = "orchestrator_changes"
ANNOUNCED_KEY = "orchestrator_change"  # the change ``announce`` published, for ``report`` after the commit


@dataclass(frozen=True)
class Change:
    """Ids of what one commit changed; ``at`` is the wall-clock time just before the commit (wake latency)."""

    session_ids: tuple[str, ...]
    task_ids: tuple[str, ...]
    wakes: bool
    at: float = field(default_factory=time.time)


@runtime_checkable
class ChangeSink(Protocol):
    """A sink that is told what each write changed: inside its transaction, and after its commit."""

    async def publish(self, session: AsyncSession, change: Change) -> None:
        """Inside the transaction, as its last statement (PostgreSQL: the ``NOTIFY``); may add one statement."""
        ...

    async def changed(self, change: Change) -> None:
        """After the commit (this process's waiters and change feed); must not fail."""
        ...


@dataclass
class _Collected:
    session_ids: dict[str, None] = field(default_factory=dict)  # ordered sets
    task_ids: dict[str, None] = field(default_factory=dict)


def watch(session: AsyncSession) -> None:
    """Start recording what ``session``'s flushes change (a fresh record per transaction attempt)."""
    session.info[INFO_KEY] = _Collected()


def _after_flush(session: Session, _context: Any) -> None:
    collected = session.info.get(INFO_KEY)
    if collected is None:
        return
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, Task) and (row in session.new or row in session.deleted or session.is_modified(row)):
            collected.session_ids[row.session_id] = None
            collected.task_ids[row.id] = None
        elif isinstance(row, TaskEvent) and row in session.new:
            collected.session_ids[row.session_id] = None
            if row.task_id is not None:
                collected.task_ids[row.task_id] = None


event.listen(Session, "after_flush", _after_flush)


def note(session: AsyncSession, session_id: str, task_ids: tuple[str, ...]) -> None:
    """Record a change written by a Core statement, which no flush sees (plan_task's one-statement insert)."""
    found = session.info.get(INFO_KEY)
    if found is None:
        return
    found.session_ids[session_id] = None
    for task_id in task_ids:
        found.task_ids[task_id] = None


def collected(session: AsyncSession, *, transitions: list[tuple[str, str]], claims: list[str]) -> Change | None:
    """The change the transaction has flushed so far, or None when it changed no task and no session."""
    found = session.info.get(INFO_KEY)
    if found is None or not found.session_ids:
        return None
    claim_only = bool(claims) and all(to == "in_progress" for _, to in transitions)
    return Change(tuple(found.session_ids), tuple(found.task_ids), wakes=not claim_only)


async def announce(
    sink: object, session: AsyncSession, *, transitions: list[tuple[str, str]], claims: list[str]
) -> None:
    """Inside the transaction, after the rest of its work: let ``sink`` publish what it changed.

    Flushes first (the commit would flush the same rows anyway), so every changed id is known.
    """
    session.info.pop(ANNOUNCED_KEY, None)
    if not isinstance(sink, ChangeSink):
        return
    await session.flush()
    change = collected(session, transitions=transitions, claims=claims)
    if change is not None:
        await sink.publish(session, change)
        session.info[ANNOUNCED_KEY] = change


async def report(sink: object, session: AsyncSession) -> None:
    """Tell ``sink`` what the committed transaction changed (after the commit; never fails the write)."""
    change = session.info.get(ANNOUNCED_KEY)
    if change is None or not isinstance(sink, ChangeSink):
        return
    # Shielded: the write has committed, so a cancellation here (a restart's drain) must not turn its
    # answer into "nothing was kept"; the sink does no I/O here (waking local waiters, feeding the feed).
    with anyio.CancelScope(shield=True):
        await sink.changed(change)
