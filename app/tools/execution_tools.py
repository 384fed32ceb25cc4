"""MCP adapters for the execution tools (DESIGN §4.2): claim, hand back, roll up, and look at the board.
Thin: the signature is the input schema, the return annotation the output schema; each adapter resolves
the caller and calls one service method."""

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from app.auth.identity import resolve_caller
from app.services.sessions.status import StatusResult
from app.services.views import ArtifactKindName
from app.services.work.briefs import ExecuteTaskResult, NextTaskResult
from app.services.work.completion import CompleteTaskResult
from app.services.work.synthesis import SynthesizeResult
from app.tools import schemas as s
from app.tools.holder import ServiceHolder
from app.tools.task_tools import READ, WRITE

LeaseSeconds = Annotated[
    int | None,
    Field(
        ge=30,
        le=86400,
        description="Claim seconds (default 900); renew with execute_task.",
    ),
]
NextActionName = Annotated[
    Literal["continue", "needs_revision", "blocked", "complete"],
    Field(
        description="complete: done; continue: done, and list next ready tasks; needs_revision: back to the "
        "queue (releases the claim); blocked: cannot go on (summary says why)."
    ),
]


def register(server: MCPServer, holder: ServiceHolder) -> None:  # one adapter per tool
    @server.tool(name="orchestrator_execute_task", title="Claim a task", annotations=WRITE)
    async def execute_task(
        ctx: Context,
        task_id: s.TaskId,
        lease_seconds: LeaseSeconds = None,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> ExecuteTaskResult:
        """Claim a chosen ready task (or renew your claim); returns its brief (task, claim, specialist prompt,
        dependency results, instructions). Finish with orchestrator_complete_task; release with
        update_task status=pending."""
        return await holder.services.execution.execute_task(
            resolve_caller(ctx, agent), task_id, lease_seconds=lease_seconds, request_id=request_id
        )

    @server.tool(name="orchestrator_next_task", title="Claim next task", annotations=WRITE)
    async def next_task(
        ctx: Context,
        session_id: s.SessionId = None,
        specialist_type: Annotated[s.SpecialistList, Field(description="Only tasks for these specialists.")] = [],  # noqa: B006  # the SDK copies defaults per call via pydantic
        lease_seconds: LeaseSeconds = None,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=holder.settings.max_wait_seconds,
                description="When nothing is ready, wait up to this many seconds for a task and claim it "
                "(0: answer at once). Cheaper than calling again: the server wakes you when work appears.",
            ),
        ] = 0,
    ) -> NextTaskResult:
        """The work loop's step: claims the best ready task (priority, due date, age) and returns its brief as
        orchestrator_execute_task does; do it, then orchestrator_complete_task. Nothing ready: {task: null,
        reason}; pass wait_seconds (e.g. 60) to wait for work instead of polling."""
        return await holder.services.execution.next_task(
            resolve_caller(ctx, agent),
            session_id=session_id,
            specialist_types=list(specialist_type),
            lease_seconds=lease_seconds,
            request_id=request_id,
            wait_seconds=wait_seconds,
        )

    @server.tool(name="orchestrator_complete_task", title="Complete a task", annotations=WRITE)
    async def complete_task(
        ctx: Context,
        task_id: s.TaskId,
        summary: Annotated[
            str, Field(min_length=1, max_length=5000, description="One paragraph: what was done, or why not.")
        ],
        detailed_work: Annotated[
            str,
            Field(
                min_length=1,
                # Characters never outnumber UTF-8 bytes: the byte bound is checked by the service.
                max_length=holder.settings.max_artifact_bytes,
                description=f"The full result, stored as an artifact: at most "
                f"{holder.settings.max_artifact_bytes:,} bytes of UTF-8.",
            ),
        ],
        next_action: NextActionName,
        file_paths: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=1024)]],
            Field(max_length=500, description="Files you changed."),
        ] = [],  # noqa: B006
        artifact_type: Annotated[ArtifactKindName, Field(description="Kind of the artifact.")] = "general",
        force: s.Force = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> CompleteTaskResult:
        """Hand back a task: stores the work and completes it, releases it (needs_revision) or blocks it.
        Returns {task, artifact, unblocked, next_ready}. Next: orchestrator_next_task."""
        return await holder.services.completion.complete_task(
            resolve_caller(ctx, agent),
            task_id,
            summary=summary,
            detailed_work=detailed_work,
            next_action=next_action,
            file_paths=file_paths,
            artifact_type=artifact_type,
            force=force,
            request_id=request_id,
        )

    @server.tool(name="orchestrator_synthesize_results", title="Roll up subtasks", annotations=WRITE)
    async def synthesize_results(
        ctx: Context,
        parent_task_id: Annotated[s.TaskId, Field(description="The parent task.")],
        complete_parent: Annotated[bool, Field(description="Complete the parent if all subtasks ended.")] = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> SynthesizeResult:
        """When a parent's subtasks are done: rolls them up (outcomes, failures, artifacts, recommendations)
        into a synthesis artifact; complete_parent=true completes the parent. Next: orchestrator_next_task."""
        return await holder.services.synthesis.synthesize_results(
            resolve_caller(ctx, agent), parent_task_id, complete_parent=complete_parent, request_id=request_id
        )

    @server.tool(name="orchestrator_get_status", title="Session board", annotations=READ)
    async def get_status(
        ctx: Context,
        session_id: s.SessionId = None,
        include_completed: Annotated[bool, Field(description="Add recently completed tasks.")] = False,
        include_performance_metrics: Annotated[bool, Field(description="Add per-tool latency.")] = False,
        include_resource_usage: Annotated[bool, Field(description="Add process memory and CPU.")] = False,
        agent: s.AgentName = None,
    ) -> StatusResult:
        """See where the session stands — a board, not a dump: counts, the ready queue's top, the first
        claims and blocked tasks (with why), and the service's health; full lists: orchestrator_query_tasks.
        Next: orchestrator_next_task."""
        return await holder.services.status.get_status(
            resolve_caller(ctx, agent),
            session_id=session_id,
            include_completed=include_completed,
            include_performance_metrics=include_performance_metrics,
            include_resource_usage=include_resource_usage,
        )
