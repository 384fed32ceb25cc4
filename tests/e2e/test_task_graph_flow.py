"""The task-graph tools over real HTTP with the real MCP client, on both eras and both backends."""

from __future__ import annotations

import json

import pytest

from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio


async def test_plan_query_update_cancel_delete_flow(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        session = await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="planner")
        assert session["resumed"] is False
        plan = await call_ok(
            c,
            "orchestrator_plan_task",
            agent="planner",
            title="Ship the feature",
            description="Everything needed to ship.",
            priority="high",
            subtasks=[
                {
                    "key": "design",
                    "title": "Design",
                    "description": "Write the design.",
                    "specialist_type": "architect",
                },
                {"key": "build", "title": "Build", "description": "Build it.", "depends_on": ["design"]},
                {"title": "Test", "description": "Test it.", "depends_on": ["build"], "specialist_type": "tester"},
            ],
        )
        root, design, build, test = plan["created"]
        assert plan["task"] == root
        assert [t["parent_id"] for t in (design, build, test)] == [root["id"]] * 3
        assert build["dependencies"] == [design["id"]] and build["ready"] is False
        assert build["blocked_by"] == [design["id"]]

        page = await call_ok(
            c, "orchestrator_query_tasks", agent="planner", ready_only=True, sort="created_at", order="asc"
        )
        assert {t["id"] for t in page["tasks"]} == {design["id"]}  # the root waits for its subtasks
        assert page["total_count"] == 1 and page["next_offset"] is None

        updated = await call_ok(
            c,
            "orchestrator_update_task",
            agent="planner",
            task_id=design["id"],
            expected_version=1,
            title="Design v2",
            context={"doc": "design.md"},
        )
        assert updated["changed"] == ["title", "context"]
        assert updated["task"]["version"] == 2 and updated["task"]["context"] == {"doc": "design.md"}

        stale = await call_error(
            c, "orchestrator_update_task", agent="planner", task_id=design["id"], expected_version=1, title="lost"
        )
        assert (stale["code"], stale["field"], stale["expected"], stale["actual"]) == (
            "version_conflict",
            "expected_version",
            1,
            2,
        )

        cancelled = await call_ok(
            c, "orchestrator_cancel_task", agent="planner", task_id=design["id"], reason="Design is not needed"
        )
        assert cancelled["previous_status"] == "pending"
        assert cancelled["task"]["status"] == "cancelled"
        assert cancelled["dependents_now_blocked"] == [build["id"]]

        archived = await call_ok(c, "orchestrator_delete_task", agent="planner", task_id=root["id"])
        assert archived["action"] == "archived"
        assert sorted(archived["affected"]) == sorted([root["id"], design["id"], build["id"], test["id"]])

        deleted = await call_ok(
            c, "orchestrator_delete_task", agent="planner", task_id=test["id"], archive_instead=False
        )
        assert deleted == {"task_id": test["id"], "action": "deleted", "affected": [test["id"]]}
        remaining = await call_ok(c, "orchestrator_query_tasks", agent="planner")
        assert {t["id"] for t in remaining["tasks"]} == {root["id"], design["id"], build["id"]}
        assert {t["status"] for t in remaining["tasks"]} == {"archived"}


async def test_results_carry_structured_content_and_the_same_json_as_text(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo")
        result = await c.call_tool("orchestrator_plan_task", {"title": "T", "description": "D"})
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        error = await c.call_tool("orchestrator_update_task", {"task_id": "task_0000000000000000", "title": "x"})
        assert error.is_error
        assert json.loads(error.content[0].text) == error.structured_content  # type: ignore[union-attr]
        assert error.structured_content["error"]["code"] == "not_found"  # type: ignore[index]


async def test_every_tool_declares_schemas_annotations_and_an_error_envelope(server: RunningServer, era: str) -> None:
    async with client(server, era) as c:
        tools = (await c.list_tools()).tools
    names = {t.name for t in tools}
    assert {
        "orchestrator_initialize_session",
        "orchestrator_plan_task",
        "orchestrator_update_task",
        "orchestrator_delete_task",
        "orchestrator_cancel_task",
        "orchestrator_query_tasks",
    } <= names
    for tool in tools:
        assert tool.annotations is not None and tool.annotations.read_only_hint is not None, tool.name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", tool.name
        envelope = tool.output_schema["anyOf"][1]
        assert envelope["required"] == ["error"], tool.name
        assert tool.input_schema["type"] == "object"


async def test_a_parent_is_read_where_it_lives_and_archived_only_without_open_subtasks(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/other", agent="bob")
        await call_ok(c, "orchestrator_initialize_session", working_directory="/mine", agent="ann")
        plan = await call_ok(
            c,
            "orchestrator_plan_task",
            agent="bob",
            title="Epic",
            description="D.",
            subtasks=[{"title": "Step", "description": "D."}],
        )
        parent, step = plan["created"][0]["id"], plan["created"][1]["id"]
        # ann's session is another one: the filter follows the parent, as plan_task does.
        children = await call_ok(c, "orchestrator_query_tasks", agent="ann", parent_task_id=parent)
        missing = await call_error(c, "orchestrator_query_tasks", agent="ann", parent_task_id="task_0000000000000000")
        refused = await call_error(c, "orchestrator_update_task", agent="bob", task_id=parent, status="archived")
    assert [t["id"] for t in children["tasks"]] == [step]
    assert (missing["code"], missing["field"]) == ("not_found", "parent_task_id")
    assert (refused["code"], refused["field"], refused["hint"], refused["children"]) == (
        "children_open",
        "status",
        "orchestrator_delete_task",
        [{"task_id": step, "status": "pending"}],
    )
