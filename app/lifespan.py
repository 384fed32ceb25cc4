"""Ordered start-up and shutdown (DESIGN §8) on one AsyncExitStack.

settings (validated before we get here) → logging / tracing → database engine and pool → schema check
→ RebootManager (services installed) → monitors → MCP session manager → ready. Each step is entered on
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

from app.db.engine import Database
from app.db.uow import UnitOfWork
from app.domain.clock import Clock
from app.observability.logging import configure_logging
from app.observability.tracing import configure_tracing
from app.runtime.component_stack import ComponentStack
from app.runtime.monitors import Monitor, MonitorSupervisor
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.services.base import ServiceConfig
from app.services.sessions import SessionService
from app.services.task_planning import TaskPlanningService
from app.services.task_queries import TaskQueryService
from app.services.task_removal import TaskRemovalService
from app.services.task_updates import TaskUpdateService
from app.settings import Settings
from app.tools.holder import ServiceHolder, Services
from app.tools.server import OrchestratorMCP

log = logging.getLogger("app.lifespan")


@dataclass
class Runtime:
    """The live parts, reachable from ``app.state.runtime`` (for the HTTP probes and the tests)."""

    settings: Settings
    holder: ServiceHolder
    clock: Clock
    components: ComponentStack | None = None
    extra_monitors: list[Monitor] = field(default_factory=list)

    @property
    def database(self) -> Database | None:
        return self.components.database if self.components is not None else None

    @property
    def uow(self) -> UnitOfWork | None:
        return self.components.uow if self.components is not None else None

    @property
    def supervisor(self) -> MonitorSupervisor | None:
        return self.components.supervisor if self.components is not None else None


def build_services(runtime: Runtime, uow: UnitOfWork) -> Services:
    config = ServiceConfig(lease_seconds=runtime.settings.lease_seconds, max_attempts=runtime.settings.max_attempts)
    kwargs: dict[str, Any] = {"config": config, "sink": runtime.holder.metrics}
    return Services(
        sessions=SessionService(uow, runtime.clock, **kwargs),
        planning=TaskPlanningService(uow, runtime.clock, **kwargs),
        updates=TaskUpdateService(uow, runtime.clock, **kwargs),
        removal=TaskRemovalService(uow, runtime.clock, **kwargs),
        queries=TaskQueryService(uow, runtime.clock, **kwargs),
    )


def build_monitors(runtime: Runtime, services: Services) -> list[Monitor]:
    """The monitors, built over the services of one component stack (rebuilt by a warm restart)."""
    return [*runtime.extra_monitors]


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
            await stack.enter_async_context(components)
            await components.open_engine()
            stack.push_async_callback(components.dispose_engine)
            await components.check_schema()
            stack.callback(_stop, reboot)
            await components.start_monitors()
            stack.push_async_callback(components.stop_monitors)
            await stack.enter_async_context(server.session_manager.run())
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
