"""search_text's one rule (``app.domain.search``) as each backend evaluates it: PostgreSQL's index function
``task_search_vector`` (migration 0004) must give exactly the words Python gives, and query_tasks's search
predicate must be the indexed expression (else PostgreSQL scans every task of a session)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from app.db.models import Task
from app.db.repositories.task_filters import FilterShape, filter_predicates
from app.domain import search
from tests.support.harness import Harness

# PostgreSQL only: SQLite runs the Python rule itself and has no search index.
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgresql"])]

DOCUMENTS = (
    "Fix crash in app/main.py",
    "Bump to version 3.14, see https://example.com/a?b=c#d and bob@example.com",
    "ÜBER CAFÉ Ölwechsel STRAßE",
    "ΣΟΦΟΣ ΟΔΟΣ. Σοφία",  # final sigma before a space and before a full stop
    "İstanbul IJssel ǅemal",  # İ lower-cases to i + a combining dot (no word character)
    "snake_case_name camelCase kebab-case",
    "½ x² Ⅸ ١٢٣ ३४ 10th",  # numerals that are not decimal digits separate words
    "e\u0301te\u0301 cafe\u0301",  # combining accents separate words
    "日本語のテキスト 한국어 emoji 🚀 tab\tnew\nline",
    "fullwidth \uff21\uff22\uff23\uff11\uff12\uff13 \U0001d400\U0001d401",  # fullwidth and math bold letters
    "z" * 300 + " " + "é" * 600,  # words count by their first 255 characters
    "   ",
    "!!!",
)


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_postgresql_index_function_gives_the_words_python_gives(harness: Harness, document: str) -> None:
    async with harness.database.engine.connect() as conn:
        lexemes = await conn.scalar(
            text("SELECT tsvector_to_array(task_search_vector(:document))"), {"document": document}
        )
    assert set(lexemes) == set(search.words(document))


async def test_postgresql_search_predicate_is_the_indexed_expression(harness: Harness) -> None:
    predicate = filter_predicates(FilterShape(search=True), "postgresql")[-1]
    statement = select(Task.id).where(predicate).params(search=search.tsquery(["main"]))
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with harness.database.engine.connect() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await conn.execute(text(f"EXPLAIN {sql}"))).scalars())
    assert "ix_task_search" in plan, plan
