"""The composition root: ``create_app(settings)`` builds every part and wires them; nothing else does.

Nothing is built at import time. Each call makes a fresh Metrics registry, RebootManager, MCP server and
Starlette app, so tests can run many apps side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from app.auth.bearer import BearerAuth, build_bearer_auth, resource_metadata_routes
from app.auth.exposure import check_exposure
from app.board.access import BoardAccess
from app.board.cookie import CookieSigner
from app.board.feed import BoardFeed
from app.board.routes import BoardParts, build_board_routes
from app.db.repositories import Repositories
from app.domain.clock import Clock, SystemClock
from app.http.client_disconnect import ClientDisconnectMiddleware
from app.http.middleware import (
    HttpMetricsMiddleware,
    RequestBodyTimeoutMiddleware,
    RequestTracker,
    RequestTrackingMiddleware,
)
from app.http.routes import Probes, build_routes
from app.http.session_limits import install_session_quota
from app.http.tool_list_replay import install_tool_list_replay
from app.lifespan import Runtime, assembler, build_lifespan
from app.observability.metrics import Metrics, WaitingMetrics
from app.runtime.component_stack import ComponentStack
from app.runtime.lifecycle import Lifecycle
from app.runtime.monitors import Monitor
from app.runtime.reboot_manager import RebootManager
from app.runtime.restart import RestartDriver
from app.runtime.serving import CONNECTION_CLOSE_TIMEOUT_SECONDS, close_sessions, live_session_ids
from app.runtime.system_events import SystemEventLog
from app.runtime.work_signals import ChangeRouter
from app.services.work.waiting import WorkWaiters
from app.settings import Settings
from app.tools import change_feed
from app.tools.holder import ServiceHolder
from app.tools.server import build_server


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


def create_app(settings: Settings, *, clock: Clock | None = None, monitors: Sequence[Monitor] = ()) -> Starlette:
    """The whole service for these settings.

    Raises:
        SettingsError: the configuration is unsafe or unusable (an exposed bind without auth or allowed
            hosts, a malformed tokens file, incomplete JWT settings), naming what to set.
    """
    check_exposure(settings)
    bearer = build_bearer_auth(settings)
    version = server_version()
    metrics = Metrics(version)
    reboot = RebootManager()
    holder = ServiceHolder(settings, reboot, metrics)
    runtime = Runtime(settings=settings, holder=holder, clock=clock or SystemClock(), extra_monitors=list(monitors))
    components = ComponentStack(
        settings,
        reboot,
        runtime.clock,
        assemble=assembler(runtime),
        disassemble=lambda: holder.install(None),
        errors_sink=metrics,
    )
    runtime.components = components
    holder.schema_owed = lambda: components.schema_owed  # no call on a schema nobody has checked
    # Waiting for work and the change feed (§4.7): one router per process, fed after every commit.
    runtime.waiting_metrics = WaitingMetrics(metrics)
    runtime.signals = ChangeRouter(WorkWaiters(runtime.waiting_metrics), reboot.instance_id)
    feed = change_feed.ChangeFeed(
        lambda: live_session_ids(server.session_manager),
        max_subscriptions_per_session=settings.max_subscriptions_per_session,
    )
    runtime.change_feed = feed
    runtime.signals.add_consumer(feed.on_change)
    server = build_server(
        holder,
        version=version,
        token_verifier=bearer.verifier if bearer else None,
        auth=bearer.settings if bearer else None,
        subscriptions=feed.bus,
    )
    change_feed.register(server, feed)
    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=settings.stateless_http,
        json_response=True,
        transport_security=transport_security(settings),
        max_request_body_size=settings.request_body_limit,
        session_idle_timeout=settings.session_idle_seconds,
    )
    tool_list_replay = install_tool_list_replay(server.session_manager)  # a repeated 2026-07-28 tools/list
    if not settings.stateless_http:
        install_session_quota(server.session_manager, max_per_principal=settings.max_sessions_per_principal)

    events = SystemEventLog(components, runtime.clock)
    holder.lifecycle = Lifecycle(
        reboot,
        components,
        events,
        RestartDriver(reboot, components, events, runtime.clock, metrics),
        version=version,
        mcp_session_ids=lambda: live_session_ids(server.session_manager),
    )

    async def task_counts() -> Mapping[str, int] | None:
        if runtime.uow is None:
            return None

        async def count(repos: Repositories) -> Mapping[str, int]:
            return await repos.tasks.count_all_by_status()

        return await runtime.uow.run(count, write=False)

    def pool_stats() -> Mapping[str, int]:
        return runtime.database.pool_stats() if runtime.database is not None else {}

    probes = Probes(
        reboot=reboot,
        metrics=metrics,
        check_database=components.probe_database,
        task_counts=task_counts,
        pool_stats=pool_stats,
        version=version,
    )
    requests = RequestTracker()
    app = Starlette(
        routes=[
            *build_routes(probes),
            *(resource_metadata_routes(bearer.settings) if bearer else []),
            *board_routes(settings, runtime, bearer),
            Mount("/", app=mcp_app),
        ],
        middleware=[
            Middleware(HttpMetricsMiddleware, metrics=metrics),
            Middleware(RequestBodyTimeoutMiddleware, timeout=settings.request_body_timeout_seconds),
            Middleware(RequestTrackingMiddleware, tracker=requests),
            Middleware(ClientDisconnectMiddleware),
        ],
        lifespan=build_lifespan(runtime, server),
    )

    async def before_shutdown() -> None:
        # After the drain: let the answers still on their way leave, then end the legacy sessions so
        # their open streams close and uvicorn need not wait for them.
        await requests.wait_idle(CONNECTION_CLOSE_TIMEOUT_SECONDS)
        await close_sessions(server.session_manager)

    app.state.runtime = runtime
    app.state.server = server
    app.state.tool_list_replay = tool_list_replay
    app.state.before_shutdown = before_shutdown
    return app


def board_routes(settings: Settings, runtime: Runtime, bearer: BearerAuth | None) -> list[BaseRoute]:
    """The supervisors' board at /board (issue 16), behind the same auth and Host/Origin checks as /mcp;
    nothing with ``ORCHESTRATOR_BOARD=false``."""
    if not settings.board:
        return []
    secret = settings.board_secret.get_secret_value().encode("utf-8") if settings.board_secret else None
    access = BoardAccess(
        bearer.verifier if bearer else None,
        transport_security(settings),
        CookieSigner(secret, settings.board_session_seconds),
        https=settings.resolved_public_url.startswith("https://"),
    )
    assert runtime.signals is not None, "create_app builds the change router before the routes"
    parts = BoardParts(
        uow=lambda: runtime.uow,
        clock=runtime.clock,
        reboot=runtime.holder.reboot,
        access=access,
        feed=BoardFeed(runtime.signals),  # the change feed (§4.7): every replica's changes, no polling
    )
    return build_board_routes(parts)
