"""The serving process's heap: frozen once ready, refrozen after a warm restart, never in a host program."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.main import create_app
from app.runtime import heap
from app.settings import Settings

pytestmark = pytest.mark.anyio


class Node:
    """An object in a reference cycle: only the collector frees it, never its reference count."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """The test process's collector as it was: nothing frozen before or after each test, its thresholds kept."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_what_lives_and_resettle_collects_what_died_since() -> None:
    node = Node()
    ref = weakref.ref(node)

    frozen = heap.settle()
    del node
    gc.collect()

    assert frozen == gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    assert ref() is not None  # frozen: the full pass skipped it although it is garbage now
    heap.resettle()
    assert ref() is None
    assert gc.get_freeze_count() > 0  # and what still lives is frozen again


def test_settle_does_not_freeze_what_is_already_garbage() -> None:
    node = Node()
    ref = weakref.ref(node)
    del node

    heap.settle()

    assert ref() is None


def test_resettle_leaves_a_process_that_never_settled_alone() -> None:
    before = gc.get_threshold()

    heap.resettle()

    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'heap.db'}")


async def test_the_lifespan_settles_only_when_the_serving_entry_point_asked(tmp_path: Path) -> None:
    plain = create_app(sqlite_settings(tmp_path / "plain"))
    before = gc.get_threshold()
    async with plain.router.lifespan_context(plain):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before

    serving = create_app(sqlite_settings(tmp_path / "serving"))
    heap.request(serving)
    async with serving.router.lifespan_context(serving):
        assert gc.get_freeze_count() > 1000


async def test_a_warm_restart_settles_again_so_what_died_since_start_up_is_collected(tmp_path: Path) -> None:
    app = create_app(sqlite_settings(tmp_path))
    heap.request(app)
    node = Node()  # alive at start-up, like the engine and monitors a restart replaces
    ref = weakref.ref(node)
    async with app.router.lifespan_context(app):
        server: Any = app.state.server
        del node
        gc.collect()
        assert ref() is not None  # frozen at ready

        result = await server.call_tool("orchestrator_restart_server", {"reason": "manual_request"})

        assert not result.is_error, result.structured_content
        assert result.structured_content["outcome"] == "succeeded"
        assert ref() is None
        assert gc.get_freeze_count() > 1000
