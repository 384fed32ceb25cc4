"""Serving under uvicorn with a graceful drain on SIGTERM (DESIGN §8), and the MCP SDK's live sessions.

uvicorn's own handler (``Server.handle_exit``) makes the main loop exit at once: it stops listening,
waits ``timeout_graceful_shutdown`` for connections and then cancels them, and afterwards re-raises the
signal (so the process would die by SIGTERM rather than exit 0). :class:`DrainingServer` replaces it:

1. first SIGTERM/SIGINT: the RebootManager goes to draining — ``/readyz`` answers 503 and new tool calls
   get a retryable ``unavailable`` while the listener keeps answering — and the calls in flight get
   ``drain_timeout`` seconds to finish; the ones still running then are cancelled (their transactions roll
   back). Only then does uvicorn's shutdown start: legacy MCP sessions are closed so their streams end,
   connections close, and the lifespan stops the parts in reverse order. The process exits 0.
2. a second signal forces the stop: the calls in flight are cancelled now.
3. a third one is uvicorn's force exit (no waiting for anything).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from app.runtime.reboot_manager import DrainOutcome, RebootManager

log = logging.getLogger("app.runtime")
CONNECTION_CLOSE_TIMEOUT_SECONDS = 5.0  # uvicorn's wait for connections, after the drain already finished


def live_session_ids(manager: StreamableHTTPSessionManager) -> list[str]:
    """Ids of the legacy (2025-11-25) stateful sessions this process holds.

    The SDK has no public count; ``_server_instances`` is the manager's own registry (mcp 2.3, pinned to
    the 2.x major). The 2026-07-28 era is sessionless and never appears here.
    """
    return list(manager._server_instances)


async def close_sessions(manager: StreamableHTTPSessionManager) -> int:
    """Terminate every legacy session so its open streams end (the process is about to stop)."""
    transports = list(manager._server_instances.values())
    for transport in transports:
        await transport.terminate()
    return len(transports)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the drain-first shutdown described above."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        reboot: RebootManager,
        drain_timeout: float,
        before_shutdown: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__(config)
        self.reboot = reboot
        self.drain_timeout = drain_timeout
        self._before_shutdown = before_shutdown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0
        self._drain_task: asyncio.Task[None] | None = None
        self.drain_outcome: DrainOutcome | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler between two bytecodes of the loop's thread: only hand work to the loop.
        # Not calling super(): it would record the signal and uvicorn would re-raise it after the shutdown.
        # The work runs in an empty context: the interrupted code may be a tool call, and the drain must
        # not take that call's context (the RebootManager would treat it as the drain's own call).
        self._signals += 1
        if self._loop is None or not self.started:
            self.should_exit = True  # still starting up: nothing to drain
        elif self._signals == 1:
            self._loop.call_soon_threadsafe(self._begin_drain, sig, context=contextvars.Context())
        elif self._signals == 2:
            self._loop.call_soon_threadsafe(self._force_stop, context=contextvars.Context())
        else:
            self.should_exit = True
            self.force_exit = True

    def _begin_drain(self, sig: int) -> None:
        log.warning(
            "drain_started",
            extra={"event": "drain_started", "signal": sig, "in_flight": self.reboot.in_flight},
        )
        self.reboot.request_stop()
        assert self._loop is not None
        self._drain_task = self._loop.create_task(self._drain(), name="sigterm-drain")

    async def _drain(self) -> None:
        try:
            self.drain_outcome = await self.reboot.drain(self.drain_timeout, graceful=True)
        finally:
            self.should_exit = True

    def _force_stop(self) -> None:
        log.warning("drain_forced", extra={"event": "drain_forced", "in_flight": self.reboot.in_flight})
        self.reboot.request_stop()
        self.reboot.cancel_other_calls()
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._before_shutdown is not None and not self.force_exit:
            await self._before_shutdown()
        await super().shutdown(sockets)


def serve(
    app: object,
    *,
    host: str,
    port: int,
    reboot: RebootManager,
    drain_timeout: float,
    before_shutdown: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Run ``app`` until SIGTERM/SIGINT, draining first; returns normally (exit status 0)."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]  # a Starlette app is an ASGI application
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=max(1, math.ceil(min(drain_timeout, CONNECTION_CLOSE_TIMEOUT_SECONDS))),
    )
    server = DrainingServer(config, reboot=reboot, drain_timeout=drain_timeout, before_shutdown=before_shutdown)
    server.run()
