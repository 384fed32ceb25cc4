"""The database side of the service lifecycle: probes, claim counts, claim release and ``system_event``.

The runtime (RebootManager, restarts, health and shutdown checks) reads and writes the database only
through this service, one transaction per method, on whatever unit of work is current: a warm restart
rebuilds the engine, so the runtime makes a fresh ``LifecycleService`` over the current one each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.db.repositories import Repositories
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.session_resolution import resolve_session_id
from app.services.views import TaskView, task_views
from app.services.work import leases


@dataclass(frozen=True)
class SystemEventDraft:
    """A ``system_event`` row to write: its time is fixed when it happened, not when it is written."""

    kind: str
    actor: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class DatabaseProbe:
    latency_ms: float
    revision: str | None


@dataclass(frozen=True)
class ClaimsProbe:
    latency_ms: float
    claims: list[TaskView]


class ReleasedClaims(BaseModel):
    task_ids: list[str]


class LifecycleService(Service):
    async def probe(self) -> DatabaseProbe:
        """One round trip and the schema revision, in one read transaction.

        Raises:
            unavailable: the database is unreachable (or its circuit is open).
        """

        async def work(repos: Repositories) -> DatabaseProbe:
            latency = await repos.database_state.ping()
            return DatabaseProbe(latency_ms=latency, revision=await repos.database_state.revision())

        return await self._read(work)

    async def live_claims_of(self, caller: Caller, session_id: str | None) -> ClaimsProbe:
        """The caller's live claims (in one session when named), with the round trip that read them.

        Raises:
            not_found: the named session does not exist. unavailable: the database is unreachable.
        """
        now = self.clock.now()

        async def work(repos: Repositories) -> ClaimsProbe:
            latency = await repos.database_state.ping()
            sid = await resolve_session_id(repos, caller, session_id) if session_id is not None else None
            rows = await repos.tasks.list_live_claims_of(caller.actor, now, session_id=sid)
            return ClaimsProbe(latency_ms=latency, claims=await task_views(repos, rows))

        return await self._read(work)

    async def count_live_claims(self) -> int:
        now = self.clock.now()

        async def work(repos: Repositories) -> int:
            return await repos.tasks.count_live_claims(now)

        return await self._read(work)

    async def open_transactions(self, application_name: str) -> int:
        """PostgreSQL's count of this process's other open transactions (``pg_stat_activity``)."""

        async def work(repos: Repositories) -> int:
            return await repos.database_state.open_transactions(application_name)

        return await self._read(work)

    async def release_all_claims(self, caller: Caller, *, reason: str) -> list[str]:
        """Every live claim back to pending, each with a ``claim_released`` event (restart without state).

        Concurrency: *row lock* on every claimed row (``FOR UPDATE``) on PostgreSQL; *immediate
        transaction (SQLite)* there.
        """

        async def work(tx: Tx) -> ReleasedClaims:
            return ReleasedClaims(task_ids=await leases.release_all_claims(tx, reason=reason))

        result = await self._write(caller, "orchestrator_restart_server", None, ReleasedClaims, work)
        return result.task_ids

    async def record_system_events(self, drafts: Sequence[SystemEventDraft]) -> None:
        """Append rows to ``system_event`` in one transaction, in the given order."""

        async def work(repos: Repositories) -> None:
            for draft in drafts:
                await repos.system_events.insert(kind=draft.kind, actor=draft.actor, at=draft.at, data=draft.data)

        await self.uow.run(work, write=True)

    async def system_event_data(self, kind: str, *, limit: int) -> list[dict[str, Any]]:
        """The ``data`` of the newest events of one kind, newest first."""

        async def work(repos: Repositories) -> list[dict[str, Any]]:
            rows = await repos.system_events.list_by_kinds([kind], limit=limit)
            return [dict(row.data or {}) for row in rows]

        return await self._read(work)
