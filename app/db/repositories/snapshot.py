"""SQL for export and import: whole tables read from one snapshot, rows written in bulk. Never commits.

Rows travel as plain ``{column: value}`` mappings (the column types still convert times and JSON), so the
export/import services stay independent of the ORM classes' behaviour. Event ids are the one generated
key: the import shifts them past the target's last event and then moves PostgreSQL's sequence on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Base, TaskEvent

CHUNK = 500


class SnapshotRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    async def begin_snapshot(self) -> None:
        """Make this read transaction one consistent snapshot of every table.

        PostgreSQL: ``REPEATABLE READ`` (must be the transaction's first statement). SQLite in WAL mode:
        a read transaction already sees one snapshot from its first read on.
        """
        if self._backend == "postgresql":
            await self._session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))

    async def count(self, model: type[Base]) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(model.__table__)) or 0)

    async def rows(self, model: type[Base]) -> list[dict[str, Any]]:
        """Every row of ``model``'s table as a column mapping (unordered: callers sort portably)."""
        result = await self._session.execute(select(model.__table__))
        return [dict(row) for row in result.mappings()]

    async def events_after(self, after_id: int, *, limit: int) -> list[dict[str, Any]]:
        """The next ``limit`` task events by id (keyset paging keeps memory bounded on big logs)."""
        table = TaskEvent.__table__
        result = await self._session.execute(
            select(table).where(table.c.id > after_id).order_by(table.c.id).limit(limit)
        )
        return [dict(row) for row in result.mappings()]

    async def existing_values(self, model: type[Base], column: str, values: Iterable[Any]) -> set[Any]:
        """Which of ``values`` already occur in ``column`` (for clash checks before an import writes)."""
        table = model.__table__
        wanted = list(values)
        found: set[Any] = set()
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows = await self._session.scalars(select(table.c[column]).where(table.c[column].in_(chunk)))
            found.update(rows.all())
        return found

    async def insert_rows(self, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
        """Bulk insert in order (parents before children where the caller sorted them so)."""
        for start in range(0, len(rows), CHUNK):
            await self._session.execute(insert(model), [dict(row) for row in rows[start : start + CHUNK]])

    async def lock_event_log(self) -> None:
        """Keep other writers from appending events until this transaction ends, so the ids an import
        assigns cannot collide with new ones (PostgreSQL ``LOCK … EXCLUSIVE``; SQLite: the immediate
        transaction already excludes every other writer)."""
        if self._backend == "postgresql":
            await self._session.execute(text("LOCK TABLE task_event IN EXCLUSIVE MODE"))

    async def max_event_id(self) -> int:
        return int(await self._session.scalar(select(func.max(TaskEvent.id))) or 0)

    async def sync_event_sequence(self) -> None:
        """After explicit ids were written, make PostgreSQL's sequence continue above them (SQLite picks
        ``max(rowid) + 1`` by itself)."""
        if self._backend == "postgresql":
            await self._session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('task_event', 'id'), max(id)) FROM task_event "
                    "HAVING max(id) IS NOT NULL"
                )
            )
