"""A flush of one changed task and the events appended with it, below the ORM: one statement on PostgreSQL.

Most writes end the same way: the service changed one task it read under its row lock (a claim, a
completion, an update, a cancel) and appended ``task_event`` rows (``EventRepository.append``). The ORM's
unit of work flushes that as two round trips (the task's ``UPDATE``, then the events' ``INSERT … RETURNING
id``) and spends more Python on working out the order, the parameters and the returned ids than the
statements cost the database. Claim and complete run it on every call, so when a write transaction
flushes exactly that and nothing else, a ``before_flush`` listener writes it itself, with statement texts
built once per shape and sent through the connection below the statement cache (no cache key, no compile).
On PostgreSQL it is one data-modifying statement:

    WITH updated AS (UPDATE task SET <the changed columns> WHERE id = $n RETURNING 1),
         appended AS (INSERT INTO task_event (…) SELECT … FROM unnest($…[], …) WITH ORDINALITY … ORDER BY n)
    SELECT count(*) FROM updated

and on SQLite (no data-modifying CTE) the ``UPDATE`` and one ``executemany`` of the events. Then it tells
the session it is done: the ``after_flush`` listeners (``app.services.changes``) run first, so they see the
flush as they always do, the task's state is committed as the ORM would commit it after its own UPDATE,
and the events (append-only; nobody holds them, their ids are never read back) leave the session. The
ORM's own rules are kept: only the columns whose value changed (compared as the column type compares
them, so a context that only changed a JSON type is still written), an ``UPDATE`` that matched no row
raises the ORM's ``StaleDataError``, and the events' ids increase in the order they were appended.

Anything else in the flush (a new task, a second changed task, a session or agent row, a delete) and the
whole flush is left to the ORM, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Table, event, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.sql.elements import ClauseElement

from app.db.models import Task, TaskEvent

ENABLED_KEY = "orchestrator_row_flush"
_TASKS: Table = Task.__table__  # type: ignore[assignment]
_EVENTS: Table = TaskEvent.__table__  # type: ignore[assignment]
_EVENT_COLUMNS = ("session_id", "task_id", "kind", "actor", "at", "data")
# The array type each event column is sent as; data travels as text and is cast to jsonb row by row.
_EVENT_ARRAYS = ("varchar[]", "varchar[]", "varchar[]", "varchar[]", "timestamptz[]", "text[]")
STATEMENT_CACHE_SIZE = 64  # distinct sets of changed task columns; the services use about a dozen

Processor = Callable[[Any], Any] | None


def enable(session: AsyncSession) -> None:
    """Let this write transaction's flushes of one task and its events be written below the ORM."""
    session.info[ENABLED_KEY] = True


def _before_flush(session: Session, flush_context: UOWTransaction, objects: Sequence[Any] | None) -> None:
    """Write the flush itself when it is one changed task and new events only; else leave it to the ORM."""
    if not session.info.get(ENABLED_KEY) or objects or session.deleted:
        return
    events: list[InstanceState[Any]] = []
    for obj in session.new:
        if not isinstance(obj, TaskEvent):
            return  # a new task, artifact, session…: the ORM orders the inserts
        events.append(inspect(obj))
    changed: InstanceState[Any] | None = None
    columns: tuple[str, ...] = ()
    touched: list[InstanceState[Any]] = []
    for obj in session.dirty:
        if not isinstance(obj, Task):
            return
        state: InstanceState[Any] = inspect(obj)
        touched.append(state)
        keys = tuple(sorted(key for key in state.committed_state if state.attrs[key].history.has_changes()))
        if not keys:
            continue  # set to the value it had: the ORM would write nothing for it either
        if changed is not None or state.key is None:
            return  # two changed tasks: two UPDATEs of different shapes, the ORM's job
        if any(isinstance(state.dict.get(key), ClauseElement) for key in keys):
            return  # a value computed by SQL (``version = Task.version + 1``) is the ORM's to render
        changed, columns = state, keys
    if changed is None and not events:
        return
    if any(not all(column in state.dict for column in _EVENT_COLUMNS) for state in events):
        return  # an event built without every column (only EventRepository.append builds them, with all)
    events.sort(key=lambda state: state.insert_order or 0)
    connection = session.connection()
    statements = _statements(columns, changed is not None, bool(events), connection.dialect)
    task_params: list[Any] = []
    if changed is not None:
        values = changed.dict
        task_params = [
            _bound(process, values[column]) for column, process in zip(columns, statements.task, strict=True)
        ]
        task_params.append(values["id"])
    rows = [
        tuple(
            _bound(process, state.dict[column])
            for column, process in zip(_EVENT_COLUMNS, statements.event, strict=True)
        )
        for state in events
    ]
    if statements.events_sql is None:  # PostgreSQL: one statement, the events as one array per column
        arrays = [list(column) for column in zip(*rows, strict=True)] if rows else []
        matched = connection.exec_driver_sql(statements.sql, (*task_params, *arrays)).scalar_one()
    else:  # SQLite: the UPDATE, then the events in one executemany
        matched = connection.exec_driver_sql(statements.sql, tuple(task_params)).rowcount if changed is not None else 1
        if rows:
            connection.exec_driver_sql(statements.events_sql, rows)
    if changed is not None and matched != 1:
        raise StaleDataError(f"UPDATE statement on table 'task' expected to update 1 row(s); {matched} were matched.")
    # What the ORM does after its own statements: the listeners first (they read new/dirty), then the
    # task's state committed (no longer dirty) and the written events out of the session.
    session.dispatch.after_flush(session, flush_context)
    for state in touched:
        state._commit_all(state.dict, session.identity_map)
    for state in events:
        session.expunge(state.obj())


