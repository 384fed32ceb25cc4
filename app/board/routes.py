"""The board's routes: sessions, one session, one task, the event stream, login and logout, static assets.

Pages are rendered on the server with Jinja2 (autoescape on for every template, so anything an agent
wrote — titles, context, artifacts — is shown as text) from :class:`BoardService`, built over the live
unit of work, so a warm restart's new database parts are used at once. Nothing here writes: the only
POSTs are login and logout, which touch the cookie, never the database. Assets come from
``app/board/static``: no build step and nothing from another origin.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app import errors
from app.board.access import BoardAccess, Visitor, safe_next, secure_headers, to_login
from app.board.events import EventStream
from app.board.feed import BoardFeed
from app.db.uow import UnitOfWork
from app.domain.clock import Clock
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.services.sessions.board import BoardService

HERE = Path(__file__).parent
LOGIN_BODY_LIMIT = 16 * 1024
Handler = Callable[[Request, Visitor], Awaitable[Response]]


@dataclass
class BoardParts:
    """What the composition root hands the board."""

    uow: Callable[[], UnitOfWork | None]
    clock: Clock
    reboot: RebootManager
    access: BoardAccess
    feed: BoardFeed  # changes from the change feed (see feed.py)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "no lease"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _environment() -> Environment:
    # autoescape=True for every template: anything an agent wrote is text, never markup.
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True)
    env.filters["duration"] = _duration
    env.filters["percent"] = lambda ratio: f"{round(ratio * 100)}%"
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    env.filters["compact_json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    return env


class Board:
    def __init__(self, parts: BoardParts) -> None:
        self.parts = parts
        self.env = _environment()
        self.feed = parts.feed

    async def _service(self) -> BoardService:
        uow = self.parts.uow()
        if uow is None or self.parts.reboot.state != ServiceState.READY:
            raise errors.Unavailable("The service is starting or restarting; retry shortly.", retry_after_seconds=1.0)
        return BoardService(uow, self.parts.clock)

    def render(self, template: str, visitor: Visitor | None, status_code: int = 200, **values: Any) -> Response:
        html = self.env.get_template(template).render(
            visitor=visitor, auth_on=self.parts.access.auth_on, now=self.parts.clock.now(), **values
        )
        return HTMLResponse(html, status_code=status_code)

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Host/Origin check, then the login check, then the page; every answer gets the security headers."""

        async def endpoint(request: Request) -> Response:
            refused = await self.parts.access.refuse_origin(request)
            if refused is not None:
                return secure_headers(refused)
            visitor = self.parts.access.visitor(request, self.parts.clock.now())
            if visitor is None:
                return secure_headers(to_login(request))
            try:
                return secure_headers(await handler(request, visitor))
            except errors.NotFound as exc:
                return secure_headers(self.render("error.html", visitor, 404, message=exc.message))
            except errors.Unavailable as exc:
                response = self.render("error.html", visitor, 503, message=exc.message)
                response.headers["Retry-After"] = "1"
                return secure_headers(response)

        return endpoint

    async def sessions(self, request: Request, visitor: Visitor) -> Response:
        data = await (await self._service()).list_sessions()
        return self.render("sessions.html", visitor, data=data)

    async def session(self, request: Request, visitor: Visitor) -> Response:
        board = await (await self._service()).session_board(request.path_params["session_id"])
        return self.render("session.html", visitor, board=board)

    async def task(self, request: Request, visitor: Visitor) -> Response:
        detail = await (await self._service()).task_detail(request.path_params["task_id"])
        return self.render("task.html", visitor, detail=detail)

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refused = await self.parts.access.refuse_origin(request)
        if refused is None and self.parts.access.visitor(request, self.parts.clock.now()) is None:
            refused = Response("Log in at /board/login to watch the board.", status_code=401)
        if refused is not None:
            await secure_headers(refused)(scope, receive, send)
            return
        await EventStream(self.feed, self.parts.reboot, [(b"x-content-type-options", b"nosniff")])(scope, receive, send)

    async def login(self, request: Request) -> Response:
        refused = await self.parts.access.refuse_origin(request)
        if refused is not None:
            return secure_headers(refused)
        access = self.parts.access
        next_path = safe_next(request.query_params.get("next"))
        if not access.auth_on:
            return secure_headers(RedirectResponse(next_path, status_code=303))
        if request.method == "GET":
            return secure_headers(self.render("login.html", None, next_path=next_path, failed=False))
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BODY_LIMIT:  # a token is short; stop reading a flood
                return secure_headers(Response("The login form is too large.", status_code=413))
        form = parse_qs(body.decode("utf-8", "replace"))
        now = self.parts.clock.now()
        login = await access.login((form.get("token") or [""])[0].strip(), now)
        if login is None:
            return secure_headers(self.render("login.html", None, 401, next_path=next_path, failed=True))
        response = RedirectResponse(safe_next((form.get("next") or [next_path])[0]), status_code=303)
        access.set_cookie(response, request, login, now)
        return secure_headers(response)

    async def logout(self, request: Request) -> Response:
        refused = await self.parts.access.refuse_origin(request)
        if refused is not None:
            return secure_headers(refused)
        response = RedirectResponse("/board/login" if self.parts.access.auth_on else "/board", status_code=303)
        self.parts.access.clear_cookie(response, request)
        return secure_headers(response)


class _Asgi:
    """Makes Starlette route to ``app`` as a raw ASGI app (a bound method would be taken for a handler)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def build_board_routes(parts: BoardParts) -> list[BaseRoute]:
    """The ``/board`` routes; mount them ahead of the MCP app's catch-all."""
    board = Board(parts)
    return [
        Route("/board", board.guarded(board.sessions), methods=["GET"]),
        Route("/board/sessions/{session_id}", board.guarded(board.session), methods=["GET"]),
        Route("/board/tasks/{task_id}", board.guarded(board.task), methods=["GET"]),
        Route("/board/events", _Asgi(board.events), methods=["GET"]),
        Route("/board/login", board.login, methods=["GET", "POST"]),
        Route("/board/logout", board.logout, methods=["POST"]),
        Mount("/board/static", app=StaticFiles(directory=HERE / "static"), name="board-static"),
    ]
