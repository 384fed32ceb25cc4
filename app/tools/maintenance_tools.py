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
    @server.tool(name="orchestrator_maintenance_coordinator", title="Maintain the task graph", annotations=DESTRUCTIVE)
    async def maintenance_coordinator(
        ctx: Context,
        action: Annotated[
            Literal["scan_cleanup", "validate_structure", "update_documentation", "prepare_handover"],
            Field(
                description="scan_cleanup: find and fix expired claims, in_progress tasks without a holder, stale "
                "holders and old idempotency records (stale pending work is reported only); validate_structure: "
                "read-only check of the graph, each issue with a fix; update_documentation: store a Markdown "
                "progress report (report artifact); prepare_handover: store a handover document (handover "
                "artifact) that orchestrator_resume_session returns."
            ),
        ],
        scope: Annotated[
            Literal["current_session", "full_project", "specific_subtask"],
            Field(description="current_session (or session_id), every session, or the subtree of target_task_id."),
        ] = "current_session",
        validation_level: Annotated[
            Literal["basic", "comprehensive", "full_audit"],
            Field(
                description="validate_structure only. comprehensive adds parent cycles, cross-session edges, "
                "dependencies that cannot complete and artifact digests; full_audit also the schema revision and "
                "the event log against the rows."
            ),
        ] = "basic",
        target_task_id: Annotated[
            s.TaskId | None, Field(description="Required with scope=specific_subtask: the subtree's root.")
        ] = None,
        session_id: s.SessionId = None,
        dry_run: Annotated[
            bool, Field(description="Report what would change without changing anything (documents are not stored).")
        ] = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> MaintenanceResult:
        """Maintain the task graph: fix stuck claims, validate the structure, or write a progress report or a
        handover. Returns found, fixed, issues (each with severity, task ids and how to fix) and the stored
        artifact. Errors: invalid_argument (target_task_id missing for specific_subtask), not_found."""
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
