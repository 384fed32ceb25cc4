"""One task created in an open session: plan_task's hot path (issue 14), with the fewest round trips.

``orchestrator_plan_task`` of a single task (no parent, no subtasks, no dependencies: the simplest plan,
and the one issue 14 measures) cost, through the ORM, three statements (the session read under its
key-share lock, the task's INSERT, the ``task_created`` event's INSERT) and a unit-of-work flush. Here the
same three are one statement on PostgreSQL, a data-modifying CTE as procrastinate and Oban write their hot
paths:

    WITH open_session AS (SELECT id, last_activity_at FROM orchestration_session
                          WHERE id = :session_id AND status != 'archived' FOR KEY SHARE),
         created AS (INSERT INTO task (...) SELECT ... FROM open_session RETURNING id, session_id),
         event AS (INSERT INTO task_event (...) SELECT ... FROM created)
    SELECT open_session.last_activity_at FROM open_session JOIN created ON ...

The key-share row lock is the one ``require_open_session(lock=True)`` takes, held to the commit, so a
concurrent cleanup still cannot archive the session under the new task. SQLite has no data-modifying CTE:
there the same three run as three Core statements (the immediate transaction already serialises writers).
On both, nothing is written when the session is missing or archived, and the caller is told so (None):
it then takes the general path, which names the error exactly as before. The session's last activity
comes back so the activity touch knows, as it does after the ORM's read, whether it is due.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Table, bindparam, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import OrchestrationSession, Task, TaskEvent
from app.domain.enums import SessionStatus

TASK_CREATED = "task_created"
# The columns a new task is written with; the rest are NULL (assigned_to, claimed_at, summary, ...).
_TASK_COLUMNS = (
    "id",
    "session_id",
    "parent_id",
    "title",
    "description",
    "task_type",
    "status",
    "complexity",
    "specialist_type",
    "priority",
    "estimated_effort",
    "due_at",
    "context",
    "attempt_count",
    "version",
    "created_by",
    "created_at",
    "updated_at",
)
_EVENT_COLUMNS = ("session_id", "task_id", "kind", "actor", "at", "data")
# Core tables, not the mapped classes: an ORM-enabled INSERT with parameters would be a bulk insert.
_TASKS: Table = Task.__table__  # type: ignore[assignment]
_EVENTS: Table = TaskEvent.__table__  # type: ignore[assignment]


@cache
def _open_session() -> Select[str, datetime]:
    """The session's id and last activity when it exists and is not archived, under its key-share row lock."""
    return (
        select(OrchestrationSession.id, OrchestrationSession.last_activity_at)
        .where(
            OrchestrationSession.id == bindparam("session_id"),
            OrchestrationSession.status != SessionStatus.ARCHIVED.value,
        )
        .with_for_update(read=True, key_share=True)
    )


def _task_values(session_id: ColumnElement[str]) -> list[ColumnElement[Any]]:
    """The new task's values as parameters typed like their columns (the session's id from the select)."""
    columns = _TASKS.c
    return [session_id if name == "session_id" else bindparam(name, type_=columns[name].type) for name in _TASK_COLUMNS]


@cache
def _task_insert() -> Insert:
    return insert(_TASKS)


@cache
def _event_insert() -> Insert:
    return insert(_EVENTS)


@cache
def _postgresql_statement() -> Select[datetime]:
    """Session check, task and event in one statement, built once (every single-task plan runs it). It
    answers the session's last activity, one row when the task was written and none otherwise."""
    open_session = _open_session().cte("open_session")
    created = (
        insert(_TASKS)
        .from_select(_TASK_COLUMNS, select(*_task_values(open_session.c.id)))
        .returning(_TASKS.c.id, _TASKS.c.session_id)
        .cte("created")
    )
    columns = _EVENTS.c
    event_values = (
        created.c.session_id,
        created.c.id,
        literal(TASK_CREATED, type_=columns["kind"].type),
        bindparam("actor", type_=columns["actor"].type),
        bindparam("created_at", type_=columns["at"].type),
        bindparam("event_data", type_=columns["data"].type),
    )
    # Referenced by nothing, yet run: PostgreSQL executes every data-modifying CTE of a statement.
    event = insert(_EVENTS).from_select(_EVENT_COLUMNS, select(*event_values)).cte("event")
    return (
        select(open_session.c.last_activity_at)
        .select_from(open_session.join(created, created.c.session_id == open_session.c.id))
        .add_cte(event)
    )


async def insert_in_open_session(
    session: AsyncSession, backend: str, row: Task, event_data: dict[str, Any]
) -> datetime | None:
    """Write ``row`` (a new, transient task: never added to the ORM session) and its ``task_created``
    event if its session exists and is not archived; the session's last activity as read under its lock
    when it did (for the activity touch), None when it wrote nothing.

    The row is not in the ORM's identity map afterwards: a later read in the transaction loads it.
    """
    params = {name: getattr(row, name) for name in _TASK_COLUMNS}
    if backend == "postgresql":
        written = await session.execute(
            _postgresql_statement(), {**params, "actor": row.created_by, "event_data": event_data}
        )
        answered: datetime | None = written.scalar_one_or_none()
        return answered
    # SQLite (no data-modifying CTE; the immediate transaction already serialises writers): three statements.
    found = (await session.execute(_open_session(), {"session_id": row.session_id})).first()
    if found is None:
        return None
    await session.execute(_task_insert(), params)
    event = {"session_id": row.session_id, "task_id": row.id, "kind": TASK_CREATED, "actor": row.created_by}
    await session.execute(_event_insert(), {**event, "at": row.created_at, "data": event_data})
    activity: datetime = found.last_activity_at
    return activity
