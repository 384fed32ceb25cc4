"""The summary page of orchestrator_query_tasks has two forms (PostgreSQL builds its rows as JSON in one
statement; the general form builds them in Python): on both backends, each form must give the very rows
the views build from whole tasks (``task_summaries``), field for field, with the same count."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
import pytest

from app.db.models import Task, TaskDependency
from app.db.repositories import Repositories
from app.db.repositories.task_filters import PageOrder, TaskFilter
from app.db.repositories.task_pages import SummaryPage, TaskPageRepository
from app.domain import ids
from app.services.views import task_summaries
from tests.support.calls import query
from tests.support.execution import recorded_statements
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Fractions of a second the wire writes differently: none (no fraction at all), one microsecond, a half.
MICROSECONDS = (0, 1, 10, 123_456, 500_000, 999_999)
STATUSES = ("pending", "in_progress", "blocked", "completed", "failed", "cancelled", "archived")
TITLES = (
    "Plain title",
    'Quote " and back\\slash',
    "Tab\tand newline\nin a title",
    "Accents é, emoji 🚀, line separator \u2028 and </script>",
    "It's an apostrophe",
)
SORTS = ("created_at", "updated_at", "priority", "due_date")
PAGES = ((7, 0), (7, 7), (100, 0), (5, 1000))


@dataclass(frozen=True)
class Page:
    """A summary page as parsed rows (each form's JSON text, or the views' dumps) and its count."""

    rows: list[dict[str, Any]]
    total: int

    @classmethod
    def of(cls, page: SummaryPage) -> Page:
        return cls(pydantic_core.from_json(page.rows_json), page.total)


def make_task(session_id: str, **overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "id": ids.new_task_id(),
        "session_id": session_id,
        "parent_id": None,
        "title": "A task",
        "description": "Do the thing.",
        "task_type": "standard",
        "status": "pending",
        "complexity": "moderate",
        "specialist_type": "coder",
        "priority": "medium",
        "estimated_effort": None,
        "due_at": None,
        "context": {},
        "assigned_to": None,
        "claimed_at": None,
        "lease_expires_at": None,
        "attempt_count": 0,
        "summary": None,
        "version": 1,
        "created_by": "alice",
        "created_at": START,
        "updated_at": START,
        "started_at": None,
        "completed_at": None,
        **overrides,
    }
    return Task(**fields)


def moment(rng: random.Random, minutes: int) -> datetime:
    return START + timedelta(minutes=minutes, microseconds=rng.choice(MICROSECONDS))


async def seed(h: Harness) -> str:
    """Forty tasks in trees of four (each tree created at one moment, so sort keys tie and ids decide),
    every status, claims with leases, due dates or none, awkward titles and chains of dependencies."""
    session_id = await h.session("alice")
    rng = random.Random(14)
    tasks: list[Task] = []
    for tree in range(10):
        created = moment(rng, tree)
        root: str | None = None
        for position in range(4):
            status = rng.choice(STATUSES)
            claimed = status == "in_progress" and rng.random() < 0.8
            task = make_task(
                session_id,
                parent_id=root,
                title=f"{rng.choice(TITLES)} {tree}.{position}",
                status=status,
                priority=rng.choice(("low", "medium", "high", "critical")),
                task_type=rng.choice(("standard", "testing", "review")),
                specialist_type=rng.choice(("coder", "tester")),
                due_at=moment(rng, 600 + tree) if rng.random() < 0.5 else None,
                assigned_to=f"agent-{position}" if claimed else None,
                lease_expires_at=moment(rng, 900) if claimed else None,
                version=rng.randrange(1, 5),
                created_at=created,
                updated_at=moment(rng, 60 + rng.randrange(30)),
            )
            root = root or task.id
            tasks.append(task)
    edges = [
        TaskDependency(
            task_id=task.id,
            depends_on_id=other.id,
            session_id=task.session_id,
            created_at=moment(rng, 30) if i % 2 else START,
        )
        for task in tasks[4::3]
        for i, other in enumerate(rng.sample(tasks[:4], k=rng.randrange(0, 4)))
    ]

    async def insert(repos: Repositories) -> None:
        await repos.tasks.insert_many(tasks)
        repos.session.add_all(edges)
        await repos.session.flush()

    await h.uow.run(insert)
    return session_id


async def pages_of(repos: Repositories, flt: TaskFilter, order: PageOrder, limit: int, offset: int) -> list[Page]:
    """The page as the backend's form gives it, as the general form gives it, and as the views build it."""
    general = TaskPageRepository(repos.session, repos.backend)
    chosen = await repos.task_pages.list_summaries_by_filter(flt, order, limit=limit, offset=offset)
    built = await general.list_summaries_by_filter(flt, order, limit=limit, offset=offset)
    tasks, total = await general.list_by_filter(flt, order, limit=limit, offset=offset)
    viewed = Page([row.model_dump() for row in await task_summaries(repos, tasks)], total)
    return [Page.of(chosen), Page.of(built), viewed]


