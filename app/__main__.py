"""The ``task-orchestrator`` command (also ``python -m app``): serve, migrate, and the operator tools.

Settings are validated before anything starts; a bad value, an unusable tokens file or an unsafe
exposure (a non-loopback bind without auth) exits with status 2 and a message naming what to set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from app.auth.token_commands import add_token_commands, run_token_command
from app.settings import Settings, SettingsError, load_settings, redact_url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="task-orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (MCP on /mcp)")
    serve.add_argument("--host", help="override ORCHESTRATOR_HOST")
    serve.add_argument("--port", type=int, help="override ORCHESTRATOR_PORT")
    commands.add_parser("migrate", help="upgrade the database schema to this build's head")
    add_token_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "token":  # needs no settings: it only prints
        return run_token_command(args)
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
    import uvicorn

    from app.main import create_app
    from app.observability.logging import configure_logging

    # Before anything logs: uvicorn's first lines and the MCP SDK's own logging set-up (basicConfig, a
    # no-op once the root logger has our handler) must not bypass the JSON formatter.
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except SettingsError as exc:
        print(f"task-orchestrator: cannot start: {exc}", file=sys.stderr)
        return 2
    url = f"{settings.resolved_public_url}/mcp"
    headers = ', "headers": {"Authorization": "Bearer <token>"}' if settings.auth_configured else ""
    print(
        f"task-orchestrator: serving MCP at {url} (database: "
        f"{redact_url(settings.resolved_database_url())})\n"
        f'  add to an MCP client: {{"mcpServers": {{"orchestrator": {{"type": "http", "url": "{url}"{headers}}}}}}}',
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, lifespan="on")
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
