"""SQL for ``agent`` and ``agent_visit``: each actor's current session and last visit. Never commits."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from app.db.models import Agent, AgentVisit


class AgentRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    async def get(self, actor: str) -> Agent | None:
        return await self._session.get(Agent, actor)

    async def current_session_id(self, actor: str) -> str | None:
        return await self._session.scalar(select(Agent.current_session_id).where(Agent.actor == actor))

    async def set_current_session(self, actor: str, session_id: str | None, at: datetime) -> None:
        # Row lock: the agent row is read FOR UPDATE (PostgreSQL) inside a write transaction.
        row = await self._session.get(Agent, actor, with_for_update=self._backend == "postgresql")
        if row is None:
            self._session.add(Agent(actor=actor, current_session_id=session_id, last_seen_at=at))
        else:
            row.current_session_id = session_id
            row.last_seen_at = at
        await self._session.flush()

    async def touch(self, actor: str, at: datetime) -> None:
        """Record that the actor was seen: one upsert statement (row lock on the agent row).

        Every write calls this, so it is a single round trip, and two first writes of a new actor
        cannot both insert the row.
        """
        await self._session.execute(_touch_statement(self._backend), {"actor": actor, "last_seen_at": at})

    async def get_visit(self, actor: str, session_id: str) -> AgentVisit | None:
        return await self._session.get(AgentVisit, (actor, session_id))

    async def record_visit(self, actor: str, session_id: str, last_event_id: int, at: datetime) -> None:
        row = await self._session.get(AgentVisit, (actor, session_id))
        if row is None:
            self._session.add(
                AgentVisit(actor=actor, session_id=session_id, last_event_id=last_event_id, visited_at=at)
            )
        else:
            row.last_event_id = max(row.last_event_id, last_event_id)
            row.visited_at = at
        await self._session.flush()


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
