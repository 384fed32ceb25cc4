"""Fair share per actor (DESIGN §7): one actor over its call rate or its calls in flight is refused with
``rate_limited`` while another actor is served; refusals are counted in the tool-call metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from app.settings import Settings
from tests.support.locks import hold_write_lock
from tests.support.mcp import call_error, call_ok
from tests.support.server import RunningServer, client, serve

pytestmark = pytest.mark.anyio
BOUND = 20  # seconds; every wait ends on its condition well before this


def fair_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, data_dir=data_dir, log_format="console", **overrides)


def sample(server: RunningServer, name: str, labels: dict[str, str] | None = None) -> float:
    value = server.runtime.holder.metrics.registry.get_sample_value(name, labels or {})
    return float(value or 0.0)


async def plan(c: Client, agent: str, title: str) -> Any:
    return await c.call_tool(
        "orchestrator_plan_task", {"title": title, "description": "A fair-share test task.", "agent": agent}
    )


async def test_an_actor_over_its_rate_is_refused_while_another_actor_is_served(
    database_url: str, tmp_path: Path, era: str
) -> None:
    # A bucket of 3 that refills one call a minute: the fourth call of a burst is over the rate.
    settings = fair_settings(database_url, tmp_path, rate_limit_per_minute=1, rate_limit_burst=3)
    async with serve(settings) as server, client(server, era) as c:
        for agent in ("flood", "calm"):
            await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent=agent)
        for n in range(2):
            await call_ok(c, "orchestrator_plan_task", title=f"flood {n}", description="D.", agent="flood")
        refused = await call_error(c, "orchestrator_plan_task", title="one too many", description="D.", agent="flood")
        served = await call_ok(c, "orchestrator_plan_task", title="calm", description="D.", agent="calm")
        page = await call_ok(c, "orchestrator_query_tasks", agent="calm", sort="created_at", order="asc")

        assert (refused["code"], refused["retryable"]) == ("rate_limited", True)
        assert 50 < refused["retry_after_seconds"] <= 60  # a minute per call, less what already refilled
        assert "ORCHESTRATOR_RATE_LIMIT_PER_MINUTE" in refused["message"]
        assert served["task"]["created_by"] == "calm"
        assert [t["title"] for t in page["tasks"]] == ["flood 0", "flood 1", "calm"]  # the refused one wrote nothing
        labels = {"tool": "orchestrator_plan_task", "outcome": "error", "code": "rate_limited"}
        assert sample(server, "orchestrator_tool_calls_total", labels) == 1


async def test_an_actor_at_its_cap_in_flight_is_refused_while_another_actor_is_served(
    database_url: str, tmp_path: Path, era: str
) -> None:
    settings = fair_settings(database_url, tmp_path, max_in_flight_per_actor=2)
    async with serve(settings) as server, client(server, era) as c:
        for agent in ("flood", "calm"):
            await call_ok(c, "orchestrator_initialize_session", working_directory="/repo", agent=agent)
        results: list[Any] = []

        async def blocked_plan(title: str) -> None:
            results.append(await plan(c, "flood", title))

        async with hold_write_lock(database_url) as lock, anyio.create_task_group() as group:
            # The write lock holds both of flood's writes inside the server, in flight together.
            group.start_soon(blocked_plan, "first")
            group.start_soon(blocked_plan, "second")
            with anyio.fail_after(BOUND):
                while sample(server, "orchestrator_tool_calls_in_flight") < 2:  # noqa: ASYNC110  # polls a gauge
                    await anyio.sleep(0.01)
            refused = await call_error(c, "orchestrator_query_tasks", agent="flood")
            served = await call_ok(c, "orchestrator_query_tasks", agent="calm")  # reads pass the write lock
            await lock.release()

        assert (refused["code"], refused["retryable"], refused["retry_after_seconds"]) == ("rate_limited", True, 1.0)
        assert "ORCHESTRATOR_MAX_IN_FLIGHT_PER_ACTOR=2" in refused["message"]
        assert served["tasks"] == []  # read while flood's writes were still waiting
        assert sorted(r.structured_content["task"]["title"] for r in results) == ["first", "second"]
        after = await call_ok(c, "orchestrator_query_tasks", agent="flood")  # room again once they finished
        assert len(after["tasks"]) == 2
