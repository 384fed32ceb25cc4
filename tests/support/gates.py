"""Making concurrent calls overlap inside their transactions, where a race between them would show.

:func:`hold_together` holds the calls of one repository method until they are all waiting there, so they
go on at the same moment. A call that a lock keeps from ever reaching the method (a fix for the race) must
not hang the test: the calls already held go on as soon as a transaction of this database waits for a
lock (``pg_locks``), since the one it waits for is theirs.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from sqlalchemy import text

from app.db.engine import Database

BOUND = 30  # seconds; the calls meet (or one is seen waiting) well before this

_WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE NOT granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def hold_together(
    monkeypatch: pytest.MonkeyPatch, database: Database, cls: Any, name: str, *, parties: int, match: Any = None
) -> list[int]:
    """PostgreSQL: hold calls of ``cls.name`` (whose first argument is ``match``, if given) until ``parties``
    are waiting there, or until some transaction of ``database`` waits for a lock; then let them all go.

    SQLite admits one writer at a time, so there is nothing to hold: this does nothing there. Returns a
    list that counts the calls that arrived while the gate was shut.
    """
    arrived: list[int] = []
    if database.backend != "postgresql":
        return arrived
    go = anyio.Event()
    real = getattr(cls, name)

    async def someone_waits_for_a_lock() -> bool:
        async with database.read_engine.connect() as conn:
            return bool(await conn.scalar(_WAITING))

    async def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
        if (match is None or args[0] == match) and not go.is_set():
            arrived.append(1)
            if len(arrived) >= parties:
                go.set()
            with anyio.fail_after(BOUND):
                while not go.is_set():
                    if await someone_waits_for_a_lock():
                        go.set()
                        break
                    with anyio.move_on_after(0.05):
                        await go.wait()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, gated)
    return arrived
