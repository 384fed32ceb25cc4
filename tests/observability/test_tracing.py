"""Statement span names: the operation and the table, never a value from the statement."""

from __future__ import annotations

import pytest

from app.observability.tracing import statement_summary, traces_url, without_credentials


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


@pytest.mark.parametrize(
    ("endpoint", "url", "logged"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
        ("https://otlp.example/base/", "https://otlp.example/base/v1/traces", "https://otlp.example/base/v1/traces"),
        (
            "https://otlp.example/?api_key=k3y-s3cret",
            "https://otlp.example/v1/traces?api_key=k3y-s3cret",
            "https://otlp.example/v1/traces?…",
        ),
        (
            "https://bob:p4ss@otlp.example:443/otlp?sig=abc#frag",
            "https://bob:p4ss@otlp.example:443/otlp/v1/traces?sig=abc#frag",
            "https://otlp.example:443/otlp/v1/traces?…",
        ),
    ],
)
def test_the_traces_url_keeps_the_query_and_its_log_form_drops_every_credential(
    endpoint: str, url: str, logged: str
) -> None:
    assert traces_url(endpoint) == url
    assert without_credentials(url) == logged
