"""Calling tools the way an agent does, and reading results the way the contract says."""

from __future__ import annotations

from typing import Any

from mcp import Client

# The tools of the task-graph foundation (DESIGN §4.1 and initialize_session of §4.3).
TASK_GRAPH_TOOLS = frozenset(
    {
        "orchestrator_initialize_session",
        "orchestrator_plan_task",
        "orchestrator_update_task",
        "orchestrator_delete_task",
        "orchestrator_cancel_task",
        "orchestrator_query_tasks",
    }
)


async def call_ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structuredContent (checked against the text copy)."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.structured_content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def call_error(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must fail; return the ``error`` object of the envelope."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert result.structured_content is not None
    error = result.structured_content["error"]
    assert isinstance(error, dict)
    return error
