"""A real Prometheus scrapes the served app; the operator's PromQL (the dashboard's, when there is one) answers."""

from __future__ import annotations

import math
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from app.settings import Settings
from tests.support.mcp import call_error, call_ok
from tests.support.process import require_binary
from tests.support.promql import exported_names, expressions, referenced_names
from tests.support.server import RunningServer, client, serve

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

READY_TIMEOUT_SECONDS = 60
SCRAPE_ROUNDS = 120  # ~30 s at most: Prometheus scrapes every second and needs two scrapes with traffic between
# Series that exist only after an event this test does not cause; their queries must still evaluate.
EVENT_ONLY_SERIES = {"orchestrator_restarts_total", "orchestrator_restarts_created"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def prometheus(target: str, workdir: Path) -> AsyncIterator[str]:
    binary = require_binary("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: orchestrator\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = await anyio.open_process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient() as http:
            with anyio.fail_after(READY_TIMEOUT_SECONDS):
                while True:
                    if process.returncode is not None:
                        raise RuntimeError((workdir / "prometheus.log").read_text())
                    try:
                        if (await http.get(f"{url}/-/ready")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await anyio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            with anyio.fail_after(30):
                await process.wait()
        log.close()


async def query(http: httpx2.AsyncClient, url: str, expr: str) -> list[dict[str, Any]]:
    response = await http.get(f"{url}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result


async def make_traffic(server: RunningServer, prom: str, http: httpx2.AsyncClient) -> None:
    """Claim tasks until Prometheus has seen the tool-call counter move between two of its scrapes."""
    moved = 'changes(orchestrator_tool_calls_total{tool="orchestrator_update_task",outcome="ok"}[1m]) > 0'
    async with client(server, "2026-07-28") as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/prom", agent="scraped")
        for _ in range(SCRAPE_ROUNDS):
            task = (await call_ok(c, "orchestrator_plan_task", agent="scraped", title="T", description="D"))["task"]
            await call_ok(c, "orchestrator_update_task", agent="scraped", task_id=task["id"], status="in_progress")
            # An answer agents act on (the error panels need one): a stale version.
            await call_error(
                c, "orchestrator_update_task", agent="scraped", task_id=task["id"], expected_version=1, title="stale"
            )
            if await query(http, prom, moved):
                return
            await anyio.sleep(0.25)
    raise AssertionError(f"Prometheus never saw two scrapes with traffic between them in {SCRAPE_ROUNDS} rounds")


async def test_prometheus_scrapes_the_app_and_every_panel_query_returns_data(tmp_path: Path) -> None:
    source, exprs = expressions()
    known = exported_names()
    unknown = {expr: sorted(referenced_names(expr) - known) for expr in exprs if referenced_names(expr) - known}
    assert not unknown, f"queries in {source} name series the service does not export: {unknown}"

    settings = Settings(data_dir=tmp_path / "data", log_format="console")
    async with serve(settings) as server, httpx2.AsyncClient() as http:
        target = server.base_url.removeprefix("http://")
        async with prometheus(target, tmp_path) as prom:
            await make_traffic(server, prom, http)
            empty, not_finite = [], []
            for expr in exprs:
                result = await query(http, prom, expr)
                if referenced_names(expr) & EVENT_ONLY_SERIES:
                    continue
                if not result:
                    empty.append(expr)
                elif not any(math.isfinite(float(series["value"][1])) for series in result):
                    not_finite.append(expr)
    assert not empty, f"queries from {source} returned no data: {empty}"
    assert not not_finite, f"queries from {source} returned only NaN/Inf: {not_finite}"
