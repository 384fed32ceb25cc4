"""Parents wait for their children, over real HTTP with the real MCP client, on both eras and backends.

A scripted agent that knows only the tools loops next_task → complete_task (synthesize_results for a
parent, as its brief says) over a three-level tree with dependencies between siblings.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio
TERMINAL = {"completed", "failed", "cancelled", "archived"}


def node(title: str, **fields: Any) -> dict[str, Any]:
    return {"title": title, "description": f"Do {title}.", **fields}


async def board(c: Client, session_id: str) -> dict[str, dict[str, Any]]:
    """Every task of the session, by title (one page; status, ready and open_children are in every row)."""
    result = await call_ok(c, "orchestrator_query_tasks", session_id=session_id, limit=100, agent="observer")
    return {t["title"]: t for t in result["tasks"]}


async def test_an_agent_loop_over_mcp_completes_parents_only_after_their_subtasks(
    server: RunningServer, era: str
) -> None:
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="agent")
        plan = await call_ok(
            c,
            "orchestrator_plan_task",
            agent="agent",
            title="Root",
            description="Ship it.",
            subtasks=[
                node("A", key="a", subtasks=[node("A1", key="a1"), node("A2", depends_on=["a1"])]),
                node("B", depends_on=["a"], subtasks=[node("B1")]),
            ],
        )
        ids = {t["title"]: t["id"] for t in plan["created"]}
        sid = plan["task"]["session_id"]

        refused = await call_error(c, "orchestrator_complete_task", agent="agent", task_id=ids["Root"],
                                   summary="s", detailed_work="d", next_action="complete")  # fmt: skip
        assert (refused["code"], refused["field"], refused["value"]) == ("children_open", "task_id", ids["Root"])
        assert refused["children"] == [  # oldest first: one plan creates its tasks in the order listed
            {"task_id": task_id, "status": "pending"} for task_id in [ids["A"], ids["B"]]
        ]

        order: list[str] = []
        added_late = False
        for _ in range(12):  # bounded: 6 tasks, 7 with the late subtask
            brief = await call_ok(c, "orchestrator_next_task", session_id=sid, agent="agent")
            if brief["task"] is None:
                break
            title = brief["task"]["title"]
            tasks = await board(c, sid)
            kids = [t for t in tasks.values() if t["parent_id"] == brief["task"]["id"]]
            assert all(k["status"] in TERMINAL for k in kids), title
            if kids:
                rollup = (
                    f"orchestrator_synthesize_results(parent_task_id={brief['task']['id']!r}, complete_parent=true)"
                )
                assert any(rollup in step for step in brief["instructions"])
                done = await call_ok(c, "orchestrator_synthesize_results", agent="agent",
                                     parent_task_id=brief["task"]["id"], complete_parent=True)  # fmt: skip
                assert done["parent_completed"] is True
            else:
                done = await call_ok(c, "orchestrator_complete_task", agent="agent", task_id=brief["task"]["id"],
                                     summary=f"{title} done.", detailed_work="Work.", next_action="complete")  # fmt: skip
                parent = next(t for t in tasks.values() if t["id"] == tasks[title]["parent_id"])
                siblings_open = [t for t in tasks.values() if t["parent_id"] == parent["id"] and t["title"] != title
                                 and t["status"] not in TERMINAL]  # fmt: skip
                # The parent becomes ready exactly when its last subtask ends (unless a dependency holds it).
                expected = not siblings_open and not parent["blocked_by"]
                assert (parent["id"] in [t["id"] for t in done["unblocked"]]) == expected, title
            order.append(title)
            if title == "A2" and not added_late:
                assert (await board(c, sid))["A"]["ready"] is True
                late = await call_ok(c, "orchestrator_plan_task", agent="agent", parent_task_id=ids["A"],
                                     title="A3", description="Found more.")  # fmt: skip
                ids["A3"] = late["task"]["id"]
                added_late = True
                again = (await board(c, sid))["A"]
                assert (again["ready"], again["open_children"]) == (False, 1)

        assert sorted(order) == ["A", "A1", "A2", "A3", "B", "B1", "Root"]
        at = {title: n for n, title in enumerate(order)}
        for before, after in [("A1", "A2"), ("A2", "A3"), ("A3", "A"), ("A", "B"), ("B1", "B"), ("B", "Root")]:
            assert at[before] < at[after], order
        assert {t["status"] for t in (await board(c, sid)).values()} == {"completed"}
