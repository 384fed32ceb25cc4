"""The PromQL an operator runs against the service: a built-in list, or the Grafana dashboard's panel queries.

When ``deploy/grafana/dashboards/orchestrator.json`` exists its queries are the list, with Grafana's
variables replaced by values Prometheus accepts (``$__rate_interval`` → ``1m``, a ``label="$var"``
matcher → ``label=~".*"``). Metric names in an expression are checked against the Metrics registry, so a
dashboard that queries a name the service does not export fails here, not on an empty panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app.observability.metrics import Metrics, WaitingMetrics

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "orchestrator.json"
WINDOW = "1m"

BUILT_IN_EXPRESSIONS = (
    "sum by (tool, outcome) (rate(orchestrator_tool_calls_total[1m]))",
    "histogram_quantile(0.95, sum by (le) (rate(orchestrator_tool_call_duration_seconds_bucket[1m])))",
    "histogram_quantile(0.5, sum by (le, tool) (rate(orchestrator_tool_call_duration_seconds_bucket[1m])))",
    "orchestrator_tool_calls_in_flight",
    "sum by (status) (orchestrator_tasks)",
    "sum by (outcome) (rate(orchestrator_claims_total[1m]))",
    "sum by (from_status, to_status) (rate(orchestrator_task_transitions_total[1m]))",
    'orchestrator_db_pool_connections{state="checked_out"} / ignoring(state) '
    'orchestrator_db_pool_connections{state="capacity"}',
    "orchestrator_db_pool_connections",
    "sum by (kind) (rate(orchestrator_db_errors_total[1m]))",
    "orchestrator_ready",
    "orchestrator_build_info",
    "sum by (route, status) (rate(orchestrator_http_requests_total[1m]))",
    "histogram_quantile(0.95, sum by (le, route) (rate(orchestrator_http_request_duration_seconds_bucket[1m])))",
)

_MATCHER_WITH_VARIABLE = re.compile(r'(\w+)\s*(?:=~|!~|=|!=)\s*"[^"]*\$[^"]*"')
_VARIABLE = re.compile(r"\$\{[^}]+\}|\$\w+")
METRIC_NAME = re.compile(r"\borchestrator_[a-z_]+\b")


def substitute_variables(expr: str) -> str:
    """Grafana's template variables and intervals replaced so Prometheus can evaluate the query."""
    expr = _MATCHER_WITH_VARIABLE.sub(lambda m: f'{m.group(1)}=~".*"', expr)
    return _VARIABLE.sub(WINDOW, expr)


def _exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) and node["expr"].strip() else []
        return found + [e for key, value in node.items() if key != "expr" for e in _exprs(value)]
    if isinstance(node, list):
        return [e for item in node for e in _exprs(item)]
    return []


def expressions() -> tuple[str, list[str]]:
    """(where they came from, the expressions)."""
    if DASHBOARD.exists():
        found = [substitute_variables(e) for e in _exprs(json.loads(DASHBOARD.read_text()))]
        return str(DASHBOARD.relative_to(REPO_ROOT)), list(dict.fromkeys(found))
    return "built-in list", list(BUILT_IN_EXPRESSIONS)


def exported_names() -> set[str]:
    """Every sample name the Metrics object can export (counters' _total, histograms' _bucket, …)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names: set[str] = set()
    metrics = Metrics("names")
    WaitingMetrics(metrics)  # the waiting series live on the same registry (app.main builds both)
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def referenced_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))
