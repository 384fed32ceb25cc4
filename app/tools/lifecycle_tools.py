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

    @server.tool(name="orchestrator_health_check", title="Health check", annotations=READ)
    async def health_check(
        include_reboot_readiness: Annotated[bool, Field(description="Add service state and monitors.")] = True,
        include_connection_status: Annotated[bool, Field(description="Add calls in flight and the pool.")] = True,
        include_database_status: Annotated[bool, Field(description="Add a database round trip.")] = True,
    ) -> HealthReport:
        """Is this server process healthy? Returns healthy and each check with its reason, also while
        draining. Next: orchestrator_restart_server (admin) if not."""
        return await holder.lifecycle.health_check(
            include_reboot_readiness=include_reboot_readiness,
            include_connection_status=include_connection_status,
            include_database_status=include_database_status,
        )

    @server.tool(name="orchestrator_restart_server", title="Restart (admin)", annotations=CONTROL)
    async def restart_server(
        ctx: Context,
        graceful: Annotated[bool, Field(description="Wait up to timeout for calls in flight (else cancel).")] = True,
        preserve_state: Annotated[bool, Field(description="false also releases every claim.")] = True,
        timeout: Annotated[float, Field(ge=10, le=300, description="Drain wait in seconds.")] = 30,
        reason: Annotated[RestartReason, Field(description="Why (recorded).")] = "manual_request",
        agent: s.AgentName = None,
    ) -> RestartResult:
        """Admin: restart the service's components in this process (drain, rebuild, start) and answer when
        done or failed. Calls meanwhile get a retryable unavailable. Follow with orchestrator_restart_status."""
        return await holder.lifecycle.restart(
            resolve_caller(ctx, agent), graceful=graceful, preserve_state=preserve_state, timeout=timeout, reason=reason
        )

    @server.tool(name="orchestrator_restart_status", title="Restart status", annotations=READ)
    async def restart_status(
        include_history: Annotated[bool, Field(description="Add recent restarts.")] = False,
    ) -> RestartStatus:
        """Follow a restart: the state, the restart in progress and the last outcome. Next:
        orchestrator_reconnect_test."""
        return await holder.lifecycle.restart_status(include_history=include_history)

    @server.tool(name="orchestrator_shutdown_prepare", title="Prepare shutdown (admin)", annotations=CONTROL)
    async def shutdown_prepare(
        ctx: Context,
        check_active_tasks: Annotated[bool, Field(description="Count live claims.")] = True,
        check_database_state: Annotated[bool, Field(description="Count open transactions.")] = True,
        check_client_connections: Annotated[bool, Field(description="Count calls and MCP sessions.")] = True,
        begin_drain: Annotated[bool, Field(description="Stop taking calls (preStop hook).")] = False,
        agent: s.AgentName = None,
    ) -> ShutdownReport:
        """Admin, before stopping this process: returns ready_for_shutdown and the blocking issues. Next:
        stop it, or orchestrator_restart_server."""
        return await holder.lifecycle.shutdown_prepare(
            resolve_caller(ctx, agent),
            check_active_tasks=check_active_tasks,
            check_database_state=check_database_state,
            check_client_connections=check_client_connections,
            begin_drain=begin_drain,
            own_session_id=_session_header(ctx),
        )

    @server.tool(name="orchestrator_reconnect_test", title="Test a reconnect", annotations=READ)
    async def reconnect_test(
        ctx: Context,
        session_id: Annotated[
            str | None,
            Field(max_length=64, pattern=r"^sess_[0-9a-f]{16}$", description="Only claims here (default: all)."),
        ] = None,
        agent: s.AgentName = None,
    ) -> ReconnectReport:
        """After a reconnect: who you are, which process answered, a database round trip, and the tasks
        you still hold. Next: orchestrator_resume_session."""
        return await holder.lifecycle.reconnect_test(
            resolve_caller(ctx, agent),
            session_id=session_id,
            protocol_version=ctx.protocol_version,
            mcp_session_id=_session_header(ctx),
        )
