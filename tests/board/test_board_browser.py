"""The board in a real headless Chromium while agents work through the real MCP client, on both backends.

Every wait below is Playwright's bounded wait for the page to show something; a page that never changes
fails the test after ``WAIT_MS``. "Without a reload" is checked with a marker set on ``window``: a reload
would drop it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from playwright.async_api import Page, expect

from tests.board.conftest import README_SCREENSHOT, board_settings, free_port, screenshot, serve_at
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio
ERA = "2026-07-28"
MARKUP_TITLE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'


async def plan_release(c: Client) -> dict[str, Any]:
    """A small plan: a parent with three subtasks, one depending on another."""
    await call_ok(c, "orchestrator_initialize_session", working_directory="/srv/shop", name="Shop search", agent="lead")
    plan = await call_ok(
        c,
        "orchestrator_plan_task",
        agent="lead",
        title="Ship search",
        description="Full-text search for the shop.",
        subtasks=[
            {"key": "design", "title": "Design the index", "description": "Pick it.", "specialist_type": "architect"},
            {
                "title": "Build the index",
                "description": "Implement it.",
                "depends_on": ["design"],
                "specialist_type": "coder",
            },
            {"title": "Write the docs", "description": "Explain it.", "specialist_type": "documenter"},
        ],
    )
    return plan


def card(page: Page, column: str, task_id: str) -> Any:
    return page.locator(f'[data-column="{column}"] [data-task-id="{task_id}"]')


async def test_sessions_page_lists_a_session_with_its_counts(
    board_server: RunningServer, page: Page, backend: str
) -> None:
    async with client(board_server, ERA) as c:
        plan = await plan_release(c)
    session_id = plan["created"][0]["session_id"]

    await page.goto(f"{board_server.base_url}/board")

    row = page.locator(f'tr[data-session-id="{session_id}"]')
    await expect(row).to_contain_text("Shop search")
    await expect(row).to_contain_text("/srv/shop")
    await expect(row.locator(".counts")).to_have_text("pending 4")
    await expect(row.locator(".progress")).to_contain_text("0%")
    await expect(row).to_contain_text("lead")  # the current agent of the session
    await screenshot(page, "sessions", backend)


async def test_board_shows_a_task_move_from_ready_to_in_progress_to_done_without_a_reload(
    board_server: RunningServer, page: Page, backend: str
) -> None:
    async with client(board_server, ERA) as c:
        plan = await plan_release(c)
        parent, design, build, docs = plan["created"]
        await page.goto(f"{board_server.base_url}/board/sessions/{parent['session_id']}")
        await expect(page.locator("#live")).to_have_text("live")
        await page.evaluate("window.__notReloaded = true")

        await expect(card(page, "ready", design["id"])).to_be_visible()
        await expect(card(page, "ready", docs["id"])).to_be_visible()
        waiting_build = card(page, "waiting", build["id"])
        await expect(waiting_build).to_contain_text("on Design the index")
        await expect(card(page, "waiting", parent["id"])).to_contain_text("on subtasks")

        await call_ok(c, "orchestrator_execute_task", task_id=design["id"], agent="architect-1")
        claimed = card(page, "in_progress", design["id"])
        await expect(claimed.locator(".holder")).to_have_text("held by architect-1")
        await expect(claimed.locator(".lease")).to_contain_text("left · attempt 1")
        await expect(card(page, "ready", design["id"])).to_have_count(0)
        await call_ok(c, "orchestrator_execute_task", task_id=docs["id"], agent="writer-1")
        await expect(card(page, "in_progress", docs["id"])).to_be_visible()
        await screenshot(page, "board", backend)

        await call_ok(
            c,
            "orchestrator_complete_task",
            task_id=design["id"],
            agent="architect-1",
            summary="A GIN index over title and body.",
            detailed_work="# Design\nGIN.",
            next_action="continue",
        )
        await expect(card(page, "done", design["id"])).to_contain_text("A GIN index over title and body.")
        await expect(card(page, "in_progress", design["id"])).to_have_count(0)
        await expect(card(page, "ready", build["id"])).to_be_visible()  # its dependency is done now

    assert await page.evaluate("window.__notReloaded") is True
    assert int(await page.evaluate("document.body.dataset.refreshes")) >= 3
    path = await screenshot(page, "board-after", backend)
    if backend == "sqlite" and os.environ.get("ORCHESTRATOR_UPDATE_README_SCREENSHOT") == "1":
        shutil.copyfile(path, README_SCREENSHOT)


async def test_a_task_titled_with_markup_renders_as_text(board_server: RunningServer, page: Page, backend: str) -> None:
    async with client(board_server, ERA) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/srv/x", agent="lead")
        planned = await call_ok(
            c,
            "orchestrator_plan_task",
            agent="lead",
            title=MARKUP_TITLE,
            description="</pre><script>window.__pwned = 3</script>",
            context={"note": "</script><script>window.__pwned = 4</script>"},
        )
        task = planned["created"][0]
        await call_ok(c, "orchestrator_execute_task", task_id=task["id"], agent="lead")
        await call_ok(
            c,
            "orchestrator_complete_task",
            task_id=task["id"],
            agent="lead",
            summary="<i>done</i>",
            detailed_work="<script>window.__pwned = 5</script>" + "x" * 10_000,
            next_action="continue",
        )

    await page.goto(f"{board_server.base_url}/board/sessions/{task['session_id']}")
    done = card(page, "done", task["id"])
    await expect(done.locator(".title")).to_have_text(MARKUP_TITLE)
    assert await done.locator("b, img, script, i").count() == 0

    await page.goto(f"{board_server.base_url}/board/tasks/{task['id']}")
    await expect(page.locator("h1")).to_contain_text(MARKUP_TITLE)
    await expect(page.locator(".description")).to_have_text("</pre><script>window.__pwned = 3</script>")
    await expect(page.locator("pre.json")).to_contain_text("</script><script>window.__pwned = 4</script>")
    content = page.locator(".artifact pre.content").first
    await expect(content).to_contain_text("<script>window.__pwned = 5</script>")
    await expect(page.locator(".artifact .truncated").first).to_contain_text("of 10035 bytes")
    assert await page.locator("main script, main img, main b").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await screenshot(page, "markup-as-text", backend)


async def test_the_board_of_a_restarted_server_reconnects_and_rereads(
    database_url: str, tmp_path: Path, page: Page, backend: str
) -> None:
    settings = board_settings(database_url, tmp_path)
    port = free_port()
    async with serve_at(settings, port) as first:
        async with client(first, ERA) as c:
            plan = await plan_release(c)
        session_id = plan["created"][0]["session_id"]
        await page.goto(f"{first.base_url}/board/sessions/{session_id}")
        await expect(page.locator("#live")).to_have_text("live")
        await page.evaluate("window.__notReloaded = true")
    # The open page is now talking to a server that has stopped.
    await expect(page.locator("#live")).to_have_text("reconnecting…")

    async with serve_at(settings, port) as second:
        async with client(second, ERA) as c:
            added = await call_ok(
                c,
                "orchestrator_plan_task",
                agent="lead",
                session_id=session_id,
                title="Added after the restart",
                description="Planned on the new process.",
            )
        await expect(card(page, "ready", added["created"][0]["id"]).locator(".title")).to_have_text(
            "Added after the restart"
        )
        await expect(page.locator("#live")).to_have_text("live")
        assert await page.evaluate("window.__notReloaded") is True
        await screenshot(page, "after-restart", backend)
