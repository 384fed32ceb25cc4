"""MCP adapters for session tools. Thin: validate by signature, call one service method, return its model."""

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from app.auth.identity import resolve_caller
from app.services.sessions import InitializeSessionResult
from app.tools.holder import ServiceHolder
from app.tools.schemas import AgentName


def register(server: MCPServer, holder: ServiceHolder) -> None:
    @server.tool(
        name="orchestrator_initialize_session",
        title="Start or resume a session",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def initialize_session(
        ctx: Context,
        working_directory: Annotated[
            str | None,
            Field(min_length=1, max_length=1024, description="The project directory; its active session is resumed."),
        ] = None,
        name: Annotated[str | None, Field(min_length=1, max_length=200, description="Name for a new session.")] = None,
        description: Annotated[str | None, Field(max_length=5000)] = None,
        new_session: Annotated[
            bool, Field(description="Start a new session even if one is active for this directory.")
        ] = False,
        agent: AgentName = None,
    ) -> InitializeSessionResult:
        """Call this first. Returns the active session for the working directory (resumed: true) or creates
        one, and makes it your current session so later tools may omit session_id."""
        return await holder.services.sessions.initialize_session(
            resolve_caller(ctx, agent),
            working_directory=working_directory,
            name=name,
            description=description,
            new_session=new_session,
        )
