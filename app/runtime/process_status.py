"""This process's side of ``orchestrator_get_status``: tool latencies, resources, lifecycle and monitors.

Everything is read from the live objects of this process (the Metrics histograms, ``/proc/self``, the
engine's pool, the RebootManager and the monitor supervisor); nothing is estimated or remembered.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.db.engine import Database
from app.observability.metrics import Metrics
from app.runtime.monitors import MonitorSupervisor
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.services.sessions.status import (
    MonitorHealth,
    MonitorsHealth,
    PoolUsage,
    RebootHealth,
    ResourceUsage,
    ToolStats,
)

PROC_SELF = Path("/proc/self")


class ProcessStatus:
    """Implements :class:`app.services.sessions.status.ProcessProbe` over the parts of this process."""

    def __init__(
        self,
        reboot: RebootManager,
        metrics: Metrics,
        database: Database,
        supervisor: Callable[[], MonitorSupervisor | None],
    ) -> None:
        self._reboot = reboot
        self._metrics = metrics
        self._database = database
        self._supervisor = supervisor

    def tool_stats(self) -> dict[str, ToolStats]:
        return {
            tool: ToolStats(
                calls=int(s["calls"]),
                errors=int(s["errors"]),
                p50_ms=round(s["p50_ms"], 3),
                p95_ms=round(s["p95_ms"], 3),
            )
            for tool, s in sorted(self._metrics.tool_stats().items())
        }

    def resource_usage(self) -> ResourceUsage:
        return ResourceUsage(
            rss_bytes=rss_bytes(),
            cpu_seconds=round(time.process_time(), 3),
            open_fds=open_fds(),
            db_pool=pool_usage(self._database.pool_stats()),
        )

    def reboot_health(self) -> RebootHealth:
        ready, reasons = self._reboot.readiness()
        return RebootHealth(
            ok=ready and self._reboot.state == ServiceState.READY,
            state=self._reboot.state.value,
            in_flight_calls=self._reboot.in_flight,
            problems=reasons,
        )

    def monitors_health(self) -> MonitorsHealth:
        supervisor = self._supervisor()
        if supervisor is None:
            return MonitorsHealth(ok=False, monitors={})
        monitors = {
            name: MonitorHealth(alive=s.alive, runs=s.runs, failures=s.failures, last_error=s.last_error)
            for name, s in sorted(supervisor.status().items())
        }
        return MonitorsHealth(ok=supervisor.healthy, monitors=monitors)


def pool_usage(stats: dict[str, int]) -> PoolUsage:
    """The pool's numbers as get_status shows them."""
    return PoolUsage(
        capacity=stats.get("capacity"),
        checked_out=stats.get("checked_out", 0),
        idle=stats.get("idle", 0),
        overflow=stats.get("overflow", 0),
    )


def rss_bytes() -> int | None:
    """Current resident set size: ``/proc/self/statm`` on Linux, else the peak from getrusage."""
    try:
        resident_pages = int((PROC_SELF / "statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024) or None  # bytes on macOS, KiB on Linux


def open_fds() -> int | None:
    try:
        return len(os.listdir(PROC_SELF / "fd"))
    except OSError:
        return None
