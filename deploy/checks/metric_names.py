"""Every metric and label that the dashboard and the alert rules name must be one the app exports.

A misspelt metric or label is valid PromQL that promtool accepts and that selects nothing: the panel is
empty and the alert never fires. So the names are checked against the source of truth, the app's
``Metrics`` object, by wire name (app_series.py). The expressions are read with a real PromQL parser
(promql-parser); label names are checked in selectors and in ``by``, ``without``, ``on``, ``ignoring``
and ``group_*`` clauses.

Usage: python metric_names.py RULES.yaml [RULES.yaml ...]   (alert rules, and the dashboard's queries
as written by dashboard_rules.py)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import app_series
import promql_parser
import yaml

# Labels the scrape adds: Prometheus' own, and those the Prometheus Operator's ServiceMonitor adds.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container", "endpoint"})
# Series Prometheus makes itself, with target labels only.
SYNTHETIC = {"up": frozenset()}


def children(node: Any) -> Iterator[Any]:
    kind = type(node).__name__
    if kind == "MatrixSelector":
        yield node.vector_selector
    elif kind in {"AggregateExpr", "ParenExpr", "UnaryExpr", "SubqueryExpr"}:
        yield node.expr
        if kind == "AggregateExpr" and node.param is not None:
            yield node.param
    elif kind == "BinaryExpr":
        yield node.lhs
        yield node.rhs
    elif kind == "Call":
        yield from node.args


def selectors(node: Any) -> Iterator[Any]:
    if type(node).__name__ == "VectorSelector":
        yield node
    for child in children(node):
        yield from selectors(child)


def problems_in(expr: str, series: dict[str, frozenset[str]]) -> Iterator[str]:
    tree = promql_parser.parse(expr)
    yield from _check(tree, series)


def _check(node: Any, series: dict[str, frozenset[str]]) -> Iterator[str]:
    kind = type(node).__name__
    if kind == "VectorSelector":
        if node.name not in series:
            yield f"metric {node.name!r} is not exported by the app"
            return
        allowed = series[node.name] | TARGET_LABELS | {"__name__"}
        for matcher in node.matchers.matchers:
            if matcher.name not in allowed:
                yield f"{node.name} has no label {matcher.name!r} (it has: {', '.join(sorted(series[node.name]))})"
    grouping: list[str] = []
    if kind == "AggregateExpr" and node.modifier is not None:
        grouping = list(node.modifier.labels)
    elif kind == "BinaryExpr" and node.modifier is not None:
        if node.modifier.matching is not None:
            grouping += list(node.modifier.matching.labels)
        grouping += list(node.modifier.group_labels or [])
    if grouping:
        available = TARGET_LABELS.union(*(series.get(s.name, frozenset()) for s in selectors(node)))
        for label in grouping:
            if label not in available:
                yield f"grouping label {label!r} is on none of the series under {node}"
    for child in children(node):
        yield from _check(child, series)


def main(paths: list[Path]) -> int:
    series = {**app_series.exported_series(), **SYNTHETIC}
    failures = checked = 0
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                checked += 1
                for problem in problems_in(rule["expr"], series):
                    failures += 1
                    print(f"ERROR {path}: {name}: {problem}", file=sys.stderr)
    print(f"INFO {checked} expressions checked against {len(series)} exported series")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main([Path(p) for p in sys.argv[1:]]))
