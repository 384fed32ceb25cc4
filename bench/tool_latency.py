"""Tool latency and server CPU against the SDK floor: the issue-14 figures, one call at a time.

For each backend (PostgreSQL with ``fsync`` on, as production runs it; with it off; SQLite) the run makes
a fresh database, migrates and seeds it through the app's own services and repositories (10,000 tasks in
the queried session, ready tasks in a work session), starts the real app in a process of its own
(``bench.serve_app``) and the **SDK floor** in another (``bench.sdk_floor``: a minimal ``MCPServer``
with one no-op tool, DESIGN §12), and drives both over HTTP with the real ``mcp`` client in this process.

Figures, each with a client of its own where it is a no-op (so a heavy answer never precedes a floor
call on the same client): the floor (``bench_noop`` on the SDK floor), the in-service no-op
(``bench_noop`` inside the service: its per-call overhead), ``orchestrator_plan_task``,
``orchestrator_query_tasks`` (50 rows of 10,000; ``view: "summary"`` when the tool offers ``view``),
``orchestrator_get_status`` on the 10,000-task session, a ``next_task`` + ``complete_task`` pair, and
``tools/list`` on each server. They are measured in **blocks**: each block is ``--block`` calls of one
figure, after a garbage collection and one unmeasured call; the figures take turns block by block, so
drift of the machine touches all alike, and each figure's p50/p95 is over all its blocks. The server's
CPU time per call is read from that figure's server process before and after each block (the sum of its
threads' ``/proc/<pid>/task/*/schedstat``, in nanoseconds).

    python -m bench.tool_latency --backend all --calls 500 --json bench/results/latest.json

Nothing here fails on a time: targets are printed as met or missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult

from bench.results import write_results
from bench.sdk_floor import NOOP_TOOL
from bench.seeding import (
    BENCH_AGENT,
    BenchSetupError,
    SeededData,
    durability,
    fresh_database,
    migrate_and_seed,
    parse_backends,
)
from bench.servers import NO_ACTOR_LIMITS, RunningServer, floor_process, loadavg, server_process, thread_cpu_seconds

__all__ = ["RunningServer", "quantile", "server_process"]  # agent_throughput imports these from here

PLAN_TOOL = "orchestrator_plan_task"
QUERY_TOOL = "orchestrator_query_tasks"
STATUS_TOOL = "orchestrator_get_status"
NEXT_TOOL = "orchestrator_next_task"
COMPLETE_TOOL = "orchestrator_complete_task"
PAIR_AGENT = "bench-pair-agent"
ERAS = {"2026-07-28": "2026-07-28", "legacy": "legacy"}
QUERY_LIMIT = 50
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    server: str  # "floor" or "service": whose process CPU the block reads
    client: str  # "floor", "noop" or "service": the client the calls go through
    tool: str | None  # the tool_call log name of the service's handler, if any


FIGURES = (
    Figure("floor", "SDK floor: bench_noop", "floor", "floor", None),
    Figure("noop", "in-service bench_noop", "service", "noop", NOOP_TOOL),
    Figure("plan", PLAN_TOOL, "service", "service", PLAN_TOOL),
    Figure("query", QUERY_TOOL, "service", "service", QUERY_TOOL),
    Figure("status", STATUS_TOOL, "service", "service", STATUS_TOOL),
    Figure("pair", "next_task + complete_task", "service", "service", None),
    Figure("list", "tools/list (service)", "service", "service", None),
    Figure("floor_list", "tools/list (SDK floor)", "floor", "floor", None),
)
BY_KEY = {f.key: f for f in FIGURES}


@dataclass(frozen=True)
class Target:
    name: str
    numerator: str  # figure key
    denominator: str  # figure key
    measure: str  # "p50_ms" (end to end) or "server_cpu_ms" (per call, from /proc)
    limit: float


# Issue 14's targets; they apply to PostgreSQL with fsync on (the other backends are context).
TARGETS = (
    Target("plan_task p50 / floor p50", "plan", "floor", "p50_ms", 1.3),
    Target("query_tasks p50 / floor p50", "query", "floor", "p50_ms", 2.5),
    Target("get_status p50 / floor p50", "status", "floor", "p50_ms", 2.0),
    Target("tools/list server CPU / floor server's", "list", "floor_list", "server_cpu_ms", 2.0),
    Target("server CPU per next+complete pair / floor server CPU per call", "pair", "floor", "server_cpu_ms", 5.0),
)


@dataclass
class Samples:
    """Per figure: end-to-end and client CPU seconds of each measured call, server CPU seconds per block."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {f.key: [] for f in FIGURES})
    client_cpu: dict[str, list[float]] = field(default_factory=lambda: {f.key: [] for f in FIGURES})
    server_cpu: dict[str, float] = field(default_factory=lambda: {f.key: 0.0 for f in FIGURES})
    last_answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class Workload:
    """The call(s) behind each figure, and the check each answer must pass (outside the timed span)."""

    seeded: SeededData
    query_view: str | None = None  # "summary" when orchestrator_query_tasks offers a ``view`` parameter
    planned: int = 0
    pairs: int = 0

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
        if tool == QUERY_TOOL:
            view = {"view": self.query_view} if self.query_view else {}
            return {"session_id": self.seeded.query_session_id, "limit": QUERY_LIMIT, "agent": BENCH_AGENT, **view}
        return {"session_id": self.seeded.query_session_id, "agent": BENCH_AGENT}  # get_status

    async def run(self, figure: Figure, client: Client) -> Any:
        """One call of ``figure`` (two for the pair); its checked answer."""
        if figure.key in ("list", "floor_list"):
            listed = await client.list_tools(cache_mode="bypass")
            if not listed.tools:
                raise AssertionError(f"{figure.label} listed no tools")
            return listed
        if figure.key == "pair":
            return await self.pair(client)
        tool = NOOP_TOOL if figure.tool is None else figure.tool
        result = await client.call_tool(tool, self.arguments(tool))
        return self.check(tool, result)

    async def pair(self, client: Client) -> Any:
        self.pairs += 1
        claimed = self.check(
            NEXT_TOOL,
            await client.call_tool(NEXT_TOOL, {"session_id": self.seeded.work_session_id, "agent": PAIR_AGENT}),
        )
        if claimed.get("task") is None:
            raise BenchSetupError(f"the work session ran out of ready tasks after {self.pairs - 1} pairs")
        arguments = {
            "task_id": claimed["task"]["id"],
            "summary": "Done by the benchmark.",
            "detailed_work": "Changed the module, added tests, recorded what was done.",
            "next_action": "complete",
            "request_id": f"bench-pair-{self.pairs}",
            "agent": PAIR_AGENT,
        }
        return self.check(COMPLETE_TOOL, await client.call_tool(COMPLETE_TOOL, arguments))

    def check(self, tool: str, result: CallToolResult) -> Any:
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
        return body


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
async def sampling_profile(
    pid: int, output: Path | None, *, file_format: str = "speedscope", rate_hz: int = 500
) -> AsyncIterator[None]:
    """Record the server with py-spy while the block runs, when ``output`` is given."""
    if output is None:
        yield
        return
    beside = Path(sys.executable).with_name("py-spy")  # installed into this environment, not on PATH
    spy = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
    if spy is None:
        raise BenchSetupError("sampling the server needs py-spy (pip install py-spy)")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", file_format, "-o", str(output)]
    recorder = await anyio.open_process([*command, "--nonblocking"], stdout=subprocess.DEVNULL)
    try:
        await anyio.sleep(1.0)  # py-spy attaches before the first sampled call
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        with anyio.fail_after(STOP_TIMEOUT_SECONDS):
            await recorder.wait()


