"""BoardFeed over a real ChangeRouter (in process): subscription, coalescing, overflow, missed changes."""

from __future__ import annotations

import anyio
import pytest

from app.board.feed import BoardChange, BoardFeed
from app.runtime.work_signals import ChangeRouter, encode
from app.services.changes import Change
from app.services.work.waiting import WorkWaiters

pytestmark = pytest.mark.anyio
BOUND = 10


def change(session: str, *tasks: str) -> Change:
    return Change((session,), tasks, wakes=True, at=1.0)


async def test_changes_that_arrive_together_leave_as_one_board_change_local_or_from_another_replica() -> None:
    router = ChangeRouter(WorkWaiters(), "me")
    with BoardFeed(router).changes() as changes:
        await router.changed(change("s1", "t1"))
        (remote,) = encode(change("s2", "t2", "t3"), "them")
        router.received(remote)
        with anyio.fail_after(BOUND):
            first = await anext(changes)
        await router.changed(change("s1", "t4"))
        with anyio.fail_after(BOUND):
            second = await anext(changes)
    assert first == BoardChange(session_ids=frozenset({"s1", "s2"}), task_ids=frozenset({"t1", "t2", "t3"}))
    assert second == BoardChange(session_ids=frozenset({"s1"}), task_ids=frozenset({"t4"}))


async def test_each_subscription_sees_changes_from_its_start_and_leaves_the_router_when_closed() -> None:
    router = ChangeRouter(WorkWaiters(), "me")
    feed = BoardFeed(router)
    before = router.consumer_count
    with feed.changes() as early:
        await router.changed(change("s1", "t1"))
        with feed.changes() as late:
            await router.changed(change("s1", "t2"))
            with anyio.fail_after(BOUND):
                assert await anext(early) == BoardChange(frozenset({"s1"}), frozenset({"t1", "t2"}))
                assert await anext(late) == BoardChange(frozenset({"s1"}), frozenset({"t2"}))
        assert router.consumer_count == before + 1
    assert router.consumer_count == before
    await router.changed(change("s1", "t3"))  # nobody listens any more: nothing to fail


async def test_a_subscription_whose_buffer_is_full_ends_without_holding_up_the_router_or_the_others() -> None:
    router = ChangeRouter(WorkWaiters(), "me")
    others: list[Change] = []
    router.add_consumer(others.append)
    with BoardFeed(router, buffer=2).changes() as slow:
        for n in range(5):  # nobody reads ``slow``: the third change finds its buffer full
            await router.changed(change("s1", f"t{n}"))
        with anyio.fail_after(BOUND):
            rest = [c async for c in slow]
        assert (rest, slow.ended) == ([], "overflow")
        assert router.consumer_count == 1  # it left the router at once
    assert [c.task_ids for c in others] == [(f"t{n}",) for n in range(5)]


async def test_missed_changes_end_every_open_subscription_and_reach_no_plain_consumer() -> None:
    router = ChangeRouter(WorkWaiters(), "me")
    others: list[Change] = []
    router.add_consumer(others.append)
    feed = BoardFeed(router)
    with feed.changes() as one, feed.changes() as two:
        router.changes_missed()
        with anyio.fail_after(BOUND):
            assert [c async for c in one] == []
            assert [c async for c in two] == []
        assert (one.ended, two.ended) == ("missed", "missed")
    assert others == []
    with feed.changes() as fresh:  # a new subscription after it works as before
        await router.changed(change("s1", "t1"))
        with anyio.fail_after(BOUND):
            assert await anext(fresh) == BoardChange(frozenset({"s1"}), frozenset({"t1"}))
        assert fresh.ended is None
