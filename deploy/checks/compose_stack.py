"""Check a running ``deploy/compose.yaml`` stack (``deploy/check.sh --compose`` brings it up first).

1. ``migrate`` ran to completion (exit 0) before the replicas started;
2. both replicas are healthy (their HEALTHCHECK) and ready (``/readyz`` 200);
3. one shared graph: a task planned through replica 1 is found through replica 2 in the same session;
4. Prometheus scrapes both replicas (job ``task-orchestrator``, two targets up).

Usage: python compose_stack.py DOCKER_COMPOSE COMPOSE_FILE
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
from container import CheckFailed, check, get, tool, wait_for
from mcp import Client

REPLICAS = {"orchestrator-1": "http://127.0.0.1:8001", "orchestrator-2": "http://127.0.0.1:8002"}
PROMETHEUS = "http://127.0.0.1:9090"
SCRAPE_WAIT_SECONDS = 90.0  # the scrape interval is 15 s


def services(compose: list[str]) -> dict[str, dict[str, Any]]:
    """``docker-compose ps -a`` as service name -> its container's fields (State, Health, ExitCode)."""
    listed = subprocess.run([*compose, "ps", "--all", "--format", "json"], capture_output=True, text=True, check=True)  # noqa: S603  # docker-compose
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


def until(what: str, probe: Callable[[], bool], seconds: float) -> None:
    wait_for(what, probe, seconds)


def check_migrate(compose: list[str]) -> str:
    def done() -> bool:
        row = services(compose).get("migrate", {})
        return row.get("State") == "exited"

    until("migrate to exit", done, 120)
    row = services(compose)["migrate"]
    if row.get("ExitCode") != 0:
        raise CheckFailed(f"migrate exited with {row.get('ExitCode')}")
    return "exited 0"


def check_replicas(compose: list[str]) -> str:
    def healthy() -> bool:
        rows = services(compose)
        return all(rows.get(name, {}).get("Health") == "healthy" for name in REPLICAS)

    until("both replicas healthy", healthy, 120)
    for name, base in REPLICAS.items():
        status, body = get(f"{base}/readyz")
        if status != 200 or json.loads(body).get("ready") is not True:
            raise CheckFailed(f"{name} /readyz answered {status} {body[:300]!r}")
    return "healthy, /readyz 200 on 8001 and 8002"


async def shared_graph() -> str:
    async with Client(f"{REPLICAS['orchestrator-1']}/mcp") as first:
        session = await tool(first, "orchestrator_initialize_session", {"working_directory": "/srv/compose-check"})
        session_id = session["session"]["id"]
        planned = await tool(first, "orchestrator_plan_task", {"title": "Compose check", "description": "d"})
    async with Client(f"{REPLICAS['orchestrator-2']}/mcp") as second:
        found = await tool(second, "orchestrator_query_tasks", {"session_id": session_id, "search_text": "Compose"})
    ids = [task["id"] for task in found["tasks"]]
    if planned["task"]["id"] not in ids:
        raise CheckFailed(f"replica 2 does not see {planned['task']['id']} planned through replica 1: {found}")
    return f"planned {planned['task']['id']} through replica 1, found it through replica 2"


def check_scrapes() -> str:
    seen: dict[str, str] = {}

    def both_up() -> bool:
        body = json.loads(get(f"{PROMETHEUS}/api/v1/targets")[1])
        targets = [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == "task-orchestrator"]
        seen.clear()
        seen.update({t["labels"]["instance"]: t["health"] for t in targets})
        return len(targets) == len(REPLICAS) and all(health == "up" for health in seen.values())

    try:
        until("Prometheus scraping both replicas", both_up, SCRAPE_WAIT_SECONDS)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}; targets: {seen}") from exc
    return ", ".join(f"{instance} {health}" for instance, health in sorted(seen.items()))


def main(docker_compose: str, compose_file: str) -> int:
    compose = [docker_compose, "--file", compose_file]
    started = time.monotonic()
    try:
        check("migrate ran to completion", lambda: check_migrate(compose))
        check("both replicas healthy and ready", lambda: check_replicas(compose))
        check("one shared graph through both replicas", lambda: anyio.run(shared_graph))
        check("Prometheus scrapes both replicas", check_scrapes)
    except CheckFailed:
        return 1
    print(f"INFO compose checks took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
