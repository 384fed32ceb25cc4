"""Every row of every table, to prove a refused call wrote nothing (not even a touched timestamp)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db.engine import Database
from app.db.models import Base

Snapshot = dict[str, list[tuple[Any, ...]]]


async def snapshot(database: Database) -> Snapshot:
    """All rows, per table, in primary-key order (values compared as Python objects)."""
    result: Snapshot = {}
    async with database.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            result[table.name] = [tuple(row) for row in rows]
    return result


async def row_counts(database: Database) -> dict[str, int]:
    return {name: len(rows) for name, rows in (await snapshot(database)).items()}


def diff(before: Snapshot, after: Snapshot) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """The rows that appeared or disappeared per table (an update shows as one of each)."""
    changes: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        added = [row for row in new if row not in old]
        removed = [row for row in old if row not in new]
        if added or removed:
            changes[name] = {"added": added, "removed": removed}
    return changes


def callers_rows(rows: Snapshot) -> Snapshot:
    """The snapshot without the background monitors' own agent rows: the lease sweeper and the maintenance
    monitor record their visits (``system:…`` actors) on a timer, whatever the calls under test do."""
    return {**rows, "agent": [row for row in rows["agent"] if not str(row[0]).startswith("system:")]}
