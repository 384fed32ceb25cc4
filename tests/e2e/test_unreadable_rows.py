"""Nothing is stored that cannot be read back, and one bad row never breaks a read (DESIGN §3).

Rows that cannot be sent are written behind the service's back with raw SQL, as rows stored before input
hygiene existed would be: a context nested 250 levels deep (both backends) and, on SQLite, a context holding
a lone surrogate (PostgreSQL refuses to store one). Every read of the session must still answer, serving the
row with its ``unreadable`` marker and the rest untouched; validate_structure must name the row. A write
whose reply cannot be serialized must roll back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.services.graph import updates
from app.services.views import TaskView
from tests.support.mcp import call_error, call_ok
from tests.support.rows import execute_raw
from tests.support.server import RunningServer, client
from tests.support.snapshot import callers_rows, diff, snapshot

pytestmark = pytest.mark.anyio
ME = {"agent": "alice"}
DEEP_CONTEXT = '{"a":' * 250 + "1" + "}" * 250
SURROGATE_CONTEXT = '{"note": "half a pair: \\ud800"}'


def poisons(backend: str) -> dict[str, str]:
    """Title of the task → the raw JSON text its context is overwritten with."""
    found = {"deep": DEEP_CONTEXT}
    if backend == "sqlite":
        found["surrogate"] = SURROGATE_CONTEXT
    return found


async def test_a_session_with_unrenderable_rows_still_serves_every_read(
    server: RunningServer, era: str, backend: str, database_url: str
) -> None:
    bad = poisons(backend)
    async with client(server, era) as c:
        sid = (await call_ok(c, "orchestrator_initialize_session", working_directory="/w/poison", **ME))["session"][
            "id"
        ]
        await call_ok(c, "orchestrator_plan_task", title="clean", description="d", context={"k": "v"}, **ME)
        for title in bad:
            await call_ok(c, "orchestrator_plan_task", title=title, description="d", priority="critical", **ME)
        before = {t["title"]: t for t in (await call_ok(c, "orchestrator_query_tasks", view="full", **ME))["tasks"]}
        summaries = (await call_ok(c, "orchestrator_query_tasks", **ME))["tasks"]
        await execute_raw(
            database_url,
            [f"UPDATE task SET context = '{raw}' WHERE id = '{before[title]['id']}'" for title, raw in bad.items()],
        )

        # Summary rows hold no context: they are served whole, as before.
        assert (await call_ok(c, "orchestrator_query_tasks", **ME))["tasks"] == summaries
        page = {t["title"]: t for t in (await call_ok(c, "orchestrator_query_tasks", view="full", **ME))["tasks"]}
        assert page["clean"] == before["clean"]
        for title in bad:
            marker = page[title].pop("unreadable")
            assert "context is left out" in marker and "orchestrator_update_task" in marker
            assert page[title] == {**before[title], "context": {}}
        for tool, arguments in (
            ("orchestrator_get_status", {}),
            ("orchestrator_resume_session", {"session_id": sid}),
            ("orchestrator_session_status", {"session_id": sid}),
        ):
            result = await c.call_tool(tool, {**arguments, **({} if tool.endswith("session_status") else ME)})
            assert not result.is_error, (tool, result.structured_content)
        claimed = await call_ok(c, "orchestrator_next_task", **ME)
        assert claimed["task"]["title"] in bad and claimed["task"]["context"] == {}
        assert "unreadable" in claimed["task"]

        report = await call_ok(c, "orchestrator_maintenance_coordinator", action="validate_structure", **ME)
        named = [issue for issue in report["issues"] if issue["kind"] == "unreadable_row"]
        assert sorted(i["task_ids"][0] for i in named) == sorted(before[title]["id"] for title in bad)

        # The marker's fix works: dropping the context's keys makes the row whole again.
        for title, raw in bad.items():
            patch = {key: None for key in json.loads(raw)}
            fixed = await call_ok(c, "orchestrator_update_task", task_id=before[title]["id"], context=patch, **ME)
            assert "unreadable" not in fixed["task"] and fixed["task"]["context"] == {}


async def test_a_write_whose_reply_cannot_be_serialized_rolls_back(
    server: RunningServer, era: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unsendable(repos: Any, task: Any) -> TaskView:
        view = await real_view(repos, task)
        return view.model_copy(update={"title": "half a pair: \ud800"})

    real_view = updates.one_task_view
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/w/rollback", **ME)
        task = (await call_ok(c, "orchestrator_plan_task", title="t", description="d", **ME))["task"]
        before = callers_rows(await snapshot(server.runtime.database))
        monkeypatch.setattr(updates, "one_task_view", unsendable)
        error = await call_error(
            c, "orchestrator_update_task", task_id=task["id"], title="renamed", request_id="rename-1", **ME
        )
        assert error["code"] == "internal"
        after = callers_rows(await snapshot(server.runtime.database))
        assert after == before, diff(before, after)  # no update, no event, no request record
        monkeypatch.undo()
        renamed = await call_ok(
            c, "orchestrator_update_task", task_id=task["id"], title="renamed", request_id="rename-1", **ME
        )
        assert renamed["task"]["title"] == "renamed" and renamed["task"]["version"] == task["version"] + 1
