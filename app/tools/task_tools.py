"""MCP adapters for the task-graph tools (DESIGN §4.1). Thin: the signature is the input schema, the
return annotation the output schema; each adapter resolves the caller and calls one service method."""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from app.auth.identity import resolve_caller
from app.services.graph.planning import (
    Description,
    DueDate,
    Effort,
    PlanTaskResult,
    SubtaskSpec,
    Title,
    to_utc,
)
from app.services.graph.queries import QueryTasksResult
from app.services.graph.removal import CancelTaskResult, DeleteTaskResult
from app.services.graph.updates import TaskChanges, UpdateTaskResult
from app.services.views import TaskStatusName
from app.tools import schemas as s
from app.tools.holder import ServiceHolder

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
Context_ = Annotated[dict[str, Any], Field(description="JSON object of facts for whoever does it.")]


def register(server: MCPServer, holder: ServiceHolder) -> None:  # one adapter per tool
    @server.tool(name="orchestrator_plan_task", title="Plan tasks", annotations=WRITE)
    async def plan_task(
        ctx: Context,
        title: Title,
        description: Description,
        task_type: s.TaskType = "standard",
        parent_task_id: Annotated[s.TaskId | None, Field(description="Make it a subtask of this task.")] = None,
        complexity: s.Complexity = "moderate",
        specialist_type: s.Specialist = "generic",
        priority: s.Priority = "medium",
        estimated_effort: Effort | None = None,
        due_date: DueDate | None = None,
        context: Context_ | None = None,
        dependencies: Annotated[
            list[s.TaskId], Field(max_length=100, description="Tasks that must complete first.")
        ] = [],  # noqa: B006  # the SDK copies defaults per call via pydantic
        subtasks: Annotated[
            list[SubtaskSpec],
            Field(
                max_length=100,
                description="Subtasks created with it, as a tree; depends_on names earlier siblings' keys.",
            ),
        ] = [],  # noqa: B006
        session_id: s.SessionId = None,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> PlanTaskResult:
        """Create a task, or a whole plan: subtasks nest, depends_on orders siblings, a parent waits for its
        subtasks. Returns {task, created}. Next: orchestrator_next_task."""
        spec = SubtaskSpec(
            title=title,
            description=description,
            task_type=task_type,
            complexity=complexity,
            specialist_type=specialist_type,
            priority=priority,
            estimated_effort=estimated_effort,
            due_date=due_date,
            context=context or {},
            dependencies=dependencies,
            subtasks=subtasks,
        )
        return await holder.services.planning.plan_task(
            resolve_caller(ctx, agent),
            spec,
            parent_task_id=parent_task_id,
            session_id=session_id,
            request_id=request_id,
        )

    @server.tool(name="orchestrator_update_task", title="Update a task", annotations=WRITE)
    async def update_task(
        ctx: Context,
        task_id: s.TaskId,
        expected_version: Annotated[
            int | None,
            Field(ge=1, description="The version you read; stale gives version_conflict."),
        ] = None,
        title: Title | None = None,
        description: Description | None = None,
        status: Annotated[
            TaskStatusName | None,
            Field(description="New status. The holder releases a claim with pending; completed is not allowed."),
        ] = None,
        specialist_type: s.Specialist | None = None,
        complexity: s.Complexity | None = None,
        priority: s.Priority | None = None,
        estimated_effort: Effort | None = None,
        due_date: DueDate | None = None,
        context: Annotated[
            dict[str, Any] | None,
            Field(description="JSON merge-patch of the context (null deletes a key)."),
        ] = None,
        add_dependencies: Annotated[list[s.TaskId], Field(max_length=100, description="Tasks to wait for.")] = [],  # noqa: B006
        remove_dependencies: Annotated[list[s.TaskId], Field(max_length=100, description="Edges to drop.")] = [],  # noqa: B006
        reason: s.Reason = None,
        force: s.Force = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> UpdateTaskResult:
        """Change a task's fields; release your claim with status=pending (complete with
        orchestrator_complete_task). Returns {task, changed}. version_conflict: re-read and retry."""
        changes = TaskChanges(
            title=title,
            description=description,
            status=status,
            specialist_type=specialist_type,
            complexity=complexity,
            priority=priority,
            estimated_effort=estimated_effort,
            due_date=due_date,
            context=context,
            add_dependencies=add_dependencies,
            remove_dependencies=remove_dependencies,
        )
        return await holder.services.updates.update_task(
            resolve_caller(ctx, agent),
            task_id,
            changes,
            expected_version=expected_version,
            reason=reason,
            force=force,
            request_id=request_id,
        )

    @server.tool(name="orchestrator_delete_task", title="Delete a task", annotations=DESTRUCTIVE)
    async def delete_task(
        ctx: Context,
        task_id: s.TaskId,
        archive_instead: Annotated[
            bool,
            Field(description="true: archive with its subtree; false: delete for good."),
        ] = True,
        force: s.Force = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> DeleteTaskResult:
        """Remove a task you no longer need: archive (default) or delete it with its subtree. Returns {task_id,
        action, affected}. Next: orchestrator_get_status."""
        return await holder.services.removal.delete_task(
            resolve_caller(ctx, agent),
            task_id,
            archive_instead=archive_instead,
            force=force,
            request_id=request_id,
        )

    @server.tool(name="orchestrator_cancel_task", title="Cancel a task", annotations=DESTRUCTIVE)
    async def cancel_task(
        ctx: Context,
        task_id: s.TaskId,
        reason: s.Reason = None,
        preserve_work: Annotated[bool, Field(description="false also removes its artifacts.")] = True,
        cascade: Annotated[bool, Field(description="Also cancel open subtasks.")] = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> CancelTaskResult:
        """Stop an open task that should not be done. Returns {task, cancelled, dependents_now_blocked}. Next:
        orchestrator_update_task on those dependents."""
        return await holder.services.removal.cancel_task(
            resolve_caller(ctx, agent),
            task_id,
            reason=reason,
            preserve_work=preserve_work,
            cascade=cascade,
            request_id=request_id,
        )

    @server.tool(name="orchestrator_query_tasks", title="Find tasks", annotations=READ)
    async def query_tasks(
        ctx: Context,
        session_id: s.SessionId = None,
        status: s.StatusList = [],  # noqa: B006
        task_type: s.TaskTypeList = [],  # noqa: B006
        specialist_type: s.SpecialistList = [],  # noqa: B006
        complexity: s.ComplexityList = [],  # noqa: B006
        priority: s.PriorityList = [],  # noqa: B006
        parent_task_id: Annotated[s.TaskId | None, Field(description="Only subtasks of this task.")] = None,
        assigned_to: Annotated[str | None, Field(min_length=1, max_length=200, description="Holder.")] = None,
        ready_only: Annotated[bool, Field(description="Only tasks ready to claim.")] = False,
        search_text: Annotated[
            str | None, Field(min_length=1, max_length=500, description="Words in title, description or summary.")
        ] = None,
        created_after: s.When = None,
        created_before: s.When = None,
        task_ids: Annotated[
            list[s.TaskId], Field(max_length=100, description="Read these tasks in full (no other filters).")
        ] = [],  # noqa: B006
        view: Annotated[Literal["summary", "full"], Field(description="summary rows, or full TaskViews.")] = "summary",
        include_children: Annotated[bool, Field(description="Add subtasks (implies full).")] = False,
        include_artifacts: Annotated[bool, Field(description="Add stored work (implies full).")] = False,
        sort: s.SortField = "created_at",
        order: s.SortOrder = "desc",
        limit: s.Limit = 50,
        offset: s.Offset = 0,
        agent: s.AgentName = None,
    ) -> QueryTasksResult:
        """Find tasks: one page of summary rows matching every filter, or whole tasks (view=full, task_ids).
        Returns {tasks, total_count, next_offset}. Next: orchestrator_execute_task on a ready one."""
        return await holder.services.queries.query_tasks(
            resolve_caller(ctx, agent),
            session_id=session_id,
            statuses=list(status),
            task_types=list(task_type),
            specialist_types=list(specialist_type),
            complexities=list(complexity),
            priorities=list(priority),
            parent_task_id=parent_task_id,
            assigned_to=assigned_to,
            ready_only=ready_only,
            search_text=search_text,
            created_after=to_utc(created_after, "created_after"),
            created_before=to_utc(created_before, "created_before"),
            include_children=include_children,
            include_artifacts=include_artifacts,
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
            view=view,
            task_ids=list(task_ids),
        )
