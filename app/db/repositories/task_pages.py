"""SQL for the pages of ``orchestrator_query_tasks``: a page of whole tasks and a page of summary rows, each
with the count of every match (the filters and the order are ``task_filters``). Never commits.

The summary page is the hot path (DESIGN revision 2 makes it the default view), so it has a PostgreSQL
form beside the general one, chosen by :func:`task_page_repository` (the Prefect ``query_components``
pattern): :class:`TaskPageRepository` runs on both backends, the page and the count in one statement and
the page's dependencies in one follow-up, and builds the rows in Python; :class:`PostgresTaskPageRepository`
reads the same answer in one statement in which PostgreSQL builds the rows as JSON. Both give the rows in
wire form, keyed and formatted as ``TaskSummary`` (``app.services.views``) sends them: ``ready`` derived as
in :func:`ready_status_predicates`, times as :func:`app.domain.clock.iso` writes them. The tests compare
the two on one database, so a difference between them fails there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import pydantic_core
from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import ScalarSelect

from app.db.models import Task, TaskDependency
from app.db.repositories.task_filters import (
    FilterShape,
    PageOrder,
    TaskFilter,
    filter_predicates,
    filter_values,
    order_by,
)
from app.db.repositories.tasks import OPEN_STATUS_VALUES
from app.domain.clock import iso

# Page statements are built once per filter shape, order and backend (see FilterShape); shapes in use are few.
STATEMENT_CACHE_SIZE = 256


@dataclass(frozen=True)
class SummaryPage:
    """One page of summary rows and the count of every match.

    The rows are a JSON array in wire form (each object ``TaskSummary``'s fields), so the service
    validates its models straight from the text PostgreSQL built, with no Python objects in between.
    """

    rows_json: str
    total: int


class TaskPageRepository:
    """The pages on any backend (SQLite's path, and the reference the PostgreSQL form is tested against)."""

    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    async def list_by_filter(
        self, flt: TaskFilter, order: PageOrder, *, limit: int, offset: int
    ) -> tuple[list[Task], int]:
        """One page of whole tasks and the count of all matches (two statements)."""
        shape, values = FilterShape.of(flt), filter_values(flt, self._backend)
        total = await self._count(shape, values)
        rows = await self._session.scalars(
            _task_page_statement(shape, order, self._backend), {**values, "limit": limit, "offset": offset}
        )
        return list(rows.all()), total

    async def list_summaries_by_filter(
        self, flt: TaskFilter, order: PageOrder, *, limit: int, offset: int
    ) -> SummaryPage:
        """One page of summary rows and the count of all matches: the page, the count and each row's open
        subtasks in one statement, the rows' dependencies in a second (a third counts the matches only
        when the page is empty past its first row, where no row carries the count)."""
        shape, values = FilterShape.of(flt), filter_values(flt, self._backend)
        statement = _summary_page_statement(shape, order, self._backend)
        page = (await self._session.execute(statement, {**values, "limit": limit, "offset": offset})).all()
        if not page:
            return SummaryPage(rows_json="[]", total=0 if offset == 0 else await self._count(shape, values))
        blocked_by = await self._blocked_by([row.id for row in page])
        rows = [_summary_row(row, blocked_by.get(row.id, [])) for row in page]
        return SummaryPage(rows_json=pydantic_core.to_json(rows).decode(), total=page[0].total)

    async def _count(self, shape: FilterShape, values: dict[str, Any]) -> int:
        return int(await self._session.scalar(_count_statement(shape, self._backend), values) or 0)

    async def _blocked_by(self, task_ids: list[str]) -> dict[str, list[str]]:
        """For each task, its dependencies that are not completed, in the order of ``statuses_for``."""
        result: dict[str, list[str]] = {}
        for task_id, dependency_id in await self._session.execute(_blocked_by_statement(), {"task_ids": task_ids}):
            result.setdefault(task_id, []).append(dependency_id)
        return result


class PostgresTaskPageRepository(TaskPageRepository):
    """PostgreSQL: the summary page in one statement, its rows built as JSON by PostgreSQL."""

    async def list_summaries_by_filter(
        self, flt: TaskFilter, order: PageOrder, *, limit: int, offset: int
    ) -> SummaryPage:
        """One page of summary rows and the count of all matches in one statement (one row even for an
        empty page: the aggregate of no rows)."""
        statement = _summary_json_statement(FilterShape.of(flt), order, first_page=offset == 0)
        values = {**filter_values(flt, self._backend), "limit": limit, "offset": offset}
        # On the connection, not the Session: a Core statement needs none of the ORM's execution layer.
        connection = await self._session.connection()
        rows_json, total = (await connection.execute(statement, values)).one()
        return SummaryPage(rows_json=rows_json, total=int(total))


def task_page_repository(session: AsyncSession, backend: str) -> TaskPageRepository:
    """The page repository of ``backend``: PostgreSQL's one-statement summary page, else the general one."""
    if backend == "postgresql":
        return PostgresTaskPageRepository(session, backend)
    return TaskPageRepository(session, backend)


# --- statements, built once per shape ----------------------------------------------------------------


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _count_statement(shape: FilterShape, backend: str) -> Select[int]:
    return select(_count_of(shape, backend))


def _count_of(shape: FilterShape, backend: str) -> ScalarSelect[int]:
    """The count of every match, as a scalar subquery (uncorrelated: evaluated once per statement)."""
    return select(func.count()).select_from(Task).where(*filter_predicates(shape, backend)).scalar_subquery()


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _task_page_statement(shape: FilterShape, order: PageOrder, backend: str) -> Select[Task]:
    return (
        select(Task)
        .where(*filter_predicates(shape, backend))
        .order_by(*order_by(Task, order))
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=Integer()))
    )


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _summary_page_statement(shape: FilterShape, order: PageOrder, backend: str) -> Select[Any]:
    """The general summary page: its rows' columns, each row's open subtasks and the count of all matches."""
    return (
        select(*_summary_columns(), _open_children_count(Task.id, backend), _count_of(shape, backend).label("total"))
        .where(*filter_predicates(shape, backend))
        .order_by(*order_by(Task, order))
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=Integer()))
    )


