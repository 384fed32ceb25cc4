"""ix_task_search indexes the words of search_text's one rule (``app.domain.search``), so PostgreSQL and
SQLite find the same tasks.

The index was ``to_tsvector('simple', document)``: the full-text parser kept ``app/main.py``, ``3.14`` and
e-mail addresses as single tokens (``main`` found nothing), and its lower-casing followed the database's
locale. ``task_search_vector(document)`` instead splits the document into runs of letters and decimal
digits after Unicode lower-casing, both under the ICU root collation ``und-x-icu`` (the same result under
any database locale; PostgreSQL must be built with ICU, as the common distributions are), cuts each word
to 255 characters (a tsvector lexeme holds at most 2047 bytes) and makes those words the lexemes
(``array_to_tsvector``: no parser, no dictionary). SQLite has no index and evaluates the rule in Python.

The index is rebuilt inside the migration's transaction: writes to ``task`` wait while it builds, about
as long as the old one took to build.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 21:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The document of app.db.repositories.task_filters.SEARCH_DOCUMENT: query_tasks uses the index only when
# its expression is this very one.
DOCUMENT = "title || ' ' || description || ' ' || coalesce(summary, '')"
# Immutable: ICU's case mapping and character classes under a fixed collation, whatever the locale.
FUNCTION = """
CREATE OR REPLACE FUNCTION task_search_vector(document text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array_to_tsvector(ARRAY(
        SELECT left(word, 255)
        FROM regexp_split_to_table(lower(document COLLATE "und-x-icu"), '[^[:alnum:]]+') AS word
        WHERE word <> ''
    ))
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute("DROP INDEX IF EXISTS ix_task_search")
    op.execute(f"CREATE INDEX ix_task_search ON task USING gin (task_search_vector({DOCUMENT}))")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_task_search")
    op.execute(f"CREATE INDEX ix_task_search ON task USING gin (to_tsvector('simple'::regconfig, {DOCUMENT}))")
    op.execute("DROP FUNCTION IF EXISTS task_search_vector(text)")
