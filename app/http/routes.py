"""The plain HTTP routes beside ``/mcp``: liveness, readiness and metrics.

``/healthz`` never touches the database (a slow database must not get the pod killed). ``/readyz``
asks the RebootManager and probes the database with a short timeout, answering 503 with the reasons.
``/metrics`` refreshes the database-backed gauges (task counts cached a few seconds, pool state read
live) and renders the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.observability.metrics import Metrics
from app.runtime.reboot_manager import RebootManager, ServiceState

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A scrape must answer even when the database hangs; the task gauges then keep their last values.
TASK_COUNTS_TIMEOUT_SECONDS = 2.0
log = logging.getLogger("app.http")


@dataclass
class Probes:
    """What the routes need, supplied by the composition root."""

    reboot: RebootManager
    metrics: Metrics
    check_database: Callable[[], Awaitable[str | None]]  # None when fine, else the reason
    task_counts: Callable[[], Awaitable[Mapping[str, int] | None]]  # None while there is no database
    pool_stats: Callable[[], Mapping[str, int]]
    version: str


def build_routes(probes: Probes) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive", "version": probes.version})

    async def readyz(_: Request) -> Response:
        # Probe even when a problem is already reported: the probe is how a tripped database circuit
        # closes again when no tool call arrives (a pod that is not ready gets no traffic).
        problem = await probes.check_database() if probes.reboot.state == ServiceState.READY else None
        ready, reasons = probes.reboot.readiness()
        if problem is not None:
            ready = False
            reason = f"database: {problem}"
            if reason not in reasons:
                reasons.append(reason)
        probes.metrics.ready.set(1 if ready else 0)
        body = {"ready": ready, "state": probes.reboot.state.value, "reasons": reasons}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        try:
            with anyio.fail_after(TASK_COUNTS_TIMEOUT_SECONDS):
                await probes.metrics.refresh_task_counts(probes.task_counts)
        except Exception as exc:  # a database outage must not break the scrape: keep the last counts
            # The unit of work has already counted a driver failure in orchestrator_db_errors_total.
            log.warning(
                "task_counts_unavailable", extra={"event": "task_counts_unavailable", "error": type(exc).__name__}
            )
        probes.metrics.set_pool(probes.pool_stats())
        ready = probes.reboot.readiness()[0]
        probes.metrics.ready.set(1 if ready else 0)
        return PlainTextResponse(probes.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