@cache
def _blocked_by_statement() -> Select[str, str]:
    """Each task's dependencies that are not completed, ordered as ``DependencyRepository.statuses_for``."""
    dependency = aliased(Task)
    return (
        select(TaskDependency.task_id, TaskDependency.depends_on_id)
        .join(dependency, dependency.id == TaskDependency.depends_on_id)
        .where(TaskDependency.task_id.in_(bindparam("task_ids", expanding=True)), dependency.status != "completed")
        .order_by(TaskDependency.task_id, TaskDependency.created_at, TaskDependency.depends_on_id)
    )


# --- the summary page ------------------------------------------------------------------------------


def _summary_columns() -> tuple[Any, ...]:
    """What a summary row reads of a task (and ``due_at``, a sort key)."""
    return (
        Task.id,
        Task.parent_id,
        Task.title,
        Task.status,
        Task.priority,
        Task.specialist_type,
        Task.task_type,
        Task.assigned_to,
        Task.lease_expires_at,
        Task.version,
        Task.created_at,
        Task.updated_at,
        Task.due_at,
    )


def _open_children_count(parent_id: Any, backend: str) -> ColumnElement[int]:
    """The subtasks of ``parent_id`` (a correlated column) that are not terminal, by ``ix_task_parent``.

    On SQLite the status is compared as ``status || ''`` so no index on it applies (as in
    ``_open_children_statement``: without statistics SQLite prefers ``ix_task_lease`` and reads every open
    task of the database).
    """
    child = aliased(Task)
    status = (child.status + "") if backend == "sqlite" else child.status
    # The statuses are written into the SQL (enum values, no quotes to escape): an expanding parameter
    # would be rendered anew on every execution.
    open_statuses: list[ColumnElement[str]] = [literal_column(f"'{value}'") for value in OPEN_STATUS_VALUES]
    return (
        select(func.count())
        .select_from(child)
        .where(child.parent_id == parent_id, status.in_(open_statuses))
        .scalar_subquery()
        .label("open_children")
    )


