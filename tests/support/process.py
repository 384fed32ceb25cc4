"""The real ``task-orchestrator serve`` in a child process, and the external binaries some tests drive.

A child process is the only way to see what an operator sees: its whole stdout/stderr (the log), its
process-wide tracer provider, its shutdown on SIGTERM. The port is 0; the child's own uvicorn log line
says which port it got, so there is no race for a free port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from anyio.abc import ByteReceiveStream, Process

STARTED = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30


def require_binary(name: str) -> str:
    """The path of an external tool on PATH; a missing tool skips the test, or fails it with CI set."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def child_env(**settings: str) -> dict[str, str]:
    """This environment without any ORCHESTRATOR_* / OTEL_* variable, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "OTEL_"))}
    env.update(settings)
    return env


@dataclass
class AppProcess:
    process: Process
    output: dict[str, bytearray] = field(default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()})
    started: anyio.Event = field(default_factory=anyio.Event)
    port: int | None = None
    exit_code: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def text(self) -> str:
        """Everything the process wrote, stdout then stderr."""
        return (bytes(self.output["stdout"]) + bytes(self.output["stderr"])).decode("utf-8", "replace")

    async def pump(self, stream: ByteReceiveStream, name: str) -> None:
        async for chunk in stream:
            self.output[name] += chunk
            found = STARTED.search(self.output[name])
            if found and self.port is None:
                self.port = int(found.group(1))
                self.started.set()
        if name == "stdout":
            self.started.set()  # EOF before the start line: the child died; the caller sees port None

    async def stop(self) -> int:
        """SIGTERM (the orderly shutdown path: lifespan teardown, span flush), then wait for the exit."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(STOP_TIMEOUT_SECONDS):
            self.exit_code = await self.process.wait()
        return self.exit_code


@asynccontextmanager
async def app_process(env: Mapping[str, str], cwd: Path) -> AsyncIterator[AppProcess]:
    """Run ``task-orchestrator serve --port 0`` until the block ends; the output stays readable after."""
    command = [str(Path(sys.executable).with_name("task-orchestrator")), "serve", "--port", "0"]
    process = await anyio.open_process(command, env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    running = AppProcess(process)
    async with anyio.create_task_group() as group:
        assert process.stdout is not None and process.stderr is not None
        group.start_soon(running.pump, process.stdout, "stdout")
        group.start_soon(running.pump, process.stderr, "stderr")
        try:
            with anyio.fail_after(START_TIMEOUT_SECONDS):
                await running.started.wait()
            if running.port is None:
                raise RuntimeError(f"task-orchestrator did not start:\n{running.text()}")
            yield running
        finally:
            if process.returncode is None:
                await running.stop()
