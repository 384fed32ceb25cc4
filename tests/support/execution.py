"""Calling the execution services the way an agent does, with defaults a test can override by name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from sqlalchemy import event, func, select

from app.db.models import Artifact, TaskEvent
from app.db.repositories import Repositories
from app.db.repositories.tasks import TaskRepository
from app.services.views import TaskView, one_task_view
from app.services.work.briefs import ExecuteTaskResult, NextTaskResult
from app.services.work.claims import ExecutionService
from app.services.work.completion import CompleteTaskResult
from tests.support.harness import Harness, caller


async def execute(h: Harness, task_id: str, actor: str = "worker", **kw: Any) -> ExecuteTaskResult:
    args: dict[str, Any] = {"lease_seconds": None, "request_id": None, **kw}
    return await h.services.execution.execute_task(caller(actor, admin=False), task_id, **args)


async def next_task(h: Harness, session_id: str, actor: str = "worker", **kw: Any) -> NextTaskResult:
    args: dict[str, Any] = {"specialist_types": [], "lease_seconds": None, "request_id": None, **kw}
    return await h.services.execution.next_task(caller(actor, admin=False), session_id=session_id, **args)


async def complete(
    h: Harness, task_id: str, actor: str = "worker", *, admin: bool = False, **kw: Any
) -> CompleteTaskResult:
    args: dict[str, Any] = {
        "summary": f"Done by {actor}.",
        "detailed_work": f"# Work\nEverything {actor} did.",
        "next_action": "complete",
        "file_paths": [],
        "artifact_type": "general",
        "force": False,
        "request_id": None,
        **kw,
    }
    return await h.services.completion.complete_task(caller(actor, admin=admin), task_id, **args)


async def ready_parent(h: Harness) -> tuple[str, str, str]:
    """A pending parent ("Epic") whose one dependency ("Design") and one subtask ("Step") are completed:
    ready, with neighbours of both kinds. Its id, the dependency's, the subtask's."""
    design = (await h.plan(title="Design")).task
    epic = (await h.plan(title="Epic", dependencies=[design.id])).task
    step = (await h.plan(title="Step", parent=epic.id)).task
    for task_id in (design.id, step.id):
        await execute(h, task_id, "architect")
        await complete(h, task_id, "architect")
    return epic.id, design.id, step.id


@contextmanager
def recorded_statements(h: Harness) -> Iterator[list[str]]:
    """Every SQL statement the harness's engine runs inside the block, whitespace collapsed."""
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    engine = h.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def read(h: Harness, work: Callable[[Repositories], Awaitable[Any]]) -> Any:
    return await h.uow.run(work, write=False)


async def view(h: Harness, task_id: str) -> TaskView:
    """The task as the tools would show it now."""

    async def work(repos: Repositories) -> TaskView:
        row = await repos.tasks.get(task_id)
        assert row is not None
        return await one_task_view(repos, row)

    result: TaskView = await read(h, work)
    return result


async def lease_events(h: Harness, task_id: str) -> list[dict[str, Any]]:
    async def work(repos: Repositories) -> list[dict[str, Any]]:
        return [e.data for e in await repos.events.list_for_task(task_id) if e.kind == "lease_expired"]

    return list(await read(h, work))


async def event_kinds(h: Harness, task_id: str) -> list[str]:
    async def work(repos: Repositories) -> list[str]:
        return [e.kind for e in await repos.events.list_for_task(task_id)]

    return list(await read(h, work))


async def status_moves(h: Harness, task_id: str) -> list[tuple[str, str]]:
    async def work(repos: Repositories) -> list[tuple[str, str]]:
        events = await repos.events.list_for_task(task_id)
        return [(e.data["from"], e.data["to"]) for e in events if e.kind == "status_changed"]

    return list(await read(h, work))


async def count_events(h: Harness, kind: str) -> dict[str, int]:
    """``task_id -> number of events of this kind``."""

    async def work(repos: Repositories) -> dict[str, int]:
        rows = await repos.session.execute(
            select(TaskEvent.task_id, func.count()).where(TaskEvent.kind == kind).group_by(TaskEvent.task_id)
        )
        return {str(task_id): int(n) for task_id, n in rows}

    return dict(await read(h, work))


async def artifacts_of(h: Harness, task_id: str) -> list[Artifact]:
    async def work(repos: Repositories) -> list[Artifact]:
        return list(await repos.artifacts.list_by_task_ids([task_id]))

    return list(await read(h, work))


def claims(h: Harness, outcome: str) -> float:
    """``orchestrator_claims_total{outcome=…}`` as the harness's Metrics registry reports it."""
    return h.metrics.registry.get_sample_value("orchestrator_claims_total", {"outcome": outcome}) or 0.0


def gate_row_locks(monkeypatch: pytest.MonkeyPatch, task_id: str, parties: int, backend: str) -> list[int]:
    """Hold every claim of ``task_id`` until ``parties`` calls are waiting, then release them all.

    PostgreSQL: the gate sits in ``get_for_update``, so every caller is inside its transaction and about to
    race for the row lock at the same moment. SQLite admits one writer at a time (every write transaction
    starts with BEGIN IMMEDIATE), so callers cannot all be inside transactions together: the gate sits just
    before the service opens its transaction, and they then queue on the database write lock. The real
    method runs after the gate either way. Returns a list that counts the arrivals.
    """
    arrived: list[int] = []
    released = anyio.Event()

    async def wait_for_all() -> None:
        arrived.append(1)
        if len(arrived) >= parties:
            released.set()
        with anyio.fail_after(30):
            await released.wait()

    if backend == "postgresql":
        real_lock = TaskRepository.get_for_update

        async def gated_lock(self: TaskRepository, wanted: str) -> Any:
            if wanted == task_id and not released.is_set():
                await wait_for_all()
            return await real_lock(self, wanted)

        monkeypatch.setattr(TaskRepository, "get_for_update", gated_lock)
    else:
        real_execute = ExecutionService.execute_task

        async def gated_execute(self: ExecutionService, caller: Any, wanted: str, **kwargs: Any) -> Any:
            if wanted == task_id and not released.is_set():
                await wait_for_all()
            return await real_execute(self, caller, wanted, **kwargs)

        monkeypatch.setattr(ExecutionService, "execute_task", gated_execute)
    return arrived
