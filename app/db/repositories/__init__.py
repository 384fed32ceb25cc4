"""All SQL lives in these repositories. They flush, never commit: the unit of work owns the transaction.

:class:`Repositories` bundles one instance of each over the transaction's session, so a service's work
function receives exactly one object and cannot reach the database any other way.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.recent_touches import RecentTouches
from app.db.repositories.agents import AgentRepository
from app.db.repositories.artifacts import ArtifactRepository
from app.db.repositories.database_state import DatabaseStateRepository
from app.db.repositories.dependencies import DependencyRepository
from app.db.repositories.events import EventRepository
from app.db.repositories.integrity import IntegrityRepository
from app.db.repositories.requests import RequestRepository
from app.db.repositories.sessions import SessionRepository
from app.db.repositories.snapshot import SnapshotRepository
from app.db.repositories.system_events import SystemEventRepository
from app.db.repositories.task_pages import TaskPageRepository, task_page_repository
from app.db.repositories.tasks import TaskRepository


class Repositories:
    """The repositories of one transaction."""

    def __init__(self, session: AsyncSession, backend: str, *, session_touches: RecentTouches) -> None:
        self.session = session
        self.backend = backend
        self.tasks = TaskRepository(session, backend)
        self.task_pages: TaskPageRepository = task_page_repository(session, backend)
        self.dependencies = DependencyRepository(session)
        self.sessions = SessionRepository(session, backend, session_touches)
        self.events = EventRepository(session)
        self.requests = RequestRepository(session, backend)
        self.artifacts = ArtifactRepository(session)
        self.agents = AgentRepository(session, backend)
        self.system_events = SystemEventRepository(session)
        self.integrity = IntegrityRepository(session)
        self.snapshot = SnapshotRepository(session, backend)
        self.database_state = DatabaseStateRepository(session, backend)
