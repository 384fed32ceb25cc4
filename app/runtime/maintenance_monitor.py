"""The maintenance monitor: scan_cleanup's fixes over every session, once per interval.

It runs under the :class:`~app.runtime.monitors.MonitorSupervisor` like any monitor (a failing run is
logged by name and turns readiness false until a run succeeds). Each run is one transaction of
:meth:`MaintenanceService.run_scheduled`, which releases expired claims, returns holderless in-progress
rows to pending, clears stale holders, purges idempotency records older than 24 h, and records a
``maintenance_run`` system event. The service is looked up on every run, so a warm restart that swaps
the services is picked up without rebuilding the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from app.services.maintenance.coordinator import MaintenanceResult, MaintenanceService

log = logging.getLogger("app.runtime.maintenance")


class MaintenanceMonitor:
    name = "maintenance"

    def __init__(self, service: Callable[[], MaintenanceService], interval: float) -> None:
        self._service = service
        self.interval = interval
        self.completed_runs = 0
        self.last_result: MaintenanceResult | None = None
        self._progress = anyio.Event()

    async def run_once(self) -> None:
        result = await self._service().run_scheduled()
        fixed = {f.kind: f.count for f in result.fixed}
        log.info("maintenance_run", extra={"event": "maintenance_run", "fixed": fixed})
        self.last_result = result
        self.completed_runs += 1
        done, self._progress = self._progress, anyio.Event()
        done.set()

    async def wait_for_runs(self, count: int) -> None:
        """Return once ``count`` runs have completed (tests and operators gate on this, never on time)."""
        while self.completed_runs < count:
            await self._progress.wait()
