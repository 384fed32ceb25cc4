"""Migration fixtures: databases with no schema at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_in_thread
from tests.support.databases import create_empty_postgres, drop_postgres, postgres_admin_url


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database: no tables, no alembic_version."""
    admin = postgres_admin_url()
    url = run_in_thread(lambda: create_empty_postgres(admin))
    try:
        yield url
    finally:
        run_in_thread(lambda: drop_postgres(admin, url))


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("empty_postgres_url"))
