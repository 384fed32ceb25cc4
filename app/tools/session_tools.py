"""MCP adapters for session tools (DESIGN §4.3). Thin: validate by signature, call one service method,
return its model."""

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from app.auth.identity import resolve_caller
from app.services.sessions.cleanup import CleanupSessionsResult
from app.services.sessions.overview import ListSessionsResult, ResumeSessionResult, SessionStatusResult
from app.services.sessions.sessions import InitializeSessionResult
from app.tools.holder import ServiceHolder
from app.tools.schemas import AgentName, RequestId, RequiredSessionId

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


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

    @server.tool(name="orchestrator_list_sessions", title="List sessions", annotations=READ)
    async def list_sessions(
        include_completed: Annotated[
            bool, Field(description="Also list completed (every task terminal) and archived sessions.")
        ] = False,
        working_directory: Annotated[
            str | None, Field(min_length=1, max_length=1024, description="Only sessions of this directory.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 10,
        offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0,
    ) -> ListSessionsResult:
        """List sessions, most recently active first, each with task counts and last activity; total_count
        counts every match. Resume one with orchestrator_resume_session."""
        return await holder.services.session_overview.list_sessions(
            include_completed=include_completed, working_directory=working_directory, limit=limit, offset=offset
        )

    @server.tool(
        name="orchestrator_resume_session",
        title="Resume a session",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def resume_session(
        ctx: Context, session_id: RequiredSessionId, agent: AgentName = None
    ) -> ResumeSessionResult:
        """Make this session your current one and get what you need to pick up the work: who holds what,
        what is blocked and why, the next ready tasks in next_task order, the events since your last visit
        of this session (recent_events_omitted counts older ones not shown) and the latest handover.
        Errors: not_found (call orchestrator_list_sessions)."""
        return await holder.services.session_overview.resume_session(resolve_caller(ctx, agent), session_id)

    @server.tool(name="orchestrator_session_status", title="Session status", annotations=READ)
    async def session_status(session_id: RequiredSessionId) -> SessionStatusResult:
        """Counts by status and specialist, progress_ratio (terminal tasks / all tasks), the agents active in
        the session with the tasks they hold, and the last activity. Errors: not_found."""
        return await holder.services.session_overview.session_status(session_id)

    @server.tool(name="orchestrator_cleanup_sessions", title="Clean up sessions", annotations=DESTRUCTIVE)
    async def cleanup_sessions(
        ctx: Context,
        cleanup_type: Annotated[
            Literal["completed", "orphaned", "old", "all"],
            Field(
                description="completed: every task terminal; orphaned: no tasks; old: no activity for "
                "older_than_days; all: any of these. Sessions with a live claim are never touched."
            ),
        ] = "completed",
        older_than_days: Annotated[int, Field(ge=0, le=3650, description="Age limit for cleanup_type old/all.")] = 7,
        action: Annotated[
            Literal["archive", "delete"],
            Field(description="archive: the session and its tasks become archived; delete: removed for good."),
        ] = "archive",
        dry_run: Annotated[
            bool, Field(description="true (default): only list what would change; false: do it.")
        ] = True,
        request_id: RequestId = None,
        agent: AgentName = None,
    ) -> CleanupSessionsResult:
        """Archive or delete completed, orphaned or idle sessions. Call with dry_run=true first and check
        `matched`; then dry_run=false applies it. Deleting needs the admin scope."""
        return await holder.services.session_cleanup.cleanup_sessions(
            resolve_caller(ctx, agent),
            cleanup_type=cleanup_type,
            older_than_days=older_than_days,
            action=action,
            dry_run=dry_run,
            request_id=request_id,
        )
