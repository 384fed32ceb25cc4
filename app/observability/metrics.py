"""The one Metrics object: every Prometheus series of DESIGN §9 on its own CollectorRegistry.

Built by ``create_app`` (never at import), so each app — and each test — has its own registry. Labels
are bounded vocabularies (tool names, outcomes, codes, statuses, routes); never an id.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_STATUSES = ("pending", "in_progress", "blocked", "completed", "failed", "cancelled", "archived")
CLAIM_OUTCOMES = ("acquired", "renewed", "released", "conflict", "expired")
# How the unit of work classifies database failures (app/db/uow.py).
DB_ERROR_KINDS = ("connection", "conflict", "integrity", "other")
POOL_STATES = ("checked_out", "idle", "overflow", "capacity")


class Metrics:
    """Owns the registry and every metric; services and edges call its small methods."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tool_calls = Counter(
            "orchestrator_tool_calls", "MCP tool calls by outcome.", ["tool", "outcome", "code"], registry=r
        )
        self.tool_duration = Histogram(
            "orchestrator_tool_call_duration_seconds",
            "MCP tool call latency.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tool_in_flight = Gauge("orchestrator_tool_calls_in_flight", "Tool calls being served.", registry=r)
        self.tasks = Gauge("orchestrator_tasks", "Tasks by status (read from the database).", ["status"], registry=r)
        self.claims = Counter("orchestrator_claims", "Claim events by outcome.", ["outcome"], registry=r)
        self.transitions = Counter(
            "orchestrator_task_transitions",
            "Task status transitions.",
            ["from_status", "to_status"],
            registry=r,
        )
        self.pool = Gauge("orchestrator_db_pool_connections", "Database pool connections.", ["state"], registry=r)
        self.db_errors = Counter("orchestrator_db_errors", "Database errors by kind.", ["kind"], registry=r)
        self.restarts = Counter(
            "orchestrator_restarts", "Warm restarts by reason and outcome.", ["reason", "outcome"], registry=r
        )
        self.ready = Gauge("orchestrator_ready", "1 when the service is ready.", registry=r)
        self.build_info = Gauge("orchestrator_build_info", "Build information.", ["version"], registry=r)
        self.http_requests = Counter(
            "orchestrator_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "orchestrator_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.build_info.labels(version=version).set(1)
        # Bounded vocabularies start at zero, so rate() and alerts see the series before the first event.
        for outcome in CLAIM_OUTCOMES:
            self.claims.labels(outcome=outcome)
        for kind in DB_ERROR_KINDS:
            self.db_errors.labels(kind=kind)
        self._tasks_cached_at: float | None = None
        self._tool_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self.tasks_cache_seconds = 5.0

    # --- tool calls -----------------------------------------------------------------------------
    def tool_call(self, tool: str, outcome: str, code: str, seconds: float) -> None:
        # The labelled children are looked up once per (tool, outcome, code): every call records here, and
        # the label lookup cost more than the increment. The vocabulary is bounded (tools, error codes).
        key = (tool, outcome, code)
        children = self._tool_children.get(key)
        if children is None:
            children = self._tool_children[key] = (
                self.tool_calls.labels(tool=tool, outcome=outcome, code=code),
                self.tool_duration.labels(tool=tool),
            )
        children[0].inc()
        children[1].observe(seconds)

    # --- outcome sink for services --------------------------------------------------------------
    def task_transition(self, from_status: str, to_status: str) -> None:
        self.transitions.labels(from_status=from_status, to_status=to_status).inc()

    def claim(self, outcome: str) -> None:
        self.claims.labels(outcome=outcome).inc()

    def db_error(self, kind: str) -> None:
        self.db_errors.labels(kind=kind).inc()

    # --- lifecycle ---------------------------------------------------------------------------------
    def restart(self, reason: str, outcome: str) -> None:
        """One warm restart finished: ``reason`` is the tool's reason enum, ``outcome`` e.g. completed|failed."""
        self.restarts.labels(reason=reason, outcome=outcome).inc()

    # --- scrape ----------------------------------------------------------------------------------
    async def refresh_task_counts(self, fetch: Callable[[], Awaitable[Mapping[str, int] | None]]) -> None:
        """Re-read task counts from the database at most once per ``tasks_cache_seconds``.

        ``fetch`` returns None while there is no database (starting, restarting): the gauges keep their last
        values and the next scrape asks again. A failing ``fetch`` propagates and caches nothing.
        """
        now = time.monotonic()
        if self._tasks_cached_at is not None and now - self._tasks_cached_at < self.tasks_cache_seconds:
            return
        counts = await fetch()
        if counts is None:
            return
        for status in TASK_STATUSES:
            self.tasks.labels(status=status).set(counts.get(status, 0))
        self._tasks_cached_at = now

    def set_pool(self, stats: Mapping[str, int]) -> None:
        """Pool gauges by state: checked_out, idle, overflow (beyond pool size), capacity (the most it opens)."""
        for state in POOL_STATES:
            self.pool.labels(state=state).set(stats.get(state, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def tool_stats(self) -> dict[str, dict[str, float]]:
        """Per tool: calls, errors, p50_ms, p95_ms, estimated from this process's histograms."""
        stats: dict[str, dict[str, float]] = {}
        calls: dict[str, float] = {}
        errs: dict[str, float] = {}
        for metric in self.tool_calls.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    tool = sample.labels["tool"]
                    calls[tool] = calls.get(tool, 0) + sample.value
                    if sample.labels["outcome"] != "ok":
                        errs[tool] = errs.get(tool, 0) + sample.value
        buckets: dict[str, list[tuple[float, float]]] = {}
        for metric in self.tool_duration.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    buckets.setdefault(sample.labels["tool"], []).append((float(sample.labels["le"]), sample.value))
        for tool, total in calls.items():
            series = sorted(buckets.get(tool, []))
            stats[tool] = {
                "calls": total,
                "errors": errs.get(tool, 0),
                "p50_ms": _quantile(series, 0.5) * 1000,
                "p95_ms": _quantile(series, 0.95) * 1000,
            }
        return stats


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float:
    """Linear interpolation inside the histogram bucket that holds quantile ``q`` (as Prometheus does)."""
    if not cumulative or cumulative[-1][1] == 0:
        return 0.0
    target = q * cumulative[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= target:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((target - prev_count) / span if span else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound


# --- waiting for work and the change feed (DESIGN §4.7) ------------------------------------------------
WAKE_CAUSES = ("signal", "interval", "reconnect", "draining")
WAKE_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WaitingMetrics:
    """The waiting series, on the Metrics registry: waiters now, wake-ups by cause, notify→wake latency,
    change-listener reconnects. ``cause`` is one of ``WAKE_CAUSES``."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.waiters = Gauge("orchestrator_task_waiters", "next_task calls waiting for work now.", registry=r)
        self.wakeups = Counter(
            "orchestrator_waiter_wakeups", "Waiting next_task calls woken, by cause.", ["cause"], registry=r
        )
        self.wake_latency = Histogram(
            "orchestrator_wake_latency_seconds",
            "From the commit that signalled work to the waiter waking (any replica).",
            buckets=WAKE_LATENCY_BUCKETS,
            registry=r,
        )
        self.listener_reconnects = Counter(
            "orchestrator_change_listener_reconnects", "Times the LISTEN connection was re-established.", registry=r
        )
        for cause in WAKE_CAUSES:
            self.wakeups.labels(cause=cause)

    def waiters_changed(self, delta: int) -> None:
        self.waiters.inc(delta)

    def waiter_woken(self, cause: str, latency_seconds: float | None) -> None:
        self.wakeups.labels(cause=cause if cause in WAKE_CAUSES else "signal").inc()
        if latency_seconds is not None and cause == "signal":
            self.wake_latency.observe(latency_seconds)

    def listener_reconnected(self) -> None:
        self.listener_reconnects.inc()
