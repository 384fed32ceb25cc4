"""The Alembic chain on both backends: empty → head, models == migrations, head → base → head, idempotent
upgrades, the start-up schema check, and the real ``task-orchestrator migrate`` command."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import inspect, text

from app.db import schema
from app.db.engine import Database, create_database
from app.db.models import Base
from app.db.schema import SchemaNotAtHead, ensure_at_head
from app.main import create_app
from app.settings import Settings, load_settings
from tests.support.databases import plain_url

pytestmark = pytest.mark.anyio
MODEL_TABLES = {table.name for table in Base.metadata.sorted_tables}


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    database = create_database(url)
    try:
        yield database
    finally:
        await database.dispose()


async def table_names(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def index_names(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return set(
            await conn.run_sync(
                lambda sync: {
                    ix["name"] for t in inspect(sync).get_table_names() for ix in inspect(sync).get_indexes(t)
                }
            )
        )


async def test_empty_database_upgrades_to_head_and_the_models_match_the_migrations(empty_database_url: str) -> None:
    async with opened(empty_database_url) as database:
        before = await schema.current_state(database)
        assert (before.current, before.at_head) == (None, False)
        assert await table_names(database) == set()
        await schema.upgrade(database)
        after = await schema.current_state(database)
        assert (after.current, after.at_head) == (schema.head_revision(), True)
        assert await table_names(database) == MODEL_TABLES | {"alembic_version"}
        if database.backend == "postgresql":
            assert "ix_task_search" in await index_names(database)  # the full-text index of search_text
        assert await schema.differences(database) == []  # `alembic check`: nothing to autogenerate


async def test_head_to_base_leaves_no_tables_and_back_to_head_matches_again(empty_database_url: str) -> None:
    async with opened(empty_database_url) as database:
        await schema.upgrade(database)
        await schema.downgrade(database, "base")
        assert await table_names(database) <= {"alembic_version"}
        assert (await schema.current_state(database)).current is None
        # The comparison is not blind: with the tables gone it reports every one of them missing.
        missing = {diff[1].name for diff in await schema.differences(database) if diff[0] == "add_table"}
        assert missing == MODEL_TABLES
        await schema.upgrade(database)
        assert (await schema.current_state(database)).at_head
        assert await table_names(database) == MODEL_TABLES | {"alembic_version"}
        assert await schema.differences(database) == []


async def test_upgrading_twice_is_a_no_op_that_keeps_the_data(empty_database_url: str) -> None:
    async with opened(empty_database_url) as database:
        await schema.upgrade(database)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        async with database.write_engine.begin() as conn:
            await conn.execute(
                Base.metadata.tables["orchestration_session"].insert().values(
                    id="sess_00000000000000aa", name="kept", status="active", created_by="t", created_at=now,
                    last_activity_at=now, version=1,
                )
            )  # fmt: skip
        tables, indexes = await table_names(database), await index_names(database)
        await schema.upgrade(database)
        assert (await schema.current_state(database)).current == schema.head_revision()
        assert (await table_names(database), await index_names(database)) == (tables, indexes)
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("SELECT name FROM orchestration_session"))).scalars().all() == ["kept"]


async def test_upgrading_from_0004_gives_each_stored_working_directory_its_one_spelling(
    empty_database_url: str,
) -> None:
    sessions = Base.metadata.tables["orchestration_session"]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    stored = {"a": "/work/app/", "b": "/work//app/.", "c": "/srv/x", "d": None, "e": "C:\\repo\\"}
    async with opened(empty_database_url) as database:
        await schema.upgrade(database, "0004")
        async with database.write_engine.begin() as conn:
            for key, directory in stored.items():
                await conn.execute(
                    sessions.insert().values(
                        id=f"sess_00000000000000a{key}", name=key, working_directory=directory, status="active",
                        created_by="t", created_at=now, last_activity_at=now, version=1,
                    )
                )  # fmt: skip
        await schema.upgrade(database)
        async with database.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT name, working_directory FROM orchestration_session"))).all()
    assert dict(rows) == {"a": "/work/app", "b": "/work/app", "c": "/srv/x", "d": None, "e": "C:\\repo"}


async def test_upgrading_from_0005_gives_each_dependency_its_tasks_session(empty_database_url: str) -> None:
    tables = Base.metadata.tables
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sessions = {"sess_00000000000000a1": ["task_00000000000000a1", "task_00000000000000a2"]}
    sessions["sess_00000000000000b1"] = ["task_00000000000000b1", "task_00000000000000b2", "task_00000000000000b3"]
    edges = [("task_00000000000000a2", "task_00000000000000a1"), ("task_00000000000000b3", "task_00000000000000b1")]
    edges.append(("task_00000000000000b3", "task_00000000000000b2"))
    async with opened(empty_database_url) as database:
        await schema.upgrade(database, "0005")
        async with database.write_engine.begin() as conn:
            for sid, task_ids in sessions.items():
                await conn.execute(
                    tables["orchestration_session"].insert().values(
                        id=sid, name=sid, status="active", created_by="t", created_at=now, last_activity_at=now,
                        version=1,
                    )
                )  # fmt: skip
                for tid in task_ids:
                    await conn.execute(
                        text(
                            "INSERT INTO task (id, session_id, title, description, task_type, status, complexity, "
                            "specialist_type, priority, context, attempt_count, version, created_by, created_at, "
                            "updated_at) VALUES (:id, :sid, 't', 'd', 'standard', 'pending', 'simple', 'coder', "
                            "'medium', '{}', 0, 1, 't', :now, :now)"
                        ),
                        {"id": tid, "sid": sid, "now": now},
                    )
            for task_id, depends_on_id in edges:  # revision 0005's table: no session_id column yet
                await conn.execute(
                    text("INSERT INTO task_dependency (task_id, depends_on_id, created_at) VALUES (:t, :d, :now)"),
                    {"t": task_id, "d": depends_on_id, "now": now},
                )
        await schema.upgrade(database)
        async with database.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT task_id, session_id FROM task_dependency"))).all()
        assert "ix_task_dependency_session" in await index_names(database)
        assert await schema.differences(database) == []
        await schema.downgrade(database, "0005")  # and back: the column and its index go, the edges stay
        async with database.engine.connect() as conn:
            kept = (await conn.execute(text("SELECT task_id, depends_on_id FROM task_dependency"))).all()
        assert "ix_task_dependency_session" not in await index_names(database)
    session_of = {task_id: sid for sid, task_ids in sessions.items() for task_id in task_ids}
    assert sorted(rows) == sorted((task_id, session_of[task_id]) for task_id, _ in edges)
    assert sorted(kept) == sorted(edges)


async def test_concurrent_postgresql_migrators_serialise_and_both_succeed(empty_postgres_url: str) -> None:
    async with opened(empty_postgres_url) as first, opened(empty_postgres_url) as second:
        async with anyio.create_task_group() as group:
            group.start_soon(schema.upgrade, first)
            group.start_soon(schema.upgrade, second)
        assert (await schema.current_state(first)).at_head
        assert await schema.differences(first) == []


async def test_sqlite_default_upgrades_itself_at_start_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, log_format="console")  # no database URL: the embedded default
    assert settings.database_url is None
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.runtime.database.backend == "sqlite"
    async with opened(f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}") as database:
        assert (await schema.current_state(database)).at_head


async def test_sqlite_schema_check_upgrades_an_empty_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'named.db'}"
    async with opened(url) as database:
        await ensure_at_head(database, auto_migrate=False)
        assert (await schema.current_state(database)).at_head


async def test_postgresql_refuses_to_start_below_head_unless_auto_migrate(
    empty_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_database_url = empty_postgres_url
    monkeypatch.delenv("ORCHESTRATOR_AUTO_MIGRATE", raising=False)
    settings = load_settings(database_url=plain_url(empty_database_url), log_format="console")
    async with opened(empty_database_url) as database:
        with pytest.raises(SchemaNotAtHead, match="task-orchestrator migrate"):
            await ensure_at_head(database, auto_migrate=settings.auto_migrate)
        app = create_app(settings)
        # The component stack's task group may wrap the start-up failure in an exception group.
        with pytest.RaisesGroup(SchemaNotAtHead, allow_unwrapped=True, flatten_subgroups=True):
            async with app.router.lifespan_context(app):
                pytest.fail("the app must not start on a database below head")
        assert await table_names(database) == set()  # nothing was migrated behind the operator's back

        monkeypatch.setenv("ORCHESTRATOR_AUTO_MIGRATE", "true")
        auto = load_settings(database_url=plain_url(empty_database_url), log_format="console")
        assert auto.auto_migrate is True
        app = create_app(auto)
        async with app.router.lifespan_context(app):
            pass
        assert (await schema.current_state(database)).at_head


async def test_migrate_command_brings_a_fresh_postgresql_database_to_head(empty_postgres_url: str) -> None:
    empty_database_url = empty_postgres_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_DATABASE_URL"] = plain_url(empty_database_url)  # the form an operator writes
    with anyio.fail_after(120):
        first = await anyio.run_process([sys.executable, "-m", "app", "migrate"], env=env, check=False)
        second = await anyio.run_process([sys.executable, "-m", "app", "migrate"], env=env, check=False)
    head = schema.head_revision()
    assert first.returncode == 0, first.stderr.decode()
    assert f"schema empty -> {head}" in first.stderr.decode()
    assert second.returncode == 0 and f"schema {head} -> {head}" in second.stderr.decode()
    async with opened(empty_database_url) as database:
        assert (await schema.current_state(database)).at_head
        assert await table_names(database) == MODEL_TABLES | {"alembic_version"}


async def test_migrate_on_a_database_it_cannot_reach_says_so_in_one_line_and_exits_1() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_DATABASE_URL"] = f"postgresql://orchestrator:s3cret-pw@127.0.0.1:{port}/orchestrator"
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "app", "migrate"], env=env, check=False)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("task-orchestrator: migrate failed: the database at "), lines
    assert f"127.0.0.1:{port}" in lines[0] and "s3cret-pw" not in lines[0]


async def test_a_database_ahead_of_this_build_is_refused_by_the_schema_check_and_by_migrate_in_one_line(
    database_url: str,
) -> None:
    # A newer build migrated the database (a rolled-back deployment): there is nothing to upgrade to. The
    # schema check and `migrate` said Alembic's "Can't locate revision identified by '9999'" in a traceback.
    head = schema.head_revision()
    expected = (
        f"database schema is at 9999, which this build does not know (its newest is {head}): a newer build "
        "migrated this database; run that build (or newer) against it"
    )
    async with opened(database_url) as database:
        async with database.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaNotAtHead) as refused:
            await ensure_at_head(database, auto_migrate=True)  # the SQLite default would try to upgrade too
        assert str(refused.value) == expected
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_DATABASE_URL"] = plain_url(database_url)
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "app", "migrate"], env=env, check=False)
    assert (done.returncode, done.stderr.decode()) == (1, f"task-orchestrator: migrate failed: {expected}\n")
    async with opened(database_url) as database:
        assert (await schema.current_state(database)).current == "9999"  # left as it was