def query_view(listed: Any) -> str | None:
    """``"summary"`` when orchestrator_query_tasks's input schema has a ``view`` parameter, else None."""
    for tool in listed.tools:
        if tool.name == QUERY_TOOL and "view" in (tool.input_schema or {}).get("properties", {}):
            return "summary"
    return None


async def timed_block(run: Callable[[], Awaitable[Any]], calls: int, samples: Samples, key: str, pid: int) -> Any:
    """A garbage collection and one unmeasured call, then ``calls`` timed calls; the server's CPU over them."""
    gc.collect()
    answer = await run()
    server_cpu = thread_cpu_seconds(pid)
    for _ in range(calls):
        cpu = time.process_time()
        started = time.perf_counter()
        answer = await run()
        samples.wall[key].append(time.perf_counter() - started)
        samples.client_cpu[key].append(time.process_time() - cpu)
    samples.server_cpu[key] += thread_cpu_seconds(pid) - server_cpu
    return answer


async def measure_era(
    servers: dict[str, RunningServer], era: str, workload: Workload, options: Options, profile: Path | None
) -> tuple[Samples, tuple[int, int], dict[str, float]]:
    """Warm-up, then the measured blocks; the samples, the service log's span and the validation costs."""
    samples = Samples()
    service = servers["service"]
    async with AsyncExitStack() as stack:
        clients = {
            "floor": await stack.enter_async_context(Client(f"{servers['floor'].base_url}/mcp", mode=ERAS[era])),
            "noop": await stack.enter_async_context(Client(f"{service.base_url}/mcp", mode=ERAS[era])),
            "service": await stack.enter_async_context(Client(f"{service.base_url}/mcp", mode=ERAS[era])),
        }
        listed = await clients["service"].list_tools(cache_mode="bypass")
        workload.query_view = query_view(listed)
        for figure in FIGURES:
            for _ in range(options.warmup):
                await workload.run(figure, clients[figure.client])
        start = service.log_path.stat().st_size
        async with sampling_profile(service.pid, profile):
            for block in range(options.blocks):
                size = min(options.block, options.calls - block * options.block)
                for figure in FIGURES:
                    client = clients[figure.client]

                    async def run(figure: Figure = figure, client: Client = client) -> Any:
                        return await workload.run(figure, client)

                    samples.last_answer[figure.key] = await timed_block(
                        run, size, samples, figure.key, servers[figure.server].pid
                    )
        end = service.log_path.stat().st_size
    schemas = {tool.name: tool.output_schema for tool in listed.tools}
    checks = {}
    for key in ("plan", "query", "status"):
        schema, answer = schemas.get(BY_KEY[key].tool or ""), samples.last_answer.get(key)
        checks[key] = round(validation_ms(schema, answer), 3) if schema and answer is not None else 0.0
    return samples, (start, end), checks


