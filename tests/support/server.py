"""The app on a real uvicorn at 127.0.0.1:0, inside the test's event loop, and MCP clients for both eras."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp import Client
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings

ERAS = ("2026-07-28", "legacy")


@dataclass
class RunningServer:
    app: Starlette
    base_url: str

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


def sqlite_settings(template: Any, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for one app on a fresh copy of the migrated SQLite template (for edge behaviour that does not
    depend on the backend), with console logs and the given overrides."""
    return Settings(database_url=template.copy(tmp_path), data_dir=tmp_path, log_format="console", **overrides)


@asynccontextmanager
async def serve(settings: Settings, **app_kwargs: Any) -> AsyncIterator[RunningServer]:
    """Run ``create_app(settings)`` under uvicorn on a free loopback port until the block ends."""
    app = create_app(settings, **app_kwargs)
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP,
    # and accepted sockets inherit it; with proto 0 every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(30):
            while not server.started:
                if server.should_exit:
                    raise RuntimeError("the server failed to start; see the log")
                await anyio.sleep(0.01)
        try:
            yield RunningServer(app=app, base_url=f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
    sock.close()


def client(server: RunningServer, era: str, **kwargs: Any) -> Client:
    """The real MCP client on the given protocol era (``legacy`` = 2025-11-25 with a session)."""
    mode = "legacy" if era == "legacy" else "2026-07-28"
    return Client(server.mcp_url, mode=mode, **kwargs)
