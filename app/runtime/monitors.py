"""Background monitors, started, named and supervised (after procrastinate's worker side tasks).

Each monitor is an object with a ``name``, an ``interval`` and an async ``run_once``. The supervisor runs
every one in its own loop. A run that raises is never swallowed: it is logged with the monitor's name
and traceback, readiness turns false with the reason, and the loop tries again after a backoff; the
first clean run clears the problem. A run that raises :class:`MonitorDegraded` is working on a fallback:
it is counted and shown in the monitor's status (health_check), but readiness stays true.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from app import errors
from app.runtime.reboot_manager import RebootManager

log = logging.getLogger("app.runtime.monitors")
MAX_BACKOFF_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0


class MonitorDegraded(Exception):
    """Raised by a run that did only part of its job and is covering the rest by a fallback (the change
    listener without its connection: waiters re-check the queue at an interval instead).

    The supervisor counts it as a failure and shows it in ``orchestrator_health_check`` (``last_error``),
    but readiness stays true: the replica still serves correctly, only less cheaply.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Monitor(Protocol):
    name: str
    interval: float

    async def run_once(self) -> None: ...


@dataclass
class MonitorStatus:
    alive: bool = False
    runs: int = 0
    failures: int = 0
    last_error: str | None = None


class MonitorSupervisor:
    """Runs monitors in a task group for as long as it is entered."""

    def __init__(self, reboot_manager: RebootManager, monitors: Sequence[Monitor]) -> None:
        self._reboot = reboot_manager
        self._monitors = list(monitors)
        self._status = {m.name: MonitorStatus() for m in self._monitors}
        self._group: TaskGroup | None = None
        self._stopping = False
        self._wake = {m.name: anyio.Event() for m in self._monitors}

    def status(self) -> dict[str, MonitorStatus]:
        return dict(self._status)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self._monitors]

    @property
    def healthy(self) -> bool:
        return all(s.alive and s.last_error is None for s in self._status.values())

    def get(self, name: str) -> Monitor:
        """The supervised monitor called ``name`` (so an operator path or a test can run it directly)."""
        for monitor in self._monitors:
            if monitor.name == name:
                return monitor
        raise KeyError(name)

    def wake(self, name: str) -> None:
        """Run a monitor now instead of waiting for its interval (used by tests and maintenance)."""
        self._wake[name].set()

    async def __aenter__(self) -> MonitorSupervisor:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        for monitor in self._monitors:
            self._group.start_soon(self._loop, monitor, name=f"monitor:{monitor.name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        # Let a run in progress finish its transaction (interrupting a query mid-flight leaves the driver
        # with a half-used connection); only a run that overstays STOP_GRACE_SECONDS is cancelled.
        self._stopping = True
        for event in self._wake.values():
            event.set()
        self._group.cancel_scope.deadline = anyio.current_time() + STOP_GRACE_SECONDS
        result = await self._group.__aexit__(exc_type, exc, tb)
        for name, status in self._status.items():
            status.alive = False
            # A stopped monitor is no longer failing; its successor (after a restart) reports afresh.
            self._reboot.clear_problem(f"monitor {name}")
        return result

    async def _pause(self, monitor: Monitor, delay: float) -> None:
        """Sleep ``delay`` seconds, or until woken (``wake`` or shutdown)."""
        with anyio.move_on_after(delay):
            await self._wake[monitor.name].wait()
        if not self._stopping:
            self._wake[monitor.name] = anyio.Event()

    async def _loop(self, monitor: Monitor) -> None:
        status = self._status[monitor.name]
        status.alive = True
        delay = monitor.interval
        try:
            while not self._stopping:
                try:
                    await monitor.run_once()
                except errors.Unavailable as exc:
                    # The database is down or draining: readiness already says so (circuit breaker, probe);
                    # the monitor is healthy and simply tries again at its next interval.
                    log.warning(
                        "monitor_skipped",
                        extra={"event": "monitor_skipped", "monitor": monitor.name, "reason": exc.message},
                    )
                    delay = monitor.interval
                    await self._pause(monitor, delay)
                    continue
                except MonitorDegraded as exc:
                    status.runs += 1
                    if status.last_error is None:  # one failure per episode, however many runs it lasts
                        status.failures += 1
                        log.warning(
                            "monitor_degraded",
                            extra={"event": "monitor_degraded", "monitor": monitor.name, "reason": exc.message},
                        )
                    status.last_error = exc.message[:300]
                    self._reboot.clear_problem(f"monitor {monitor.name}")
                    delay = monitor.interval
                except Exception as exc:  # supervised: logged by name, surfaced in readiness, retried
                    status.failures += 1
                    status.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    log.exception("monitor_failed", extra={"event": "monitor_failed", "monitor": monitor.name})
                    self._reboot.report_problem(f"monitor {monitor.name}", status.last_error)
                    delay = min(max(delay * 2, monitor.interval), MAX_BACKOFF_SECONDS)
                else:
                    status.runs += 1
                    status.last_error = None
                    self._reboot.clear_problem(f"monitor {monitor.name}")
                    delay = monitor.interval
                await self._pause(monitor, delay)
        finally:
            status.alive = False
