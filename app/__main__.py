"""The ``task-orchestrator`` command (also ``python -m app``): serve, migrate, and the operator tools.

Settings are validated before anything starts; a bad value exits with status 2 and a message naming
the variable, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from app.settings import Settings, SettingsError, load_settings, redact_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="task-orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (MCP on /mcp)")
    serve.add_argument("--host", help="override ORCHESTRATOR_HOST")
    serve.add_argument("--port", type=int, help="override ORCHESTRATOR_PORT")
    commands.add_parser("migrate", help="upgrade the database schema to this build's head")
    args = parser.parse_args(argv)
    try:
        overrides = {
            k: v
            for k, v in {"host": getattr(args, "host", None), "port": getattr(args, "port", None)}.items()
            if v is not None
        }
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"task-orchestrator: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve_forever(settings)
    return asyncio.run(migrate(settings))


def serve_forever(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; the first one drains (see ``app.runtime.serving``), then exit 0."""
    from app.main import create_app
    from app.runtime import serving

    app = create_app(settings)
    runtime = app.state.runtime
    url = f"http://{settings.host}:{settings.port}/mcp"
    print(
        f"task-orchestrator: serving MCP at {url} (database: "
        f"{redact_url(settings.resolved_database_url())})\n"
        f'  add to an MCP client: {{"mcpServers": {{"orchestrator": {{"type": "http", "url": "{url}"}}}}}}',
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


async def migrate(settings: Settings) -> int:
    from app.db import schema
    from app.db.engine import create_database

    database = create_database(settings.resolved_database_url())
    try:
        before = await schema.current_state(database)
        await schema.upgrade(database)
        after = await schema.current_state(database)
    finally:
        await database.dispose()
    print(f"task-orchestrator: schema {before.current or 'empty'} -> {after.current}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
