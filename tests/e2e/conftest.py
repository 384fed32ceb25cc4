"""End-to-end fixtures: the app on a real uvicorn, the real MCP client, both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.server import ERAS, RunningServer, serve


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings) as running:
        yield running
