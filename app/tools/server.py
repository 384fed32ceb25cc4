"""Builds the MCPServer: registers every tool family and wraps each call in the edge's policies.

``OrchestratorMCP.call_tool`` is the seam the SDK offers (MCP-SDK-NOTES §16): every call passes the
caller's scope check (``app.auth.scopes``: the scope the tool and its arguments need, before it runs),
then its actor's fair share (``fair_share``: call rate and calls in flight), then the RebootManager's
gate (counted while in flight, refused with ``unavailable`` while not ready), is timed into the metrics,
logged as one line with its actor, and any failure comes back as a structured ``isError`` result.
``list_tools`` widens each output schema so it also admits the error envelope, and closes each input
schema (unknown arguments are refused, not silently dropped), and writes optional output fields in the
compact form clients validate faster (``schema_compaction``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import anyio
from mcp import MCPError
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.inbound import x_mcp_header_map
from mcp.types import (
    INVALID_PARAMS,
    GetPromptResult,
    InputRequiredResult,
    ListResourcesResult,
    PaginatedRequestParams,
)
from mcp.types import Tool as MCPTool

from app.auth import identity, scopes
from app.domain import json_bounds
from app.observability.logging import log_context
from app.services import idempotency
from app.tools import (
    boundary,
    content_gate,
    execution_tools,
    input_hygiene,
    lifecycle_tools,
    maintenance_tools,
    prompts,
    resources,
    schemas,
    session_tools,
    surface,
    task_tools,
)
from app.tools.fair_share import Refused
from app.tools.holder import ServiceHolder
from app.tools.listen_quota import ListenQuota
from app.tools.tool_list_cache import ToolListCache

log = logging.getLogger("app.tools")
AGENT_PATTERN = re.compile(schemas.AGENT_PATTERN)
TASK_ID_PATTERN = re.compile(schemas.TASK_ID_PATTERN)
MAX_AGENT_CHARS = 64
# Each tool family module has ``register(server, holder)``; add a family by adding it here.
TOOL_FAMILIES = (session_tools, task_tools, execution_tools, maintenance_tools, lifecycle_tools)
# Prompts and resources (DESIGN §4.6) register the same way.
CONTENT_FAMILIES = (prompts, resources)

INSTRUCTIONS = """\
A shared task graph for many agents. Start with orchestrator_initialize_session (pass your working
directory); plan work with orchestrator_plan_task; claim work with orchestrator_next_task (or
orchestrator_execute_task for a chosen task) and hand it back with orchestrator_complete_task; see the board
with orchestrator_get_status and find tasks with orchestrator_query_tasks. Pass a stable,
unique `agent` name on writes when several agents share one client or token, and a `request_id` when you
may retry. Errors come back as {"error": {code, message, field, ...}}: read the message, it says what to do.
"""


class OrchestratorMCP(MCPServer[Any]):
    """MCPServer with the orchestrator's call gate, metrics, logs and error envelope."""

    def __init__(self, holder: ServiceHolder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.holder = holder
        self._served_tools: list[MCPTool] | None = None
        self._header_schemas: dict[str, dict[str, Any] | None] = {}
        self.fair_share = holder.fair_share

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        """The schema the SDK checks a 2026-07-28 call's ``Mcp-Param-*`` headers against, or None when the tool
        declares no such header (the SDK's documented answer for "nothing to validate").

        The SDK asks before every ``tools/call`` and walks the whole input schema each time (0.12 ms for
        plan_task's, whose subtasks nest). The verdict depends only on the schema, which does not change
        once registered (the SDK refuses an invalid declaration at registration), so it is worked out once
        per tool.
        """
        if name in self._header_schemas:
            return self._header_schemas[name]
        schema = super()._tool_input_schema(name)
        if schema is None:  # not a tool (yet): nothing to remember
            return None
        self._header_schemas[name] = schema if x_mcp_header_map(schema) else None
        return self._header_schemas[name]

    async def list_tools(self) -> list[MCPTool]:
        """The served tool list (``surface``), built on the first call and then reused: tools are all
        registered when the server is built. Over HTTP the SDK asks for it once per protocol version (then
        ``ToolListCache`` answers from the wire form); in-process callers (``scripts/gen_tools_doc.py``) too."""
        if self._served_tools is None:
            self._served_tools = surface.served(await super().list_tools())
        return self._served_tools

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """An unknown prompt or a bad argument is the caller's mistake (-32602 naming the prompts, or the
        argument and what it allows), not an internal error: checked before the prompt renders."""
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            known = ", ".join(p.name for p in self._prompt_manager.list_prompts())
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt {name[:64]!r}; the prompts are: {known}.")
        resources.require_read(self)
        prompts.check_arguments(name, prompt.arguments, arguments)
        async with content_gate.admitted(self.holder, context):
            return await super().get_prompt(name, arguments, context)

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """``resources/list``: the caller's active sessions, each as its board (DESIGN §4.6)."""
        resources.require_read(self)
        async with content_gate.admitted(self.holder, ctx):
            sessions = await self.holder.services.session_overview.sessions_of(identity.resolve_caller(ctx, None))
        return ListResourcesResult(resources=[resources.session_resource(s) for s in sessions])

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None) -> Any:
        registered = self._tool_manager.get_tool(name)
        tool = name if registered is not None else "unknown"
        started = time.perf_counter()
        metrics = self.holder.metrics
        code = "ok"
        fields = call_log_fields(name[:64], arguments, context)
        with log_context(**fields):
            try:
                if registered is not None:  # an unknown name is answered by the SDK; there is nothing to guard
                    granted = identity.granted_scopes(auth_enabled=self.settings.auth is not None)
                    scopes.check(name, registered.annotations, arguments, granted)
                # Fair share first (DESIGN §7): an actor over its rate or cap is refused before any database work.
                async with self.fair_share.admit(fields["actor"]), self.holder.reboot.track_call(tool):
                    metrics.tool_in_flight.inc()
                    try:
                        if registered is not None:
                            boundary.check_argument_names(registered.parameters, arguments)
                            input_hygiene.check(
                                registered, arguments, max_context_bytes=self.holder.settings.max_context_bytes
                            )
                        with idempotency.bound_arguments(arguments):
                            return await super().call_tool(name, arguments, context)
                    finally:
                        metrics.tool_in_flight.dec()
            except anyio.get_cancelled_exc_class():
                # The client went away (a closed 2026-07-28 stream, a legacy notifications/cancelled) or the
                # process is stopping: nobody receives an answer, and the log and metrics say so.
                code = "cancelled"
                raise
            except Exception as exc:  # the edge's single boundary: classify, log, answer structurally
                err = boundary.to_orchestrator_error(name, exc)
                code = err.code
                if isinstance(exc, Refused) and exc.hold_seconds > 0:
                    await anyio.sleep(exc.hold_seconds)  # a caller ignoring retry_after waits it out here
                return boundary.error_result(err)
            finally:
                seconds = time.perf_counter() - started
                metrics.tool_call(tool, _outcome(code), code, seconds)
                log.info(
                    "tool_call",
                    extra={"event": "tool_call", **fields, "outcome": code, "duration_ms": round(seconds * 1000, 2)},
                )


