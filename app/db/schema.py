"""The schema check and upgrade: the database must be at the Alembic head before the service is ready.

Alembic runs synchronously on a connection borrowed from the async engine (``run_sync``), so the same
code path serves start-up, ``task-orchestrator migrate`` and the tests. On PostgreSQL every migrator
takes one transaction-scoped advisory lock first, so replicas starting together upgrade one at a time.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.db.engine import Database

log = logging.getLogger("app.db")
MIGRATION_LOCK_KEY = 7_412_003_551  # pg_advisory_xact_lock key reserved for schema upgrades
# Expression indexes autogenerate cannot compare (the PostgreSQL full-text index) are left out by name.
IGNORED_INDEXES = frozenset({"ix_task_search"})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's comparison filter, shared by env.py and :func:`differences`."""
    return not (type_ == "index" and name in IGNORED_INDEXES)


class SchemaNotAtHead(RuntimeError):
    """The database schema is behind (or ahead of) this build's migrations."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def alembic_config() -> Config:
    import migrations

    location = Path(migrations.__file__).parent
    config = Config(str(location / "alembic.ini"))
    config.set_main_option("script_location", str(location))
    return config


@functools.cache
def head_revision() -> str:
    """This build's head revision: read from the migration scripts once per process (they ship with the
    build and never change under it), not on every health check."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migration chain has no head")
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision of this build's migration chain (an export from a newer build names another); read
    once per process, like :func:`head_revision`."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def revision_of(sync: Connection) -> str | None:
    """The Alembic revision recorded in the database this connection reaches (None when unmigrated)."""
    return MigrationContext.configure(sync).get_current_revision()


async def current_state(database: Database) -> SchemaState:
    async with database.engine.connect() as conn:
        current = await conn.run_sync(revision_of)
    return SchemaState(current=current, head=head_revision())


async def upgrade(database: Database, revision: str = "head") -> None:
    await _run(database, lambda config: command.upgrade(config, revision))


async def downgrade(database: Database, revision: str) -> None:
    await _run(database, lambda config: command.downgrade(config, revision))


async def differences(database: Database) -> list[Any]:
    """What autogenerate would change: empty when the models match the migrations (``alembic check``)."""
    from app.db.models import Base

    def compare(sync: Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"include_object": include_object, "compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        return await conn.run_sync(compare)


async def _run(database: Database, action: Any) -> None:
    def run(sync: Connection) -> None:
        if database.backend == "postgresql":
            sync.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config = alembic_config()
        config.attributes["connection"] = sync
        action(config)

    async with database.write_engine.begin() as conn:
        await conn.run_sync(run)


async def ensure_at_head(database: Database, *, auto_migrate: bool, current: str | bool | None = False) -> None:
    """The schema check: the embedded SQLite default upgrades itself; PostgreSQL only with ``auto_migrate``.

    ``current`` is the revision when the caller has already read it (``False``: read it here).

    Raises:
        SchemaNotAtHead: PostgreSQL is not at head and auto-migration is off (run ``task-orchestrator migrate``).
    """
    revision = (await current_state(database)).current if current is False else current
    head = head_revision()
    if revision == head:
        return
    if isinstance(revision, str) and revision not in known_revisions():
        # Ahead of this build: there is nothing to upgrade to, and Alembic would only fail to find it.
        raise SchemaNotAtHead(ahead_of_head_message(revision, head))
    if database.backend == "sqlite" or auto_migrate:
        log.info("schema_upgrade", extra={"event": "schema_upgrade", "from": revision, "to": head})
        await upgrade(database)
        return
    raise SchemaNotAtHead(behind_head_message(revision if isinstance(revision, str) else None, head))


def behind_head_message(revision: str | None, head: str) -> str:
    """What to do when the database is not at this build's head (start-up and ``serve`` say the same)."""
    if revision is not None and revision not in known_revisions():
        return ahead_of_head_message(revision, head)
    return (
        f"database schema is at {revision or 'nothing'}, this build needs {head}: run "
        "`task-orchestrator migrate` (or set ORCHESTRATOR_AUTO_MIGRATE=true)"
    )


def ahead_of_head_message(revision: str, head: str) -> str:
    """A revision this build does not know: a newer build migrated the database; migrating cannot help."""
    return (
        f"database schema is at {revision}, which this build does not know (its newest is {head}): a newer "
        "build migrated this database; run that build (or newer) against it"
    )


def revision_problem(revision: str | None) -> str | None:
    """Why a database at ``revision`` cannot be served by this build (None at head): readiness and
    ``orchestrator_health_check`` give the same reason."""
    head = head_revision()
    return None if revision == head else behind_head_message(revision, head)


async def serve_refusal(database: Database, *, auto_migrate: bool) -> str | None:
    """Why ``serve`` must not start on this database, checked before it listens; None when it may.

    Only PostgreSQL below (or above) head with auto-migration off is refused: the embedded SQLite default
    upgrades itself, and ``auto_migrate`` upgrades at start-up. The revision is read once; a database that
    cannot be reached raises, and the caller lets the service start unready (it recovers by itself).
    """
    if database.backend == "sqlite" or auto_migrate:
        return None
    state = await current_state(database)
    return None if state.at_head else behind_head_message(state.current, state.head)
