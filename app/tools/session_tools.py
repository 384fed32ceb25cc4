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
from app.tools.schemas import AgentName, Limit, Offset, RequestId, SessionId

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


def register(server: MCPServer, holder: ServiceHolder) -> None:
    @server.tool(
        name="orchestrator_initialize_session",
        title="Start a session",
        # Not idempotent: new_session=true twice makes two sessions (a client must not retry it blindly).
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def initialize_session(
        ctx: Context,
        working_directory: Annotated[
            str | None,
            Field(min_length=1, max_length=1024, description="Your project directory; its session is resumed."),
        ] = None,
        name: Annotated[str | None, Field(min_length=1, max_length=200, description="Name for a new session.")] = None,
        description: Annotated[str | None, Field(max_length=5000, description="What it is for.")] = None,
        new_session: Annotated[bool, Field(description="Start a new one even if one is active.")] = False,
        agent: AgentName = None,
    ) -> InitializeSessionResult:
        """Call first, with your agent name: joins the directory's active session or starts one, and makes it
        your current session. Returns {session, resumed, counts}. Next: orchestrator_next_task."""
        return await holder.services.sessions.initialize_session(
            resolve_caller(ctx, agent),
            working_directory=working_directory,
            name=name,
            description=description,
            new_session=new_session,
        )

    @server.tool(name="orchestrator_list_sessions", title="List sessions", annotations=READ)
    async def list_sessions(
        include_completed: Annotated[bool, Field(description="Also completed and archived sessions.")] = False,
        working_directory: Annotated[
            str | None, Field(min_length=1, max_length=1024, description="Only this directory's.")
        ] = None,
        limit: Annotated[Limit, Field(le=200)] = 10,
        offset: Offset = 0,
    ) -> ListSessionsResult:
        """Sessions, most recently active first, with task counts. Returns {sessions, total_count}. Next:
        orchestrator_resume_session."""
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
        ctx: Context, session_id: SessionId = None, agent: AgentName = None
    ) -> ResumeSessionResult:
        """Pick up after a restart or hand-off: makes the session current; returns held (briefs of your
        claims), in_progress, waiting (and why), blocked, ready_next, recent_events, latest_handover."""
        return await holder.services.session_overview.resume_session(resolve_caller(ctx, agent), session_id)

    @server.tool(name="orchestrator_session_status", title="Session status", annotations=READ)
    async def session_status(
        ctx: Context, session_id: SessionId = None, agent: AgentName = None
    ) -> SessionStatusResult:
        """Progress of a session: counts, progress_ratio (finished/all) and the active agents with what they
        hold. For the queue itself use orchestrator_get_status."""
        return await holder.services.session_overview.session_status(resolve_caller(ctx, agent), session_id)

    @server.tool(name="orchestrator_cleanup_sessions", title="Clean up sessions", annotations=DESTRUCTIVE)
    async def cleanup_sessions(
        ctx: Context,
        cleanup_type: Annotated[
            Literal["completed", "orphaned", "old", "all"],
            Field(description="completed: all tasks done; orphaned: no tasks; old: idle older_than_days; all."),
        ] = "completed",
        older_than_days: Annotated[int, Field(ge=0, le=3650, description="Idle age for old/all.")] = 7,
        action: Annotated[
            Literal["archive", "delete"],
            Field(description="archive, or delete for good (admin)."),
        ] = "archive",
        dry_run: Annotated[bool, Field(description="true: only list what would change.")] = True,
        request_id: RequestId = None,
        agent: AgentName = None,
    ) -> CleanupSessionsResult:
        """Tidy up finished, empty or idle sessions (archive or delete). Returns {dry_run, matched,
        changed_count}. Next: the same call with dry_run=false."""
        return await holder.services.session_cleanup.cleanup_sessions(
            resolve_caller(ctx, agent),
            cleanup_type=cleanup_type,
            older_than_days=older_than_days,
            action=action,
            dry_run=dry_run,
            request_id=request_id,
        )
