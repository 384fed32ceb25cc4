"""SQLite connections close even when SQLAlchemy closes one twice at once (app.db.engine.StopOnceConnection).

SQLAlchemy invalidates a connection whose statement was cancelled (a call past its time bound, a call
cancelled by a drain) with a shielded graceful ``close()`` and, when that is cancelled too, a forced
``stop()``. On aiosqlite 0.22 the graceful close then waited forever for a worker thread the forced stop
had already ended, and the event loop could never shut down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from app.db.engine import StopOnceConnection

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite is asyncio-only


async def test_a_graceful_close_racing_a_forced_stop_ends(tmp_path: Path) -> None:
    connection = await StopOnceConnection.open(str(tmp_path / "o.db"), timeout=1.0)
    closing = asyncio.ensure_future(connection.close())  # SQLAlchemy's graceful close, queued first
    await asyncio.sleep(0)
    connection.stop()  # then its forced stop

    with anyio.fail_after(10):
        await closing
        await anyio.to_thread.run_sync(connection._thread.join, 10)  # the worker thread has ended

    assert not connection._thread.is_alive()


async def test_stopping_twice_gives_the_first_stop(tmp_path: Path) -> None:
    connection = await StopOnceConnection.open(str(tmp_path / "o.db"), timeout=1.0)
    first = connection.stop()

    assert connection.stop() is first
    with anyio.fail_after(10):
        await asyncio.shield(first) if first is not None else None
