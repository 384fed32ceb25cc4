"""The board with bearer auth on: a login cookie or nothing, on both backends, over real HTTP.

The cookie checks read the ``Set-Cookie`` header the server sends; the browser test at the end logs in
through the form in Chromium and sees that scripts cannot read the cookie.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
from playwright.async_api import Browser, expect

from app.board.cookie import COOKIE_NAME, CookieSigner
from tests.board.conftest import board_settings, free_port, screenshot, serve_at
from tests.support.auth import Issuer, JwksServer, bearer_client, write_tokens_file
from tests.support.mcp import call_ok
from tests.support.server import RunningServer

pytestmark = pytest.mark.anyio
SECRET = "a board secret shared by the replicas"
BOARD_PATHS = ["/board", "/board/sessions/sess_0000000000000000", "/board/tasks/task_0000000000000000"]


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    return write_tokens_file(tmp_path / "tokens", {"rita": "tasks:read", "alice": "tasks:read,tasks:write"})


@pytest.fixture
async def secured(database_url: str, tmp_path: Path, tokens: dict[str, str]) -> AsyncIterator[RunningServer]:
    settings = board_settings(database_url, tmp_path, auth_tokens_file=tmp_path / "tokens", board_secret=SECRET)
    async with serve_at(settings, free_port()) as running:
        yield running


async def login(http: httpx2.AsyncClient, token: str, next_path: str = "/board") -> httpx2.Response:
    return await http.post("/board/login", data={"token": token, "next": next_path})


def cookie_attributes(response: httpx2.Response) -> dict[str, str]:
    """The attributes of the board cookie in ``Set-Cookie`` (lower-case names; flags map to "")."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE_NAME}=")]
    attributes: dict[str, str] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value.lower()
    return attributes


async def test_board_routes_refuse_a_request_without_a_valid_login_cookie(secured: RunningServer) -> None:
    now = datetime.now(UTC)
    forged = CookieSigner(b"another key", 3600).issue("rita", now)
    expired = CookieSigner(SECRET.encode(), 60).issue("rita", now - timedelta(minutes=5))
    valid = CookieSigner(SECRET.encode(), 60).issue("rita", now)
    tampered = valid[:-1] + ("1" if valid.endswith("0") else "0")  # always differs from the valid MAC
    for cookie in (None, forged, expired, tampered, "garbage"):
        cookies = {COOKIE_NAME: cookie} if cookie else {}
        async with httpx2.AsyncClient(base_url=secured.base_url, cookies=cookies) as http:
            for path in BOARD_PATHS:
                page = await http.get(path)
                assert (page.status_code, page.headers["location"]) == (303, f"/board/login?next={path}")
            events = await http.get("/board/events")
            assert events.status_code == 401
    # A cookie signed with the shared secret and still in its lifetime opens the board.
    async with httpx2.AsyncClient(base_url=secured.base_url, cookies={COOKIE_NAME: valid}) as http:
        assert (await http.get("/board")).status_code == 200


async def test_login_with_a_read_token_sets_a_strict_http_only_cookie_that_opens_the_board(
    secured: RunningServer, tokens: dict[str, str]
) -> None:
    async with bearer_client(secured, "2026-07-28", tokens["alice"]) as alice:
        await call_ok(alice, "orchestrator_initialize_session", working_directory="/srv/app", name="Guarded")
    async with httpx2.AsyncClient(base_url=secured.base_url) as http:
        form = await http.get("/board/login?next=/board")
        assert form.status_code == 200 and 'name="token"' in form.text

        answer = await login(http, tokens["rita"])
        assert (answer.status_code, answer.headers["location"]) == (303, "/board")
        assert cookie_attributes(answer) == {
            "httponly": "",
            "max-age": "28800",
            "path": "/board",
            "samesite": "strict",
        }
        board = await http.get("/board")
        assert board.status_code == 200 and "Guarded" in board.text and "rita" in board.text
        async with http.stream("GET", "/board/events") as events:
            assert events.status_code == 200
            assert events.headers["content-type"] == "text/event-stream; charset=utf-8"
            first = await events.aiter_text().__anext__()
            assert first == "retry: 2000\n\n"


async def test_login_with_a_wrong_token_is_refused_and_sets_no_cookie(secured: RunningServer) -> None:
    async with httpx2.AsyncClient(base_url=secured.base_url) as http:
        for token in ("orch_not-a-token", ""):
            answer = await login(http, token)
            assert answer.status_code == 401
            assert "was not accepted" in answer.text
            assert answer.headers.get_list("set-cookie") == []
        assert (await http.get("/board")).status_code == 303
        flood = await http.post("/board/login", data={"token": "x" * 20_000})
        assert (flood.status_code, flood.headers.get_list("set-cookie")) == (413, [])


