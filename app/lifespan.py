"""Ordered start-up and shutdown (DESIGN §8) on one AsyncExitStack.

settings (validated before we get here) → logging / tracing → role catalog (``ORCHESTRATOR_ROLES_FILE``)
→ database engine and pool → schema check → RebootManager (services installed) → monitors (the lease
sweeper, the maintenance monitor, then any extra) → MCP session manager → (in a serving process, the heap
settled: ``app.runtime.heap``) → ready. Each step is entered on
the stack, so shutdown runs the same steps in reverse, whatever failed in between. The engine, services
and monitors are the :class:`ComponentStack`'s steps, the same ones a warm restart runs in between; the
MCP session manager stays outside it, so a restart keeps the legacy sessions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from app import errors
from app.db.engine import Database
from app.db.uow import UnitOfWork
from app.domain import roles
from app.domain.clock import Clock
from app.observability.logging import configure_logging
from app.observability.metrics import WaitingMetrics
from app.observability.tracing import configure_tracing
from app.runtime import heap
from app.runtime.component_stack import ComponentStack
from app.runtime.lease_sweeper import LeaseSweeper
from app.runtime.maintenance_monitor import MaintenanceMonitor
from app.runtime.monitors import Monitor, MonitorSupervisor
from app.runtime.process_status import ProcessStatus
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.runtime.schema_watch import SchemaWatch
from app.runtime.work_signals import ChangeListener, ChangeRouter, SignallingSink, drain_watch, listen_dsn
from app.services.base import ServiceConfig
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
from app.tools.change_feed import ChangeFeed
from app.tools.holder import ServiceHolder, Services
from app.tools.server import OrchestratorMCP

log = logging.getLogger("app.lifespan")
# How soon an owed schema check is made once the database answers, without a readiness probe (schema_watch).
SCHEMA_WATCH_INTERVAL_SECONDS = 5.0


@dataclass
class Runtime:
    """The live parts, reachable from ``app.state.runtime`` (for the HTTP probes and the tests)."""

    settings: Settings
    holder: ServiceHolder
    clock: Clock
    components: ComponentStack | None = None
    extra_monitors: list[Monitor] = field(default_factory=list)
    roles: roles.RoleCatalog = field(default_factory=roles.builtin_catalog)
    signals: ChangeRouter | None = None  # waiting for work and the change feed (§4.7)
    change_feed: ChangeFeed | None = None
    waiting_metrics: WaitingMetrics | None = None

    @property
    def database(self) -> Database | None:
        return self.components.database if self.components is not None else None

    @property
    def uow(self) -> UnitOfWork | None:
        return self.components.uow if self.components is not None else None

    @property
    def supervisor(self) -> MonitorSupervisor | None:
        return self.components.supervisor if self.components is not None else None


def load_roles(settings: Settings) -> roles.RoleCatalog:
    """The role catalog: built in, with ``ORCHESTRATOR_ROLES_FILE`` applied when set.

    Raises:
        roles.RolesFileError: the file cannot be read or is invalid (names the file, the line, the problem).
    """
    path = settings.roles_file
    if path is None:
        return roles.builtin_catalog()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise roles.RolesFileError(str(path), None, f"cannot be read ({exc.strerror or exc})") from None
    catalog = roles.parse_catalog(data, source=str(path))
    log.info("roles_loaded", extra={"event": "roles_loaded", "source": str(path)})
    return catalog


def build_services(runtime: Runtime, uow: UnitOfWork) -> Services:
    config = ServiceConfig(
        lease_seconds=runtime.settings.lease_seconds,
        max_attempts=runtime.settings.max_attempts,
        max_context_bytes=runtime.settings.max_context_bytes,
        max_artifact_bytes=runtime.settings.max_artifact_bytes,
    )
    kwargs: dict[str, Any] = {"config": config, "sink": runtime.holder.metrics}
    if runtime.signals is not None:
        kwargs["sink"] = SignallingSink(runtime.holder.metrics, runtime.signals)
    waiters = runtime.signals.waiters if runtime.signals is not None else None
    probe = ProcessStatus(runtime.holder.reboot, runtime.holder.metrics, uow.database, lambda: runtime.supervisor)
    return Services(
        sessions=SessionService(uow, runtime.clock, **kwargs),
        planning=TaskPlanningService(uow, runtime.clock, **kwargs),
        updates=TaskUpdateService(uow, runtime.clock, **kwargs),
        removal=TaskRemovalService(uow, runtime.clock, **kwargs),
        queries=TaskQueryService(uow, runtime.clock, **kwargs),
        execution=ExecutionService(uow, runtime.clock, roles=runtime.roles, waiters=waiters, **kwargs),
        completion=CompletionService(uow, runtime.clock, **kwargs),
        synthesis=SynthesisService(uow, runtime.clock, **kwargs),
        status=StatusService(uow, runtime.clock, probe=probe, **kwargs),
        leases=LeaseService(uow, runtime.clock, **kwargs),
        session_overview=SessionOverviewService(uow, runtime.clock, roles=runtime.roles, **kwargs),
        session_cleanup=SessionCleanupService(uow, runtime.clock, **kwargs),
        maintenance=MaintenanceService(
            uow, runtime.clock, stale_pending_days=runtime.settings.stale_pending_days, **kwargs
        ),
    )


def build_monitors(runtime: Runtime, services: Services) -> list[Monitor]:
    """The monitors, built over the services of one component stack (rebuilt by a warm restart)."""
    settings = runtime.settings
    sweeper = LeaseSweeper(lambda: services.leases, interval=settings.lease_sweep_interval_seconds)
    maintenance = MaintenanceMonitor(lambda: services.maintenance, settings.maintenance_interval_seconds)
    monitors: list[Monitor] = [sweeper, maintenance]
    if runtime.components is not None:
        monitors.append(SchemaWatch(runtime.components, interval=SCHEMA_WATCH_INTERVAL_SECONDS))
    if runtime.signals is not None:
        monitors.append(
            ChangeListener(
                runtime.signals,
                dsn=listen_dsn(settings.resolved_database_url()),
                recheck_seconds=settings.wait_recheck_seconds,
                connect_timeout=settings.db_connect_timeout_seconds,
                application_name=f"task-orchestrator-listen:{runtime.holder.reboot.instance_id}",
                metrics=runtime.waiting_metrics,
            )
        )
    return [*monitors, *runtime.extra_monitors]


def assembler(runtime: Runtime) -> Callable[[UnitOfWork], Sequence[Monitor]]:
    """What the component stack calls each time it has a new unit of work: install services, build monitors."""

    def assemble(uow: UnitOfWork) -> Sequence[Monitor]:
        services = build_services(runtime, uow)
        runtime.holder.install(services)
        return build_monitors(runtime, services)

    return assemble


def _stop(reboot: RebootManager) -> None:
    if reboot.state != ServiceState.STOPPING:
        reboot.move_to(ServiceState.STOPPING)
    reboot.move_to(ServiceState.STOPPED)


def build_lifespan(
    runtime: Runtime, server: OrchestratorMCP
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = runtime.settings
        reboot = runtime.holder.reboot
        components = runtime.components
        assert components is not None, "create_app builds the component stack"
        async with AsyncExitStack() as stack:
            configure_logging(settings.log_level, settings.log_format)
            provider = configure_tracing(
                settings.otel_exporter_otlp_endpoint, settings.otel_service_name, server.version
            )
            if provider is not None:
                stack.callback(provider.shutdown)
            runtime.roles = load_roles(settings)
            await stack.enter_async_context(components)
            await components.open_engine()
            stack.push_async_callback(components.dispose_engine)
            try:
                await components.check_schema()
            except errors.Unavailable as exc:
                # DESIGN §8: a database that cannot be reached yet does not stop the start-up (a database
                # restart must not become a crash loop); the service starts unready and the readiness probe
                # makes the schema check once the database answers.
                log.warning("schema_check_deferred", extra={"event": "schema_check_deferred", "reason": exc.message})
            stack.callback(_stop, reboot)
            await components.start_monitors()
            stack.push_async_callback(components.stop_monitors)
            if runtime.signals is not None:
                await stack.enter_async_context(drain_watch(reboot, runtime.signals.waiters))
            if runtime.change_feed is not None:
                await stack.enter_async_context(runtime.change_feed.running())
            await stack.enter_async_context(server.session_manager.run())
            if heap.requested(app):  # a serving process: its start-up objects leave the collector's full passes
                heap.settle()
            reboot.move_to(ServiceState.READY)
            log.info(
                "ready",
                extra={"event": "ready", "backend": components.database.backend if components.database else None},
            )
            try:
                yield
            finally:
                # Readiness goes false before any part stops.
                if reboot.state != ServiceState.STOPPING:
                    reboot.move_to(ServiceState.STOPPING)
                log.info("stopping", extra={"event": "stopping"})

    return lifespan
