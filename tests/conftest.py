"""Shared fixtures: both backends for every storage test, real servers on both protocol eras for MCP tests.

Template databases are made with their own short-lived event loop in a worker thread, so fixtures that
only pick a backend stay synchronous (anyio cannot nest an async fixture requested dynamically).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from app.settings import Settings
from tests.support.auth import Issuer, JwksServer, serve_jwks
from tests.support.databases import PostgresTemplate, SqliteTemplate, postgres_admin_url
from tests.support.harness import Harness, make_harness
from tests.support.server import ERAS, RunningServer, serve

BACKENDS = ("sqlite", "postgresql")
T = TypeVar("T")


def run_in_thread(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async function to completion on a private event loop in another thread."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = anyio.run(fn)
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    template = SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))
    run_in_thread(template.create)
    return template


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate]:
    template = PostgresTemplate(postgres_admin_url())
    run_in_thread(template.create)
    yield template
    run_in_thread(template.destroy)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database at the Alembic head on the requested backend."""
    if backend == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        yield template.copy(tmp_path)
        return
    pg: PostgresTemplate = request.getfixturevalue("postgres_template")
    url = run_in_thread(pg.copy)
    try:
        yield url
    finally:
        run_in_thread(lambda: pg.release(url))


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    h = make_harness(database_url)
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path


@pytest.fixture
def issuer() -> Issuer:
    """A JWT issuer with a fresh RSA key."""
    return Issuer()


@pytest.fixture
async def jwks(issuer: Issuer) -> AsyncIterator[JwksServer]:
    """The issuer's key set served on 127.0.0.1."""
    async with serve_jwks(issuer) as served:
        yield served


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    """The MCP protocol era a test's client speaks (2026-07-28, or legacy 2025-11-25 with a session)."""
    return str(request.param)


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The app on a real uvicorn at 127.0.0.1:0 over a fresh database (both backends)."""
    settings = Settings(database_url=database_url, data_dir=tmp_path, log_format="console")
    async with serve(settings) as running:
        yield running
