"""MCP adapters for the lifecycle and health tools (DESIGN §4.5). Thin: each calls the runtime's Lifecycle.

Health, restart, restart status and shutdown preparation also run while the service drains or restarts
(the gate admits them), so an operator can watch and steer the lifecycle; the reconnect test is a normal
call, answered only when the service is ready.
"""

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from app.auth.identity import resolve_caller
from app.runtime.lifecycle import HealthReport, ReconnectReport, ShutdownReport
from app.runtime.restart import RestartReason, RestartResult, RestartStatus
from app.tools import schemas as s
from app.tools.holder import ServiceHolder

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
CONTROL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
OPERATOR_TOOLS = (
    "orchestrator_health_check",
    "orchestrator_restart_server",
    "orchestrator_restart_status",
    "orchestrator_shutdown_prepare",
)


def _session_header(ctx: Context) -> str | None:
    headers = ctx.headers
    return headers.get("mcp-session-id") if headers is not None else None


def register(server: MCPServer, holder: ServiceHolder) -> None:
    holder.reboot.admit_always(*OPERATOR_TOOLS)

    @server.tool(name="orchestrator_health_check", title="Check the service's health", annotations=READ)
    async def health_check(
        include_reboot_readiness: Annotated[
            bool, Field(description="Include the service state and every monitor's supervision record.")
        ] = True,
        include_connection_status: Annotated[
            bool, Field(description="Include the calls in flight, the connection pool and the database circuit.")
        ] = True,
        include_database_status: Annotated[
            bool, Field(description="Include a live database round trip and the schema revision against head.")
        ] = True,
    ) -> HealthReport:
        """Live health of this server process: healthy is the AND of the checks included, and each check
        that is not ok says why in `reason`. Works while the service drains or restarts."""
        return await holder.lifecycle.health_check(
            include_reboot_readiness=include_reboot_readiness,
            include_connection_status=include_connection_status,
            include_database_status=include_database_status,
        )

    @server.tool(name="orchestrator_restart_server", title="Warm-restart the service (admin)", annotations=CONTROL)
    async def restart_server(
        ctx: Context,
        graceful: Annotated[
            bool,
            Field(
                description="true: wait up to `timeout` for the other calls in flight (then cancel the rest); "
                "false: cancel them now (their changes roll back and their clients get a retryable unavailable)."
            ),
        ] = True,
        preserve_state: Annotated[
            bool, Field(description="false also returns every live claim to pending (agents must claim again).")
        ] = True,
        timeout: Annotated[
            float, Field(ge=10, le=300, description="Seconds the drain waits for the other calls in flight.")
        ] = 30,
        reason: Annotated[RestartReason, Field(description="Why; recorded in the restart history.")] = "manual_request",
        agent: s.AgentName = None,
    ) -> RestartResult:
        """Restart the service's components inside this process (drain, stop monitors, rebuild the database
        engine, check the schema, start monitors) and answer when it is done, or failed (failed_phase says
        where; the service is brought back either way). The process does not exit and MCP sessions are kept.
        Calls made meanwhile get a retryable unavailable. Errors: forbidden (needs admin), unavailable (a
        restart is already running: follow it with orchestrator_restart_status)."""
        return await holder.lifecycle.restart(
            resolve_caller(ctx, agent), graceful=graceful, preserve_state=preserve_state, timeout=timeout, reason=reason
        )

    @server.tool(name="orchestrator_restart_status", title="Restart progress and history", annotations=READ)
    async def restart_status(
        include_history: Annotated[
            bool, Field(description="Also list recent restarts (all replicas) from the system_event history.")
        ] = False,
    ) -> RestartStatus:
        """The service state, the restart in progress (phase, progress 0-1), the last restart's outcome and
        phases, and with include_history the recent restarts. Works while a restart runs."""
        return await holder.lifecycle.restart_status(include_history=include_history)

    @server.tool(
        name="orchestrator_shutdown_prepare", title="Check readiness to shut down (admin)", annotations=CONTROL
    )
    async def shutdown_prepare(
        ctx: Context,
        check_active_tasks: Annotated[bool, Field(description="Count live task claims.")] = True,
        check_database_state: Annotated[
            bool, Field(description="Count open transactions and checked-out database connections.")
        ] = True,
        check_client_connections: Annotated[
            bool, Field(description="Count other tool calls in flight and live legacy MCP sessions.")
        ] = True,
        begin_drain: Annotated[
            bool,
            Field(
                description="Turn readiness off and refuse new calls (a preStop hook); undo with "
                "orchestrator_restart_server."
            ),
        ] = False,
        agent: s.AgentName = None,
    ) -> ShutdownReport:
        """Real numbers for deciding whether this process can stop now: ready_for_shutdown is true when no
        check found a blocking issue. Counts leave out this call and its own MCP session.
        Errors: forbidden (needs admin)."""
        return await holder.lifecycle.shutdown_prepare(
            resolve_caller(ctx, agent),
            check_active_tasks=check_active_tasks,
            check_database_state=check_database_state,
            check_client_connections=check_client_connections,
            begin_drain=begin_drain,
            own_session_id=_session_header(ctx),
        )

    @server.tool(name="orchestrator_reconnect_test", title="Prove the connection after a restart", annotations=READ)
    async def reconnect_test(
        ctx: Context,
        session_id: Annotated[
            str | None,
            Field(
                max_length=64,
                pattern=r"^sess_[0-9a-f]{16}$",
                description="List only your claims in this session; omit it for your claims in every session.",
            ),
        ] = None,
        agent: s.AgentName = None,
    ) -> ReconnectReport:
        """Call after a restart or reconnect: echoes the protocol version and MCP session you are on, who you
        are, which server process answered (server_instance_id changes only when the process restarts), a
        database round trip, and the tasks you still hold. Errors: not_found (session), unavailable (retry)."""
        return await holder.lifecycle.reconnect_test(
            resolve_caller(ctx, agent),
            session_id=session_id,
            protocol_version=ctx.protocol_version,
            mcp_session_id=_session_header(ctx),
        )
