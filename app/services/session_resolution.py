"""Finding a call's session (DESIGN §3 Actors): the one named, else the actor's current session, else the
principal's single active session.

Graph, work and session use cases all take an optional ``session_id``; this is the one rule they share,
kept at the top of the services so each wing uses it without importing another wing.

"The principal's sessions" (docs/decisions.md): active sessions that the caller's actor, its principal
(token subject, else client name) or any actor named ``principal/…`` created, has as its current session,
or visited (``initialize_session`` / ``resume_session``). With auth on every actor of a token is
``subject`` or ``subject/agent``, so this is every session that token's agents work in.

An archived session is history (docs/decisions.md "Archived sessions take no work"): a current session
that was archived counts as no current session, for reads and writes alike, so an actor resolves the same
session on every call; a session named by id is still read. Writes that put work into a session or take it
from one check the session with :func:`require_open_session`.
"""

from __future__ import annotations

from app import errors
from app.db.models import OrchestrationSession
from app.db.repositories import Repositories
from app.domain.enums import SessionStatus
from app.services.caller import Caller

LISTED_SESSIONS = 5


async def resolve_session_id(repos: Repositories, caller: Caller, session_id: str | None) -> str:
    """The session a call works in: the one named, else the actor's current session (unless archived),
    else the principal's only active session.

    Raises:
        not_found: the named session does not exist.
        invalid_argument: none named, no current session, and the principal has no single active
            session; the error lists up to five active sessions (``allowed``).
    """
    if session_id is not None:
        if await repos.sessions.get(session_id) is None:
            raise errors.SessionNotFound(session_id)
        return session_id
    current = await repos.agents.current_active_session_id(caller.actor)
    if current is not None:
        return current
    actors = [caller.actor] if caller.principal is None else [caller.actor, caller.principal]
    own = await repos.sessions.list_active_of_actors(actors, caller.principal, limit=LISTED_SESSIONS)
    if len(own) == 1:
        return own[0].id
    listed = own or await repos.sessions.list_active(limit=LISTED_SESSIONS)
    raise _no_session(caller, listed, several=bool(own))


async def require_open_session(repos: Repositories, session_id: str, *, lock: bool) -> OrchestrationSession:
    """The session that work is planned into or handed out from: it must exist and be active.

    ``lock`` (a write that adds tasks) takes the session's key-share row lock (PostgreSQL ``FOR KEY
    SHARE``; SQLite: immediate transaction) until commit: cleanup archives a session under ``FOR UPDATE`` of
    its row, so either it archived first (seen here: refused) or it waits for this write and then sees the
    new tasks, which keep the session from matching. Without it a task could land, pending, in a session
    archived meanwhile. Claims need no lock: cleanup locks the tasks, and an archived session holds only
    archived tasks.

    Raises:
        not_found: the session does not exist. invalid_argument: the session is archived.
    """
    row = await repos.sessions.get(session_id, key_share=lock)
    if row is None:
        raise errors.SessionNotFound(session_id)
    if row.status == SessionStatus.ARCHIVED:
        raise errors.SessionArchived(session_id)
    return row


def _no_session(caller: Caller, listed: list[OrchestrationSession], *, several: bool) -> errors.InvalidArgument:
    if listed:
        names = "; ".join(
            f"{row.id} {row.name!r}" + (f" ({row.working_directory})" if row.working_directory else "")
            for row in listed
        )
        whose = "your active sessions" if several else "active sessions"
        found = f" Pass session_id (and the same agent on every call); {whose}: {names}."
    else:
        found = " There is no active session."
    return errors.InvalidArgument(
        f"No session_id given and actor {caller.actor!r} has no current session.{found} Or call "
        "orchestrator_initialize_session(working_directory=…, agent=…) to start or resume your project's "
        "session; later calls with the same agent may then omit session_id.",
        field="session_id",
        value=None,
        allowed=[row.id for row in listed],
        hint="orchestrator_initialize_session",
    )
