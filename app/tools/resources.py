"""The server's resources (DESIGN §4.6): a session's board and a task with its artifacts' metadata, as JSON.

``orchestrator://sessions/{id}`` is the board (counts, ready queue, claims, what waits and why);
``orchestrator://tasks/{id}`` the TaskView with its artifacts' metadata. ``resources/list`` lists the
caller's active sessions (``OrchestratorMCP``). An unknown id is the spec's resource-not-found error
(-32602); reads need the ``tasks:read`` scope, like the read tools.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import INVALID_REQUEST, Resource
from pydantic import BaseModel

from app import errors
from app.auth import identity
from app.services.caller import SCOPE_READ
from app.services.views import SessionView
from app.tools import content_gate
from app.tools.holder import ServiceHolder

SESSION_URI = "orchestrator://sessions/{session_id}"
TASK_URI = "orchestrator://tasks/{task_id}"
JSON = "application/json"


def register(server: MCPServer, holder: ServiceHolder) -> None:
    @server.resource(
        SESSION_URI,
        name="session_board",
        title="Session board",
        description="A session's counts, ready queue, claims and waiting tasks (with why).",
        mime_type=JSON,
    )
    async def session_board(session_id: str, ctx: Context) -> str:
        return await read_json(server, holder, ctx, lambda: holder.services.session_overview.session_board(session_id))

    @server.resource(
        TASK_URI,
        name="task",
        title="Task",
        description="A task (TaskView) with its artifacts' metadata.",
        mime_type=JSON,
    )
    async def task(task_id: str, ctx: Context) -> str:
        return await read_json(server, holder, ctx, lambda: holder.services.queries.read_task(task_id))


async def read_json(
    server: MCPServer, holder: ServiceHolder, ctx: Context, read: Callable[[], Awaitable[BaseModel]]
) -> str:
    """A read's result as JSON, once the caller may read and is admitted like a tool call
    (``content_gate``); an unknown id is resource-not-found."""
    require_read(server)
    async with content_gate.admitted(holder, ctx):
        try:
            found = await read()
        except errors.NotFound as exc:
            raise ResourceNotFoundError(exc.message) from None
    return found.model_dump_json()


def require_read(server: MCPServer) -> None:
    """Resources follow the read tools' scope (``tasks:read``)."""
    granted = identity.granted_scopes(auth_enabled=server.settings.auth is not None)
    if SCOPE_READ not in granted:
        raise MCPError(code=INVALID_REQUEST, message=f"Reading resources needs the '{SCOPE_READ}' scope.")


def session_resource(session: SessionView) -> Resource:
    """How one of the caller's sessions appears in ``resources/list``."""
    return Resource(
        uri=SESSION_URI.format(session_id=session.id),
        name=session.name,
        title=f"Session {session.name}",
        description=f"Board of session {session.id}"
        + (f" ({session.working_directory})" if session.working_directory else ""),
        mime_type=JSON,
    )