def handler_durations(log_path: Path, span: tuple[int, int]) -> dict[str, list[float]]:
    """Seconds per tool from the service's ``tool_call`` log lines written during ``span`` (byte offsets)."""
    out: dict[str, list[float]] = {}
    with log_path.open("rb") as fh:
        fh.seek(span[0])
        chunk = fh.read(span[1] - span[0])
    for line in chunk.decode().splitlines():
        if '"tool_call"' not in line:
            continue
        record = json.loads(line)
        if record.get("event") == "tool_call":
            out.setdefault(record.get("tool", ""), []).append(float(record["duration_ms"]) / 1000)
    return out


def era_report(samples: Samples, handlers: dict[str, list[float]], checks: dict[str, float]) -> dict[str, Any]:
    figures: dict[str, dict[str, Any]] = {}
    for figure in FIGURES:
        calls = len(samples.wall[figure.key])
        stats: dict[str, Any] = {"label": figure.label, "calls": calls, **summarise(samples.wall[figure.key])}
        stats["server_cpu_ms"] = round(samples.server_cpu[figure.key] * 1000 / calls, 3)
        stats["server_cpu_total_s"] = round(samples.server_cpu[figure.key], 2)
        stats["client_cpu_mean_ms"] = round(statistics.fmean(samples.client_cpu[figure.key]) * 1000, 3)
        if figure.tool and handlers.get(figure.tool):
            handler = summarise(handlers[figure.tool])
            stats["handler_p50_ms"], stats["handler_p95_ms"] = handler["p50_ms"], handler["p95_ms"]
        if figure.key in checks:
            stats["client_validation_ms"] = checks[figure.key]
        figures[figure.key] = stats
    floor = figures["floor"]
    for stats in figures.values():
        stats["ratio_p50"] = round(stats["p50_ms"] / floor["p50_ms"], 3)
        stats["ratio_p95"] = round(stats["p95_ms"] / floor["p95_ms"], 3)
    targets = []
    for target in TARGETS:
        denominator = figures[target.denominator][target.measure]
        value = figures[target.numerator][target.measure] / denominator if denominator else math.inf
        targets.append({"figure": target.name, "value": round(value, 2), "target": target.limit})
    return {"figures": figures, "targets": targets}


