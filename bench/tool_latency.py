"""Tool latency against the floor: plan_task and query_tasks versus a no-op tool on the same stack.

For each backend (SQLite, PostgreSQL) the run makes a fresh database, migrates and seeds it (10,000 tasks
in the queried session, through the app's own services and repositories), starts the real app in a
separate process (``bench.serve_app``: ``create_app`` on uvicorn with the product's defaults plus the
``bench_noop`` tool), and drives it over HTTP with the real ``mcp`` client, one call at a time. Each
measured round calls ``bench_noop``, ``orchestrator_plan_task`` and ``orchestrator_query_tasks`` (limit
50 out of 10,000, default sort) in turn, so drift of the machine touches all three alike. The floor is
the no-op's latency; the report is each tool's p50 and p95 and their ratios to the floor's, per
protocol era (2026-07-28, then legacy 2025-11-25 with a session).

The client runs in this process and the server in another so the client's own CPU per call (1-3 ms)
does not queue behind the server's on one event loop. The server's own time per tool (from its
``tool_call`` log lines: the handler inside ``OrchestratorMCP.call_tool``, without the transport) is
reported beside the end-to-end numbers, and so is the part of the client's CPU spent checking one answer
against the tool's output schema (the SDK does it for every result; no server change can shrink it).

    python -m bench.tool_latency --backend both --calls 500 --json bench/results/latest.json

Nothing here fails on a time: targets are printed as met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.types import CallToolResult

from bench.results import write_results
from bench.seeding import BENCH_AGENT, BenchSetupError, SeededData, fresh_database, migrate_and_seed
from bench.serve_app import NOOP_TOOL

PLAN_TOOL = "orchestrator_plan_task"
QUERY_TOOL = "orchestrator_query_tasks"
TOOLS = (NOOP_TOOL, PLAN_TOOL, QUERY_TOOL)
ERAS = {"2026-07-28": "2026-07-28", "legacy": "legacy"}
QUERY_LIMIT = 50
# The foundation issue's targets, on PostgreSQL: p50 at most this many times the floor's p50.
TARGETS = {PLAN_TOOL: 1.5, QUERY_TOOL: 2.0}
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Samples:
    """Per tool: end-to-end seconds and client CPU seconds of each measured call, and its last answer."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TOOLS})
    client_cpu: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TOOLS})
    last_answer: dict[str, Any] = field(default_factory=dict)
    # Milliseconds the client's output-schema check of that answer costs (see ``validation_ms``).
    client_validation_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Workload:
    """The three calls of a round, and the check each answer must pass (outside the timed span)."""

    seeded: SeededData
    planned: int = 0

    def arguments(self, tool: str) -> dict[str, Any]:
        if tool == NOOP_TOOL:
            return {"text": "ping"}
        if tool == PLAN_TOOL:
            self.planned += 1
            return {
                "title": f"Benchmark task {self.planned}",
                "description": "Write the change, test it, and record what was done.",
                "priority": "high" if self.planned % 4 == 0 else "medium",
                "specialist_type": "coder",
                "context": {"source": "bench", "n": self.planned},
                "session_id": self.seeded.plan_session_id,
                "agent": BENCH_AGENT,
            }
        return {"session_id": self.seeded.query_session_id, "limit": QUERY_LIMIT, "agent": BENCH_AGENT}

    def check(self, tool: str, result: CallToolResult) -> None:
        """Sanity, not timing: a wrong answer would make the latency meaningless."""
        body = result.structured_content
        if result.is_error or body is None:
            raise AssertionError(f"{tool} failed: {body or result.content}")
        if tool == NOOP_TOOL and body != {"echo": "ping"}:
            raise AssertionError(f"{tool} answered {body}")
        if tool == PLAN_TOOL and body["task"]["session_id"] != self.seeded.plan_session_id:
            raise AssertionError(f"{tool} planned into {body['task']['session_id']}")
        if tool == QUERY_TOOL and (len(body["tasks"]) != QUERY_LIMIT or body["total_count"] != self.seeded.task_count):
            raise AssertionError(f"{tool} returned {len(body['tasks'])} tasks of {body['total_count']}")


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(quantile(ms, 0.5), 3),
        "p95_ms": round(quantile(ms, 0.95), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


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


async def call(client: Client, workload: Workload, tool: str, samples: Samples | None) -> None:
    arguments = workload.arguments(tool)
    cpu = time.process_time()
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    workload.check(tool, result)
    if samples is not None:
        samples.wall[tool].append(elapsed)
        samples.client_cpu[tool].append(cpu)
        samples.last_answer[tool] = result.structured_content


def validation_ms(schema: dict[str, Any], answer: Any, repeat: int = 50) -> float:
    """Median milliseconds of the client's output-schema check of one answer, done as the SDK does it.

    ``ClientSession.validate_tool_result`` compiles the listed output schema once per tool, then runs
    ``best_match(validator.iter_errors(structured_content))`` on every result; this repeats that step.
    It is part of every measured call's client CPU; reported on its own because no server change can
    make it smaller.
    """
    from jsonschema import exceptions
    from jsonschema.validators import validator_for
    from referencing import Registry

    validator = validator_for(schema)(schema, registry=Registry())
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        exceptions.best_match(validator.iter_errors(answer))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


@asynccontextmanager
async def sampling_profile(pid: int, output: Path | None) -> AsyncIterator[None]:
    """Record the server with py-spy (speedscope format) while the block runs, when ``output`` is given."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        raise BenchSetupError("--py-spy needs py-spy on PATH (pip install py-spy)")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--pid", str(pid), "--rate", "500", "--format", "speedscope", "-o", str(output)]
    recorder = await anyio.open_process([*command, "--nonblocking"], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        with anyio.fail_after(STOP_TIMEOUT_SECONDS):
            await recorder.wait()


async def measure_era(
    server: RunningServer,
    era: str,
    workload: Workload,
    options: Options,
    log_size: Callable[[], int],
    profile: Path | None,
) -> tuple[Samples, tuple[int, int]]:
    """Warm up, then the measured interleaved rounds; returns the samples and the server log span."""
    samples = Samples()
    async with Client(f"{server.base_url}/mcp", mode=ERAS[era]) as client:
        for _ in range(options.warmup):
            for tool in TOOLS:
                await call(client, workload, tool, None)
        start = log_size()
        async with sampling_profile(server.pid, profile):
            for _ in range(options.rounds):
                for tool in TOOLS:
                    await call(client, workload, tool, samples)
        end = log_size()
        schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
    for tool, answer in samples.last_answer.items():
        schema = schemas.get(tool)
        samples.client_validation_ms[tool] = validation_ms(schema, answer) if schema else 0.0
    return samples, (start, end)


def server_durations(log_path: Path, span: tuple[int, int]) -> dict[str, list[float]]:
    """Seconds per tool from the server's ``tool_call`` log lines written during ``span`` (byte offsets)."""
    out: dict[str, list[float]] = {t: [] for t in TOOLS}
    with log_path.open("rb") as fh:
        fh.seek(span[0])
        chunk = fh.read(span[1] - span[0])
    for line in chunk.decode().splitlines():
        if '"tool_call"' not in line:
            continue
        record = json.loads(line)
        if record.get("event") == "tool_call" and record.get("tool") in out:
            out[record["tool"]].append(float(record["duration_ms"]) / 1000)
    return out


def era_report(samples: Samples, server: dict[str, list[float]]) -> dict[str, Any]:
    tools: dict[str, dict[str, float]] = {}
    floor = summarise(samples.wall[NOOP_TOOL])
    for tool in TOOLS:
        stats = summarise(samples.wall[tool])
        stats["ratio_p50"] = round(stats["p50_ms"] / floor["p50_ms"], 3)
        stats["ratio_p95"] = round(stats["p95_ms"] / floor["p95_ms"], 3)
        if server[tool]:
            side = summarise(server[tool])
            stats["server_p50_ms"] = side["p50_ms"]
            stats["server_p95_ms"] = side["p95_ms"]
        stats["client_cpu_mean_ms"] = round(statistics.fmean(samples.client_cpu[tool]) * 1000, 3)
        stats["client_validation_ms"] = round(samples.client_validation_ms.get(tool, 0.0), 3)
        tools[tool] = stats
    return tools


@dataclass(frozen=True)
class Options:
    rounds: int
    warmup: int
    tasks: int
    eras: list[str]
    py_spy: Path | None  # a directory for speedscope profiles of the server, one per backend and era


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    pid: int
    log_path: Path


@asynccontextmanager
async def server_process(url: str, workdir: Path) -> AsyncIterator[RunningServer]:
    """``bench.serve_app`` on ``url`` in its own process; its log lines go to ``workdir/server.log``."""
    log_path = workdir / "server.log"
    port_file = workdir / "port"
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": url,
        "ORCHESTRATOR_DATA_DIR": str(workdir / "data"),
        "ORCHESTRATOR_HOST": "127.0.0.1",
    }
    with log_path.open("wb") as log, (workdir / "server.err").open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-m", "bench.serve_app", "--port-file", str(port_file)],
            stdout=log,
            stderr=err,
            cwd=REPO_ROOT,
            env=env,
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


