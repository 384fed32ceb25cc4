"""Transaction-scoped PostgreSQL advisory locks: one writer at a time per logical key. Never commits.

Some writes decide on a row that does not exist yet (a request's stored result, a directory's active
session), so there is no row to lock; such a write first takes ``pg_advisory_xact_lock`` on a key made
from what identifies that row, then reads. The lock is held until the transaction ends, so a concurrent
call with the same key waits and its read (a later statement: under READ COMMITTED a fresh snapshot) sees
the first one's commit. The lock must be its own statement, before the read: a read in the same statement
would keep the snapshot taken before the wait. SQLite needs none: every write transaction begins
IMMEDIATE and holds the database's write lock, so writers are already serialised.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


def advisory_key(namespace: str, *parts: str) -> int:
    """A signed 64-bit key: blake2b of ``namespace`` and ``parts`` joined by the unit separator.

    Hashed here rather than with ``hashtextextended`` so any text the caller sent (a NUL, a lone
    surrogate) gives a key without reaching the database as text. ``namespace`` keeps the kinds apart.
    """
    joined = "\x1f".join((namespace, *parts)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(joined, digest_size=8).digest(), "big", signed=True)


async def lock_xact(session: AsyncSession, backend: str, namespace: str, *parts: str) -> None:
    """Wait for, then hold until the transaction ends, the advisory lock of this key (PostgreSQL only)."""
    if backend != "postgresql":
        return  # SQLite: the write transaction already holds the database's write lock (BEGIN IMMEDIATE).
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(namespace, *parts)})
