"""Helpers for the waiting and change-feed tests: replicas on one database, parked next_task calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from app.settings import Settings
from tests.support.mcp import call_ok
from tests.support.server import RunningServer, serve

BOUND = 30  # seconds; every wait below ends on its condition well before this
LONG_WAIT = 120  # a next_task wait that must not run out during a test
NO_RECHECK = 300.0  # the periodic re-check never fires within a test: wake-ups come from signals


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"wait_recheck_seconds": NO_RECHECK, **overrides}
    return Settings(database_url=database_url, data_dir=data_dir, log_format="console", **values)


@asynccontextmanager
async def replicas(
    database_url: str, backend: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """(A, B): two apps on one PostgreSQL database; on SQLite one app in both roles."""
    settings = settings_for(database_url, data_dir, **overrides)
    if backend == "sqlite":
        async with serve(settings) as one:
            yield one, one
        return
    async with serve(settings) as a, serve(settings) as b:
        yield a, b


async def until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, until ``condition()`` holds (it reads state other tasks change)."""
    with anyio.fail_after(BOUND):
        while not condition():  # noqa: ASYNC110  # the state changes in other tasks of this loop
            await anyio.sleep(0.01)


def waiters(server: RunningServer) -> int:
    return int(server.runtime.signals.waiters.count)


def wakeups(server: RunningServer, cause: str) -> float:
    value = server.runtime.holder.metrics.registry.get_sample_value(
        "orchestrator_waiter_wakeups_total", {"cause": cause}
    )
    return float(value or 0)


async def new_session(c: Client) -> str:
    return str((await call_ok(c, "orchestrator_initialize_session", working_directory="/repo"))["session"]["id"])


async def plan(c: Client, session_id: str, title: str, **more: Any) -> dict[str, Any]:
    planned = await call_ok(
        c,
        "orchestrator_plan_task",
        session_id=session_id,
        title=title,
        description=f"{title}.",
        agent="planner",
        **more,
    )
    return dict(planned["task"])


class Waiters:
    """next_task(wait_seconds) calls running in a task group, started one after another (arrival order)."""

    def __init__(self, c: Client, server: RunningServer, session_id: str, group: Any) -> None:
        self.c, self.server, self.session_id, self.group = c, server, session_id, group
        self.results: dict[str, dict[str, Any]] = {}

    async def start(self, agent: str, **arguments: Any) -> None:
        before = waiters(self.server)

        async def call() -> None:
            self.results[agent] = await call_ok(
                self.c,
                "orchestrator_next_task",
                session_id=self.session_id,
                agent=agent,
                wait_seconds=arguments.pop("wait_seconds", LONG_WAIT),
                **arguments,
            )

        self.group.start_soon(call)
        await until(lambda: waiters(self.server) == before + 1)  # it is parked: nothing was ready

    def claimed(self) -> dict[str, str]:
        return {agent: result["task"]["id"] for agent, result in self.results.items() if result["task"]}
