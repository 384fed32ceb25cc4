"""Finding a call's session: the one named, else the actor's current session.

Graph, work and session use cases all take an optional ``session_id``; this is the one rule they share,
kept at the top of the services so each wing uses it without importing another wing.
"""

from __future__ import annotations

from app import errors
from app.db.repositories import Repositories
from app.services.caller import Caller


async def resolve_session_id(repos: Repositories, caller: Caller, session_id: str | None) -> str:
    """The session a call works in: the one named, else the actor's current session.

    Raises:
        not_found: the named session does not exist.
        invalid_argument: none named and the actor has no current session.
    """
    if session_id is not None:
        if await repos.sessions.get(session_id) is None:
            raise errors.SessionNotFound(session_id)
        return session_id
    current = await repos.agents.current_session_id(caller.actor)
    if current is None:
        raise errors.InvalidArgument(
            f"No session_id given and actor {caller.actor!r} has no current session; call "
            "orchestrator_initialize_session first (or pass session_id).",
            field="session_id",
            value=None,
        )
    return current
