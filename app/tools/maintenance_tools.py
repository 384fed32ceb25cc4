"""MCP adapter for the maintenance coordinator (DESIGN §4.4). Thin: the signature is the input schema."""

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from app.auth.identity import resolve_caller
from app.services.maintenance.coordinator import MaintenanceRequest, MaintenanceResult
from app.tools import schemas as s
from app.tools.holder import ServiceHolder

DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


def register(server: MCPServer, holder: ServiceHolder) -> None:
    @server.tool(name="orchestrator_maintenance_coordinator", title="Maintenance", annotations=DESTRUCTIVE)
    async def maintenance_coordinator(
        ctx: Context,
        action: Annotated[
            Literal["scan_cleanup", "validate_structure", "update_documentation", "prepare_handover"],
            Field(
                description="scan_cleanup: fix stuck claims; validate_structure: check the graph (read-only); "
                "update_documentation: store a progress report; prepare_handover: store a handover."
            ),
        ],
        scope: Annotated[
            Literal["current_session", "full_project", "specific_subtask"],
            Field(description="The session, every session, or target_task_id's subtree."),
        ] = "current_session",
        validation_level: Annotated[
            Literal["basic", "comprehensive", "full_audit"], Field(description="Depth of validate_structure.")
        ] = "basic",
        target_task_id: Annotated[s.TaskId | None, Field(description="Root for specific_subtask.")] = None,
        session_id: s.SessionId = None,
        dry_run: Annotated[bool, Field(description="Report only; change and store nothing.")] = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> MaintenanceResult:
        """Keep the graph healthy: fix stuck claims, validate it, or store a progress report or a handover
        (orchestrator_resume_session returns it). Returns {found, fixed, issues (each with a fix), artifact}."""
        return await holder.services.maintenance.maintenance_coordinator(
            resolve_caller(ctx, agent),
            MaintenanceRequest(
                action=action,
                scope=scope,
                validation_level=validation_level,
                target_task_id=target_task_id,
                session_id=session_id,
                dry_run=dry_run,
            ),
            request_id=request_id,
        )
