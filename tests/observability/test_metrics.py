"""The Metrics object: bounded series exist from the start, the task gauges are cached, restarts are counted."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from app.observability.metrics import Metrics
from tests.support.prometheus import by_labels, parse, promtool_check_metrics, value

pytestmark = pytest.mark.anyio


def test_a_fresh_registry_exposes_the_bounded_series_at_zero_and_lints_clean() -> None:
    metrics = Metrics("1.2.3")
    body = metrics.render().decode()
    promtool_check_metrics(body)
    samples = parse(body)
    assert value(samples, "orchestrator_build_info", version="1.2.3") == 1
    assert set(by_labels(samples, "orchestrator_claims_total").values()) == {0.0}
    assert len(by_labels(samples, "orchestrator_claims_total")) == 5
    assert len(by_labels(samples, "orchestrator_db_errors_total")) == 4
    assert value(samples, "orchestrator_tool_calls_in_flight") == 0


def test_restart_counts_by_reason_and_outcome() -> None:
    metrics = Metrics("test")
    metrics.restart("schema_migration", "completed")
    metrics.restart("schema_migration", "completed")
    metrics.restart("error_recovery", "failed")
    samples = parse(metrics.render().decode())
    assert value(samples, "orchestrator_restarts_total", reason="schema_migration", outcome="completed") == 2
    assert value(samples, "orchestrator_restarts_total", reason="error_recovery", outcome="failed") == 1


async def test_task_counts_are_read_once_per_cache_window_and_not_cached_without_a_database() -> None:
    metrics = Metrics("test")
    answers: list[Mapping[str, int] | None] = [None, {"pending": 3}, {"pending": 9}]
    calls = 0

    async def fetch() -> Mapping[str, int] | None:
        nonlocal calls
        calls += 1
        return answers[calls - 1]

    await metrics.refresh_task_counts(fetch)  # no database yet: nothing cached, nothing set
    await metrics.refresh_task_counts(fetch)
    await metrics.refresh_task_counts(fetch)  # inside the cache window: not fetched again
    assert calls == 2
    samples = parse(metrics.render().decode())
    assert value(samples, "orchestrator_tasks", status="pending") == 3
    assert value(samples, "orchestrator_tasks", status="completed") == 0

    metrics.tasks_cache_seconds = 0
    await metrics.refresh_task_counts(fetch)
    assert value(parse(metrics.render().decode()), "orchestrator_tasks", status="pending") == 9


def test_tool_stats_estimate_per_tool_percentiles_from_the_histogram() -> None:
    metrics = Metrics("test")
    for _ in range(9):
        metrics.tool_call("orchestrator_plan_task", "ok", "ok", 0.004)
    metrics.tool_call("orchestrator_plan_task", "error", "not_found", 0.2)
    stats = metrics.tool_stats()["orchestrator_plan_task"]
    assert (stats["calls"], stats["errors"]) == (10, 1)
    assert 2.5 <= stats["p50_ms"] <= 5.0
    assert 100.0 <= stats["p95_ms"] <= 250.0
