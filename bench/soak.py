"""Soak: 50 agents working for a long time; does the server's memory or descriptor count grow?

For each backend the run makes a fresh database, migrates it and seeds one session of ``--tasks`` ready
tasks, starts the real app in a process of its own (``bench.serve_app``) and drives it over HTTP from
several client processes (the real ``mcp`` client, era 2026-07-28), ``--clients`` agents in all, each
with its own agent name, looping for ``--minutes``:

    plan_task (one task) → next_task → complete_task (when it claimed one) → query_tasks (20 pending
    rows) → every ``--status-every``-th loop get_status

so the session keeps about as many pending tasks as it started with while its history grows. An agent
that gets a retryable error waits as long as the error says before its next call (counted as an error). Every
``--sample-seconds`` the benchmark reads the server's resident set (``VmRSS`` in ``/proc/<pid>/status``)
and its open descriptors (``/proc/<pid>/fd``). The report: the least-squares slope of each over the
samples after ``--warmup-minutes`` (MiB per hour; descriptors per hour), against issue 14's targets —
RSS growth at most 5 MiB per hour after warm-up, descriptors flat (the fitted line rises by less than
one descriptor over the measured span).

    python -m bench.soak --backend postgresql-fsync --minutes 30 --json bench/results/soak.json

Nothing here fails on a number: targets are printed as met or missed. ``--worker`` is internal.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client

from bench.results import write_results
from bench.seeding import BenchSetupError, durability, fresh_database, migrate_and_seed_ready, parse_backends
from bench.servers import REPO_ROOT, RunningServer, cpu_seconds, loadavg, open_fds, server_process, status_mib
from bench.tool_latency import quantile

PLAN_TOOL = "orchestrator_plan_task"
NEXT_TOOL = "orchestrator_next_task"
COMPLETE_TOOL = "orchestrator_complete_task"
QUERY_TOOL = "orchestrator_query_tasks"
STATUS_TOOL = "orchestrator_get_status"
TOOLS = (PLAN_TOOL, NEXT_TOOL, COMPLETE_TOOL, QUERY_TOOL, STATUS_TOOL)
ERA = "2026-07-28"
RSS_TARGET_MIB_PER_HOUR = 5.0
QUERY_LIMIT = 20
CONNECT_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 120.0  # a worker's last loop (one get_status may be slow under load)
MAX_LINE_BYTES = 64 * 1024 * 1024


# ------------------------------------------------------------------------------------------------ worker


@dataclass
class AgentLog:
    agent: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TOOLS})
    errors: list[str] = field(default_factory=list)
    loops: int = 0


async def call(client: Client, log: AgentLog, tool: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    log.latencies[tool].append(time.perf_counter() - started)
    if result.is_error or result.structured_content is None:
        log.errors.append(f"{tool}: {result.structured_content or result.content}")
        error = (result.structured_content or {}).get("error") or {}
        if error.get("retryable"):  # as an agent would: wait as told before the next call
            await anyio.sleep(float(error.get("retry_after_seconds") or 1.0))
        return None
    return result.structured_content


async def agent_loop(client: Client, log: AgentLog, session_id: str, deadline: float, status_every: int) -> None:
    """Plan, claim, complete, query and now and then look at the board, until ``deadline``."""
    who = {"agent": log.agent}
    while time.monotonic() < deadline:
        log.loops += 1
        n = log.loops
        await call(
            client,
            log,
            PLAN_TOOL,
            {
                "title": f"Soak task {n} of {log.agent}",
                "description": "Write the change, test it, and record what was done.",
                "priority": ("low", "medium", "high")[n % 3],
                "specialist_type": "coder",
                "context": {"source": "soak", "n": n},
                "session_id": session_id,
                **who,
            },
        )
        claimed = await call(client, log, NEXT_TOOL, {"session_id": session_id, **who})
        task = claimed.get("task") if claimed else None
        if task is not None:
            await call(
                client,
                log,
                COMPLETE_TOOL,
                {
                    "task_id": task["id"],
                    "summary": f"Done by {log.agent}.",
                    "detailed_work": f"Work on {task['id']} by {log.agent}: changed the module, added tests.",
                    "next_action": "complete",
                    "request_id": f"{log.agent}-{n}",
                    **who,
                },
            )
        query = {"session_id": session_id, "status": ["pending"], "limit": QUERY_LIMIT, **who}
        await call(client, log, QUERY_TOOL, query)
        if n % status_every == 0:
            await call(client, log, STATUS_TOOL, {"session_id": session_id, **who})


async def run_worker(args: argparse.Namespace) -> None:
    """Run ``--clients`` agents for ``--seconds``; print one JSON line of what they saw."""
    logs = [AgentLog(f"soak-w{args.worker}-c{c}") for c in range(args.clients)]
    deadline = time.monotonic() + args.seconds

    async def agent(log: AgentLog) -> None:
        async with Client(f"{args.base_url}/mcp", mode=ERA) as client:
            await agent_loop(client, log, args.session_id, deadline, args.status_every)

    async with anyio.create_task_group() as group:
        for log in logs:
            group.start_soon(agent, log)
    out = {
        "loops": sum(log.loops for log in logs),
        "latencies": {t: [s for log in logs for s in log.latencies[t]] for t in TOOLS},
        "errors": [e for log in logs for e in log.errors],
    }
    print(json.dumps(out), flush=True)


# -------------------------------------------------------------------------------------------------- main


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, in value per hour (0 for fewer than 2 points)."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 3600


@dataclass(frozen=True)
class Options:
    clients: int
    workers: int
    tasks: int
    seconds: float
    sample_seconds: float
    warmup_seconds: float
    status_every: int


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def sample(server: RunningServer, started: float) -> dict[str, float]:
    memory = status_mib(server.pid)
    return {
        "t": round(time.monotonic() - started, 1),
        "rss_mib": memory["VmRSS"],
        "hwm_mib": memory["VmHWM"],
        "fds": open_fds(server.pid),
        "cpu_s": round(cpu_seconds(server.pid), 2),
        "load_1m": round(loadavg()[0], 2),
    }


async def soak(server: RunningServer, options: Options, session_id: str) -> tuple[list[dict[str, float]], list[Any]]:
    """Start the workers, sample the server until they are done; the samples and the workers' reports."""
    processes: list[tuple[anyio.abc.Process, BufferedByteReceiveStream]] = []
    samples: list[dict[str, float]] = []
    outputs: list[Any] = []
    try:
        started = time.monotonic()
        for index, count in enumerate(split(options.clients, options.workers)):
            command = [
                sys.executable,
                "-m",
                "bench.soak",
                "--worker",
                str(index),
                "--base-url",
                server.base_url,
                "--session-id",
                session_id,
                "--clients",
                str(count),
                "--seconds",
                str(options.seconds),
                "--status-every",
                str(options.status_every),
            ]
            process = await anyio.open_process(command, stderr=None, cwd=REPO_ROOT)
            assert process.stdout is not None
            processes.append((process, BufferedByteReceiveStream(process.stdout)))
        samples.append(sample(server, started))
        print_sample(samples[-1])
        while time.monotonic() - started < options.seconds:
            await anyio.sleep(min(options.sample_seconds, options.seconds - (time.monotonic() - started)))
            samples.append(sample(server, started))
            print_sample(samples[-1])
        with anyio.fail_after(STOP_GRACE_SECONDS):
            for process, lines in processes:
                try:
                    line = await lines.receive_until(b"\n", MAX_LINE_BYTES)
                except (anyio.EndOfStream, anyio.IncompleteRead) as exc:
                    raise BenchSetupError("a soak worker exited before reporting (its error is above)") from exc
                outputs.append(json.loads(line))
                await process.wait()
    finally:
        for process, _ in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return samples, outputs