def _summary_row(row: Any, blocked_by: list[str]) -> dict[str, Any]:
    """A summary row in wire form; ``ready`` as the claim query derives it (pending, every dependency
    completed, no open subtask)."""
    return {
        "id": row.id,
        "parent_id": row.parent_id,
        "title": row.title,
        "status": row.status,
        "ready": row.status == "pending" and not blocked_by and row.open_children == 0,
        "priority": row.priority,
        "specialist_type": row.specialist_type,
        "task_type": row.task_type,
        "assigned_to": row.assigned_to,
        "lease_expires_at": iso(row.lease_expires_at),
        "open_children": row.open_children,
        "blocked_by": blocked_by,
        "version": row.version,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


@lru_cache(maxsize=STATEMENT_CACHE_SIZE)
def _summary_json_statement(shape: FilterShape, order: PageOrder, first_page: bool) -> Select[str, int]:
    """PostgreSQL: ``(rows as a JSON array, count of all matches)`` in one row.

    The page is the general path's (same predicates, order, LIMIT and OFFSET); each of its rows gets its
    uncompleted dependencies and its open subtasks by correlated subqueries over the primary key and
    ``ix_task_parent``, and the uncorrelated count is one InitPlan. The aggregate sorts the page again by
    the same keys, since an aggregate's input order is otherwise not guaranteed.

    The first page (no offset, the common read) writes its LIMIT into the SQL: with LIMIT and OFFSET as
    parameters PostgreSQL's generic plan assumes a tenth of the matches per page, so it never wins and
    every execution is planned afresh (about 0.5 ms of a 2.5 ms statement). With the limit written in,
    the prepared statement settles on its generic plan; a limit is one of a few values, so each pooled
    connection keeps a few such statements. Later pages keep both as parameters (each offset written in
    would be one more prepared statement per connection).
    """
    limited = (
        select(*_summary_columns())
        .where(*filter_predicates(shape, "postgresql"))
        .order_by(*order_by(Task, order))
        .limit(bindparam("limit", type_=Integer(), literal_execute=first_page))
    )
    if not first_page:
        limited = limited.offset(bindparam("offset", type_=Integer()))
    page = limited.subquery("page")
    # MATERIALIZED: inlined, each use of blocked_by and open_children (in ready, and as fields) runs its
    # subquery again.
    derived = (
        select(*page.c, _blocked_by_json(page), _open_children_count(page.c.id, "postgresql"))
        .cte("derived")
        .prefix_with("MATERIALIZED")
    )
    rows = func.coalesce(
        func.json_agg(aggregate_order_by(_summary_json(derived), *order_by(derived.c, order))),
        literal_column("'[]'::json"),
    )
    return select(cast(rows, String), _count_of(shape, "postgresql")).select_from(derived)


def _blocked_by_json(page: Subquery) -> ColumnElement[Any]:
    dependency = aliased(Task)
    ids = func.json_agg(
        aggregate_order_by(TaskDependency.depends_on_id, TaskDependency.created_at, TaskDependency.depends_on_id)
    )
    return (
        select(func.coalesce(ids, literal_column("'[]'::json")))
        .select_from(TaskDependency)
        .join(dependency, dependency.id == TaskDependency.depends_on_id)
        .where(TaskDependency.task_id == page.c.id, dependency.status != "completed")
        .scalar_subquery()
        .label("blocked_by")
    )


def _summary_json(derived: CTE) -> ColumnElement[Any]:
    """One summary row as a JSON object, field for field what :func:`_summary_row` builds."""
    c = derived.c
    ready = and_(c.status == "pending", func.json_array_length(c.blocked_by) == 0, c.open_children == 0)
    fields: dict[str, Any] = {
        "id": c.id,
        "parent_id": c.parent_id,
        "title": c.title,
        "status": c.status,
        "ready": ready,
        "priority": c.priority,
        "specialist_type": c.specialist_type,
        "task_type": c.task_type,
        "assigned_to": c.assigned_to,
        "lease_expires_at": _iso_text(c.lease_expires_at),
        "open_children": c.open_children,
        "blocked_by": c.blocked_by,
        "version": c.version,
        "created_at": _iso_text(c.created_at),
        "updated_at": _iso_text(c.updated_at),
    }
    arguments: list[Any] = []
    for name, value in fields.items():
        arguments += [literal_column(f"'{name}'"), value]
    return func.json_build_object(*arguments)


def _iso_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A timestamptz as :func:`app.domain.clock.iso` writes it: UTC, microseconds only when not zero, ``Z``
    (NULL stays NULL)."""
    utc = func.timezone(literal_column("'UTC'"), column)
    text = func.to_char(utc, literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS.US'"))
    return func.replace(text, literal_column("'.000000'"), literal_column("''")).op("||")(literal_column("'Z'"))
