"""query_tasks on named sessions: unknown ones are not_found, empty ones an empty page, views as planned."""

from __future__ import annotations

from typing import Any

import pytest

from app import errors
from app.services.graph.queries import QueryTasksResult
from tests.support import calls
from tests.support.harness import Harness

pytestmark = pytest.mark.anyio


async def _query(harness: Harness, session_id: str | None, **overrides: Any) -> QueryTasksResult:
    return await calls.query(harness, session_id=session_id, **{"limit": 50, **overrides})


async def test_query_of_an_unknown_session_returns_not_found(harness: Harness) -> None:
    with pytest.raises(errors.SessionNotFound) as caught:
        await _query(harness, "sess_0123456789abcdef")

    assert (caught.value.code, caught.value.field, caught.value.value) == (
        "not_found",
        "session_id",
        "sess_0123456789abcdef",
    )


async def test_query_of_a_session_with_no_matches_returns_an_empty_page(harness: Harness) -> None:
    session_id = await harness.session()
    await harness.plan(priority="low")

    result = await _query(harness, session_id, priorities=["critical"])

    assert result.model_dump() == {"tasks": [], "total_count": 0, "limit": 50, "offset": 0, "next_offset": None}


async def test_queried_views_equal_the_views_plan_task_returned(harness: Harness) -> None:
    session_id = await harness.session()
    first = (await harness.plan(title="first")).task
    harness.clock.advance(1)
    second = (await harness.plan(title="second", dependencies=[first.id])).task

    result = await _query(harness, session_id, view="full")

    assert second.blocked_by == [first.id] and first.ready
    assert [t.model_dump() for t in result.tasks] == [
        {**first.model_dump(), "children": None, "artifacts": None},
        {**second.model_dump(), "children": None, "artifacts": None},
    ]