def _bound(processor: Processor, value: Any) -> Any:
    return value if processor is None or value is None else processor(value)


class _Statements(NamedTuple):
    """What one shape of flush sends: ``sql`` (PostgreSQL: everything; SQLite: the task's UPDATE, or
    nothing to run without a task) and ``events_sql`` (SQLite's INSERT of the events; None on PostgreSQL),
    with the bind processors of the task's changed columns and of the event columns."""

    sql: str
    events_sql: str | None
    task: Sequence[Processor]
    event: Sequence[Processor]


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _statements(columns: tuple[str, ...], with_task: bool, with_events: bool, dialect: Dialect) -> _Statements:
    """The statements for one shape (the task's changed columns, whether there are events) and the bind
    processors of their parameters (the column types' own: UTC datetimes, JSON text), built once.

    The text is made of the mapped tables' column names and fixed SQL only; every value is a parameter
    (hence the ``noqa: S608`` below: nothing a caller sends reaches a statement's text)."""
    quote = dialect.identifier_preparer.quote
    task = [_TASKS.c[column].type._cached_bind_processor(dialect) for column in columns]
    event_processors = [_EVENTS.c[column].type._cached_bind_processor(dialect) for column in _EVENT_COLUMNS]
    names = ", ".join(quote(column) for column in _EVENT_COLUMNS)
    if dialect.name != "postgresql":
        assignments = ", ".join(f"{quote(column)} = ?" for column in columns)
        return _Statements(
            f"UPDATE task SET {assignments} WHERE id = ?" if with_task else "",  # noqa: S608
            f"INSERT INTO task_event ({names}) VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})",  # noqa: S608
            task,
            event_processors,
        )
    parts: list[str] = []
    number = 0
    if with_task:
        assignments = ", ".join(f"{quote(column)} = ${index}" for index, column in enumerate(columns, start=1))
        number = len(columns) + 1
        parts.append(f"updated AS (UPDATE task SET {assignments} WHERE id = ${number} RETURNING 1)")  # noqa: S608
    if with_events:
        arrays = ", ".join(f"${number + index}::{kind}" for index, kind in enumerate(_EVENT_ARRAYS, start=1))
        parts.append(
            f"appended AS (INSERT INTO task_event ({names}) SELECT e.s, e.t, e.k, e.a, e.w, e.d::jsonb "  # noqa: S608
            f"FROM unnest({arrays}) WITH ORDINALITY AS e(s, t, k, a, w, d, n) ORDER BY e.n)"
        )
    head = "WITH " + ", ".join(parts)
    sql = f"{head} SELECT count(*) FROM updated" if with_task else f"{head} SELECT 1"  # noqa: S608
    return _Statements(sql, None, task, event_processors)


event.listen(Session, "before_flush", _before_flush)