def print_sample(s: dict[str, float]) -> None:
    print(
        f"  t={s['t']:>7.0f}s  RSS {s['rss_mib']:>7.1f} MiB  peak {s['hwm_mib']:>7.1f} MiB  fds {s['fds']:>4.0f}  "
        f"server CPU {s['cpu_s']:>7.1f}s  load {s['load_1m']}",
        flush=True,
    )


def report(
    backend: str, settings: dict[str, str], options: Options, samples: list[dict[str, float]], outputs: list[Any]
) -> dict[str, Any]:
    after = [s for s in samples if s["t"] >= options.warmup_seconds]
    rss_slope = slope_per_hour([(s["t"], s["rss_mib"]) for s in after])
    fd_slope = slope_per_hour([(s["t"], s["fds"]) for s in after])
    span_hours = (after[-1]["t"] - after[0]["t"]) / 3600 if len(after) > 1 else 0.0
    latencies = {t: [x * 1000 for out in outputs for x in out["latencies"][t]] for t in TOOLS}
    calls = sum(len(v) for v in latencies.values())
    errors = [e for out in outputs for e in out["errors"]]
    elapsed = samples[-1]["t"]
    out = {
        "backend": backend,
        "durability": settings,
        "clients": options.clients,
        "workers": options.workers,
        "seconds": options.seconds,
        "sample_seconds": options.sample_seconds,
        "warmup_seconds": options.warmup_seconds,
        "samples": samples,
        "samples_after_warmup": len(after),
        "rss_mib_per_hour": round(rss_slope, 2),
        "fds_per_hour": round(fd_slope, 2),
        "fds_after_warmup": [min(s["fds"] for s in after), max(s["fds"] for s in after)] if after else [],
        "rss_after_warmup_mib": [after[0]["rss_mib"], after[-1]["rss_mib"]] if after else [],
        "rss_target_met": bool(after) and len(after) > 1 and rss_slope <= RSS_TARGET_MIB_PER_HOUR,
        "fds_flat": bool(after) and len(after) > 1 and abs(fd_slope * span_hours) < 1,
        "loops": sum(o["loops"] for o in outputs),
        "calls": calls,
        "calls_per_second": round(calls / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            t: {"calls": len(v), "p50": round(quantile(v, 0.5), 1), "p95": round(quantile(v, 0.95), 1)}
            for t, v in latencies.items()
            if v
        },
        "errors": {"count": len(errors), "first": errors[:5]},
    }
    print_report(out)
    return out


