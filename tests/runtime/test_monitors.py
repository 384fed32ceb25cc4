"""The monitor supervisor: a monitor that raises is logged by name and turns readiness false, never swallowed."""

from __future__ import annotations

import logging

import pytest

from app.runtime.monitors import MonitorSupervisor
from app.runtime.reboot_manager import RebootManager, ServiceState

pytestmark = pytest.mark.anyio


class Crashing:
    name = "lease-sweeper"
    interval = 3600.0

    def __init__(self) -> None:
        self.failing = True

    async def run_once(self) -> None:
        if self.failing:
            raise ValueError("the sweep query failed")


async def test_a_crashing_monitor_is_logged_by_name_and_named_in_readiness(caplog: pytest.LogCaptureFixture) -> None:
    reboot = RebootManager()
    reboot.move_to(ServiceState.READY)
    monitor = Crashing()
    caplog.set_level(logging.ERROR, logger="app.runtime.monitors")
    async with MonitorSupervisor(reboot, [monitor]) as supervisor:
        assert await reboot.wait_until(lambda: bool(reboot.problems), 10)
        assert reboot.readiness() == (False, ["monitor lease-sweeper: ValueError: the sweep query failed"])
        assert not supervisor.healthy
        (record,) = [r for r in caplog.records if getattr(r, "event", None) == "monitor_failed"]
        assert record.monitor == "lease-sweeper"  # type: ignore[attr-defined]
        assert record.exc_info is not None and record.exc_info[0] is ValueError

        monitor.failing = False
        supervisor.wake("lease-sweeper")
        assert await reboot.wait_until(lambda: not reboot.problems, 10)
        assert supervisor.healthy
    assert reboot.readiness() == (True, [])
    assert supervisor.status()["lease-sweeper"].alive is False


async def test_a_stopped_supervisor_leaves_no_stale_monitor_problem() -> None:
    reboot = RebootManager()
    reboot.move_to(ServiceState.READY)
    async with MonitorSupervisor(reboot, [Crashing()]):
        assert await reboot.wait_until(lambda: bool(reboot.problems), 10)
    assert reboot.problems == {}
