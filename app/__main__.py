"""The ``task-orchestrator`` command (also ``python -m app``): serve, migrate, and the operator tools.

Settings are validated before anything starts; a bad value, an unusable tokens file or an unsafe
exposure (a non-loopback bind without auth) exits with status 2 and a message naming what to set.
``serve`` on a database it cannot use (PostgreSQL not migrated, a SQLite directory it cannot write)
exits with status 3, uvicorn's own status for a failed start-up, and one line saying what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from app.auth.token_commands import add_token_commands, run_token_command
from app.settings import Settings, SettingsError, load_settings, redact_url

STARTUP_REFUSED = 3  # as uvicorn exits when the application's start-up fails


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="task-orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (MCP on /mcp)")
    serve.add_argument("--host", help="override ORCHESTRATOR_HOST")
    serve.add_argument("--port", type=int, help="override ORCHESTRATOR_PORT")
    commands.add_parser("migrate", help="upgrade the database schema to this build's head")
    add_token_commands(commands)
    export = commands.add_parser("export", help="write the whole task graph to a JSON Lines file")
    export.add_argument("--out", required=True, type=Path, help="the file to write (replaced atomically)")
    export.add_argument("--database-url", help="override ORCHESTRATOR_DATABASE_URL")
    load = commands.add_parser("import", help="load an export into this database, in one transaction")
    load.add_argument("file", type=Path, help="a file written by `task-orchestrator export`")
    load.add_argument("--database-url", help="override ORCHESTRATOR_DATABASE_URL")
    args = parser.parse_args(argv)
    if args.command == "token":  # needs no settings: it only prints
        return run_token_command(args)
    try:
        overrides = {
            k: v
            for k, v in {
                "host": getattr(args, "host", None),
                "port": getattr(args, "port", None),
                "database_url": getattr(args, "database_url", None),
            }.items()
            if v is not None
        }
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"task-orchestrator: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve_forever(settings)
    if args.command == "export":
        missing = missing_sqlite_file(settings)
        if missing is not None:
            # Opening it would create an empty database and export nothing: most likely a wrong path.
            print(f"task-orchestrator: export failed: no SQLite database at {missing}", file=sys.stderr)
            return 1
        return asyncio.run(export_data(settings, args.out))
    if args.command == "import":
        return asyncio.run(import_data(settings, args.file))
    return asyncio.run(migrate(settings))


def serve_forever(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; the first one drains (see ``app.runtime.serving``), then exit 0."""
    from app.main import create_app
    from app.observability.logging import configure_logging
    from app.runtime import heap, serving

    # Before anything logs: uvicorn's first lines and the MCP SDK's own logging set-up (basicConfig, a
    # no-op once the root logger has our handler) must not bypass the JSON formatter.
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except SettingsError as exc:
        print(f"task-orchestrator: cannot start: {exc}", file=sys.stderr)
        return 2
    refusal = storage_refusal(settings)
    if refusal is not None:
        print(f"task-orchestrator: cannot start: {refusal}", file=sys.stderr)
        return STARTUP_REFUSED
    runtime = app.state.runtime
    heap.request(app)  # this process serves until it stops: settle its heap once it is ready
    url = f"{settings.resolved_public_url}/mcp"
    headers = ', "headers": {"Authorization": "Bearer <token>"}' if settings.auth_configured else ""
    print(
        f"task-orchestrator: serving MCP at {url} (database: "
        f"{redact_url(settings.resolved_database_url())})\n"
        f'  add to an MCP client: {{"mcpServers": {{"orchestrator": {{"type": "http", "url": "{url}"{headers}}}}}}}',
        file=sys.stderr,
        flush=True,
    )
    serving.serve(
        app,
        host=settings.host,
        port=settings.port,
        reboot=runtime.holder.reboot,
        drain_timeout=settings.drain_timeout_seconds,
        before_shutdown=app.state.before_shutdown,
    )
    return 0


def storage_refusal(settings: Settings) -> str | None:
    """Why ``serve`` cannot use its database, found before it prints where it serves; None when it can.

    SQLite: the database's directory must be writable (a read-only root filesystem without a volume at
    the data directory is the usual cause). PostgreSQL: the schema must be at head unless auto-migration
    is on; a database that cannot be reached yet is not refused, the service starts unready and recovers.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import schema
    from app.db.engine import create_database

    url = settings.resolved_database_url()
    sqlite_file = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if sqlite_file is not None:
        return unwritable_directory(Path(sqlite_file).parent) if sqlite_file != ":memory:" else None

    async def read() -> str | None:
        database = create_database(url, pool_size=1, connect_timeout=settings.db_connect_timeout_seconds)
        try:
            return await schema.serve_refusal(database, auto_migrate=settings.auto_migrate)
        finally:
            await database.dispose()

    # Alembic logs its dialect at INFO when it reads the revision; a refusal must be the only line.
    alembic_log = logging.getLogger("alembic.runtime.migration")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        return asyncio.run(read())
    except (OSError, SQLAlchemyError):
        return None
    finally:
        alembic_log.setLevel(level)


def unwritable_directory(directory: Path) -> str | None:
    """Why SQLite cannot create its files in ``directory`` (or its nearest existing parent); None if it can."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing):
            return None
    except OSError as exc:
        return (
            f"the SQLite database directory {directory} is not writable ({exc.strerror}): mount a writable "
            f"volume at {directory} (docker run -v orchestrator-data:{directory} ...), or set "
            "ORCHESTRATOR_DATA_DIR or ORCHESTRATOR_DATABASE_URL"
        )


