"""The Grafana dashboard's PromQL, written out as recording rules so ``promtool check rules`` parses it.

Each panel target's ``expr`` and each query variable's selector (``label_values(SELECTOR, label)``)
becomes one recording rule. Grafana's variables are replaced first by values of the same kind:
``$__rate_interval`` and friends by a duration, every other ``$var`` / ``${var}`` / ``${var:format}``
by a plain word. A variable used where PromQL needs something else than those (say, a bare number)
then fails the parse, as it should. The dashboard's shape is checked on the way: unique panel ids, a
query in every graph panel, unique refIds within a panel, and every panel, query and query variable on
the ``${datasource}`` variable, whose default is the provisioned datasource's uid.

Usage: python dashboard_rules.py DASHBOARD.json DATASOURCES.yaml RULES_OUT.yaml
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DURATION_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*\w+\s*\)\s*$")


def substitute(expr: str) -> str:
    """The expression with Grafana's variables replaced by values of the same kind."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return DURATION_VARIABLES.get(name, "grafana_variable")

    return VARIABLE.sub(value, expr)


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # panels inside collapsed rows


def queries(dashboard: dict[str, Any], datasource_uid: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(rule name, expression) pairs for every query, and the dashboard's shape problems."""
    found: list[tuple[str, str]] = []
    problems: list[str] = []
    seen_ids: set[int] = set()
    for panel in panels(dashboard.get("panels", [])):
        pid, title = panel.get("id"), panel.get("title", "?")
        if pid in seen_ids:
            problems.append(f"panel id {pid} is used twice")
        seen_ids.add(pid)
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {pid} {title!r} does not use ${{datasource}}")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"panel {pid} {title!r} has no query")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids):
            problems.append(f"panel {pid} {title!r} repeats a refId: {ref_ids}")
        for target in targets:
            if target.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"panel {pid} {title!r} query {target.get('refId')} does not use ${{datasource}}")
            if not target.get("expr", "").strip():
                problems.append(f"panel {pid} {title!r} query {target.get('refId')} has no expr")
                continue
            found.append((f"dashboard:panel_{pid}:{target['refId']}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource":
            if variable.get("current", {}).get("value") != datasource_uid:
                problems.append(f"variable {variable['name']!r} defaults to another datasource than {datasource_uid!r}")
            continue
        if variable.get("type") != "query":
            continue
        if variable.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"variable {variable['name']!r} does not use ${{datasource}}")
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        match = LABEL_VALUES.match(text)
        if match is None:
            problems.append(f"variable {variable['name']!r}: expected label_values(SELECTOR, label), got {text!r}")
            continue
        found.append((f"dashboard:variable_{variable['name']}", match.group("selector")))
    return found, problems


def main(dashboard_path: Path, datasources_path: Path, rules_out: Path) -> int:
    dashboard = json.loads(dashboard_path.read_text())
    provisioned = yaml.safe_load(datasources_path.read_text())["datasources"]
    uid = next(ds["uid"] for ds in provisioned if ds["type"] == "prometheus")
    found, problems = queries(dashboard, uid)
    for problem in problems:
        print(f"ERROR {dashboard_path}: {problem}", file=sys.stderr)
    rules = [{"record": name, "expr": substitute(expr)} for name, expr in found]
    rules_out.write_text(yaml.safe_dump({"groups": [{"name": "grafana-dashboard", "rules": rules}]}, sort_keys=False))
    print(f"INFO {dashboard_path}: {len(rules)} queries written to {rules_out}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
