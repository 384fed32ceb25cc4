"""JWT bearer tokens verified against a JWKS served on 127.0.0.1, end to end on both eras and backends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.auth import Issuer, JwksServer, bearer_client, post_mcp
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, serve

pytestmark = pytest.mark.anyio
AUDIENCE = "task-orchestrator-test"


@pytest.fixture
async def server(database_url: str, tmp_path: Path, issuer: Issuer, jwks: JwksServer) -> AsyncIterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        log_format="console",
        jwks_url=jwks.url,
        jwt_issuer=issuer.issuer,
        jwt_audience=AUDIENCE,
    )
    async with serve(settings) as running:
        yield running


async def test_valid_jwt_acts_as_its_subject_with_its_scopes(
    server: RunningServer, era: str, issuer: Issuer, jwks: JwksServer
) -> None:
    async with bearer_client(server, era, issuer.mint(AUDIENCE, subject="carol")) as carol:
        session = await call_ok(carol, "orchestrator_initialize_session", working_directory="/repo", agent="ci")
        task = await call_ok(carol, "orchestrator_plan_task", title="T", description="D.", agent="ci")
        forced = await call_error(carol, "orchestrator_update_task", task_id=task["task"]["id"], force=True, title="X")
    async with bearer_client(
        server, era, issuer.mint(AUDIENCE, subject="dora", scope=None, scp=["tasks:read"])
    ) as dora:
        page = await call_ok(dora, "orchestrator_query_tasks", session_id=session["session"]["id"])
        refused = await call_error(dora, "orchestrator_initialize_session", working_directory="/other")
    assert session["session"]["created_by"] == "carol/ci"
    assert task["task"]["created_by"] == "carol/ci"
    assert (forced["code"], forced["field"], forced["allowed"]) == ("forbidden", "force", ["admin"])
    assert [t["id"] for t in page["tasks"]] == [task["task"]["id"]]
    assert (refused["code"], refused["field"], refused["allowed"]) == ("forbidden", "scope", ["tasks:write"])
    assert jwks.fetches == 1  # the key set is cached across calls and clients


async def test_expired_wrong_audience_wrong_issuer_or_foreign_key_jwt_is_401(
    server: RunningServer, issuer: Issuer
) -> None:
    stranger = Issuer(issuer=issuer.issuer, kid=issuer.kid)  # same kid, another key: a forged signature
    now = int(time.time())
    refused = {
        "expired": issuer.mint(AUDIENCE, iat=now - 900, exp=now - 300),
        "wrong audience": issuer.mint("another-service"),
        "wrong issuer": Issuer(issuer="https://evil.test", key=issuer.key).mint(AUDIENCE),
        "foreign key": stranger.mint(AUDIENCE),
        "garbage": "not-a-jwt",
    }
    for case, token in refused.items():
        response = await post_mcp(server, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, case
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), case
    accepted = await post_mcp(server, {"Authorization": f"Bearer {issuer.mint(AUDIENCE)}"})
    assert accepted.status_code == 200


async def test_jwt_without_an_orchestrator_scope_is_403_insufficient_scope(
    server: RunningServer, issuer: Issuer
) -> None:
    response = await post_mcp(server, {"Authorization": f"Bearer {issuer.mint(AUDIENCE, scope='openid profile')}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith(
        'Bearer error="insufficient_scope", error_description="Required scope: tasks:read"'
    )
