"""The SIGTERM handling of DrainingServer, driven through its signal handler inside a running tool call."""

from __future__ import annotations

import asyncio
import signal

import anyio
import pytest
import uvicorn

from app import errors
from app.runtime.reboot_manager import RebootManager, ServiceState
from app.runtime.serving import DrainingServer

pytestmark = pytest.mark.anyio


async def no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not served in this test")


def started_server(reboot: RebootManager, drain_timeout: float = 30) -> DrainingServer:
    server = DrainingServer(uvicorn.Config(no_app), reboot=reboot, drain_timeout=drain_timeout)
    server._loop = asyncio.get_running_loop()
    server.started = True
    return server


def ready_manager() -> RebootManager:
    reboot = RebootManager()
    reboot.move_to(ServiceState.READY)
    return reboot


async def test_a_sigterm_that_interrupts_a_tool_call_still_waits_for_that_call() -> None:
    # A signal handler runs inside whatever code it interrupted, here a tool call's context.
    reboot = ready_manager()
    async with reboot.track_call("orchestrator_plan_task"):
        server = started_server(reboot)
        server.handle_exit(signal.SIGTERM, None)
        assert await reboot.wait_until(lambda: reboot.state == ServiceState.DRAINING, 5)
        await anyio.wait_all_tasks_blocked()  # the drain task now waits for this call
        assert not server.should_exit
    assert server._drain_task is not None
    with anyio.fail_after(5):
        await server._drain_task  # ends once the call is over
    assert server.should_exit and server.drain_outcome is not None
    assert (server.drain_outcome.waited_for, server.drain_outcome.cancelled) == (1, 0)
    assert reboot.stop_requested


async def test_a_second_sigterm_cancels_the_interrupted_call_which_answers_unavailable() -> None:
    reboot = ready_manager()
    answers: list[str] = []
    with anyio.fail_after(5):
        try:
            async with reboot.track_call("orchestrator_plan_task"):
                server = started_server(reboot)
                server.handle_exit(signal.SIGTERM, None)
                server.handle_exit(signal.SIGTERM, None)
                await anyio.sleep_forever()
        except errors.Unavailable as exc:
            answers.append(exc.code)
    assert answers == ["unavailable"]
    assert server.should_exit and reboot.cancelled_calls == 1
