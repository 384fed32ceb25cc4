"""Bearer tokens from a tokens file, end to end: real uvicorn, real MCP client, both eras and backends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from app.db.repositories import Repositories
from app.settings import Settings
from tests.support.auth import bearer_client, post_mcp, write_tokens_file
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, serve

pytestmark = pytest.mark.anyio
PUBLIC_URL = "http://orchestrator.test"
METADATA_URL = f"{PUBLIC_URL}/.well-known/oauth-protected-resource/mcp"


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    return write_tokens_file(
        tmp_path / "tokens",
        {"alice": "tasks:read,tasks:write", "rita": "tasks:read", "root": "admin"},
    )


@pytest.fixture
async def server(database_url: str, tmp_path: Path, tokens: dict[str, str]) -> AsyncIterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_format="console",
        auth_tokens_file=tmp_path / "tokens",
        public_url=PUBLIC_URL,
    )
    async with serve(settings) as running:
        yield running


async def event_actors(server: RunningServer, task_id: str) -> list[tuple[str, str]]:
    async def read(repos: Repositories) -> list[tuple[str, str]]:
        return [(e.kind, e.actor) for e in await repos.events.list_for_task(task_id)]

    result: list[tuple[str, str]] = await server.runtime.uow.run(read, write=False)
    return result


async def test_writes_record_the_token_subject_or_subject_slash_agent_as_actor(
    server: RunningServer, era: str, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.tools")
    async with bearer_client(server, era, tokens["alice"]) as alice:
        session = await call_ok(alice, "orchestrator_initialize_session", working_directory="/repo")
        session_id = session["session"]["id"]
        assert session["session"]["created_by"] == "alice"
        mine = await call_ok(alice, "orchestrator_plan_task", title="By alice", description="No agent given.")
        built = await call_ok(
            alice,
            "orchestrator_plan_task",
            title="By a builder",
            description="Agent given.",
            agent="builder",
            session_id=session_id,
        )
        updated = await call_ok(
            alice, "orchestrator_update_task", task_id=mine["task"]["id"], agent="reviewer", priority="high"
        )
    assert mine["task"]["created_by"] == "alice"
    assert built["task"]["created_by"] == "alice/builder"
    assert updated["task"]["created_by"] == "alice"
    assert [actor for _, actor in await event_actors(server, mine["task"]["id"])] == ["alice", "alice/reviewer"]
    assert [actor for _, actor in await event_actors(server, built["task"]["id"])] == ["alice/builder"]
    logged = [(r.__dict__["tool"], r.__dict__["actor"]) for r in caplog.records if r.getMessage() == "tool_call"]
    assert logged == [
        ("orchestrator_initialize_session", "alice"),
        ("orchestrator_plan_task", "alice"),
        ("orchestrator_plan_task", "alice/builder"),
        ("orchestrator_update_task", "alice/reviewer"),
    ]
    assert all(tokens["alice"] not in r.getMessage() and tokens["alice"] not in str(r.__dict__) for r in caplog.records)


async def test_an_agent_name_cannot_borrow_another_subject(
    server: RunningServer, era: str, tokens: dict[str, str]
) -> None:
    async with bearer_client(server, era, tokens["root"]) as root:
        session = await call_ok(root, "orchestrator_initialize_session", working_directory="/repo", agent="alice")
    assert session["session"]["created_by"] == "root/alice"


async def test_read_only_token_reads_but_is_forbidden_to_write(
    server: RunningServer, era: str, tokens: dict[str, str]
) -> None:
    async with bearer_client(server, era, tokens["alice"]) as alice:
        session_id = (await call_ok(alice, "orchestrator_initialize_session", working_directory="/repo"))["session"][
            "id"
        ]
        task = (await call_ok(alice, "orchestrator_plan_task", title="T", description="D."))["task"]
    async with bearer_client(server, era, tokens["rita"]) as rita:
        page = await call_ok(rita, "orchestrator_query_tasks", session_id=session_id)
        refused = await call_error(
            rita, "orchestrator_plan_task", title="Not mine", description="D.", session_id=session_id
        )
        also_refused = await call_error(rita, "orchestrator_update_task", task_id=task["id"], title="Renamed")
        after = await call_ok(rita, "orchestrator_query_tasks", session_id=session_id)
    assert [t["id"] for t in page["tasks"]] == [task["id"]]
    for error in (refused, also_refused):
        assert (error["code"], error["field"], error["allowed"], error["scope"], error["value"]) == (
            "forbidden",
            "scope",
            ["tasks:write"],
            "tasks:write",
            ["tasks:read"],
        )
    assert after["tasks"] == page["tasks"]  # nothing was written


async def test_force_needs_admin_and_an_admin_token_may_force(
    server: RunningServer, era: str, tokens: dict[str, str]
) -> None:
    async with bearer_client(server, era, tokens["alice"]) as alice:
        await call_ok(alice, "orchestrator_initialize_session", working_directory="/repo")
        task = (await call_ok(alice, "orchestrator_plan_task", title="T", description="D."))["task"]
        refused = await call_error(
            alice, "orchestrator_delete_task", task_id=task["id"], archive_instead=False, force=True
        )
    async with bearer_client(server, era, tokens["root"]) as root:
        deleted = await call_ok(root, "orchestrator_delete_task", task_id=task["id"], archive_instead=False, force=True)
    assert (refused["code"], refused["field"], refused["value"], refused["allowed"]) == (
        "forbidden",
        "force",
        True,
        ["admin"],
    )
    assert deleted == {"task_id": task["id"], "action": "deleted", "affected": [task["id"]]}


async def test_request_without_token_is_401_with_www_authenticate(server: RunningServer) -> None:
    response = await post_mcp(server)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="Authentication required", resource_metadata="{METADATA_URL}"'
    )


async def test_unknown_token_is_401(server: RunningServer, tokens: dict[str, str]) -> None:
    forged = tokens["alice"][:-4] + ("AAAA" if not tokens["alice"].endswith("AAAA") else "BBBB")
    for header in (f"Bearer {forged}", "Bearer", f"Basic {tokens['alice']}"):
        response = await post_mcp(server, {"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_probes_and_resource_metadata_need_no_token(server: RunningServer) -> None:
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=30) as http:
        health = await http.get("/healthz")
        metadata = await http.get("/.well-known/oauth-protected-resource/mcp")
    assert health.status_code == 200
    assert metadata.status_code == 200
    body = metadata.json()
    assert (body["resource"], body["authorization_servers"], body["scopes_supported"]) == (
        f"{PUBLIC_URL}/mcp",
        [PUBLIC_URL],
        ["tasks:read", "tasks:write", "admin"],  # every scope, though the HTTP layer only requires tasks:read
    )
