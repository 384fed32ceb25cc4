"""SQL for ``task``: lookups, row locks, subtree walks and the ready queue. Never commits.

The filtered, paged reads of ``orchestrator_query_tasks`` are ``task_pages``.

Locking: ``get_for_update`` takes a row lock on PostgreSQL (``SELECT … FOR UPDATE``); on SQLite the
write transaction already holds the database write lock from ``BEGIN IMMEDIATE``, so a plain read is
the same guarantee there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from app.db.models import Task, TaskDependency
from app.db.repositories.task_creation import insert_in_open_session
from app.domain.enums import OPEN_STATUSES, PRIORITY_RANK

OPEN_STATUS_VALUES = sorted(status.value for status in OPEN_STATUSES)


def status_in_text(status: str) -> ColumnElement[str]:
    """A status written into the SQL text (``'pending'``) instead of bound as a parameter (see
    :func:`_next_ready_statement` for why the claim's pick wants that)."""
    if not status.replace("_", "").isalpha():
        raise ValueError(f"not a status: {status!r}")
    return literal_column(f"'{status}'")


@dataclass(frozen=True)
class TaskScope:
    """Which tasks a maintenance pass covers: every task, one session's, or an explicit set (a subtree)."""

    session_id: str | None = None
    task_ids: frozenset[str] | None = None


def scope_predicates(scope: TaskScope | None) -> list[ColumnElement[bool]]:
    if scope is None:
        return []
    preds: list[ColumnElement[bool]] = []
    if scope.session_id is not None:
        preds.append(Task.session_id == scope.session_id)
    if scope.task_ids is not None:
        preds.append(Task.id.in_(sorted(scope.task_ids)))
    return preds


def priority_rank(priority: ColumnElement[str] | InstrumentedAttribute[str] | None = None) -> ColumnElement[int]:
    """Priority as a number (critical highest) for ORDER BY, from the one mapping in the domain."""
    column = Task.priority if priority is None else priority
    return case({p.value: rank for p, rank in PRIORITY_RANK.items()}, value=column, else_=0)


def ready_order(columns: Any = None) -> list[ColumnElement[Any]]:
    """The hand-out order of ready work: priority desc, due date asc (none last), oldest first, then id.

    ``columns`` (with ``priority``, ``due_at``, ``created_at`` and ``id``) orders a subquery's rows
    instead of the task table's.
    """
    c = Task if columns is None else columns
    return [
        priority_rank(c.priority).desc(),
        case((c.due_at.is_(None), 1), else_=0),
        c.due_at.asc(),
        c.created_at.asc(),
        c.id.asc(),
    ]


def ready_status_predicates(*, for_the_pick: bool = False) -> list[ColumnElement[bool]]:
    """``ready`` of the row itself, without a session: pending, every dependency completed and every
    subtask terminal (a parent waits for its children, DESIGN §3). ``for_the_pick``: the form
    :func:`_next_ready_statement` is planned best with (the same rows)."""
    pending: Any = status_in_text("pending") if for_the_pick else "pending"
    return [
        Task.status == pending,
        ~not_ready_dependency(for_the_pick=for_the_pick),
        ~open_child(for_the_pick=for_the_pick),
    ]


def open_child(*, for_the_pick: bool = False) -> ColumnElement[bool]:
    """True when the task has a subtask that is not terminal (uses ix_task_parent).

    ``for_the_pick`` writes the statuses into the text and fences the subquery (:func:`_probe_per_row`).
    """
    child = aliased(Task)
    statuses: Any = [status_in_text(s) for s in OPEN_STATUS_VALUES] if for_the_pick else OPEN_STATUS_VALUES
    probe = select(literal(1)).select_from(child).where(child.parent_id == Task.id, child.status.in_(statuses))
    return exists(_probe_per_row(probe) if for_the_pick else probe)


def not_ready_dependency(*, for_the_pick: bool = False) -> ColumnElement[bool]:
    """True when the task has a dependency that is not completed.

    ``for_the_pick`` writes the status into the text and gives PostgreSQL no join to plan: the task's
    edges are read by the dependency table's key, and each edge's task by its primary key, in a scalar
    subquery (a join lets skewed statistics start from the task table: one task that waits for a hundred
    others made the planner scan every task once per edge), the whole fenced by :func:`_probe_per_row`.
    """
    dep_task = aliased(Task)
    if for_the_pick:
        status_of_edge = select(dep_task.status).where(dep_task.id == TaskDependency.depends_on_id).scalar_subquery()
        probe = (
            select(literal(1))
            .select_from(TaskDependency)
            .where(TaskDependency.task_id == Task.id, status_of_edge != status_in_text("completed"))
        )
        return exists(_probe_per_row(probe))
    return exists(
        select(literal(1))
        .select_from(TaskDependency)
        .join(dep_task, dep_task.id == TaskDependency.depends_on_id)
        .where(TaskDependency.task_id == Task.id, dep_task.status != "completed")
    )


def _probe_per_row(probe: Select[Any]) -> Select[Any]:
    """``OFFSET 0``: PostgreSQL then keeps the EXISTS as a subplan run for each pending task of the session
    by key (the dependency table's primary key and the task's; ``ix_task_parent``), instead of turning it
    into a join it plans from statistics.

    That join is what the claim cannot afford. A session created since the last ``ANALYZE`` is estimated at
    one row, so PostgreSQL joined it with nested loops that read the whole session once per pending task:
    a claim in a fresh session of 2,000 tasks took 2.8 s and of 5,000 tasks 15 s (past the database time
    limit, so next_task failed with ``unavailable`` until autovacuum analysed the table), and with fresh
    statistics the reused plan hashed every unfinished task of the database on every claim. Probed by key
    the pick costs what the session's pending tasks and their edges cost, whatever the statistics and
    whatever the other sessions hold: 18 ms for the 5,000-task session either way (the hashed plan: 13 to 15
    ms, or 15 s). SQLite runs the EXISTS per row anyway; the OFFSET changes nothing there.
    """
    return probe.offset(0)


@cache
def _next_ready_statement(with_specialists: bool, with_exclusions: bool) -> Select[Task]:
    """The claim query of :meth:`TaskRepository.lock_next_ready`, built once per shape with bound values.

    Every next_task runs it; building the statement (with its correlated EXISTS over an alias) and then
    its cache key cost more CPU than PostgreSQL spends running it. A statement object built once keeps
    its cache key, so later calls only bind ``session_id`` (and the lists) afresh.

    asyncpg prepares the statement and PostgreSQL soon plans it once for any parameters; the readiness
    checks are probed per pending task by key (``_probe_per_row``), so neither that plan nor a custom one
    built from stale statistics can make a claim read more than the session's pending tasks and their
    edges. get_status's ready statement keeps bound statuses: written into its text, its plan went the
    other way (37 → 60 ms).
    """
    predicates = [Task.session_id == bindparam("session_id"), *ready_status_predicates(for_the_pick=True)]
    if with_specialists:
        predicates.append(Task.specialist_type.in_(bindparam("specialist_types", expanding=True)))
    if with_exclusions:
        predicates.append(Task.id.not_in(bindparam("exclude_ids", expanding=True)))
    # The order and the lock on the columns the order needs; then the one row read whole. PostgreSQL
    # cannot stop the sort at one row under a row lock (a locked row may be skipped), so it sorts every
    # ready task of the session: over whole rows (descriptions, contexts) that sort took 16 of the 40 ms a
    # claim spent on a 10,000-task session, over ids 27 ms in all. The outer FOR UPDATE takes nothing new
    # (the row is ours) but returns its latest version, as the one-level form did.
    best = (
        select(Task.id)
        .where(*predicates)
        .order_by(*ready_order())
        .limit(1)
        .with_for_update(skip_locked=True, of=Task)
        .scalar_subquery()
    )
    return select(Task).where(Task.id == best).with_for_update(of=Task).execution_options(populate_existing=True)


@cache
def _locked_task_statement() -> Select[Task]:
    """The query of :meth:`TaskRepository.get_for_update`, built once (every change of a task runs it)."""
    return (
        select(Task)
        .where(Task.id == bindparam("task_id"))
        .with_for_update(skip_locked=False)
        .execution_options(populate_existing=True)
    )


@cache
def _children_statement(for_update: bool) -> Select[Task]:
    """The query of :meth:`TaskRepository.list_children`, built once per shape (every claim runs it)."""
    query = (
        select(Task)
        .where(Task.parent_id.in_(bindparam("parent_ids", expanding=True)))
        .order_by(Task.created_at, Task.id)
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return query


@cache
def _open_children_statement(backend: str) -> Select[str | None, str, str]:
    """The query of :meth:`TaskRepository.open_children_of`, built once per backend (every view of a task
    runs it).

    On SQLite the status is compared as ``status || ''`` so no index on it applies: without statistics
    SQLite chose ``ix_task_lease`` (status) over ``ix_task_parent`` and read every open task of the
    database (7 to 9 ms for five parents of a 10,000-task session, against well under 1 ms by parent).
    PostgreSQL's planner picks the parent index by itself.
    """
    status = (Task.status + "") if backend == "sqlite" else Task.status
    return (
        select(Task.parent_id, Task.id, Task.status)
        .where(Task.parent_id.in_(bindparam("parent_ids", expanding=True)), status.in_(OPEN_STATUS_VALUES))
        .order_by(Task.created_at, Task.id)
    )


@cache
def _ready_list_statement(with_specialists: bool) -> Select[Task]:
    """The query of :meth:`TaskRepository.list_ready` without specialists' or with, built once per shape
    (its correlated EXISTS over aliases cost more to build than a small page costs to run); readiness in
    the pick's form, so the list and the pick are planned alike."""
    predicates = [Task.session_id == bindparam("session_id"), *ready_status_predicates(for_the_pick=True)]
    if with_specialists:
        predicates.append(Task.specialist_type.in_(bindparam("specialist_types", expanding=True)))
    return select(Task).where(*predicates).order_by(*ready_order()).limit(bindparam("limit"))


@cache
def _board_counts_statement() -> Select[str, str, int]:
    """One pass over a session's tasks: the count per (status, specialist)."""
    return (
        select(Task.status, Task.specialist_type, func.count())
        .where(Task.session_id == bindparam("session_id"))
        .group_by(Task.status, Task.specialist_type)
    )


def _waiting_on_dependencies() -> Select[str]:
    """The session's tasks with a dependency that is not completed, read from the session's own edges
    (``ix_task_dependency_session``): the set is hashed once, and nothing outside the session is read. Bound
    per pending task instead, the anti-join probed the dependency table once per pending task or hashed
    every session's edges, and grew with the whole database (27 to 31 ms for a 10,000-task session beside
    seven more like it, 9 to 14 ms alone; bound to the session, 9 to 14 ms in both)."""
    dependency = aliased(Task)
    return (
        select(TaskDependency.task_id)
        .join(dependency, dependency.id == TaskDependency.depends_on_id)
        .where(
            TaskDependency.session_id == bindparam("session_id"),
            # Implied by the edge's session; said so the dependency side is read by the session index too.
            dependency.session_id == bindparam("session_id"),
            dependency.status != "completed",
        )
    )


@cache
def _ready_top_statement(backend: str) -> Select[Task, int, int, int]:
    """The first ready tasks in next_task order and, on each row, the counts the board needs: the window
    counts are taken over the whole set before the LIMIT, so the set is worked out once.

    The set is the pending tasks whose dependencies are all completed (an anti-join), each with whether it
    still waits for an open subtask; the ready ones (those that do not) sort first. So one pass gives how
    many are ready, and how many wait only for their children. Whether a task has an open subtask: on
    PostgreSQL an outer join to the session's open parents, hashed once (17 ms for a 10,000-task session,
    against 21 with a correlated EXISTS per task); SQLite does not index that join (421 ms) and keeps the
    EXISTS (25 ms). The set is worked out on the four columns the order needs, and only the top rows are
    read whole: the window over whole rows (descriptions, contexts) of a 10,000-task session's 2,500 ready
    tasks made the statement a quarter slower on PostgreSQL.
    """
    columns = (Task.id, Task.priority, Task.due_at, Task.created_at)
    # PostgreSQL hashes the session's own edges once; SQLite probes each pending task's edges by key, which it
    # does faster than building that set (19 against 27 ms for the 10,000-task seed, and no slower beside
    # seven sessions like it: it never reads another session's rows).
    dependencies_met: ColumnElement[bool]
    if backend == "postgresql":
        dependencies_met = Task.id.not_in(_waiting_on_dependencies())
    else:
        dependencies_met = ~not_ready_dependency()
    pending = (Task.session_id == bindparam("session_id"), Task.status == "pending", dependencies_met)
    if backend == "postgresql":
        child = aliased(Task)
        open_parents = (
            select(child.parent_id.label("id"))
            .where(
                child.session_id == bindparam("session_id"),
                child.parent_id.is_not(None),
                child.status.in_(OPEN_STATUS_VALUES),
            )
            .distinct()
            .subquery("open_parents")
        )
        candidates = (
            select(*columns, open_parents.c.id.is_not(None).label("waits_for_children"))
            .outerjoin(open_parents, open_parents.c.id == Task.id)
            .where(*pending)
            .subquery("candidates")
        )
    else:
        candidates = select(*columns, open_child().label("waits_for_children")).where(*pending).subquery("candidates")
    not_ready = case((candidates.c.waits_for_children, 1), else_=0)
    top = (
        select(
            candidates.c.id,
            not_ready.label("not_ready"),
            func.sum(1 - not_ready).over().label("ready_count"),
            func.count().over().label("dependencies_met"),
        )
        .order_by(not_ready, *ready_order(candidates.c))
        .limit(bindparam("limit"))
        .subquery("top")
    )
    return (
        select(Task, top.c.not_ready, top.c.ready_count, top.c.dependencies_met)
        .join(top, top.c.id == Task.id)
        .order_by(top.c.not_ready, *ready_order())
    )


class Neighbour(NamedTuple):
    """A dependency or a subtask of a task, as much of it as readiness and a brief need."""

    id: str
    title: str
    status: str


@cache
def _neighbours_statement() -> CompoundSelect[int, str, str, str, datetime]:
    """The query of :meth:`TaskRepository.neighbours`: a task's dependencies (in ``statuses_for``'s order)
    and its subtasks (oldest first) in one round trip, built once (every claim runs it)."""
    dep = aliased(Task)
    dependencies = (
        select(
            literal(0).label("kind"),
            TaskDependency.depends_on_id.label("id"),
            dep.title.label("title"),
            dep.status.label("status"),
            TaskDependency.created_at.label("at"),
        )
        .join(dep, dep.id == TaskDependency.depends_on_id)
        .where(TaskDependency.task_id == bindparam("task_id"))
    )
    children = select(literal(1), Task.id, Task.title, Task.status, Task.created_at).where(
        Task.parent_id == bindparam("task_id")
    )
    both = union_all(dependencies, children)
    columns = both.selected_columns
    return both.order_by(columns.kind, columns.at, columns.id)


@dataclass(frozen=True)
class BoardCounts:
    """A session's task counts by status and by specialist, from one aggregate pass."""

    by_status: dict[str, int]
    by_specialist: dict[str, int]


class ReadyBoard(NamedTuple):
    """The ready queue's top and the counts of pending tasks by what they wait for."""

    top: list[Task]  # the first ready tasks in next_task order
    ready: int  # pending, dependencies all completed, no open subtask
    dependencies_met: int  # pending with every dependency completed (ready, or waiting for children)


class TaskRepository:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._session = session
        self._backend = backend

    async def get(self, task_id: str) -> Task | None:
        return await self._session.get(Task, task_id)

    async def get_for_update(self, task_id: str) -> Task | None:
        """The latest row under a row lock (PostgreSQL ``FOR UPDATE``; SQLite: immediate transaction)."""
        return await self._session.scalar(_locked_task_statement(), {"task_id": task_id})

    async def get_many(self, task_ids: Sequence[str]) -> list[Task]:
        if not task_ids:
            return []
        rows = await self._session.scalars(select(Task).where(Task.id.in_(task_ids)))
        by_id = {row.id: row for row in rows}
        return [by_id[i] for i in task_ids if i in by_id]

    async def existing_ids(self, task_ids: Sequence[str]) -> dict[str, str]:
        """``id -> session_id`` for the ids that exist."""
        if not task_ids:
            return {}
        rows = await self._session.execute(select(Task.id, Task.session_id).where(Task.id.in_(task_ids)))
        return {task_id: session_id for task_id, session_id in rows}

    async def insert_many(self, rows: Sequence[Task]) -> None:
        self._session.add_all(rows)
        await self._session.flush()

    async def insert_in_open_session(self, row: Task, event_data: dict[str, Any]) -> datetime | None:
        """Write a new task and its ``task_created`` event if its session exists and is not archived (one
        statement on PostgreSQL, under the session's key-share row lock): the session's last activity when
        it did, None when it wrote nothing (``app.db.repositories.task_creation``)."""
        return await insert_in_open_session(self._session, self._backend, row, event_data)

    async def list_children(self, parent_ids: Sequence[str], *, for_update: bool = False) -> list[Task]:
        """Direct children, oldest first; ``for_update`` takes their row locks (parent before children)."""
        if not parent_ids:
            return []
        rows = await self._session.scalars(_children_statement(for_update), {"parent_ids": list(parent_ids)})
        return list(rows.all())

    async def open_children_of(self, parent_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """For each parent, its subtasks that are not terminal as ``(child id, status)``, oldest first."""
        result: dict[str, list[tuple[str, str]]] = {}
        if not parent_ids:
            return result
        rows = await self._session.execute(_open_children_statement(self._backend), {"parent_ids": list(parent_ids)})
        for parent_id, child_id, status in rows:
            result.setdefault(parent_id or "", []).append((child_id, status))
        return result

    async def neighbours(self, task_id: str) -> tuple[list[Neighbour], list[Neighbour]]:
        """The task's dependencies (with their statuses) and its subtasks, oldest first, in one statement."""
        dependencies: list[Neighbour] = []
        children: list[Neighbour] = []
        for kind, neighbour_id, title, status, _ in await self._session.execute(
            _neighbours_statement(), {"task_id": task_id}
        ):
            (children if kind else dependencies).append(Neighbour(neighbour_id, title, status))
        return dependencies, children

    async def children_by_parent(self, session_id: str) -> dict[str, list[str]]:
        """The session's parent links as ``parent -> [child…]`` (for cycle checks over waits)."""
        rows = await self._session.execute(
            select(Task.parent_id, Task.id).where(Task.session_id == session_id, Task.parent_id.is_not(None))
        )
        result: dict[str, list[str]] = {}
        for parent_id, child_id in rows:
            result.setdefault(parent_id or "", []).append(child_id)
        return result

    async def subtree_ids(self, root_id: str) -> list[str]:
        """The root and all its descendants, parents before children (recursive CTE on both backends)."""
        tree = select(Task.id, literal(0).label("depth")).where(Task.id == root_id).cte("tree", recursive=True)
        child = aliased(Task)
        tree = tree.union_all(
            select(child.id, (tree.c.depth + 1).label("depth")).join(tree, child.parent_id == tree.c.id)
        )
        rows = await self._session.execute(select(tree.c.id).order_by(tree.c.depth, tree.c.id))
        return [row[0] for row in rows]

    async def lock_expired_claims(self, now: datetime, *, limit: int, scope: TaskScope | None = None) -> list[Task]:
        """In-progress rows whose lease ran out, locked; rows another sweeper holds are skipped
        (claim: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite: immediate transaction)."""
        rows = await self._session.scalars(
            select(Task)
            .where(Task.status == "in_progress", Task.lease_expires_at <= now, *scope_predicates(scope))
            .order_by(Task.lease_expires_at, Task.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return list(rows.all())

    async def lock_claimed(self, *, limit: int | None) -> list[Task]:
        """Every in-progress row with a holder, locked (row lock)."""
        query = (
            select(Task)
            .where(Task.status == "in_progress", Task.assigned_to.is_not(None))
            .order_by(Task.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if limit is not None:
            query = query.limit(limit)
        return list((await self._session.scalars(query)).all())

    # --- the ready queue (next_task order) ------------------------------------------------------

    async def lock_next_ready(
        self, session_id: str, specialist_types: Sequence[str], *, exclude_ids: Sequence[str] = ()
    ) -> Task | None:
        """The best ready task, locked; rows another transaction has locked are skipped.

        Claim (``SELECT … FOR UPDATE OF task SKIP LOCKED``) on PostgreSQL: concurrent callers each get a
        different row and never wait on each other; readiness is part of the WHERE clause, and READ
        COMMITTED re-checks it on the locked row version. SQLite renders no FOR UPDATE: the caller's
        immediate transaction already excludes every other writer.
        """
        params: dict[str, Any] = {"session_id": session_id}
        if specialist_types:
            params["specialist_types"] = list(specialist_types)
        if exclude_ids:
            params["exclude_ids"] = list(exclude_ids)
        statement = _next_ready_statement(bool(specialist_types), bool(exclude_ids))
        return await self._session.scalar(statement, params)

    async def list_ready(self, session_id: str, *, specialist_types: Sequence[str] = (), limit: int) -> list[Task]:
        """Ready tasks in the order next_task would hand them out."""
        params: dict[str, Any] = {"session_id": session_id, "limit": limit}
        if specialist_types:
            params["specialist_types"] = list(specialist_types)
        rows = await self._session.scalars(_ready_list_statement(bool(specialist_types)), params)
        return list(rows.all())

    async def list_by_status(
        self, session_id: str, status: str, *, newest_first: bool = False, limit: int
    ) -> list[Task]:
        """Tasks of one status in a session, by last change (oldest first unless ``newest_first``)."""
        order = (Task.updated_at.desc(), Task.id.desc()) if newest_first else (Task.updated_at, Task.id)
        rows = await self._session.scalars(
            select(Task).where(Task.session_id == session_id, Task.status == status).order_by(*order).limit(limit)
        )
        return list(rows.all())

    async def update_fields(self, task: Task, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(task, key, value)
        await self._session.flush()

    async def delete_ids(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            await self._session.execute(
                delete(TaskDependency).where(
                    or_(TaskDependency.task_id.in_(task_ids), TaskDependency.depends_on_id.in_(task_ids))
                )
            )
            # Children first is not needed: parent_id cascades, but delete the whole set explicitly.
            await self._session.execute(delete(Task).where(Task.id.in_(task_ids)))

    async def count_all_by_status(self) -> dict[str, int]:
        rows = await self._session.execute(select(Task.status, func.count()).group_by(Task.status))
        return {status: int(count) for status, count in rows}

    async def list_in_scope(
        self, scope: TaskScope, *, statuses: Sequence[str] = (), for_update: bool = False
    ) -> list[Task]:
        """Every task of the scope (optionally only some statuses), oldest first; ``for_update`` takes
        the row locks (PostgreSQL ``FOR UPDATE``; SQLite: immediate transaction)."""
        query = select(Task).where(*scope_predicates(scope))
        if statuses:
            query = query.where(Task.status.in_(list(statuses)))
        query = query.order_by(Task.created_at, Task.id)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        rows = await self._session.scalars(query)
        return list(rows.all())

    async def list_ready_in_scope(self, scope: TaskScope, *, limit: int) -> list[Task]:
        """The ready tasks of a maintenance scope in ``orchestrator_next_task`` order."""
        rows = await self._session.scalars(
            select(Task)
            .where(*scope_predicates(scope), *ready_status_predicates())
            .order_by(*ready_order())
            .limit(limit)
        )
        return list(rows.all())

    async def count_by_sessions(self, session_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """``session -> {status: count}`` for several sessions in one grouped query."""
        result: dict[str, dict[str, int]] = {sid: {} for sid in session_ids}
        if not session_ids:
            return result
        rows = await self._session.execute(
            select(Task.session_id, Task.status, func.count())
            .where(Task.session_id.in_(list(session_ids)))
            .group_by(Task.session_id, Task.status)
        )
        for session_id, status, count in rows:
            result[session_id][status] = int(count)
        return result

    async def board_counts(self, session_id: str) -> BoardCounts:
        """Counts by status and by specialist of one session, in one grouped statement."""
        by_status: dict[str, int] = {}
        by_specialist: dict[str, int] = {}
        for status, specialist, count in await self._session.execute(
            _board_counts_statement(), {"session_id": session_id}
        ):
            by_status[status] = by_status.get(status, 0) + int(count)
            by_specialist[specialist] = by_specialist.get(specialist, 0) + int(count)
        return BoardCounts(by_status=dict(sorted(by_status.items())), by_specialist=dict(sorted(by_specialist.items())))

    async def ready_board(self, session_id: str, *, limit: int) -> ReadyBoard:
        """The first ``limit`` ready tasks in next_task order, how many are ready, and how many pending tasks
        have every dependency completed, in one statement."""
        params = {"session_id": session_id, "limit": limit}
        rows = (await self._session.execute(_ready_top_statement(self._backend), params)).all()
        if not rows:
            return ReadyBoard([], 0, 0)
        top = [task for task, not_ready, _, _ in rows if not not_ready]
        return ReadyBoard(top, int(rows[0][2]), int(rows[0][3]))

    async def count_by(self, session_id: str, column_name: str) -> dict[str, int]:
        column = getattr(Task, column_name)
        rows = await self._session.execute(
            select(column, func.count()).where(Task.session_id == session_id).group_by(column)
        )
        return {key: int(count) for key, count in rows}

    async def count_live_claims(self, now: datetime) -> int:
        """In-progress rows with a holder whose lease has not run out."""
        count = await self._session.scalar(select(func.count()).select_from(Task).where(*_live_claim(now)))
        return int(count or 0)

    async def list_live_claims_of(self, actor: str, now: datetime, *, session_id: str | None) -> list[Task]:
        """The live claims one actor holds, oldest claim first (optionally in one session)."""
        query = select(Task).where(*_live_claim(now), Task.assigned_to == actor)
        if session_id is not None:
            query = query.where(Task.session_id == session_id)
        rows = await self._session.scalars(query.order_by(Task.claimed_at, Task.id))
        return list(rows.all())


def _live_claim(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Task.status == "in_progress",
        Task.assigned_to.is_not(None),
        or_(Task.lease_expires_at.is_(None), Task.lease_expires_at > now),
    )
