"""ASGI middleware: HTTP requests counted by route and status (bounded labels: known routes or 'other'),
and the requests in progress tracked for a graceful shutdown."""

from __future__ import annotations

import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics

KNOWN_ROUTES = frozenset({"/mcp", "/healthz", "/readyz", "/metrics"})


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in KNOWN_ROUTES else "other"
        status = 500
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.http_requests.labels(route=route, status=str(status)).inc()
            self.metrics.http_duration.labels(route=route).observe(time.perf_counter() - started)


class RequestTracker:
    """HTTP requests being answered right now, leaving out the long-lived MCP GET streams.

    A shutdown waits for these to finish before it closes the MCP sessions: a tool call that completed
    during the drain still has its answer on the way, and closing its session first would lose it.
    """

    def __init__(self) -> None:
        self.active = 0
        self._idle = anyio.Event()
        self._idle.set()

    def started(self) -> None:
        self.active += 1
        if self.active == 1:
            self._idle = anyio.Event()

    def finished(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when no request is being answered, waiting at most ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            await self._idle.wait()
        return self.active == 0


class RequestTrackingMiddleware:
    def __init__(self, app: ASGIApp, tracker: RequestTracker) -> None:
        self.app = app
        self.tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET":
            # GETs are probes (instant) or MCP's standalone streams (open until the session ends).
            await self.app(scope, receive, send)
            return
        self.tracker.started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.tracker.finished()
