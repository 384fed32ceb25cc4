"""The lease sweeper: a supervised monitor that returns expired claims to the queue.

Every ``ORCHESTRATOR_LEASE_SWEEP_INTERVAL_SECONDS`` it asks :meth:`LeaseService.sweep_expired` to end
every claim whose lease ran out: the task goes back to pending with a ``lease_expired`` event, or to
failed once it has used ``ORCHESTRATOR_MAX_ATTEMPTS`` attempts. Several replicas may sweep at once (the
service picks rows with SKIP LOCKED). A failed sweep raises, so the supervisor logs it by name and turns
readiness false until a sweep succeeds again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.services.work.leases import LeaseService, SweepResult

log = logging.getLogger("app.runtime.lease_sweeper")


class LeaseSweeper:
    """A :class:`app.runtime.monitors.Monitor` named ``lease_sweeper``."""

    name = "lease_sweeper"

    def __init__(self, leases: Callable[[], LeaseService], *, interval: float) -> None:
        # A getter, not the service: a warm restart installs new services and the sweeper must follow.
        self._leases = leases
        self.interval = interval

    async def run_once(self) -> None:
        await self.sweep()

    async def sweep(self) -> SweepResult:
        """One sweep now; returns what it expired (tests and maintenance call it directly)."""
        result = await self._leases().sweep_expired()
        if result.expired:
            log.info(
                "leases_expired",
                extra={
                    "event": "leases_expired",
                    "count": len(result.expired),
                    "released": sum(1 for e in result.expired if e.outcome == "released"),
                    "failed": sum(1 for e in result.expired if e.outcome == "failed"),
                    "task_ids": [e.task_id for e in result.expired][:50],
                },
            )
        return result