@dataclass(frozen=True)
class Options:
    calls: int  # measured calls per figure
    block: int  # calls per block
    warmup: int
    tasks: int
    eras: list[str]
    py_spy: Path | None  # a directory for speedscope profiles of the server, one per backend and era
    other_sessions: int = 0  # sessions shaped like the queried one, seeded beside it (a shared database)

    @property
    def blocks(self) -> int:
        return math.ceil(self.calls / self.block)

    @property
    def ready_tasks(self) -> int:
        """Ready tasks the pair figure consumes: warm-up, one unmeasured call per block, the measured ones."""
        return len(self.eras) * (self.warmup + self.blocks + self.calls) + 10


async def run_backend(backend: str, options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            settings = await durability(url)
            started = time.perf_counter()
            seeded = await migrate_and_seed(
                url, options.tasks, ready_count=options.ready_tasks, other_sessions=options.other_sessions
            )
            seed_seconds = time.perf_counter() - started
            print(
                f"[{backend}] {settings}: seeded {seeded.task_count} tasks ({seeded.dependency_count} dependencies) "
                f"and {seeded.ready_count} ready ones, beside {options.other_sessions} other session(s) like it, "
                f"in {seed_seconds:.1f}s",
                file=sys.stderr,
            )
            results = []
            # One measuring client calls faster than the fair share allows an agent (a runaway loop to it).
            async with server_process(url, workdir, NO_ACTOR_LIMITS) as service, floor_process(workdir) as floor:
                servers = {"service": service, "floor": floor}
                workload = Workload(seeded)
                for era in options.eras:
                    profile = options.py_spy / f"{backend}-{era}.speedscope.json" if options.py_spy else None
                    load_before = loadavg()
                    samples, span, checks = await measure_era(servers, era, workload, options, profile)
                    load = [rounded(load_before), rounded(loadavg())]
                    report = era_report(samples, handler_durations(service.log_path, span), checks)
                    view = workload.query_view or "full rows (the tool has no view parameter)"
                    results.append(
                        {
                            "backend": backend,
                            "durability": settings,
                            "era": era,
                            "query_view": view,
                            "loadavg": load,
                            **report,
                        }
                    )
                    print_table(backend, settings, era, options, load, view, report)
            return {
                "backend": backend,
                "seed_seconds": round(seed_seconds, 2),
                "other_sessions": options.other_sessions,
                "eras": results,
            }


def print_table(
    backend: str,
    settings: dict[str, str],
    era: str,
    options: Options,
    load: list[list[float]],
    view: str,
    report: dict[str, Any],
) -> None:
    fsync = (
        f", fsync {settings['fsync']}, synchronous_commit {settings['synchronous_commit']}"
        if "fsync" in settings
        else ""
    )
    print(
        f"\n{backend}{fsync}, era {era}: {options.blocks} blocks of up to {options.block} calls per figure "
        f"({options.calls} measured) after {options.warmup} warm-up calls each; query view: {view}; "
        f"load average {load[0]} -> {load[1]} on {os.cpu_count()} CPUs"
    )
    header = f"{'figure':<28}{'p50 ms':>8}{'p95 ms':>8}{'mean ms':>8}{'p50/fl':>8}{'p95/fl':>8}"
    header += f"{'srvCPU':>8}{'handler':>8}{'cliCPU':>8}{'cli val':>8}"
    print(header)
    nan = float("nan")
    for s in report["figures"].values():
        print(
            f"{s['label']:<28}{s['p50_ms']:>8.2f}{s['p95_ms']:>8.2f}{s['mean_ms']:>8.2f}{s['ratio_p50']:>8.2f}"
            f"{s['ratio_p95']:>8.2f}{s['server_cpu_ms']:>8.2f}{s.get('handler_p50_ms', nan):>8.2f}"
            f"{s['client_cpu_mean_ms']:>8.2f}{s.get('client_validation_ms', nan):>8.2f}"
        )
    applies = "" if backend == "postgresql-fsync" else " (the targets apply to PostgreSQL with fsync on)"
    print(f"issue-14 figures{applies}:")
    for t in report["targets"]:
        print(f"  {t['figure']:<64}{t['value']:>7.2f}  target <= {t['target']}: {verdict(t)}")
    sys.stdout.flush()


def rounded(load: tuple[float, ...]) -> list[float]:
    return [round(x, 2) for x in load]


def verdict(target: dict[str, Any]) -> str:
    return "met" if target["value"] <= target["target"] else "MISSED"


def print_summary(runs: list[dict[str, Any]]) -> None:
    """One table of the issue-14 figures: a row per figure, a column per backend and era."""
    columns = [(f"{r['backend']} {e['era']}", e) for r in runs for e in r["eras"]]
    if not columns:
        return
    print("\nissue-14 figures, all runs (value / target):")
    print(f"{'figure':<72}" + "".join(f"{name:>28}" for name, _ in columns))
    for index, target in enumerate(TARGETS):
        cells = "".join(f"{e['targets'][index]['value']:>22.2f} {verdict(e['targets'][index]):>5}" for _, e in columns)
        print(f"{target.name + ' (<= ' + str(target.limit) + ')':<72}{cells}")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tool_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        default="all",
        help="comma list of postgresql-fsync, postgresql, sqlite; both = sqlite,postgresql; all (default) = all three",
    )
    parser.add_argument("--calls", type=int, default=500, help="measured calls per figure")
    parser.add_argument("--block", type=int, default=25, help="calls per block (figures take turns by block)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls per figure before each era")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks seeded in the queried session")
    parser.add_argument(
        "--other-sessions",
        type=int,
        default=0,
        help="sessions like the queried one seeded beside it, as in a database other work shares (0-20)",
    )
    parser.add_argument("--eras", default="2026-07-28,legacy", help="comma list of: " + ", ".join(ERAS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--py-spy", type=Path, help="record the server with py-spy into this directory")
    args = parser.parse_args(argv)
    try:
        args.backends = parse_backends(args.backend)
    except ValueError as exc:
        parser.error(f"--backend: {exc}")
    args.era_list = [e.strip() for e in args.eras.split(",") if e.strip()]
    unknown = [e for e in args.era_list if e not in ERAS]
    if unknown or not args.era_list:
        parser.error(f"--eras: unknown {unknown}; allowed: {', '.join(ERAS)}")
    if args.calls < 1 or args.block < 1 or args.warmup < 0 or args.tasks < QUERY_LIMIT:
        parser.error(f"--calls and --block must be >= 1, --warmup >= 0, --tasks >= {QUERY_LIMIT}")
    if not 0 <= args.other_sessions <= 20:
        parser.error(f"--other-sessions must be 0-20, got {args.other_sessions}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(args.calls, args.block, args.warmup, args.tasks, args.era_list, args.py_spy, args.other_sessions)
    runs = []
    started_load = rounded(loadavg())
    try:
        for backend in args.backends:
            runs.append(anyio.run(run_backend, backend, options))
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    ended_load = rounded(loadavg())
    print_summary(runs)
    print(f"load average (1, 5, 15 min): {started_load} at the start, {ended_load} at the end")
    if args.json is not None:
        write_results(
            args.json,
            "bench.tool_latency",
            argv,
            runs,
            tasks=args.tasks,
            query_limit=QUERY_LIMIT,
            block=args.block,
            loadavg={"start": started_load, "end": ended_load},
            targets={t.name: t.limit for t in TARGETS},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
