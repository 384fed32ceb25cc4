"""The old system's worst failure: concurrent writers silently losing each other's changes."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from app import errors
from app.services.graph.updates import TaskChanges
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio

WRITERS = 5
TASKS = 10
ROUNDS = 10


async def test_concurrent_context_patches_on_distinct_keys_all_land(harness: Harness) -> None:
    await harness.session()
    task_ids = [(await harness.plan(title=f"task {i}")).task.id for i in range(TASKS)]

    async def writer(index: int) -> None:
        for round_no in range(ROUNDS):
            for task_id in task_ids:
                await harness.services.updates.update_task(
                    caller(f"writer-{index}"),
                    task_id,
                    TaskChanges(context={f"w{index}": round_no}),
                    expected_version=None,
                    reason=None,
                    force=False,
                    request_id=None,
                )

    async with anyio.create_task_group() as group:
        for index in range(WRITERS):
            group.start_soon(writer, index)

    result = await harness.query()
    assert result.total_count == TASKS
    for task in result.tasks:
        assert task.context == {f"w{i}": ROUNDS - 1 for i in range(WRITERS)}
        assert task.version == 1 + WRITERS * ROUNDS


async def test_two_updates_with_the_same_expected_version_yield_exactly_one_conflict(harness: Harness) -> None:
    await harness.session()
    task = (await harness.plan()).task
    outcomes: list[str] = []
    gate = anyio.Event()

    async def update(actor: str, title: str) -> None:
        await gate.wait()
        try:
            await harness.services.updates.update_task(
                caller(actor),
                task.id,
                TaskChanges(title=title),
                expected_version=task.version,
                reason=None,
                force=False,
                request_id=None,
            )
            outcomes.append("ok")
        except errors.VersionConflict as exc:
            assert exc.details == {"expected": 1, "actual": 2}
            outcomes.append(exc.code)

    async with anyio.create_task_group() as group:
        group.start_soon(update, "a", "first")
        group.start_soon(update, "b", "second")
        await anyio.lowlevel.checkpoint()
        gate.set()

    assert sorted(outcomes) == ["ok", "version_conflict"]
