"""The one typed holder through which tools reach the services built in the lifespan.

Tools are registered when the app is created, before the database exists; the lifespan fills the
holder once the parts are up (and a warm restart swaps them). A call that arrives while it is empty is
refused by the RebootManager's gate before it gets here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app import errors
from app.observability.metrics import Metrics
from app.runtime.lifecycle import Lifecycle
from app.runtime.reboot_manager import RebootManager
from app.services.graph.planning import TaskPlanningService
from app.services.graph.queries import TaskQueryService
from app.services.graph.removal import TaskRemovalService
from app.services.graph.updates import TaskUpdateService
from app.services.maintenance.coordinator import MaintenanceService
from app.services.sessions.cleanup import SessionCleanupService
from app.services.sessions.overview import SessionOverviewService
from app.services.sessions.sessions import SessionService
from app.services.sessions.status import StatusService
from app.services.work.claims import ExecutionService
from app.services.work.completion import CompletionService
from app.services.work.leases import LeaseService
from app.services.work.synthesis import SynthesisService
from app.settings import Settings
from app.tools.fair_share import FairShare


@dataclass(frozen=True)
class Services:
    sessions: SessionService
    planning: TaskPlanningService
    updates: TaskUpdateService
    removal: TaskRemovalService
    queries: TaskQueryService
    execution: ExecutionService
    completion: CompletionService
    synthesis: SynthesisService
    status: StatusService
    leases: LeaseService
    session_overview: SessionOverviewService
    session_cleanup: SessionCleanupService
    maintenance: MaintenanceService


class ServiceHolder:
    def __init__(self, settings: Settings, reboot: RebootManager, metrics: Metrics) -> None:
        self.settings = settings
        self.reboot = reboot
        self.metrics = metrics
        self._services: Services | None = None
        self._lifecycle: Lifecycle | None = None
        # Whether the schema check of the open engine is still owed (the database was away for it); set by
        # the composition root to the component stack's answer.
        self.schema_owed: Callable[[], bool] = lambda: False
        # The per-actor call rate and cap in flight (DESIGN §7): one per process, shared by tool calls,
        # resource reads and prompts, and kept across warm restarts.
        self.fair_share = FairShare(
            rate_per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            max_in_flight=settings.max_in_flight_per_actor,
        )

    def install(self, services: Services | None) -> None:
        self._services = services

    @property
    def services(self) -> Services:
        """The services, once their database's schema is known to be right.

        Raises:
            unavailable: the service is starting, or the schema check is still owed because the database
                could not be reached when the service (re)started: until the check is made (``schema_watch``,
                within seconds of the database answering) a call could meet a schema that is behind, or
                empty where the check would have migrated it.
        """
        if self._services is None:
            raise errors.Unavailable("The service is starting; retry shortly.", retry_after_seconds=1.0)
        if self.schema_owed():
            raise errors.Unavailable(
                "The database schema has not been checked yet: the database could not be reached when the "
                "service started, and calls are served once it answers and the check is made (within a few "
                "seconds). Retry shortly.",
                retry_after_seconds=5.0,
            )
        return self._services

    @property
    def lifecycle(self) -> Lifecycle:
        """Health, restarts and shutdown checks: one per process, surviving warm restarts."""
        if self._lifecycle is None:
            raise errors.Unavailable("The service is starting; retry shortly.", retry_after_seconds=1.0)
        return self._lifecycle

    @lifecycle.setter
    def lifecycle(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