async def test_each_summary_page_form_gives_the_rows_the_views_build(harness: Harness) -> None:
    session_id = await seed(harness)
    filters = [
        TaskFilter(session_id=session_id),
        TaskFilter(session_id=session_id, statuses=["pending", "in_progress"]),
        TaskFilter(session_id=session_id, ready_only=True),
        TaskFilter(session_id=session_id, assigned_to="agent-1"),
        TaskFilter(session_id=session_id, search_text="quote title"),
        TaskFilter(session_id=session_id, priorities=["critical"], specialist_types=["tester"]),
        TaskFilter(session_id=session_id, created_after=START + timedelta(minutes=4)),
        TaskFilter(session_id=session_id, statuses=["pending"], task_types=["no-such-type"]),
    ]
    mismatches: list[tuple[Any, ...]] = []
    seen = dict.fromkeys(("rows", "blocked", "open_children", "leases", "fractions", "whole_seconds", "past_end"), 0)
    forms: list[str] = []

    async def compare(repos: Repositories) -> None:
        forms.append(type(repos.task_pages).__name__)
        for flt in filters:
            for sort in SORTS:
                for descending in (False, True):
                    for limit, offset in PAGES:
                        order = PageOrder(sort=sort, descending=descending)
                        chosen, built, viewed = await pages_of(repos, flt, order, limit, offset)
                        if not chosen == built == viewed:
                            mismatches.append((flt, order, limit, offset, chosen, built, viewed))
                        count_kinds(seen, viewed, offset)

    await harness.uow.run(compare, write=False)
    assert mismatches == []
    # The comparison covered what the forms build differently, and PostgreSQL ran its own form.
    assert all(seen.values()), seen
    assert forms == [{"postgresql": "PostgresTaskPageRepository", "sqlite": "TaskPageRepository"}[harness.backend]]


def count_kinds(seen: dict[str, int], page: Page, offset: int) -> None:
    seen["rows"] += len(page.rows)
    seen["blocked"] += sum(1 for row in page.rows if row["blocked_by"])
    seen["open_children"] += sum(1 for row in page.rows if row["open_children"])
    seen["leases"] += sum(1 for row in page.rows if row["lease_expires_at"])
    seen["fractions"] += sum(1 for row in page.rows if "." in row["created_at"])
    seen["whole_seconds"] += sum(1 for row in page.rows if "." not in row["created_at"])
    seen["past_end"] += int(not page.rows and page.total > 0 and offset > 0)


async def test_a_summary_page_is_one_statement_on_postgresql_and_two_on_sqlite(harness: Harness) -> None:
    session_id = await seed(harness)
    with recorded_statements(harness) as first:
        page = await query(harness, session_id=session_id, sort="created_at", order="desc", limit=50)
    with recorded_statements(harness) as later:
        await query(harness, session_id=session_id, limit=7, offset=7)
    with recorded_statements(harness) as past_end:
        await query(harness, session_id=session_id, limit=7, offset=1000)
    # SQLite's transactions begin with a BEGIN of the engine's own; only the reads count here.
    counts = {
        name: len([s for s in run if s != "BEGIN"])
        for name, run in (("first", first), ("later", later), ("past_end", past_end))
    }
    # SQLite: the page with its count, then the page's dependencies; past the end, the empty page, then the count.
    expected = {
        "postgresql": {"first": 1, "later": 1, "past_end": 1},
        "sqlite": {"first": 2, "later": 2, "past_end": 2},
    }
    assert (counts, len(page.tasks), page.total_count) == (expected[harness.backend], 40, 40)
