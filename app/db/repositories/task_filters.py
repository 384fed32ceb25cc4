"""The filters and the order of ``orchestrator_query_tasks``: what a query asks for, as values and as SQL.

A query's *shape* (which filters it gives, not their values) is the key under which its page statements
are built once (``task_pages``); :func:`filter_predicates` writes a shape's WHERE clause with every value a
bound parameter, and :func:`filter_values` binds a query's values to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Function, Integer, String, and_, bindparam, case, cast, func, literal_column
from sqlalchemy.dialects.postgresql import TSQUERY

from app.db.engine import SQLITE_SEARCH_FUNCTION
from app.db.models import Task
from app.db.repositories.tasks import priority_rank, ready_status_predicates
from app.domain import search

# The text searched by search_text; ix_task_search indexes exactly task_search_vector(this) on PostgreSQL.
SEARCH_DOCUMENT = "task.title || ' ' || task.description || ' ' || coalesce(task.summary, '')"


@dataclass(frozen=True)
class TaskFilter:
    """Every filter of ``orchestrator_query_tasks``; each one becomes a SQL predicate."""

    session_id: str
    statuses: Sequence[str] = ()
    task_types: Sequence[str] = ()
    specialist_types: Sequence[str] = ()
    complexities: Sequence[str] = ()
    priorities: Sequence[str] = ()
    parent_id: str | None = None
    assigned_to: str | None = None
    ready_only: bool = False
    search_text: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class PageOrder:
    """How a page is sorted: ``sort`` is created_at, updated_at, priority or due_date; ties go by id."""

    sort: str
    descending: bool


@dataclass(frozen=True)
class FilterShape:
    """Which filters a query gives, not their values; with the order and the backend, the key under which
    its statements are built once (``task_pages``: ``_summary_json_statement`` and the others).

    Building a page statement (aliases, correlated subqueries, the JSON object) and then its cache key
    cost several times what PostgreSQL spends running it; a statement built once keeps its cache key, and
    each call only binds its values (:func:`filter_values`). A search binds all its words as one value
    on either backend, so the shape only says whether there is one.
    """

    statuses: bool = False
    task_types: bool = False
    specialist_types: bool = False
    complexities: bool = False
    priorities: bool = False
    parent_id: bool = False
    assigned_to: bool = False
    created_after: bool = False
    created_before: bool = False
    ready_only: bool = False
    search: bool = False

    @classmethod
    def of(cls, flt: TaskFilter) -> FilterShape:
        return cls(
            statuses=bool(flt.statuses),
            task_types=bool(flt.task_types),
            specialist_types=bool(flt.specialist_types),
            complexities=bool(flt.complexities),
            priorities=bool(flt.priorities),
            parent_id=flt.parent_id is not None,
            assigned_to=flt.assigned_to is not None,
            created_after=flt.created_after is not None,
            created_before=flt.created_before is not None,
            ready_only=flt.ready_only,
            search=bool(_words(flt.search_text)),
        )


def filter_values(flt: TaskFilter, backend: str) -> dict[str, Any]:
    """The values bound to the predicates of :func:`filter_predicates` (only the filters given)."""
    values: dict[str, Any] = {"session_id": flt.session_id}
    for name in ("statuses", "task_types", "specialist_types", "complexities", "priorities"):
        if chosen := getattr(flt, name):
            values[name] = list(chosen)
    for name in ("parent_id", "assigned_to", "created_after", "created_before"):
        if (value := getattr(flt, name)) is not None:
            values[name] = value
    if words := _words(flt.search_text):
        values["search"] = search.tsquery(words) if backend == "postgresql" else " ".join(words)
    return values


def filter_predicates(shape: FilterShape, backend: str) -> list[ColumnElement[bool]]:
    """The WHERE clause of a shape, with every value a bound parameter named as in :func:`filter_values`."""
    preds: list[ColumnElement[bool]] = [Task.session_id == bindparam("session_id")]
    for column, given, name in (
        (Task.status, shape.statuses, "statuses"),
        (Task.task_type, shape.task_types, "task_types"),
        (Task.specialist_type, shape.specialist_types, "specialist_types"),
        (Task.complexity, shape.complexities, "complexities"),
        (Task.priority, shape.priorities, "priorities"),
    ):
        if given:
            preds.append(column.in_(bindparam(name, expanding=True)))
    if shape.parent_id:
        preds.append(Task.parent_id == bindparam("parent_id"))
    if shape.assigned_to:
        preds.append(Task.assigned_to == bindparam("assigned_to"))
    if shape.created_after:
        preds.append(Task.created_at > bindparam("created_after"))
    if shape.created_before:
        preds.append(Task.created_at < bindparam("created_before"))
    if shape.ready_only:
        preds.append(and_(*ready_status_predicates()))
    if shape.search:
        preds.append(_search(backend))
    return preds


def _words(text: str | None) -> list[str]:
    return search.query_words(text) if text else []


def _search(backend: str) -> ColumnElement[bool]:
    """The one definition of a match (``app.domain.search``) on each backend.

    PostgreSQL: the GIN index ix_task_search over ``task_search_vector`` of the very same expression
    (migration 0004), queried with the words as a ``tsquery`` built in Python (a cast, not
    ``to_tsquery``: no parser or dictionary touches them). SQLite: the rule itself, in Python.
    """
    if backend == "postgresql":
        document = func.task_search_vector(literal_column(SEARCH_DOCUMENT))
        return document.op("@@")(cast(bindparam("search", type_=String()), TSQUERY))
    document_text = literal_column(SEARCH_DOCUMENT, type_=String())
    found = Function(SQLITE_SEARCH_FUNCTION, document_text, bindparam("search", type_=String()), type_=Integer())
    return found == 1


def order_by(columns: Any, order: PageOrder) -> list[ColumnElement[Any]]:
    """The ORDER BY of a page over ``columns``: ``Task`` itself, or a subquery's ``.c`` with the same names
    (the JSON statement sorts its page again inside the aggregate)."""
    key: ColumnElement[Any] = {
        "created_at": columns.created_at,
        "updated_at": columns.updated_at,
        "due_date": columns.due_at,
        "priority": priority_rank(columns.priority),
    }[order.sort]
    ordering: list[ColumnElement[Any]] = [key.desc() if order.descending else key.asc()]
    if order.sort == "due_date":
        # Tasks without a due date sort last in either direction.
        ordering.insert(0, case((columns.due_at.is_(None), 1), else_=0))
    ordering.append(columns.id.desc() if order.descending else columns.id.asc())
    return ordering
