"""SQL for ``agent`` and ``agent_visit``: each actor's current session and last visit. Never commits.

Writes are upserts (``INSERT … ON CONFLICT DO UPDATE`` on both backends), so two concurrent first calls
of one actor never collide on the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from app.db.models import Agent, AgentVisit, OrchestrationSession
from app.domain.enums import SessionStatus


class AgentRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._backend == "postgresql" else sqlite.insert)(table)

    async def get(self, actor: str) -> Agent | None:
        return await self._session.get(Agent, actor)

    async def current_active_session_id(self, actor: str) -> str | None:
        """The actor's current session while it is active; None when it has none or it was archived (an
        archived session is history, not where the actor works: DESIGN §4.3 cleanup). One statement."""
        return await self._session.scalar(
            select(Agent.current_session_id)
            .join(OrchestrationSession, OrchestrationSession.id == Agent.current_session_id)
            .where(Agent.actor == actor, OrchestrationSession.status == SessionStatus.ACTIVE.value)
        )

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

        Writes call this (unless this process recorded the actor moments ago: ``app.db.recent_touches``),
        so it is a single round trip, and two first writes of a new actor cannot both insert the row.
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
