"""SQL for ``agent`` and ``agent_visit``: each actor's current session and last visit. Never commits.

Writes are upserts (``INSERT … ON CONFLICT DO UPDATE`` on both backends), so two concurrent first calls
of one actor never collide on the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from app.db.models import Agent, AgentVisit

# ``last_seen_at`` moves at most once per this interval per actor and process (see ``RecentlySeen``).
SEEN_GRANULARITY = timedelta(seconds=5)
MAX_REMEMBERED_ACTORS = 10_000


class RecentlySeen:
    """Which actors this process recorded as seen, and when: spares a write the agent upsert.

    Every write transaction records its actor, which is a round trip and a row lock on the agent row.
    An agent that makes several calls a second only needs ``last_seen_at`` to within
    ``SEEN_GRANULARITY``, so the upsert is skipped while this process's last *committed* one is that
    recent. Each replica keeps its own memory, so at worst ``last_seen_at`` lags by the granularity (agent
    rows are never deleted, so a remembered actor always has its row). Bounded: past
    ``MAX_REMEMBERED_ACTORS`` the memory starts again from empty (every actor is touched once more).
    """

    def __init__(self, granularity: timedelta = SEEN_GRANULARITY) -> None:
        self._granularity = granularity
        self._seen: dict[str, datetime] = {}

    def due(self, actor: str, at: datetime) -> bool:
        """Whether a write at ``at`` should record the actor (never recorded, or not within the granularity)."""
        seen = self._seen.get(actor)
        return seen is None or not (at - self._granularity < seen <= at)

    def record(self, actor: str, at: datetime) -> None:
        """Called only after the transaction that touched the actor committed."""
        if len(self._seen) >= MAX_REMEMBERED_ACTORS and actor not in self._seen:
            self._seen.clear()
        self._seen[actor] = at


class AgentRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._backend == "postgresql" else sqlite.insert)(table)

    async def get(self, actor: str) -> Agent | None:
        return await self._session.get(Agent, actor)

    async def current_session_id(self, actor: str) -> str | None:
        return await self._session.scalar(select(Agent.current_session_id).where(Agent.actor == actor))

    async def set_current_session(self, actor: str, session_id: str | None, at: datetime) -> None:
        stmt = self._insert(Agent).values(actor=actor, current_session_id=session_id, last_seen_at=at)
        await self._session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Agent.actor],
                set_={"current_session_id": session_id, "last_seen_at": at},
            )
        )

    async def touch(self, actor: str, at: datetime) -> None:
        """Record that the actor was seen: one upsert statement (row lock on the agent row).

        Writes call this (unless :class:`RecentlySeen` says this process recorded the actor moments
        ago), so it is a single round trip, and two first writes of a new actor cannot both insert the row.
        """
        await self._session.execute(_touch_statement(self._backend), {"actor": actor, "last_seen_at": at})

    async def get_visit(self, actor: str, session_id: str) -> AgentVisit | None:
        return await self._session.get(AgentVisit, (actor, session_id))

    async def record_visit(self, actor: str, session_id: str, last_event_id: int, at: datetime) -> None:
        stmt = self._insert(AgentVisit).values(
            actor=actor, session_id=session_id, last_event_id=last_event_id, visited_at=at
        )
        await self._session.execute(
            stmt.on_conflict_do_update(
                index_elements=[AgentVisit.actor, AgentVisit.session_id],
                set_={
                    "last_event_id": func.max(AgentVisit.last_event_id, last_event_id)
                    if self._backend == "sqlite"
                    else func.greatest(AgentVisit.last_event_id, last_event_id),
                    "visited_at": at,
                },
            )
        )

    async def list_current_in_session(self, session_id: str, *, seen_since: datetime) -> list[Agent]:
        """Actors whose current session this is and who were seen since ``seen_since``."""
        rows = await self._session.scalars(
            select(Agent).where(Agent.current_session_id == session_id, Agent.last_seen_at >= seen_since)
        )
        return list(rows.all())

    async def last_seen(self, actors: Sequence[str]) -> dict[str, datetime]:
        if not actors:
            return {}
        rows = await self._session.execute(select(Agent.actor, Agent.last_seen_at).where(Agent.actor.in_(list(actors))))
        return {actor: seen for actor, seen in rows}


@cache
def _touch_statement(backend: str) -> Insert:
    """The upsert of :meth:`AgentRepository.touch`, built once per backend: building a DML statement's
    cache key from literal values costs more than running it, so the values are bound per call."""
    insert = postgresql.insert if backend == "postgresql" else sqlite.insert
    statement = insert(Agent).values(
        actor=bindparam("actor"),
        current_session_id=None,
        last_seen_at=bindparam("last_seen_at", type_=Agent.__table__.c.last_seen_at.type),
    )
    return statement.on_conflict_do_update(
        index_elements=[Agent.actor], set_={"last_seen_at": statement.excluded.last_seen_at}
    )
