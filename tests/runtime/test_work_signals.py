"""The signal path's pieces: NOTIFY payloads, and the router's local delivery."""

from __future__ import annotations

import json

import pytest

from app.runtime.work_signals import MAX_PAYLOAD_BYTES, ChangeRouter, decode, encode, listen_dsn
from app.services.changes import Change
from app.services.work.waiting import WorkWaiters

pytestmark = pytest.mark.anyio


def test_a_large_change_is_split_into_payloads_under_the_channel_limit_that_decode_back() -> None:
    change = Change(("s1",), tuple(f"task-{n:05d}-{'x' * 20}" for n in range(1000)), wakes=True, at=1.5)
    payloads = encode(change, "origin")
    assert len(payloads) > 1
    assert all(len(p.encode()) < MAX_PAYLOAD_BYTES for p in payloads)
    decoded = [decode(p) for p in payloads]
    assert {d[0] for d in decoded if d} == {"origin"}
    assert [t for d in decoded if d for t in d[1].task_ids] == list(change.task_ids)
    assert all(d is not None and d[1].session_ids == ("s1",) and d[1].wakes and d[1].at == 1.5 for d in decoded)


def test_a_payload_that_is_not_ours_is_ignored() -> None:
    assert decode("hello") is None
    assert decode(json.dumps({"o": "x"})) is None


def test_the_listen_connection_is_only_for_postgresql() -> None:
    assert listen_dsn("sqlite+aiosqlite:///tmp/x.db") is None
    assert listen_dsn("postgresql+asyncpg://u:p@h:5/db") == "postgresql://u:p@h:5/db"


async def test_the_router_feeds_every_consumer_and_ignores_its_own_notifications() -> None:
    router = ChangeRouter(WorkWaiters(), "me")
    seen: list[Change] = []
    router.add_consumer(seen.append)
    router.add_consumer(lambda change: 1 / 0)  # a failing consumer costs the others nothing
    local = Change(("s1",), ("t1",), wakes=False, at=1.0)
    await router.changed(local)
    (own,) = encode(Change(("s2",), (), wakes=True, at=2.0), "me")
    router.received(own)
    (other,) = encode(Change(("s3",), ("t3",), wakes=True, at=3.0), "them")
    router.received(other)
    assert seen == [local, Change(("s3",), ("t3",), wakes=True, at=3.0)]


async def test_a_claim_only_change_waits_in_the_outbox_for_the_listener_and_a_waking_one_does_not() -> None:
    router = ChangeRouter(WorkWaiters(), "me")
    router.remote = True
    claimed = Change(("s1",), ("t1",), wakes=False, at=1.0)
    await router.changed(claimed)
    await router.changed(Change(("s1",), ("t2",), wakes=True, at=2.0))  # went out inside its transaction
    assert [decode(p) for p in router.take_outbox()] == [("me", claimed)]
    assert router.take_outbox() == []