def print_report(out: dict[str, Any]) -> None:
    print(
        f"\n{out['backend']} ({out['durability']}): {out['clients']} agents for {out['seconds']:.0f}s, "
        f"{out['loops']} loops, {out['calls']} calls ({out['calls_per_second']} calls/s), "
        f"errors {out['errors']['count']} {out['errors']['first'][:2]}"
    )
    for tool, stats in out["latency_ms"].items():
        print(f"  {tool:<28} {stats['calls']:>7} calls  p50 {stats['p50']:>8.1f} ms  p95 {stats['p95']:>8.1f} ms")
    print(
        f"  after {out['warmup_seconds']:.0f}s of warm-up ({out['samples_after_warmup']} samples): RSS "
        f"{out['rss_after_warmup_mib']} MiB, slope {out['rss_mib_per_hour']} MiB/hour (target <= "
        f"{RSS_TARGET_MIB_PER_HOUR}: {'met' if out['rss_target_met'] else 'MISSED'}); descriptors "
        f"{out['fds_after_warmup']}, slope {out['fds_per_hour']}/hour ({'flat' if out['fds_flat'] else 'NOT flat'})"
    )
    sys.stdout.flush()


async def run_backend(backend: str, options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-soak-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            settings = await durability(url)
            session_id = await migrate_and_seed_ready(url, options.tasks)
            async with server_process(url, workdir) as server:
                print(
                    f"\n[{backend}] soak: {options.clients} agents, {options.seconds:.0f}s, a sample every "
                    f"{options.sample_seconds:.0f}s, warm-up {options.warmup_seconds:.0f}s",
                    flush=True,
                )
                samples, outputs = await soak(server, options, session_id)
    return report(backend, settings, options, samples, outputs)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", default="postgresql-fsync", help="comma list of postgresql-fsync, postgresql, sqlite"
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the agents work")
    parser.add_argument("--sample-seconds", type=float, default=60.0, help="time between two samples")
    parser.add_argument("--warmup-minutes", type=float, default=5.0, help="samples before this are not fitted")
    parser.add_argument("--clients", type=int, default=50, help="concurrent agents")
    parser.add_argument("--workers", type=int, default=0, help="client processes (default: one per 10 agents)")
    parser.add_argument("--tasks", type=int, default=500, help="ready tasks seeded before the start")
    parser.add_argument("--status-every", type=int, default=5, help="get_status on every n-th loop of an agent")
    parser.add_argument("--json", type=Path, help="also write the results (every sample) here")
    # Internal: the worker processes.
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--session-id", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        try:
            args.backends = parse_backends(args.backend)
        except ValueError as exc:
            parser.error(f"--backend: {exc}")
        if min(args.minutes, args.sample_seconds, args.clients, args.status_every) <= 0 or args.warmup_minutes < 0:
            parser.error("--minutes, --sample-seconds, --clients and --status-every must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        anyio.run(run_worker, args)
        return 0
    options = Options(
        clients=args.clients,
        workers=args.workers or math.ceil(args.clients / 10),
        tasks=args.tasks,
        seconds=args.minutes * 60,
        sample_seconds=args.sample_seconds,
        warmup_seconds=args.warmup_minutes * 60,
        status_every=args.status_every,
    )
    runs = []
    load_start = [round(x, 2) for x in loadavg()]
    try:
        for backend in args.backends:
            runs.append(anyio.run(run_backend, backend, options))
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    load_end = [round(x, 2) for x in loadavg()]
    print(f"load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end")
    if args.json is not None:
        write_results(args.json, "bench.soak", argv, runs, loadavg={"start": load_start, "end": load_end})
    return 0


if __name__ == "__main__":
    sys.exit(main())
