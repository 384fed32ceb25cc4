"""Ordered start-up and shutdown (DESIGN §8) on one AsyncExitStack.

settings (validated before we get here) → logging / tracing → role catalog (``ORCHESTRATOR_ROLES_FILE``)
→ database engine and pool → schema check → RebootManager (services installed) → monitors (the lease
sweeper, then any extra) → MCP session manager → ready. Each step is entered on the stack, so shutdown
runs the same steps in reverse, whatever failed in between.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from app.db import schema
from app.db.engine import Database, create_database
from app.db.uow import UnitOfWork
from app.domain import roles
from app.domain.clock import Clock
from app.observability.logging import configure_logging
from app.observability.tracing import configure_tracing
from app.runtime.lease_sweeper import LeaseSweeper
from app.runtime.maintenance_monitor import MaintenanceMonitor
from app.runtime.monitors import Monitor, MonitorSupervisor
from app.runtime.process_status import ProcessStatus
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.services.base import ServiceConfig
from app.services.completion import CompletionService
from app.services.execution import ExecutionService
from app.services.leases import LeaseService
from app.services.maintenance import MaintenanceService
from app.services.session_cleanup import SessionCleanupService
from app.services.session_overview import SessionOverviewService
from app.services.sessions import SessionService
from app.services.status import StatusService
from app.services.synthesis import SynthesisService
from app.services.task_planning import TaskPlanningService
from app.services.task_queries import TaskQueryService
from app.services.task_removal import TaskRemovalService
from app.services.task_updates import TaskUpdateService
from app.settings import Settings, redact_url
from app.tools.holder import ServiceHolder, Services
from app.tools.server import OrchestratorMCP

log = logging.getLogger("app.lifespan")


class SchemaNotAtHead(RuntimeError):
    """The database schema is behind (or ahead of) this build's migrations."""


@dataclass
class Runtime:
    """The live parts, reachable from ``app.state.runtime`` (for the HTTP probes and the tests)."""

    settings: Settings
    holder: ServiceHolder
    clock: Clock
    database: Database | None = None
    uow: UnitOfWork | None = None
    supervisor: MonitorSupervisor | None = None
    extra_monitors: list[Monitor] = field(default_factory=list)
    roles: roles.RoleCatalog = field(default_factory=roles.builtin_catalog)


async def open_database(settings: Settings) -> Database:
    url = settings.resolved_database_url()
    database = create_database(
        url,
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
    )
    log.info("database_open", extra={"event": "database_open", "url": redact_url(url), "backend": database.backend})
    return database


async def ensure_schema(settings: Settings, database: Database) -> None:
    """The schema check: the embedded SQLite default upgrades itself; PostgreSQL only with AUTO_MIGRATE.

    Raises:
        SchemaNotAtHead: PostgreSQL is not at head and auto-migration is off (run ``task-orchestrator migrate``).
    """
    state = await schema.current_state(database)
    if state.at_head:
        return
    if database.backend == "sqlite" or settings.auto_migrate:
        log.info("schema_upgrade", extra={"event": "schema_upgrade", "from": state.current, "to": state.head})
        await schema.upgrade(database)
        return
    raise SchemaNotAtHead(
        f"database schema is at {state.current or 'nothing'}, this build needs {state.head}: run "
        "`task-orchestrator migrate` (or set ORCHESTRATOR_AUTO_MIGRATE=true)"
    )


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
    config = ServiceConfig(lease_seconds=runtime.settings.lease_seconds, max_attempts=runtime.settings.max_attempts)
    kwargs: dict[str, Any] = {"config": config, "sink": runtime.holder.metrics}
    probe = ProcessStatus(runtime.holder.reboot, runtime.holder.metrics, uow.database, lambda: runtime.supervisor)
    return Services(
        sessions=SessionService(uow, runtime.clock, **kwargs),
        planning=TaskPlanningService(uow, runtime.clock, **kwargs),
        updates=TaskUpdateService(uow, runtime.clock, **kwargs),
        removal=TaskRemovalService(uow, runtime.clock, **kwargs),
        queries=TaskQueryService(uow, runtime.clock, **kwargs),
        execution=ExecutionService(uow, runtime.clock, roles=runtime.roles, **kwargs),
        completion=CompletionService(uow, runtime.clock, **kwargs),
        synthesis=SynthesisService(uow, runtime.clock, **kwargs),
        status=StatusService(uow, runtime.clock, probe=probe, **kwargs),
        leases=LeaseService(uow, runtime.clock, **kwargs),
        session_overview=SessionOverviewService(uow, runtime.clock, **kwargs),
        session_cleanup=SessionCleanupService(uow, runtime.clock, **kwargs),
        maintenance=MaintenanceService(
            uow, runtime.clock, stale_pending_days=runtime.settings.stale_pending_days, **kwargs
        ),
    )


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
        async with AsyncExitStack() as stack:
            configure_logging(settings.log_level, settings.log_format)
            provider = configure_tracing(
                settings.otel_exporter_otlp_endpoint, settings.otel_service_name, server.version
            )
            if provider is not None:
                stack.callback(provider.shutdown)
            runtime.roles = load_roles(settings)
            database = await open_database(settings)
            stack.push_async_callback(database.dispose)
            runtime.database = database
            await ensure_schema(settings, database)
            uow = UnitOfWork(database, errors_sink=runtime.holder.metrics)
            runtime.uow = uow
            runtime.holder.install(build_services(runtime, uow))
            stack.callback(runtime.holder.install, None)
            stack.callback(_stop, reboot)
            sweeper = LeaseSweeper(
                lambda: runtime.holder.services.leases, interval=settings.lease_sweep_interval_seconds
            )
            maintenance = MaintenanceMonitor(
                lambda: runtime.holder.services.maintenance, runtime.settings.maintenance_interval_seconds
            )
            supervisor = MonitorSupervisor(reboot, [sweeper, maintenance, *runtime.extra_monitors])
            runtime.supervisor = await stack.enter_async_context(supervisor)
            await stack.enter_async_context(server.session_manager.run())
            reboot.move_to(ServiceState.READY)
            log.info("ready", extra={"event": "ready", "backend": database.backend})
            try:
                yield
            finally:
                # Readiness goes false before any part stops.
                if reboot.state != ServiceState.STOPPING:
                    reboot.move_to(ServiceState.STOPPING)
                log.info("stopping", extra={"event": "stopping"})

    return lifespan
