"""The claim's pick reads each pending task of the session by key, whatever PostgreSQL's statistics say.

A session created after the last ``ANALYZE`` is estimated at one row. The pick used to turn its readiness
checks into joins planned from that estimate: nested loops that read the whole session once per pending
task (a fresh session of 5,000 tasks: 15 s per claim, past the database time limit). The plan's row
counts show it without timing anything: the rows the plan touched grow with the square of the session's
pending tasks before, and linearly now. PostgreSQL only: SQLite has no planner statistics to go stale and
runs the checks per row anyway.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Table, select, text

from app.db.models import Task
from app.db.repositories.tasks import _next_ready_statement
from app.domain.ids import new_task_id
from tests.support.harness import Harness

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["postgresql"])]

_TASKS: Table = Task.__table__  # type: ignore[assignment]
PENDING = 300
# The plan must stay linear under the planner's default costs and with bitmap scans off (where the join the
# pick used to be planned as chose to read the session once per pending task, as it did on default costs
# in a database of 40,000 tasks whose dependency table had never been analysed).
PLANNER_SETTINGS = ("", "enable_bitmapscan = off")
SEEN = 5_000  # rows the statistics know: enough that reading a table per pending task is never the cheap plan


def _rows_touched(node: dict[str, Any]) -> int:
    """Rows every node of the plan produced or read and dropped, over all its loops."""
    read = sum(
        int(node.get(key, 0)) for key in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter")
    )
    return read * int(node.get("Actual Loops", 0)) + sum(_rows_touched(child) for child in node.get("Plans", []))


async def _copies(harness: Harness, session_id: str, count: int) -> list[str]:
    """``count`` pending tasks in ``session_id``, written in one statement (copies of one planned task)."""
    model = (await harness.plan(session_id=session_id, title="model")).task
    async with harness.database.engine.begin() as conn:
        row = dict((await conn.execute(select(_TASKS).where(_TASKS.c.id == model.id))).mappings().one())
        ids = [new_task_id() for _ in range(count)]
        await conn.execute(
            _TASKS.insert(), [{**row, "id": task_id, "title": f"copy {n}"} for n, task_id in enumerate(ids)]
        )
    return [model.id, *ids]


async def test_a_claim_in_a_session_the_statistics_have_not_seen_reads_it_linearly(harness: Harness) -> None:
    # What the statistics know: one large session, and no dependency anywhere (a fleet that does not use
    # them: autovacuum never analyses the empty table, so PostgreSQL guesses its size).
    seen = await harness.session("alice", "/work/seen")
    await _copies(harness, seen, SEEN)
    async with harness.database.engine.begin() as conn:
        await conn.execute(text("ANALYZE task"))
    fresh = await harness.session("bob", "/work/fresh")
    await _copies(harness, fresh, PENDING - 1)

    statement = _next_ready_statement(False, False)
    for setting in PLANNER_SETTINGS:
        async with harness.database.engine.connect() as conn:
            if setting:
                await conn.exec_driver_sql(f"SET LOCAL {setting}")
            compiled = statement.compile(dialect=conn.dialect)
            values = compiled.construct_params({"session_id": fresh})
            estimate_sql = "EXPLAIN (FORMAT JSON) SELECT 1 FROM task WHERE session_id = $1"
            estimate = (await conn.exec_driver_sql(estimate_sql, (fresh,))).scalar_one()
            result = await conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", tuple(values[name] for name in compiled.positiontup or ())
            )
            plan = result.scalar_one()
            await conn.rollback()  # the pick's row lock
        plan = json.loads(plan) if isinstance(plan, str) else plan
        estimate = json.loads(estimate) if isinstance(estimate, str) else estimate

        # The premise: PostgreSQL believes the fresh session is (nearly) empty.
        assert estimate[0]["Plan"]["Plan Rows"] < PENDING / 10, estimate
        touched = _rows_touched(plan[0]["Plan"])
        # Each pending task read once, its (absent) dependencies and subtasks probed by key: a few rows per
        # task. Reading the session once per pending task would be PENDING² = 90,000 rows.
        assert touched < 10 * PENDING, (setting, json.dumps(plan, indent=1))
