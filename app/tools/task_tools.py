"""MCP adapters for the task-graph tools (DESIGN §4.1). Thin: the signature is the input schema, the
return annotation the output schema; each adapter resolves the caller and calls one service method."""

from typing import Annotated, Any

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
from app.services.views import ComplexityName, PriorityName, SpecialistName, TaskStatusName, TaskTypeName
from app.tools import schemas as s
from app.tools.holder import ServiceHolder

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
Context_ = Annotated[dict[str, Any], Field(description="Free-form JSON object of facts for whoever works on it.")]


def register(server: MCPServer, holder: ServiceHolder) -> None:  # one adapter per tool
    @server.tool(name="orchestrator_plan_task", title="Plan a task (with subtasks)", annotations=WRITE)
    async def plan_task(
        ctx: Context,
        title: Title,
        description: Description,
        task_type: TaskTypeName = "standard",
        parent_task_id: Annotated[s.TaskId | None, Field(description="Make it a subtask of this task.")] = None,
        complexity: ComplexityName = "moderate",
        specialist_type: SpecialistName = "generic",
        priority: PriorityName = "medium",
        estimated_effort: Effort | None = None,
        due_date: DueDate | None = None,
        context: Context_ | None = None,
        dependencies: Annotated[
            list[s.TaskId], Field(max_length=100, description="Existing tasks that must complete first.")
        ] = [],  # noqa: B006  # the SDK copies defaults per call via pydantic
        subtasks: Annotated[
            list[SubtaskSpec],
            Field(
                max_length=100,
                description="A tree of subtasks created in the same transaction; a subtask's "
                "depends_on names the keys of earlier siblings.",
            ),
        ] = [],  # noqa: B006
        session_id: s.SessionId = None,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> PlanTaskResult:
        """Create a task, and optionally a whole subtree of subtasks, in one transaction. Errors: not_found
        (parent or dependency), invalid_argument (cross-session, closed parent, bad key)."""
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
            Field(ge=1, description="The version you read; if it moved on you get version_conflict."),
        ] = None,
        title: Title | None = None,
        description: Description | None = None,
        status: Annotated[
            TaskStatusName | None,
            Field(description="Moves under the status machine; only the claim holder may move an in_progress task."),
        ] = None,
        specialist_type: SpecialistName | None = None,
        complexity: ComplexityName | None = None,
        priority: PriorityName | None = None,
        estimated_effort: Effort | None = None,
        due_date: DueDate | None = None,
        context: Annotated[
            dict[str, Any] | None,
            Field(description="JSON merge-patch (RFC 7396) of the context: keys you omit are kept, null deletes."),
        ] = None,
        add_dependencies: Annotated[list[s.TaskId], Field(max_length=100)] = [],  # noqa: B006
        remove_dependencies: Annotated[list[s.TaskId], Field(max_length=100)] = [],  # noqa: B006
        reason: s.Reason = None,
        force: s.Force = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> UpdateTaskResult:
        """Change any fields of a task in one transaction. Errors: version_conflict (re-read and retry),
        claimed_by_other, invalid_transition (lists the allowed moves), dependency_cycle, dependencies_unmet."""
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

    @server.tool(name="orchestrator_delete_task", title="Archive or delete a task", annotations=DESTRUCTIVE)
    async def delete_task(
        ctx: Context,
        task_id: s.TaskId,
        archive_instead: Annotated[
            bool,
            Field(description="true: archive the task and its subtree (reversible history); false: delete."),
        ] = True,
        force: s.Force = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> DeleteTaskResult:
        """Archive (default) or permanently delete a task with its subtree. A hard delete is refused while the
        task has children or dependents unless force=true (admin)."""
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
        preserve_work: Annotated[bool, Field(description="false also removes the task's artifacts.")] = True,
        cascade: Annotated[bool, Field(description="Also cancel the open descendants.")] = False,
        request_id: s.RequestId = None,
        agent: s.AgentName = None,
    ) -> CancelTaskResult:
        """Cancel an open task (pending, in_progress or blocked), recording a cancellation artifact. Returns the
        open tasks that now wait on a dependency that will never complete."""
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
        parent_task_id: s.TaskId | None = None,
        assigned_to: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
        ready_only: Annotated[bool, Field(description="Only pending tasks whose dependencies are done.")] = False,
        search_text: Annotated[
            str | None,
            Field(min_length=1, max_length=500, description="Words to find in title, description, summary."),
        ] = None,
        created_after: s.When = None,
        created_before: s.When = None,
        include_children: bool = False,
        include_artifacts: bool = False,
        sort: s.SortField = "created_at",
        order: s.SortOrder = "desc",
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0,
        agent: s.AgentName = None,
    ) -> QueryTasksResult:
        """List the session's tasks matching every given filter, one page at a time; total_count counts all
        matches and next_offset is the offset of the next page (null at the end)."""
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
            created_after=to_utc(created_after),
            created_before=to_utc(created_before),
            include_children=include_children,
            include_artifacts=include_artifacts,
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
        )
