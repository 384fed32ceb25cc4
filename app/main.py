"""The composition root: ``create_app(settings)`` builds every part and wires them; nothing else does.

Nothing is built at import time. Each call makes a fresh Metrics registry, RebootManager, MCP server and
Starlette app, so tests can run many apps side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata

from mcp.server.transport_security import TransportSecuritySettings
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from app.db.repositories import Repositories
from app.domain.clock import Clock, SystemClock
from app.http.middleware import HttpMetricsMiddleware
from app.http.routes import Probes, build_routes
from app.lifespan import Runtime, build_lifespan
from app.observability.metrics import Metrics
from app.runtime.reboot_manager import RebootManager
from app.settings import Settings
from app.tools.holder import ServiceHolder
from app.tools.server import build_server

DB_PROBE_TIMEOUT_SECONDS = 2.0


def server_version() -> str:
    try:
        return metadata.version("task-orchestrator")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: the configured hosts, or loopback names when none are configured."""
    if settings.allowed_hosts == ["*"]:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = settings.allowed_hosts or ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    hosts = [h for host in hosts for h in ((host, f"{host}:*") if ":" not in host.strip("[]") else (host,))]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def create_app(settings: Settings, *, clock: Clock | None = None) -> Starlette:
    version = server_version()
    metrics = Metrics(version)
    reboot = RebootManager()
    holder = ServiceHolder(settings, reboot, metrics)
    runtime = Runtime(settings=settings, holder=holder, clock=clock or SystemClock())
    server = build_server(holder, version=version)
    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=settings.stateless_http,
        json_response=True,
        transport_security=transport_security(settings),
        max_request_body_size=settings.max_request_body_bytes,
    )

    async def check_database() -> str | None:
        import anyio

        if runtime.database is None:
            return "not connected"
        try:
            with anyio.fail_after(DB_PROBE_TIMEOUT_SECONDS):
                async with runtime.database.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure is the answer: not ready, with the reason
            return f"{type(exc).__name__}"
        return None

    async def task_counts() -> Mapping[str, int]:
        if runtime.uow is None:
            return {}

        async def count(repos: Repositories) -> Mapping[str, int]:
            return await repos.tasks.count_all_by_status()

        return await runtime.uow.run(count, write=False)

    def pool_stats() -> tuple[int, int, int]:
        if runtime.database is None:
            return (0, 0, 0)
        usage = runtime.database.pool_usage()
        return (usage.checked_out, usage.idle, usage.overflow)

    probes = Probes(
        reboot=reboot,
        metrics=metrics,
        check_database=check_database,
        task_counts=task_counts,
        pool_stats=pool_stats,
        version=version,
    )
    app = Starlette(
        routes=[*build_routes(probes), Mount("/", app=mcp_app)],
        middleware=[Middleware(HttpMetricsMiddleware, metrics=metrics)],
        lifespan=build_lifespan(runtime, server),
    )
    app.state.runtime = runtime
    app.state.server = server
    return app
