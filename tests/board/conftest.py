"""The board's fixtures: a server with the board on, and Debian's Chromium driven by Playwright.

Chromium is ``/usr/bin/chromium`` from Debian's package (``scripts/test.sh`` installs it in CI); Playwright
never downloads a browser here. With ``CI`` set a missing browser fails the test, never skips it.
Screenshots of every browser test land in ``build/board-screenshots/``; with
``ORCHESTRATOR_UPDATE_README_SCREENSHOT=1`` the board test also refreshes ``docs/board.png``.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from app.main import create_app
from app.runtime.serving import DrainingServer
from app.settings import Settings
from tests.support.server import RunningServer

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "board-screenshots"
README_SCREENSHOT = ROOT / "docs" / "board.png"
WAIT_MS = 20_000  # bound on every wait for the page to change; they end when it does


def board_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "log_format": "console",
    }
    return Settings(**(values | overrides))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve_at(settings: Settings, port: int) -> AsyncIterator[RunningServer]:
    """Like ``tests.support.server.serve`` but on a given port, so a restarted server has the same address,
    and stopped the way ``task-orchestrator serve`` stops on SIGTERM (drain first, then shut down), so
    open board streams end as they do in production."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = DrainingServer(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=5),
        reboot=app.state.runtime.holder.reboot,
        drain_timeout=5,
        before_shutdown=app.state.before_shutdown,
    )
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
            server.handle_exit(signal.SIGTERM, None)
    sock.close()


@pytest.fixture
async def board_server(database_url: str, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serve_at(board_settings(database_url, tmp_path), free_port()) as running:
        yield running


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        await context.close()


async def screenshot(page: Page, name: str, backend: str) -> Path:
    """Save the page as ``build/board-screenshots/<name>-<backend>.png`` and return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{backend}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
