"""ASGI middleware: HTTP requests counted by route and status (bounded labels: known routes or 'other'),
the requests in progress tracked for a graceful shutdown, and request bodies bounded in time."""

from __future__ import annotations

import time

import anyio
from prometheus_client import Counter, Histogram
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics

KNOWN_ROUTES = frozenset({"/mcp", "/healthz", "/readyz", "/metrics"})


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children, looked up once each: ``labels()`` validates and locks on every call, a
        # cost every request paid twice. Bounded: five routes, and the status codes a server sends.
        self._counted: dict[tuple[str, int], Counter] = {}
        self._timed: dict[str, Histogram] = {}

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
            counted = self._counted.get((route, status))
            if counted is None:
                counted = self._counted[(route, status)] = self.metrics.http_requests.labels(
                    route=route, status=str(status)
                )
            timed = self._timed.get(route)
            if timed is None:
                timed = self._timed[route] = self.metrics.http_duration.labels(route=route)
            counted.inc()
            timed.observe(time.perf_counter() - started)


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


class RequestBodyTimeoutMiddleware:
    """Cuts off a request whose body has not fully arrived ``timeout`` seconds after its headers (DESIGN §7).

    A client that sends its body slowly (or never finishes it) would otherwise hold a connection, and the
    request's task, for as long as it likes. Only the wait for the body is bounded: once the last body
    chunk is in, ``receive`` waits for a disconnect again without a limit (the long-lived MCP streams use
    that). When the time is up the request is cancelled and answered 408 with ``Connection: close``, so
    uvicorn closes the connection; if an answer had already begun, the connection is simply dropped.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.timeout
        body_complete = False
        timed_out = False
        response_started = False

        with anyio.CancelScope() as request_scope:

            async def bounded_receive() -> Message:
                nonlocal body_complete, timed_out
                if body_complete:
                    return await receive()
                with anyio.move_on_after(deadline - anyio.current_time()):
                    message = await receive()
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        body_complete = True
                    return message
                timed_out = True
                request_scope.cancel()  # ends the request; to whoever still reads, the client is gone
                return {"type": "http.disconnect"}

            async def watch_start(message: Message) -> None:
                nonlocal response_started
                response_started = response_started or message["type"] == "http.response.start"
                await send(message)

            await self.app(scope, bounded_receive, watch_start)
        if timed_out and not response_started:
            await _body_timeout_response(self.timeout)(scope, receive, send)


def _body_timeout_response(timeout: float) -> JSONResponse:
    return JSONResponse(
        {
            "error": "request_body_timeout",
            "message": f"The request body did not arrive within {timeout:g} s "
            "(ORCHESTRATOR_REQUEST_BODY_TIMEOUT_SECONDS); send the whole body at once and retry.",
        },
        status_code=408,
        headers={"connection": "close"},
    )
