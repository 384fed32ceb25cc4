"""/metrics on the served app after real tool calls: valid exposition, every DESIGN §9 series, true values."""

from __future__ import annotations

import httpx2
import pytest

from app.main import server_version
from tests.support.mcp import call_error, call_ok
from tests.support.prometheus import Samples, by_labels, parse, promtool_check_metrics, value
from tests.support.server import RunningServer, client

pytestmark = pytest.mark.anyio


async def scrape(server: RunningServer) -> tuple[str, Samples]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{server.base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text, parse(response.text)


async def claim_renew_conflict_complete(server: RunningServer, era: str) -> None:
    """One task through a claim's life, with a rival refused and a lookup of a missing task."""
    async with client(server, era) as c:
        await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent="worker")
        task = (await call_ok(c, "orchestrator_plan_task", agent="worker", title="T", description="D"))["task"]
        await call_ok(c, "orchestrator_update_task", agent="worker", task_id=task["id"], status="in_progress")
        await call_ok(c, "orchestrator_update_task", agent="worker", task_id=task["id"], title="T, renamed")
        rival = await call_error(c, "orchestrator_update_task", agent="rival", task_id=task["id"], status="blocked")
        assert rival["code"] == "claimed_by_other"
        await call_ok(
            c,
            "orchestrator_complete_task",
            agent="worker",
            task_id=task["id"],
            summary="Done.",
            detailed_work="All of it.",
            next_action="complete",
        )
        missing = await call_error(c, "orchestrator_update_task", task_id="task_0000000000000000", title="x")
        assert missing["code"] == "not_found"


async def test_metrics_scrape_passes_promtool_and_counts_the_calls_claims_and_transitions(
    server: RunningServer, era: str
) -> None:
    await claim_renew_conflict_complete(server, era)
    body, samples = await scrape(server)
    promtool_check_metrics(body)

    update = "orchestrator_update_task"
    assert by_labels(samples, "orchestrator_tool_calls_total", tool=update) == {
        frozenset({("tool", update), ("outcome", "ok"), ("code", "ok")}): 2.0,
        frozenset({("tool", update), ("outcome", "error"), ("code", "claimed_by_other")}): 1.0,
        frozenset({("tool", update), ("outcome", "error"), ("code", "not_found")}): 1.0,
    }
    assert value(samples, "orchestrator_tool_calls_total", tool="orchestrator_plan_task", outcome="ok", code="ok") == 1
    assert value(samples, "orchestrator_tool_call_duration_seconds_count", tool=update) == 4
    done = "orchestrator_complete_task"
    assert value(samples, "orchestrator_tool_calls_total", tool=done, outcome="ok", code="ok") == 1
    assert value(samples, "orchestrator_tool_calls_in_flight") == 0
    assert {dict(k)["outcome"]: v for k, v in by_labels(samples, "orchestrator_claims_total").items()} == {
        "acquired": 1.0,
        "renewed": 1.0,
        "released": 1.0,
        "conflict": 1.0,
        "expired": 0.0,
    }
    assert {
        (dict(k)["from_status"], dict(k)["to_status"]): v
        for k, v in by_labels(samples, "orchestrator_task_transitions_total").items()
    } == {("pending", "in_progress"): 1.0, ("in_progress", "completed"): 1.0}
    assert {dict(k)["status"]: v for k, v in by_labels(samples, "orchestrator_tasks").items()} == {
        "pending": 0.0,
        "in_progress": 0.0,
        "blocked": 0.0,
        "completed": 1.0,
        "failed": 0.0,
        "cancelled": 0.0,
        "archived": 0.0,
    }
    assert {dict(k)["kind"]: v for k, v in by_labels(samples, "orchestrator_db_errors_total").items()} == {
        "connection": 0.0,
        "conflict": 0.0,
        "integrity": 0.0,
        "other": 0.0,
    }
    pool = {dict(k)["state"]: v for k, v in by_labels(samples, "orchestrator_db_pool_connections").items()}
    capacity = 2 * server.runtime.settings.db_pool_size
    assert pool["capacity"] == capacity and pool["checked_out"] == 0 and pool["overflow"] == 0
    assert 1 <= pool["idle"] <= capacity
    assert value(samples, "orchestrator_ready") == 1
    assert value(samples, "orchestrator_build_info", version=server_version()) == 1
    mcp_requests = sum(by_labels(samples, "orchestrator_http_requests_total", route="/mcp").values())
    assert mcp_requests >= 8  # the eight tool calls, plus the client's discovery and listing
    assert value(samples, "orchestrator_http_requests_total", route="/mcp", status="200") is not None
    assert value(samples, "orchestrator_http_request_duration_seconds_count", route="/mcp") == mcp_requests


async def test_scrapes_count_themselves_and_unknown_paths_share_one_route_label(server: RunningServer) -> None:
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{server.base_url}/healthz")).status_code == 200
        assert (await http.get(f"{server.base_url}/task_0123456789abcdef/x")).status_code == 404
        assert (await http.get(f"{server.base_url}/another/unknown")).status_code == 404
    await scrape(server)
    _, samples = await scrape(server)
    assert value(samples, "orchestrator_http_requests_total", route="/metrics", status="200") == 1
    assert value(samples, "orchestrator_http_requests_total", route="/healthz", status="200") == 1
    assert value(samples, "orchestrator_http_requests_total", route="other", status="404") == 2
    routes = {dict(k)["route"] for k in by_labels(samples, "orchestrator_http_requests_total")}
    assert routes == {"/metrics", "/healthz", "other"}