async def run_backend(backend: str, options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            started = time.perf_counter()
            seeded = await migrate_and_seed(url, options.tasks)
            seed_seconds = time.perf_counter() - started
            print(
                f"[{backend}] seeded {seeded.task_count} tasks ({seeded.dependency_count} dependencies) "
                f"in {seed_seconds:.1f}s",
                file=sys.stderr,
            )
            results = []
            async with server_process(url, workdir) as server:
                workload = Workload(seeded)
                for era in options.eras:
                    profile = options.py_spy / f"{backend}-{era}.speedscope.json" if options.py_spy else None
                    load_before = os.getloadavg()[0]
                    samples, span = await measure_era(
                        server, era, workload, options, lambda: server.log_path.stat().st_size, profile
                    )
                    load = (round(load_before, 2), round(os.getloadavg()[0], 2))
                    report = era_report(samples, server_durations(server.log_path, span))
                    results.append(
                        {"backend": backend, "era": era, "rounds": options.rounds, "loadavg_1m": load, "tools": report}
                    )
                    print_table(backend, era, options, load, report)
            return {"backend": backend, "seed_seconds": round(seed_seconds, 2), "eras": results}


def print_table(backend: str, era: str, options: Options, load: tuple[float, float], report: dict[str, Any]) -> None:
    print(
        f"\n{backend}, era {era}: {options.rounds} rounds after {options.warmup} warm-up rounds; query session "
        f"holds {options.tasks} tasks; 1-min load average {load[0]} -> {load[1]} on {os.cpu_count()} CPUs"
    )
    header = f"{'tool':<26}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'p50/floor':>11}{'p95/floor':>11}"
    header += f"{'srv p50':>9}{'srv p95':>9}{'cli CPU':>9}{'cli val':>9}"
    print(header)
    for tool, s in report.items():
        name = f"{tool} (floor)" if tool == NOOP_TOOL else tool
        print(
            f"{name:<26}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['mean_ms']:>9.2f}{s['ratio_p50']:>11.2f}"
            f"{s['ratio_p95']:>11.2f}{s.get('server_p50_ms', float('nan')):>9.2f}"
            f"{s.get('server_p95_ms', float('nan')):>9.2f}{s['client_cpu_mean_ms']:>9.2f}"
            f"{s['client_validation_ms']:>9.2f}"
        )
    verdicts = [
        f"{tool.removeprefix('orchestrator_')} p50 {report[tool]['ratio_p50']:.2f}x floor "
        f"(target <= {limit}x: {'met' if report[tool]['ratio_p50'] <= limit else 'MISSED'})"
        for tool, limit in TARGETS.items()
    ]
    print("targets" + (" (they apply to PostgreSQL)" if backend != "postgresql" else "") + ": " + "; ".join(verdicts))
    floor = report[NOOP_TOOL]["p50_ms"]
    bounds = [
        f"{tool.removeprefix('orchestrator_')} {report[tool]['client_validation_ms']:.2f} ms "
        f"(= {report[tool]['client_validation_ms'] / floor:.2f} x floor p50)"
        for tool in TARGETS
    ]
    print("client output-schema check of one answer (inside cli CPU): " + "; ".join(bounds))
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tool_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--calls", type=int, default=500, help="measured rounds (each calls all three tools)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured rounds before each era")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks seeded in the queried session")
    parser.add_argument("--eras", default="2026-07-28,legacy", help="comma list of: " + ", ".join(ERAS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--py-spy", type=Path, help="record the server with py-spy into this directory")
    args = parser.parse_args(argv)
    args.era_list = [e.strip() for e in args.eras.split(",") if e.strip()]
    unknown = [e for e in args.era_list if e not in ERAS]
    if unknown or not args.era_list:
        parser.error(f"--eras: unknown {unknown}; allowed: {', '.join(ERAS)}")
    if args.calls < 1 or args.warmup < 0 or args.tasks < QUERY_LIMIT:
        parser.error(f"--calls must be >= 1, --warmup >= 0, --tasks >= {QUERY_LIMIT}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    options = Options(args.calls, args.warmup, args.tasks, args.era_list, args.py_spy)
    runs = []
    try:
        for backend in backends:
            runs.append(anyio.run(run_backend, backend, options))
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        write_results(
            args.json,
            "bench.tool_latency",
            argv,
            runs,
            tasks=args.tasks,
            query_limit=QUERY_LIMIT,
            targets_p50_ratio_postgresql=TARGETS,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