async def migrate(settings: Settings) -> int:
    """``task-orchestrator migrate``: the schema to head; a database it cannot reach is one line and status 1
    (the migration Job retries), never a traceback; so is a database at a revision this build does not know."""
    from alembic.util import CommandError as AlembicCommandError
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from app.db import schema
    from app.db.engine import create_database

    url = settings.resolved_database_url()
    database = create_database(url, connect_timeout=settings.db_connect_timeout_seconds)
    try:
        before = await schema.current_state(database)
        if before.current is not None and before.current not in schema.known_revisions():
            # Alembic would die with a traceback ("Can't locate revision"); say what happened instead.
            print(
                f"task-orchestrator: migrate failed: {schema.ahead_of_head_message(before.current, before.head)}",
                file=sys.stderr,
            )
            return 1
        await schema.upgrade(database)
        after = await schema.current_state(database)
    except AlembicCommandError as exc:  # any other refusal of Alembic's: its message, no traceback
        print(f"task-orchestrator: migrate failed: {exc}", file=sys.stderr)
        return 1
    except (OSError, SQLAlchemyError) as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        print(
            f"task-orchestrator: migrate failed: the database at {redact_url(url)} could not be used "
            f"({type(cause).__name__}: {cause}); check ORCHESTRATOR_DATABASE_URL and that it is up, then retry",
            file=sys.stderr,
        )
        return 1
    finally:
        await database.dispose()
    print(f"task-orchestrator: schema {before.current or 'empty'} -> {after.current}", file=sys.stderr)
    return 0


def missing_sqlite_file(settings: Settings) -> str | None:
    """The path of the configured SQLite database when that file does not exist (else None)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite" or (url.database and Path(url.database).is_file()):
        return None
    return url.database or ":memory:"


async def export_data(settings: Settings, out: Path) -> int:
    """``task-orchestrator export``: the whole graph as JSON Lines, written to a temporary file and then
    renamed, so ``out`` is either the complete export or untouched."""
    from app import errors
    from app.db.engine import create_database
    from app.db.schema import SchemaNotAtHead, ensure_at_head
    from app.db.uow import UnitOfWork
    from app.domain.clock import SystemClock
    from app.services.transfer.data_transfer import DataExportService

    database = create_database(settings.resolved_database_url())
    partial = out.with_name(out.name + ".partial")
    try:
        await ensure_at_head(database, auto_migrate=settings.auto_migrate)
        with partial.open("w", encoding="utf-8", newline="\n") as stream:
            summary = await DataExportService(UnitOfWork(database), SystemClock()).export_dump(stream.write)
        os.replace(partial, out)
    except (errors.OrchestratorError, SchemaNotAtHead, OSError) as exc:
        partial.unlink(missing_ok=True)
        print(f"task-orchestrator: export failed: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    finally:
        await database.dispose()
    counts = ", ".join(f"{n} {kind}" for kind, n in summary.counts.items())
    print(f"task-orchestrator: exported {counts} to {out} (schema {summary.schema_revision})", file=sys.stderr)
    return 0


async def import_data(settings: Settings, source: Path) -> int:
    """``task-orchestrator import``: validate every line of ``source``, then load it in one transaction."""
    from app import errors
    from app.db.engine import create_database
    from app.db.schema import SchemaNotAtHead, ensure_at_head
    from app.db.uow import UnitOfWork
    from app.domain.clock import SystemClock
    from app.runtime.work_signals import ChannelAnnouncer
    from app.services.transfer.data_transfer import DataImportService
    from app.services.transfer.dump_format import parse_dump

    try:
        with source.open("rb") as stream:
            dump = parse_dump(stream)
    except OSError as exc:
        print(f"task-orchestrator: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return 1
    except errors.OrchestratorError as exc:
        print(f"task-orchestrator: import refused: {source}: {exc.message}", file=sys.stderr)
        return 1
    url = settings.resolved_database_url()
    database = create_database(url)
    try:
        await ensure_at_head(database, auto_migrate=settings.auto_migrate)
        summary = await DataImportService(UnitOfWork(database), SystemClock(), sink=ChannelAnnouncer(url)).import_dump(
            dump
        )
    except (errors.OrchestratorError, SchemaNotAtHead) as exc:
        print(f"task-orchestrator: import refused: {source}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    finally:
        await database.dispose()
    counts = ", ".join(f"{n} {kind}" for kind, n in summary.counts.items())
    kept = f"; existing agents kept: {', '.join(summary.agents_kept)}" if summary.agents_kept else ""
    print(
        f"task-orchestrator: imported {counts} from {source} (event ids shifted by {summary.event_id_offset}){kept}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
