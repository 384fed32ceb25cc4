"""Statement span names: the operation and the table, never a value from the statement."""

from __future__ import annotations

import pytest

from app.observability.tracing import statement_summary


@pytest.mark.parametrize(
    ("statement", "summary"),
    [
        ("SELECT task.id, task.title FROM task WHERE task.id = $1", ("SELECT", "task")),
        ("select count(*) from \"task_event\" where actor = 'alice'", ("SELECT", "task_event")),
        ("INSERT INTO request_record (actor, request_id) VALUES (?, ?)", ("INSERT", "request_record")),
        ("UPDATE task SET title='s3cret' WHERE id = 'task_1'", ("UPDATE", "task")),
        ("DELETE FROM task_dependency WHERE task_id IN (__[POSTCOMPILE_ids])", ("DELETE", "task_dependency")),
        ("BEGIN IMMEDIATE", ("BEGIN", None)),
        ("WITH RECURSIVE sub(id) AS (SELECT id FROM task) SELECT id FROM sub", ("WITH", None)),
        ("  -- leading comment\nSELECT 1", ("SQL", None)),
    ],
)
def test_statement_summary_names_operation_and_table_only(statement: str, summary: tuple[str, str | None]) -> None:
    assert statement_summary(statement) == summary
