"""Builds the MCPServer: registers every tool family and wraps each call in the edge's policies.

``OrchestratorMCP.call_tool`` is the seam the SDK offers (MCP-SDK-NOTES §16): every call passes the
RebootManager's gate (counted while in flight, refused with ``unavailable`` while not ready), is timed
into the metrics, logged as one line, and any failure comes back as a structured ``isError`` result.
``list_tools`` widens each output schema so it also admits the error envelope, and writes its optional
fields in the compact form clients validate faster (``schema_compaction``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import Tool as MCPTool

from app.tools import boundary, schema_compaction, session_tools, task_tools
from app.tools.holder import ServiceHolder

log = logging.getLogger("app.tools")
# Each tool family module has ``register(server, holder)``; add a family by adding it here.
TOOL_FAMILIES = (session_tools, task_tools)

INSTRUCTIONS = """\
A shared task graph for many agents. Start with orchestrator_initialize_session (pass your working
directory); plan work with orchestrator_plan_task; find work with orchestrator_query_tasks. Pass a stable,
unique `agent` name on writes when several agents share one client or token, and a `request_id` when you
may retry. Errors come back as {"error": {code, message, field, ...}}: read the message, it says what to do.
"""


class OrchestratorMCP(MCPServer[Any]):
    """MCPServer with the orchestrator's call gate, metrics, logs and error envelope."""

    def __init__(self, holder: ServiceHolder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.holder = holder

    async def list_tools(self) -> list[MCPTool]:
        tools = await super().list_tools()
        return [
            tool.model_copy(
                update={"output_schema": boundary.with_error_envelope(schema_compaction.compact(tool.output_schema))}
            )
            for tool in tools
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None) -> Any:
        tool = name if self._tool_manager.get_tool(name) is not None else "unknown"
        started = time.perf_counter()
        metrics = self.holder.metrics
        code = "ok"
        try:
            async with self.holder.reboot.track_call():
                metrics.tool_in_flight.inc()
                try:
                    return await super().call_tool(name, arguments, context)
                finally:
                    metrics.tool_in_flight.dec()
        except Exception as exc:  # the edge's single boundary: classify, log, answer structurally
            err = boundary.to_orchestrator_error(name, exc)
            code = err.code
            return boundary.error_result(err)
        finally:
            seconds = time.perf_counter() - started
            metrics.tool_call(tool, "ok" if code == "ok" else "error", code, seconds)
            log.info(
                "tool_call",
                extra={
                    "event": "tool_call",
                    "tool": name[:64],
                    "outcome": code,
                    "duration_ms": round(seconds * 1000, 2),
                    "task_id": arguments.get("task_id") if isinstance(arguments.get("task_id"), str) else None,
                    "request_id": arguments.get("request_id") if isinstance(arguments.get("request_id"), str) else None,
                },
            )


def build_server(
    holder: ServiceHolder,
    *,
    version: str,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
) -> OrchestratorMCP:
    server = OrchestratorMCP(
        holder,
        name="task-orchestrator",
        version=version,
        instructions=INSTRUCTIONS,
        token_verifier=token_verifier,
        auth=auth,
    )
    for family in TOOL_FAMILIES:
        family.register(server, holder)
    return server
