"""The RebootManager's gate: admission by state, drains that never wait for the asker, cancellable calls."""

from __future__ import annotations

import anyio
import pytest

from app import errors
from app.runtime.reboot_manager import RebootManager, ServiceState

pytestmark = pytest.mark.anyio


def ready_manager() -> RebootManager:
    reboot = RebootManager()
    reboot.move_to(ServiceState.READY)
    return reboot


async def test_calls_are_refused_with_a_retryable_unavailable_unless_ready() -> None:
    reboot = RebootManager()
    with pytest.raises(errors.Unavailable) as starting:
        async with reboot.track_call("orchestrator_query_tasks"):
            pytest.fail("admitted while starting")
    assert (starting.value.retryable, starting.value.details["retry_after_seconds"]) == (True, 1.0)
    reboot.move_to(ServiceState.READY)
    async with reboot.track_call("orchestrator_query_tasks"):
        assert reboot.in_flight == 1
    assert reboot.in_flight == 0


async def test_operator_tools_still_run_while_draining_but_not_while_stopping() -> None:
    reboot = ready_manager()
    reboot.admit_always("orchestrator_health_check")
    reboot.begin_drain()
    async with reboot.track_call("orchestrator_health_check"):
        pass
    with pytest.raises(errors.Unavailable):
        async with reboot.track_call("orchestrator_plan_task"):
            pass
    reboot.move_to(ServiceState.STOPPING)
    with pytest.raises(errors.Unavailable) as stopping:
        async with reboot.track_call("orchestrator_health_check"):
            pass
    assert stopping.value.details["retry_after_seconds"] == 5.0


async def test_a_drain_waits_for_the_other_calls_but_never_for_the_call_that_asked() -> None:
    reboot = ready_manager()
    release = anyio.Event()
    outcomes: list[object] = []

    async def other_call() -> None:
        async with reboot.track_call("orchestrator_plan_task"):
            await release.wait()

    async def restarting_call() -> None:
        async with reboot.track_call("orchestrator_restart_server"):
            reboot.begin_drain()
            outcomes.append(await reboot.drain(30, graceful=True))

    async with anyio.create_task_group() as group:
        group.start_soon(other_call)
        assert await reboot.wait_until(lambda: reboot.in_flight == 1, 5)
        group.start_soon(restarting_call)
        assert await reboot.wait_until(lambda: reboot.state == ServiceState.DRAINING, 5)
        assert reboot.in_flight == 2 and not outcomes
        release.set()
    (outcome,) = outcomes
    assert (outcome.waited_for, outcome.cancelled, outcome.timed_out) == (1, 0, False)  # type: ignore[attr-defined]


async def test_an_abrupt_drain_cancels_the_other_calls_and_they_answer_retryable_unavailable() -> None:
    reboot = ready_manager()
    started = anyio.Event()
    answers: list[errors.OrchestratorError] = []

    async def slow_call() -> None:
        try:
            async with reboot.track_call("orchestrator_plan_task"):
                started.set()
                await anyio.sleep_forever()
        except errors.Unavailable as exc:
            answers.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(slow_call)
        await started.wait()
        async with reboot.track_call("orchestrator_restart_server"):
            reboot.begin_drain()
            outcome = await reboot.drain(30, graceful=False)
    assert (outcome.waited_for, outcome.cancelled) == (1, 1)
    assert [(a.code, a.retryable) for a in answers] == [("unavailable", True)]
    assert reboot.in_flight == 0 and reboot.cancelled_calls == 1


async def test_a_graceful_drain_past_its_timeout_cancels_the_stragglers() -> None:
    reboot = ready_manager()
    started = anyio.Event()
    answers: list[str] = []

    async def stuck_call() -> None:
        try:
            async with reboot.track_call("orchestrator_plan_task"):
                started.set()
                await anyio.sleep_forever()
        except errors.Unavailable as exc:
            answers.append(exc.code)

    async with anyio.create_task_group() as group:
        group.start_soon(stuck_call)
        await started.wait()
        reboot.request_stop()
        outcome = await reboot.drain(0, graceful=True)
    assert (outcome.cancelled, outcome.timed_out, answers) == (1, True, ["unavailable"])
    assert reboot.readiness() == (False, ["service is draining"])
    assert reboot.stop_requested