async def test_logout_clears_the_cookie_and_the_board_asks_for_a_login_again(
    secured: RunningServer, tokens: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(base_url=secured.base_url) as http:
        await login(http, tokens["rita"])
        assert (await http.get("/board")).status_code == 200
        answer = await http.post("/board/logout")
        assert (answer.status_code, answer.headers["location"]) == (303, "/board/login")
        assert cookie_attributes(answer)["max-age"] == "0"
        assert COOKIE_NAME not in http.cookies
        assert (await http.get("/board")).status_code == 303


async def test_login_only_returns_to_a_board_page_of_this_server(
    secured: RunningServer, tokens: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(base_url=secured.base_url) as http:
        for target in ("https://evil.example/board", "//evil.example/board", "/board\\..\\x", "/mcp"):
            answer = await login(http, tokens["rita"], target)
            assert (answer.status_code, answer.headers["location"]) == (303, "/board")


async def test_board_refuses_foreign_hosts_and_origins_as_mcp_does(
    secured: RunningServer, tokens: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(base_url=secured.base_url) as http:
        assert (await http.get("/board", headers={"Host": "evil.example"})).status_code == 421
        refused = await http.post(
            "/board/login", data={"token": tokens["rita"]}, headers={"Origin": "http://evil.example"}
        )
        assert refused.status_code == 403 and refused.headers.get_list("set-cookie") == []
        await login(http, tokens["rita"])
        assert (await http.get("/board", headers={"Origin": "http://evil.example"})).status_code == 403
        events = await http.get("/board/events", headers={"Origin": "http://evil.example"})
        assert events.status_code == 403
        same = await http.get("/board", headers={"Origin": secured.base_url})
        assert same.status_code == 200


async def test_cookie_is_secure_when_the_board_is_served_over_https(
    database_url: str, tmp_path: Path, tokens: dict[str, str]
) -> None:
    settings = board_settings(
        database_url, tmp_path, auth_tokens_file=tmp_path / "tokens", public_url="https://board.example"
    )
    async with serve_at(settings, free_port()) as running, httpx2.AsyncClient(base_url=running.base_url) as http:
        answer = await login(http, tokens["rita"])
    assert answer.status_code == 303
    assert "secure" in cookie_attributes(answer)


async def test_browser_logs_in_with_a_read_token_and_scripts_cannot_read_the_cookie(
    secured: RunningServer, tokens: dict[str, str], browser: Browser, backend: str
) -> None:
    context = await browser.new_context(viewport={"width": 1200, "height": 700})
    page = await context.new_page()
    try:
        await page.goto(f"{secured.base_url}/board")
        assert page.url == f"{secured.base_url}/board/login?next=/board"
        await page.fill('input[name="token"]', "orch_wrong")
        await page.click('button[type="submit"]')
        await expect(page.locator(".error")).to_contain_text("was not accepted")

        await page.fill('input[name="token"]', tokens["rita"])
        await page.click('button[type="submit"]')
        await expect(page.locator("h1")).to_contain_text("Sessions")
        await expect(page.locator(".logout .who")).to_have_text("rita")
        await expect(page.locator("#live")).to_have_text("live")
        assert await page.evaluate("document.cookie") == ""
        [cookie] = await context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
            COOKIE_NAME,
            True,
            "Strict",
            "/board",
        )
        await screenshot(page, "logged-in", backend)

        await page.click(".logout button")
        await expect(page.locator('input[name="token"]')).to_be_visible()
        assert await context.cookies() == []
        await page.goto(f"{secured.base_url}/board")
        await expect(page.locator('input[name="token"]')).to_be_visible()
    finally:
        await context.close()


async def test_login_with_a_jwt_needs_the_read_scope(
    database_url: str, tmp_path: Path, issuer: Issuer, jwks: JwksServer
) -> None:
    audience = "https://orchestrator.test/mcp"
    settings = board_settings(
        database_url, tmp_path, jwks_url=jwks.url, jwt_issuer=issuer.issuer, jwt_audience=audience
    )
    async with serve_at(settings, free_port()) as running, httpx2.AsyncClient(base_url=running.base_url) as http:
        refused = await login(http, issuer.mint(audience, subject="pat", scope="profile email"))
        assert (refused.status_code, refused.headers.get_list("set-cookie")) == (401, [])
        accepted = await login(http, issuer.mint(audience, subject="carol", scope="tasks:read"))
        assert accepted.status_code == 303
        page = await http.get("/board")
    assert page.status_code == 200 and '<span class="who">carol</span>' in page.text
