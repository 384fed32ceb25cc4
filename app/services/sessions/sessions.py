"""Session use cases: start or resume the shared plan of a working directory, and find a call's session.

A session is the unit of isolation: tasks never cross sessions. Each actor has a current session
(``agent.current_session_id``) so tools that take ``session_id`` may omit it once the agent has called
``orchestrator_initialize_session``.
"""

from __future__ import annotations

import posixpath

from app.db.models import OrchestrationSession
from app.domain import directories, ids
from app.domain.enums import SessionStatus
from app.services.base import Service, Tx
from app.services.caller import Caller
from app.services.views import SessionView, StatusCounts, View, session_view, status_counts


class InitializeSessionResult(View):
    session: SessionView
    resumed: bool
    counts: StatusCounts


class SessionService(Service):
    """Starts and resumes sessions."""

    async def initialize_session(
        self,
        caller: Caller,
        *,
        working_directory: str | None,
        name: str | None,
        description: str | None,
        new_session: bool,
    ) -> InitializeSessionResult:
        """Resume the active session of the working directory, or create one; make it current.

        Without a working directory the actor's current active session is resumed (unless
        ``new_session``), so an agent that reconnects lands where it was. The directory is taken in its
        one spelling (``directories.normalise``): ``/repo/`` resumes the session of ``/repo``.
        """
        if working_directory is not None:
            working_directory = directories.normalise(working_directory)

        async def work(tx: Tx) -> InitializeSessionResult:
            repos = tx.repos
            existing: OrchestrationSession | None = None
            if not new_session:
                if working_directory is not None:
                    # One active session per directory for agents that start together (DESIGN §4.3: resume or
                    # create): resume-or-create of one directory takes turns from here to the commit
                    # (PostgreSQL advisory lock; SQLite runs one writer at a time), so the second sees the
                    # session the first created instead of creating another.
                    await repos.sessions.lock_directory(working_directory)
                    existing = await repos.sessions.get_active_for_directory(working_directory)
                else:
                    current = await repos.agents.current_active_session_id(caller.actor)
                    row = await repos.sessions.get(current) if current else None
                    existing = row if row is not None and row.status == SessionStatus.ACTIVE else None
            if existing is None:
                existing = await repos.sessions.insert(
                    OrchestrationSession(
                        id=ids.new_session_id(),
                        name=name or _default_name(working_directory),
                        working_directory=working_directory,
                        description=description,
                        status=SessionStatus.ACTIVE.value,
                        created_by=caller.actor,
                        created_at=tx.now,
                        last_activity_at=tx.now,
                        version=1,
                    )
                )
                repos.events.append(
                    session_id=existing.id,
                    task_id=None,
                    kind="session_created",
                    actor=caller.actor,
                    at=tx.now,
                    data={"name": existing.name, "working_directory": working_directory},
                )
                resumed = False
            else:
                resumed = True
                await repos.sessions.touch(existing.id, tx.now)
                # touch is a conditional UPDATE; re-read the row so the view shows what is stored.
                await repos.session.refresh(existing)
            await repos.agents.set_current_session(caller.actor, existing.id, tx.now)
            # A visit: resume_session later shows this actor the events after this point.
            await repos.agents.record_visit(caller.actor, existing.id, await repos.events.last_id(existing.id), tx.now)
            counts = await status_counts(repos, existing.id)
            return InitializeSessionResult(session=session_view(existing, counts), resumed=resumed, counts=counts)

        return await self._write(caller, "orchestrator_initialize_session", None, InitializeSessionResult, work)


def _default_name(working_directory: str | None) -> str:
    if working_directory:
        base = posixpath.basename(working_directory.rstrip("/\\")) or working_directory
        return base[:200]
    return "session"
