"""query_tasks on both backends: every filter, every sort key in both orders, paging, search, includes,
and session isolation. Times come from the harness's ManualClock, so every order is deterministic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from app import errors
from app.db.repositories import Repositories
from app.services.artifacts import new_artifact
from app.services.graph.queries import QueriedTask
from app.services.views import TaskSummary
from tests.support.calls import query, update
from tests.support.execution import complete
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio


@dataclass
class World:
    ids: dict[str, str]  # title -> id
    created: dict[str, datetime]
    foreign: str  # a task of another session
    foreign_session: str
    artifact: str

    def titles(self, task_ids: list[str]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id.get(i, f"<foreign {i}>") for i in task_ids]

    def by_id_order(self, *titles: str, descending: bool = False) -> list[str]:
        """Titles in id order: how ties on the sort key are broken."""
        return sorted(titles, key=lambda t: self.ids[t], reverse=descending)


def move_to(h: Harness, start: datetime, seconds: int) -> None:
    """Set the clock to ``start + seconds`` (absolute times keep the table below exact)."""
    h.clock.advance((start + timedelta(seconds=seconds) - h.clock.now()).total_seconds())


async def build_world(h: Harness) -> World:
    """Five tasks in alice's session, created a minute apart, and one in bob's session.

    | title  | type           | specialist | complexity   | priority | due        | parent | status       |
    | t1     | implementation | coder      | complex      | high     | 2026-03-01 |        | pending      |
    | t2     | review         | reviewer   | simple       | low      | 2026-02-01 |        | in_progress (bob) |
    | t3     | deployment     | devops     | moderate     | critical |            |        | pending, waits on t1 |
    | t4     | documentation  | documenter | trivial      | medium   | 2026-04-01 |        | completed    |
    | t5     | testing        | tester     | very_complex | high     |            | t1     | pending      |
    updated_at: t1 60 s, t5 300 s, t2 400 s, t4 500 s, t3 600 s.
    """
    foreign_session = await h.session("bob", "/work/other")
    foreign = (await h.plan("bob", title="Database migration", description="Other team.", priority="critical")).task.id
    await h.session("alice", "/work/project")
    specs: list[dict[str, Any]] = [
        dict(title="t1", description="Write the DATABASE schema.", task_type="implementation",
             specialist_type="coder", complexity="complex", priority="high", due_date="2026-03-01"),
        dict(title="t2", description="Review the API; check the database access paths.", task_type="review",
             specialist_type="reviewer", complexity="simple", priority="low", due_date="2026-02-01"),
        dict(title="t3", description="Roll out to production.", task_type="deployment", specialist_type="devops",
             complexity="moderate", priority="critical"),
        dict(title="t4", description="Write the docs.", task_type="documentation", specialist_type="documenter",
             complexity="trivial", priority="medium", due_date="2026-04-01"),
        dict(title="t5", description="Measure and tune the indexes.", task_type="testing", specialist_type="tester",
             complexity="very_complex", priority="high"),
    ]  # fmt: skip
    ids: dict[str, str] = {}
    created: dict[str, datetime] = {}
    start = h.clock.now()
    for index, spec in enumerate(specs, start=1):
        move_to(h, start, 60 * index)
        if spec["title"] == "t3":
            spec["dependencies"] = [ids["t1"]]
        parent = ids["t1"] if spec["title"] == "t5" else None
        ids[spec["title"]] = (await h.plan(parent=parent, **spec)).task.id
        created[spec["title"]] = h.clock.now()
    move_to(h, start, 400)
    await update(h, ids["t2"], "bob", status="in_progress")
    move_to(h, start, 500)
    await complete(h, ids["t4"], "alice")
    move_to(h, start, 600)
    await update(h, ids["t3"], context={"env": "prod"})

    async def annotate(repos: Repositories) -> str:
        t4 = await repos.tasks.get_for_update(ids["t4"])
        assert t4 is not None
        await repos.tasks.update_fields(t4, {"summary": "Covered the Kubernetes setup."})
        row = new_artifact(
            session_id=t4.session_id,
            task_id=ids["t2"],
            kind="analysis",
            name="notes",
            content="n",
            actor="bob",
            at=h.clock.now(),
        )
        await repos.artifacts.insert(row)
        return row.id

    artifact = await h.uow.run(annotate)
    return World(ids, created, foreign, foreign_session, artifact)


async def titles(h: Harness, world: World, **filters: Any) -> list[str]:
    return world.titles([t.id for t in (await query(h, **filters)).tasks])


async def test_every_filter_narrows_to_exactly_its_matches(harness: Harness) -> None:
    w = await build_world(harness)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ["t1", "t2", "t3", "t4", "t5"]),
        ({"statuses": ["pending"]}, ["t1", "t3", "t5"]),
        ({"statuses": ["in_progress", "completed"]}, ["t2", "t4"]),
        ({"statuses": ["archived"]}, []),
        ({"task_types": ["review", "testing"]}, ["t2", "t5"]),
        ({"specialist_types": ["devops"]}, ["t3"]),
        ({"complexities": ["trivial", "very_complex"]}, ["t4", "t5"]),
        ({"priorities": ["high"]}, ["t1", "t5"]),
        ({"priorities": ["critical"]}, ["t3"]),
        ({"parent_task_id": w.ids["t1"]}, ["t5"]),
        ({"parent_task_id": w.ids["t5"]}, []),
        ({"assigned_to": "bob"}, ["t2"]),
        ({"assigned_to": "carol"}, []),
        ({"ready_only": True}, ["t5"]),  # t1 waits for its subtask t5
        ({"created_after": w.created["t2"]}, ["t3", "t4", "t5"]),
        ({"created_before": w.created["t2"]}, ["t1"]),
        ({"created_after": w.created["t1"], "created_before": w.created["t4"]}, ["t2", "t3"]),
        ({"search_text": "database"}, ["t1", "t2"]),
        ({"statuses": ["pending"], "priorities": ["high"], "ready_only": True}, ["t5"]),
        ({"search_text": "database", "task_types": ["review"]}, ["t2"]),
        ({"statuses": ["pending"], "specialist_types": ["reviewer"]}, []),
    ]
    for filters, expected in cases:
        result = await query(harness, **filters)
        assert (w.titles([t.id for t in result.tasks]), result.total_count) == (expected, len(expected)), filters


async def test_every_sort_key_in_both_orders(harness: Harness) -> None:
    w = await build_world(harness)
    high_asc = w.by_id_order("t1", "t5")
    high_desc = w.by_id_order("t1", "t5", descending=True)
    expected = {
        ("created_at", "asc"): ["t1", "t2", "t3", "t4", "t5"],
        ("created_at", "desc"): ["t5", "t4", "t3", "t2", "t1"],
        ("updated_at", "asc"): ["t1", "t5", "t2", "t4", "t3"],
        ("updated_at", "desc"): ["t3", "t4", "t2", "t5", "t1"],
        ("priority", "asc"): ["t2", "t4", *high_asc, "t3"],
        ("priority", "desc"): ["t3", *high_desc, "t4", "t2"],
        # Tasks without a due date come last in either order.
        ("due_date", "asc"): ["t2", "t1", "t4", *w.by_id_order("t3", "t5")],
        ("due_date", "desc"): ["t4", "t1", "t2", *w.by_id_order("t3", "t5", descending=True)],
    }
    for (sort, order), titles_in_order in expected.items():
        assert await titles(harness, w, sort=sort, order=order) == titles_in_order, (sort, order)


async def test_pages_cover_every_match_once_with_total_count_and_next_offset(harness: Harness) -> None:
    w = await build_world(harness)
    pages = []
    offset: int | None = 0
    while offset is not None:
        page = await query(harness, sort="created_at", order="desc", limit=2, offset=offset)
        assert (page.total_count, page.limit, page.offset) == (5, 2, offset)
        pages.append((w.titles([t.id for t in page.tasks]), page.next_offset))
        offset = page.next_offset
    assert pages == [(["t5", "t4"], 2), (["t3", "t2"], 4), (["t1"], None)]
    beyond = await query(harness, limit=2, offset=10)
    assert (beyond.tasks, beyond.total_count, beyond.next_offset) == ([], 5, None)
    filtered = await query(harness, statuses=["pending"], limit=1)
    assert (len(filtered.tasks), filtered.total_count, filtered.next_offset) == (1, 3, 1)
    exact = await query(harness, limit=5)
    assert (len(exact.tasks), exact.next_offset) == (5, None)


async def test_search_matches_words_in_title_description_and_summary_case_insensitively(harness: Harness) -> None:
    w = await build_world(harness)
    cases = {
        "t1": ["t1"],  # title
        "DATABASE": ["t1", "t2"],  # description, either case
        "Database Schema": ["t1"],  # every word must match
        "kubernetes": ["t4"],  # summary
        "KUBERNETES setup": ["t4"],
        "production, rollout": [],  # "rollout" is not a word of t3
        "roll-out": ["t3"],  # punctuation separates words
        "indexes tune": ["t5"],  # word order does not matter
        "migration": [],  # only in another session
    }
    for text, expected in cases.items():
        assert await titles(harness, w, search_text=text) == expected, text


# One table of search cases, run on both backends: a match is "every word of the search is a prefix of a
# word of the title, description or summary", words being runs of letters and digits after Unicode
# lower-casing (app.domain.search). Before, PostgreSQL's parser kept app/main.py, 3.14 and e-mail
# addresses whole, SQLite lower-cased ASCII only, and SQLite matched substrings where PostgreSQL took prefixes.
SEARCH_TASKS: dict[str, tuple[str, str, str | None]] = {  # name: (title, description, summary)
    "path": ("Fix crash in app/main.py", "The stack trace is attached.", None),
    "version": ("Bump to version 3.14", "Release notes for v2.", None),
    "mail": ("Mail bob@example.com", "Ask about the invoice.", None),
    "upper": ("ÜBER CAFÉ", "Kaffeepause.", None),
    "oil": ("Ölwechsel planen", "Werkstatt anrufen.", "ERLEDIGT: Termin am Montag."),
    "snake": ("Rename snake_case_name", "Use camelCase in the API.", None),
    "refactor": ("Refactoring parser", "Split the lexer off.", None),
    "greek": ("ΣΟΦΟΣ", "Σοφία.", None),
    "numerals": ("Handle ½ and x² in ١٢٣", "Units.", None),
    "long": ("Checksum", "q" * 3000 + " done.", None),
}
SEARCH_CASES: dict[str, list[str]] = {
    # Punctuation inside a word of the document separates words.
    "main": ["path"],
    "main.py": ["path"],
    "APP/MAIN.PY": ["path"],
    "14": ["version"],
    "3.14": ["version"],
    "example": ["mail"],
    "bob@example.com": ["mail"],
    "example.org": [],  # "org" is no word of it
    "case": ["snake"],
    "snake_case": ["snake"],
    "camelcase": ["snake"],
    # Case folding beyond ASCII, both ways round.
    "über": ["upper"],
    "ÜBER café": ["upper"],
    "ölwechsel": ["oil"],
    "ÖLWECHSEL": ["oil"],
    "erledigt montag": ["oil"],  # the summary
    "σοφος": ["greek"],  # the final sigma of ΣΟΦΟΣ lower-cases to ς
    "ΣΟΦΟΣ σοφία": ["greek"],
    # Prefixes of words, not substrings.
    "refact": ["refactor"],
    "factoring": [],
    "arser": [],
    "ver": ["version"],
    # Every word must match, in any order, each a prefix of some word.
    "crash fix": ["path"],
    "fix parser": [],
    "bump v2": ["version"],
    "ma": ["mail", "path"],
    # Punctuation in the search separates its words and is never query syntax.
    "main!!!": ["path"],
    "'main' & !py": ["path"],
    "main:* | mail": [],  # both words must match one task
    "(über)": ["upper"],
    "back\\slash": [],
    # Only letters and decimal digits make words: ½ and ² separate them, Arabic-Indic digits are digits.
    "x": ["numerals"],
    "x2": [],
    "١٢": ["numerals"],
    # A word counts by its first 255 characters.
    "q" * 20: ["long"],
    "q" * 300: ["long"],
}


async def test_search_is_one_rule_of_word_prefixes_on_both_backends(harness: Harness) -> None:
    session_id = await harness.session()
    ids: dict[str, str] = {}
    for name, (title, description, _) in SEARCH_TASKS.items():
        ids[name] = (await harness.plan(title=title, description=description)).task.id

    async def summarise(repos: Repositories) -> None:
        for name, (_, _, summary) in SEARCH_TASKS.items():
            if summary is not None:
                task = await repos.tasks.get_for_update(ids[name])
                assert task is not None
                await repos.tasks.update_fields(task, {"summary": summary})

    await harness.uow.run(summarise)
    names = {task_id: name for name, task_id in ids.items()}
    found = {
        text: sorted(names[t.id] for t in (await query(harness, session_id=session_id, search_text=text)).tasks)
        for text in SEARCH_CASES
    }
    assert found == SEARCH_CASES


async def test_search_without_any_word_is_invalid_argument(harness: Harness) -> None:
    await build_world(harness)
    with pytest.raises(errors.InvalidArgument) as caught:
        await query(harness, search_text="!!! ...")
    assert (caught.value.field, caught.value.value) == ("search_text", "!!! ...")


async def test_children_and_artifacts_are_included_on_request(harness: Harness) -> None:
    w = await build_world(harness)
    plain = await query(harness, view="full", limit=100)
    assert {(t.children, t.artifacts) for t in plain.tasks} == {(None, None)}  # type: ignore[union-attr]
    full = await query(harness, include_children=True, include_artifacts=True, limit=100)
    by_title = {title: task for title, task in zip(w.titles([t.id for t in full.tasks]), full.tasks, strict=True)}
    t5 = next(t for t in plain.tasks if t.id == w.ids["t5"])
    assert [c.id for c in by_title["t1"].children or []] == [w.ids["t5"]]
    assert [c for title, t in by_title.items() if title != "t1" for c in t.children or []] == []
    [artifact] = by_title["t2"].artifacts or []
    assert (artifact.id, artifact.kind, artifact.task_id, artifact.created_by) == (
        w.artifact,
        "analysis",
        w.ids["t2"],
        "bob",
    )
    others = [(title, a.kind) for title, t in by_title.items() if title != "t2" for a in t.artifacts or []]
    assert others == [("t4", "general")]  # the work recorded by completing t4
    # The included child is a plain TaskView, equal to what a query returns for it.
    assert by_title["t1"].children[0].model_dump() == {  # type: ignore[index]
        k: v for k, v in t5.model_dump().items() if k not in ("children", "artifacts")
    }


async def test_tasks_of_another_session_never_appear(harness: Harness) -> None:
    w = await build_world(harness)
    probes: list[dict[str, Any]] = [
        {},
        {"search_text": "database"},
        {"priorities": ["critical"]},
        {"ready_only": True},
        {"created_after": datetime(2000, 1, 1).astimezone()},
        {"session_id": None, "statuses": ["pending"]},
    ]
    for filters in probes:
        result = await query(harness, **filters)
        assert w.foreign not in [t.id for t in result.tasks], filters
        assert result.total_count == len(result.tasks), filters
    own = await query(harness, "alice", session_id=w.foreign_session)
    assert [t.id for t in own.tasks] == [w.foreign]
    bobs = await query(harness, "bob")
    assert [t.id for t in bobs.tasks] == [w.foreign]
    children = await query(harness, parent_task_id=w.foreign, session_id=w.foreign_session)
    assert children.tasks == []


async def test_parent_filter_reads_the_parents_session_and_refuses_a_missing_or_foreign_parent(
    harness: Harness,
) -> None:
    w = await build_world(harness)
    own_session = (await query(harness, task_ids=[w.ids["t1"]], limit=100)).tasks[0].session_id
    step = (await harness.plan("bob", title="Bob's step", parent=w.foreign)).task.id
    # Like plan_task, the filter follows the parent's session when session_id is omitted.
    followed = await query(harness, "alice", parent_task_id=w.foreign)
    assert ([t.id for t in followed.tasks], followed.total_count) == ([step], 1)
    with pytest.raises(errors.NotFound) as missing:
        await query(harness, parent_task_id="task_0000000000000000")
    with pytest.raises(errors.InvalidArgument) as elsewhere:
        await query(harness, parent_task_id=w.foreign, session_id=own_session)
    assert (missing.value.code, missing.value.field, missing.value.value) == (
        "not_found",
        "parent_task_id",
        "task_0000000000000000",
    )
    assert (elsewhere.value.field, elsewhere.value.value) == ("parent_task_id", w.foreign)
    assert w.foreign_session in elsewhere.value.message and own_session in elsewhere.value.message


async def test_task_ids_of_another_session_than_the_named_one_are_said_to_be_elsewhere(harness: Harness) -> None:
    w = await build_world(harness)
    own_session = (await query(harness, task_ids=[w.ids["t1"]], limit=100)).tasks[0].session_id
    with pytest.raises(errors.InvalidArgument) as elsewhere:
        await query(harness, task_ids=[w.ids["t1"], w.foreign], session_id=own_session, limit=100)
    assert (elsewhere.value.code, elsewhere.value.field, elsewhere.value.value) == (
        "invalid_argument",
        "task_ids[1]",
        w.foreign,
    )
    assert f"is in session {w.foreign_session}, not {own_session}" in elsewhere.value.message


async def test_query_needs_a_session(harness: Harness) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await query(harness, "newcomer")
    assert (caught.value.code, caught.value.field) == ("invalid_argument", "session_id")
    with pytest.raises(errors.NotFound) as missing:
        await query(harness, session_id="sess_0000000000000000")
    assert (missing.value.field, missing.value.value) == ("session_id", "sess_0000000000000000")


async def test_rows_are_summaries_by_default_with_the_same_readiness_as_full_views(harness: Harness) -> None:
    await build_world(harness)
    summary = await query(harness, limit=100)
    full = await query(harness, view="full", limit=100)
    keys = set(TaskSummary.model_fields)
    assert [type(t) for t in summary.tasks] == [TaskSummary] * len(full.tasks)
    assert [t.model_dump() for t in summary.tasks] == [t.model_dump(include=keys) for t in full.tasks]


async def test_task_ids_read_the_named_tasks_in_full_and_refuse_filters_and_unknown_ids(harness: Harness) -> None:
    w = await build_world(harness)
    named = await query(harness, task_ids=[w.ids["t2"], w.ids["t1"]], limit=100)
    with pytest.raises(errors.InvalidArgument) as clash:
        await query(harness, task_ids=[w.ids["t1"]], statuses=["pending"], limit=100)
    with pytest.raises(errors.NotFound) as missing:
        await query(harness, task_ids=[w.ids["t1"], "task_0000000000000000"], limit=100)
    with pytest.raises(errors.InvalidArgument) as too_many:
        await query(harness, view="full", limit=101)
    assert [(type(t), t.id) for t in named.tasks] == [(QueriedTask, w.ids["t2"]), (QueriedTask, w.ids["t1"])]
    assert (named.total_count, named.next_offset) == (2, None)
    assert (clash.value.field, missing.value.field, too_many.value.field) == ("status", "task_ids[1]", "limit")
