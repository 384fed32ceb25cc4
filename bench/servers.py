"""The processes a benchmark starts and watches: the service, the SDK floor, and their /proc readings.

Both servers run in processes of their own (``bench.serve_app``, ``bench.sdk_floor``), bound to
127.0.0.1:0, and announce their port through a file; ``wait_until_ready`` polls ``/readyz`` on either.
The /proc readings (CPU time, resident set, open descriptors) are what the benchmarks compare across
the two servers: they are taken from outside, so they measure the same thing on both and need nothing
from the app.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import httpx2

from bench.seeding import BenchSetupError

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    pid: int
    log_path: Path


async def wait_until_ready(process: anyio.abc.Process, port_file: Path) -> str:
    """The base URL once ``/readyz`` answers 200 (bounded; a server that exits is reported at once)."""
    with anyio.fail_after(STARTUP_TIMEOUT_SECONDS):
        while not await anyio.Path(port_file).exists():
            if process.returncode is not None:
                raise BenchSetupError(f"the server exited with {process.returncode} before binding")
            await anyio.sleep(0.05)
        base = f"http://127.0.0.1:{(await anyio.Path(port_file).read_text()).strip()}"
        async with httpx2.AsyncClient() as http:
            while True:
                if process.returncode is not None:
                    raise BenchSetupError(f"the server exited with {process.returncode} during start-up")
                try:
                    if (await http.get(f"{base}/readyz")).status_code == 200:
                        return base
                except httpx2.TransportError:
                    pass  # not listening yet
                await anyio.sleep(0.05)


@asynccontextmanager
async def module_process(
    module: str, workdir: Path, name: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningServer]:
    """``python -m module --port-file …`` in its own process; stdout to ``workdir/<name>.log``."""
    log_path = workdir / f"{name}.log"
    port_file = workdir / f"{name}.port"
    with log_path.open("wb") as log, (workdir / f"{name}.err").open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-m", module, "--port-file", str(port_file)],
            stdout=log,
            stderr=err,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
        )
        try:
            yield RunningServer(await wait_until_ready(process, port_file), process.pid, log_path)
        finally:
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(STOP_TIMEOUT_SECONDS) as scope:
                    await process.wait()
                if scope.cancelled_caught:
                    process.kill()
                    await process.wait()


# The per-actor fair share (DESIGN §7) out of reach, for a benchmark whose one client calls faster than any
# agent would (a measurement loop is a runaway loop to the rate limit) and is not measuring the fair share.
NO_ACTOR_LIMITS = {
    "ORCHESTRATOR_RATE_LIMIT_PER_MINUTE": "1000000",
    "ORCHESTRATOR_RATE_LIMIT_BURST": "100000",
    "ORCHESTRATOR_MAX_IN_FLIGHT_PER_ACTOR": "10000",
}


@asynccontextmanager
async def server_process(
    url: str, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningServer]:
    """The service (``bench.serve_app``) on ``url``; its log lines go to ``workdir/server.log``."""
    env = {
        "ORCHESTRATOR_DATABASE_URL": url,
        "ORCHESTRATOR_DATA_DIR": str(workdir / "data"),
        "ORCHESTRATOR_HOST": "127.0.0.1",
        **(extra_env or {}),
    }
    async with module_process("bench.serve_app", workdir, "server", env) as server:
        yield server


@asynccontextmanager
async def floor_process(workdir: Path) -> AsyncIterator[RunningServer]:
    """The SDK floor (``bench.sdk_floor``): a minimal ``MCPServer`` with the one no-op tool."""
    async with module_process("bench.sdk_floor", workdir, "floor") as server:
        yield server


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far, all its threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of the process's live threads, summed from ``/proc/<pid>/task/*/schedstat`` (nanoseconds).

    Precise enough for a block of a few calls (``cpu_seconds`` counts 10 ms clock ticks), but a thread
    that ends between two readings takes its time with it: use it over spans in which the server's
    threads live on (the event loop; pooled database connections).
    """
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # the thread ended since the listing
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total / 1e9


def status_mib(pid: int, keys: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, float]:
    """Fields of ``/proc/<pid>/status`` given in kB (VmRSS: resident set; VmHWM: its peak), in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = round(int(value.split()[0]) / 1024, 2)
    return out


def open_fds(pid: int) -> int:
    """Open file descriptors of the process (entries of ``/proc/<pid>/fd``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def loadavg() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages (``/proc/loadavg``)."""
    return os.getloadavg()
