"""The waiters' queue alone (no database): arrival order, the baton, drain, and no lost signal."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from app.services.work.waiting import DRAINING, WaitOutcome, WorkWaiters

pytestmark = pytest.mark.anyio
BOUND = 10


class Queue:
    """A fake ready queue: attempts take tasks from it in order; records who attempted, in order."""

    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.attempts: list[str] = []
        self.outcomes: dict[str, WaitOutcome] = {}

    def attempt_for(self, who: str, *, takes: str | None = None) -> object:
        async def attempt() -> str | None:
            self.attempts.append(who)
            await anyio.lowlevel.checkpoint()  # a transaction takes a while: others may signal meanwhile
            for task in self.tasks:
                if takes is None or task.startswith(takes):
                    self.tasks.remove(task)
                    return task
            return None

        return attempt


async def park(hub: WorkWaiters, queue: Queue, group: anyio.abc.TaskGroup, who: str, **kw: object) -> None:
    before = hub.count

    async def run() -> None:
        takes = kw.get("takes")
        queue.outcomes[who] = await hub.wait(
            "s1",
            filtered=takes is not None,
            seconds=float(kw.get("seconds", 60)),  # type: ignore[arg-type]
            attempt=queue.attempt_for(who, takes=takes),  # type: ignore[arg-type]
        )

    group.start_soon(run)
    while hub.count == before:
        await anyio.lowlevel.checkpoint()


async def settle(queue: Queue, n: int) -> None:
    with anyio.fail_after(BOUND):
        while len(queue.outcomes) < n:
            await anyio.lowlevel.checkpoint()


async def test_one_signal_serves_waiters_in_arrival_order_until_one_finds_nothing() -> None:
    hub, queue = WorkWaiters(), Queue()
    async with anyio.create_task_group() as group:
        for who in ("w1", "w2", "w3", "w4"):
            await park(hub, queue, group, who)
        queue.tasks += ["t1", "t2"]
        hub.signal(["s1"], "signal")
        await settle(queue, 2)
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        assert queue.attempts == ["w1", "w2", "w3"]  # w3 found nothing, so w4 was not bothered
        assert {w: o.result for w, o in queue.outcomes.items()} == {"w1": "t1", "w2": "t2"}
        assert hub.count == 2
        hub.drain()
    assert queue.outcomes["w3"] == queue.outcomes["w4"] == WaitOutcome(None, DRAINING)


async def test_a_signal_during_a_round_restarts_it_from_the_oldest_waiter() -> None:
    hub, queue = WorkWaiters(), Queue()
    async with anyio.create_task_group() as group:
        await park(hub, queue, group, "w1")
        await park(hub, queue, group, "w2")
        hub.signal(["s1"], "signal")  # nothing ready yet: w1 looks, finds nothing
        queue.tasks.append("t1")  # …while a commit lands and signals again
        hub.signal(["s1"], "signal")
        await settle(queue, 1)
        assert queue.outcomes["w1"].result == "t1"
        hub.drain()


async def test_a_filtered_waiter_that_finds_nothing_passes_the_baton_on() -> None:
    hub, queue = WorkWaiters(), Queue()
    async with anyio.create_task_group() as group:
        await park(hub, queue, group, "tester", takes="test")
        await park(hub, queue, group, "coder", takes="code")
        queue.tasks.append("code-1")
        hub.signal(["s1"], "signal")
        await settle(queue, 1)
        assert queue.attempts == ["tester", "coder"]
        assert queue.outcomes["coder"].result == "code-1"
        hub.drain()


async def test_a_wait_runs_out_and_new_waits_are_refused_while_draining() -> None:
    hub, queue = WorkWaiters(), Queue()
    with anyio.fail_after(BOUND):
        ended = await hub.wait("s1", filtered=False, seconds=0.01, attempt=queue.attempt_for("w"))  # type: ignore[arg-type]
    assert ended == WaitOutcome(None, "timeout") and hub.count == 0
    hub.drain()
    assert await hub.wait("s1", filtered=False, seconds=60, attempt=queue.attempt_for("w")) == WaitOutcome(  # type: ignore[arg-type]
        None, DRAINING
    )
    hub.resume()
    queue.tasks.append("t1")
    async with anyio.create_task_group() as group:
        await park(hub, queue, group, "w")
        hub.recheck("interval")
        await settle(queue, 1)
    assert queue.outcomes["w"].result == "t1" and queue.attempts == ["w"]
