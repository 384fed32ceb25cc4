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
        description="How long the claim lasts before it returns to the queue unless renewed (seconds); "
        "default: the server's ORCHESTRATOR_LEASE_SECONDS (900).",
    ),
]
NextActionName = Annotated[
    Literal["continue", "needs_revision", "blocked", "complete"],
    Field(
        description="complete: done. continue: done, and also return the next ready tasks. needs_revision: "
        "send it back to the queue with summary as the revision note. blocked: cannot go on; summary is the "
        "reason."
    ),
]


def register(server: MCPServer, holder: ServiceHolder) -> None:  # one adapter per tool
    @server.tool(name="orchestrator_execute_task", title="Claim a task and get its brief", annotations=WRITE)
    async def execute_task(
        ctx: Context,
        task_id: s.TaskId,
        lease_seconds: LeaseSeconds = None,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> ExecuteTaskResult:
        """Claim a ready task (or renew your own claim) and get everything needed to do it: the specialist
        role, a ready-made Markdown prompt, the results of its dependencies and concrete instructions.
        Errors: dependencies_unmet (the 'blocking' list says which tasks must complete first),
        claimed_by_other (someone else holds it until lease_expires_at: pick another with
        orchestrator_next_task), invalid_transition (it is not pending, e.g. blocked or completed)."""
        return await holder.services.execution.execute_task(
            resolve_caller(ctx, agent), task_id, lease_seconds=lease_seconds, request_id=request_id
        )

    @server.tool(name="orchestrator_next_task", title="Claim the best ready task", annotations=WRITE)
    async def next_task(
        ctx: Context,
        session_id: s.SessionId = None,
        specialist_type: Annotated[
            s.SpecialistList, Field(description="Only consider tasks for these specialists (empty: any).")
        ] = [],  # noqa: B006  # the SDK copies defaults per call via pydantic
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
        """Atomically find and claim the best ready task of the session (highest priority, then earliest due
        date, then oldest) and get its brief, exactly like orchestrator_execute_task. When nothing is ready
        the result is {task: null, reason} and the reason says what the queue is waiting for. Pass
        wait_seconds (e.g. 60) to wait for work instead of polling; reason "draining": call again shortly."""
        return await holder.services.execution.next_task(
            resolve_caller(ctx, agent),
            session_id=session_id,
            specialist_types=list(specialist_type),
            lease_seconds=lease_seconds,
            request_id=request_id,
            wait_seconds=wait_seconds,
        )

    @server.tool(name="orchestrator_complete_task", title="Hand back work on a task", annotations=WRITE)
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
                max_length=1_000_000,
                description="The full result (code, report, findings), stored as an artifact in the database.",
            ),
        ],
        next_action: NextActionName,
        file_paths: Annotated[
            list[Annotated[str, Field(min_length=1, max_length=1024)]],
            Field(max_length=500, description="Files you created or changed."),
        ] = [],  # noqa: B006
        artifact_type: Annotated[ArtifactKindName, Field(description="The kind of the stored artifact.")] = "general",
        force: s.Force = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> CompleteTaskResult:
        """Store your work on a task and move it on, in one transaction. complete/continue mark it completed
        and return the dependents that became ready ('unblocked'); continue also lists the next ready tasks.
        A pending, ready task may be completed without claiming it first. Errors: claimed_by_other (another
        agent holds it), dependencies_unmet, not_claimed (needs_revision on a task nobody works on),
        invalid_transition (already completed, or blocked). Pass request_id so a retry after a lost response
        returns the first result instead of storing the work twice."""
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

    @server.tool(name="orchestrator_synthesize_results", title="Roll up a task's subtasks", annotations=WRITE)
    async def synthesize_results(
        ctx: Context,
        parent_task_id: Annotated[s.TaskId, Field(description="The task whose subtasks to roll up.")],
        complete_parent: Annotated[
            bool, Field(description="Also complete the parent when every subtask is finished.")
        ] = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> SynthesizeResult:
        """Roll up the subtasks of a task: counts, outcomes, failures with reasons, artifacts, timeline and
        recommendations for what to do next; stores the roll-up as a Markdown 'synthesis' artifact on the
        parent. With complete_parent=true the parent is completed when every subtask is finished; otherwise
        parent_not_completed_reason says why not. Errors: not_found, invalid_argument (no subtasks)."""
        return await holder.services.synthesis.synthesize_results(
            resolve_caller(ctx, agent), parent_task_id, complete_parent=complete_parent, request_id=request_id
        )

    @server.tool(name="orchestrator_get_status", title="Session and service status", annotations=READ)
    async def get_status(
        ctx: Context,
        session_id: s.SessionId = None,
        include_completed: Annotated[bool, Field(description="Also list recently completed tasks.")] = False,
        include_performance_metrics: Annotated[
            bool, Field(description="Per-tool call counts, errors and latency percentiles of this server process.")
        ] = False,
        include_resource_usage: Annotated[
            bool, Field(description="Memory, CPU, open files and database pool of this server process.")
        ] = False,
        agent: s.AgentName = None,
    ) -> StatusResult:
        """Where the session stands: counts by status and specialist, the ready queue, who holds what and
        until when, what is blocked and why, and the health of the service."""
        return await holder.services.status.get_status(
            resolve_caller(ctx, agent),
            session_id=session_id,
            include_completed=include_completed,
            include_performance_metrics=include_performance_metrics,
            include_resource_usage=include_resource_usage,
        )