def _outcome(code: str) -> str:
    """The ``outcome`` label of ``orchestrator_tool_calls_total``: ok, cancelled (nobody got an answer) or error."""
    return code if code in ("ok", "cancelled") else "error"


def call_log_fields(tool: str, arguments: dict[str, Any], context: Context[Any, Any] | None) -> dict[str, Any]:
    """The log context of one call: tool, actor, task id, idempotency key and the JSON-RPC request id.

    Read from the raw arguments before validation, so only well-formed values are taken (an ``agent`` that
    fails its pattern is left out; the call itself will fail with ``invalid_argument``).
    """
    agent = arguments.get("agent")
    if not (isinstance(agent, str) and len(agent) <= MAX_AGENT_CHARS and AGENT_PATTERN.fullmatch(agent)):
        agent = None
    task_id = arguments.get("task_id", arguments.get("parent_task_id"))
    request_id = arguments.get("request_id")
    return {
        "tool": tool,
        "actor": identity.resolve_caller(context, agent).actor,
        "task_id": task_id if isinstance(task_id, str) and TASK_ID_PATTERN.fullmatch(task_id) else None,
        "request_id": json_bounds.printable(request_id[:64]) if isinstance(request_id, str) else None,
        "mcp_request_id": _mcp_request_id(context),
    }


def _mcp_request_id(context: Context[Any, Any] | None) -> str | None:
    if context is None:
        return None
    try:
        return context.request_id[:64]
    except ValueError:  # a Context made outside a request (in-process calls) has no request id
        return None


def build_server(
    holder: ServiceHolder,
    *,
    version: str,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    subscriptions: SubscriptionBus | None = None,
) -> OrchestratorMCP:
    server = OrchestratorMCP(
        holder,
        name="task-orchestrator",
        version=version,
        instructions=INSTRUCTIONS,
        token_verifier=token_verifier,
        auth=auth,
        subscriptions=subscriptions,
        middleware=[
            ToolListCache(),
            ListenQuota(
                holder.settings.max_listen_streams_per_principal,
                max_uris_per_stream=holder.settings.max_subscriptions_per_session,
            ),
        ],
    )
    for family in (*TOOL_FAMILIES, *CONTENT_FAMILIES):
        family.register(server, holder)
    return server
