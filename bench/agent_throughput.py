"""Many agents, one graph: completed tasks per second with 50 concurrent agents, against the floor.

For each backend the run makes a fresh database, migrates it and seeds one session of ``--tasks`` ready
tasks (pending, top-level, no dependencies), starts the real app in its own process
(``bench.serve_app``) and drives it over HTTP from several client *processes* (the Python client spends
1-3 ms of CPU per call, so one process could not keep 50 clients busy). Two phases, each started at once
in every worker by a barrier once all clients are connected:

1. **Floor**: every client loops ``bench_noop`` on the SDK floor (``bench.sdk_floor``, a minimal
   ``MCPServer`` with one no-op tool in a process of its own, DESIGN §12) for a fixed number of calls:
   the throughput of the SDK itself with the same clients. The service sits idle meanwhile.
2. **Agents**: every client, with its own agent name, loops ``orchestrator_next_task`` →
   ``orchestrator_complete_task`` (``next_action="complete"``) until ``next_task`` answers
   ``{task: null}``, so the session is drained.

The report: completed tasks per second, tool calls per second against the floor's calls per second, the
p50/p95 of each tool, the double claims (from the clients' view and from the database's
``status_changed`` events afterwards: every task claimed once and completed once by its claimer, no
claim taken while another agent held the task), and the server's peak RSS (``VmHWM``).

    python -m bench.agent_throughput --backend both --clients 50 --tasks 2000 --json out.json

Nothing here fails on a time. The worker mode (``--worker``) is internal: the main process starts it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from sqlalchemy import select

from app.db.engine import create_database
from app.db.models import Task, TaskEvent
from bench.results import write_results
from bench.seeding import BenchSetupError, durability, fresh_database, migrate_and_seed_ready
from bench.serve_app import NOOP_TOOL
from bench.servers import floor_process
from bench.tool_latency import RunningServer, quantile, server_process

NEXT_TOOL = "orchestrator_next_task"
COMPLETE_TOOL = "orchestrator_complete_task"
ERA = "2026-07-28"
POOL_SIZE_ENV = "ORCHESTRATOR_DB_POOL_SIZE"
DEFAULT_POOL_SIZE = "20"
RSS_TARGET_MIB = 150
COMPLETE_ATTEMPTS = 3  # a failed complete_task is retried with the same request_id (idempotent)
PHASE_TIMEOUT_SECONDS = 600.0
CONNECT_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
MAX_LINE_BYTES = 256 * 1024 * 1024  # a worker's report: every latency of its clients
REPO_ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- worker


@dataclass
class ClientLog:
    """What one client saw: latencies (seconds) per tool, the tasks it claimed and completed, errors."""

    agent: str
    latencies: dict[str, list[float]]
    claimed: list[str]
    completed: list[str]
    errors: list[str]
    finished_at: float = 0.0


async def noop_loop(client: Client, log: ClientLog, calls: int) -> None:
    for n in range(calls):
        started = time.perf_counter()
        result = await client.call_tool(NOOP_TOOL, {"text": f"p{n}"})
        log.latencies[NOOP_TOOL].append(time.perf_counter() - started)
        if result.is_error or result.structured_content != {"echo": f"p{n}"}:
            log.errors.append(f"{NOOP_TOOL}: {result.structured_content or result.content}")
    log.finished_at = time.monotonic()


async def agent_loop(client: Client, log: ClientLog, session_id: str, max_tasks: int, wait_seconds: float = 0) -> None:
    """Claim and complete until the session has nothing ready (bounded by ``max_tasks`` claims).

    With ``wait_seconds`` the agent waits for work (``next_task(wait_seconds)``) instead of stopping at the
    first empty answer; the agent's finishing time is then its last completion, not the end of its last wait.
    """
    ask: dict[str, Any] = {"session_id": session_id, "agent": log.agent}
    if wait_seconds:
        ask["wait_seconds"] = wait_seconds
    for n in range(max_tasks + 1):
        started = time.perf_counter()
        result = await client.call_tool(NEXT_TOOL, ask)
        log.latencies[NEXT_TOOL].append(time.perf_counter() - started)
        body = result.structured_content
        if result.is_error or body is None:
            log.errors.append(f"{NEXT_TOOL}: {body or result.content}")
            continue
        task = body.get("task")
        if task is None:
            break
        task_id = task["id"]
        log.claimed.append(task_id)
        arguments = {
            "task_id": task_id,
            "summary": f"Done by {log.agent}.",
            "detailed_work": f"Work on {task_id} by {log.agent}: changed the module, added tests.",
            "next_action": "complete",
            "request_id": f"{log.agent}-{n}",
            "agent": log.agent,
        }
        for _ in range(COMPLETE_ATTEMPTS):
            started = time.perf_counter()
            result = await client.call_tool(COMPLETE_TOOL, arguments)
            log.latencies[COMPLETE_TOOL].append(time.perf_counter() - started)
            if not result.is_error and result.structured_content is not None:
                log.completed.append(task_id)
                if wait_seconds:
                    log.finished_at = time.monotonic()
                break
            log.errors.append(f"{COMPLETE_TOOL}: {result.structured_content or result.content}")
    if not wait_seconds or not log.finished_at:
        log.finished_at = time.monotonic()


async def run_worker(args: argparse.Namespace) -> None:
    """Connect the clients, say ``ready``, wait for ``go`` on stdin, run the phase, print one JSON line."""
    logs = [
        ClientLog(f"bench-w{args.worker}-c{c}", {NOOP_TOOL: [], NEXT_TOOL: [], COMPLETE_TOOL: []}, [], [], [])
        for c in range(args.clients)
    ]
    async with anyio.create_task_group() as group:
        clients: list[Client] = []
        connected = anyio.Event()
        done = anyio.Event()

        async def hold(log: ClientLog) -> None:
            async with Client(f"{args.base_url}/mcp", mode=ERA) as client:
                clients.append(client)
                if len(clients) == len(logs):
                    connected.set()
                await done.wait()

        for log in logs:
            group.start_soon(hold, log)
        with anyio.fail_after(CONNECT_TIMEOUT_SECONDS):
            await connected.wait()
        print("ready", flush=True)
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"worker {args.worker}: expected 'go', got {line!r}")
        cpu = time.process_time()
        with anyio.fail_after(PHASE_TIMEOUT_SECONDS):
            async with anyio.create_task_group() as phase:
                for client, log in zip(clients, logs, strict=True):
                    if args.mode == "noop":
                        phase.start_soon(noop_loop, client, log, args.calls)
                    else:
                        phase.start_soon(agent_loop, client, log, args.session_id, args.max_tasks, args.wait_seconds)
        cpu = time.process_time() - cpu
        done.set()
    print(json.dumps({"cpu_seconds": cpu, "clients": [log.__dict__ for log in logs]}), flush=True)


# ------------------------------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Options:
    clients: int
    workers: int
    tasks: int
    floor_calls: int  # no-op calls per client
    wait_seconds: float = 0  # agents wait for work (next_task(wait_seconds)) instead of stopping when none is ready


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def read_line(stream: BufferedByteReceiveStream) -> str:
    """One line of a worker's stdout; a worker that exits first is a setup failure."""
    try:
        return (await stream.receive_until(b"\n", MAX_LINE_BYTES)).decode()
    except (anyio.EndOfStream, anyio.IncompleteRead) as exc:
        raise BenchSetupError("a worker exited before reporting (its error is above)") from exc


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def handler_seconds(log_path: Path, span: tuple[int, int]) -> dict[str, list[float]]:
    """Seconds per tool from the server's ``tool_call`` log lines written during ``span`` (byte offsets)."""
    out: dict[str, list[float]] = defaultdict(list)
    with log_path.open("rb") as fh:
        fh.seek(span[0])
        chunk = fh.read(span[1] - span[0])
    for line in chunk.decode().splitlines():
        if '"tool_call"' in line:
            record = json.loads(line)
            if record.get("event") == "tool_call":
                out[record["tool"]].append(float(record["duration_ms"]) / 1000)
    return out


async def run_phase(server: RunningServer, options: Options, mode: str, session_id: str = "") -> dict[str, Any]:
    """Start the workers, wait until all are connected, release them at once; their aggregated logs, with
    the server's CPU time and its handlers' own durations (``tool_call`` log lines) over the phase."""
    processes: list[tuple[anyio.abc.Process, BufferedByteReceiveStream]] = []
    try:
        for index, count in enumerate(split(options.clients, options.workers)):
            command = [
                sys.executable,
                "-m",
                "bench.agent_throughput",
                "--worker",
                str(index),
                "--base-url",
                server.base_url,
                "--mode",
                mode,
                "--clients",
                str(count),
                "--calls",
                str(options.floor_calls),
                "--session-id",
                session_id,
                "--max-tasks",
                str(options.tasks),
                "--wait-seconds",
                str(options.wait_seconds),
            ]
            process = await anyio.open_process(command, stderr=None, cwd=REPO_ROOT)
            assert process.stdout is not None
            processes.append((process, BufferedByteReceiveStream(process.stdout)))
        with anyio.fail_after(CONNECT_TIMEOUT_SECONDS):
            for process, lines in processes:
                if await read_line(lines) != "ready":
                    raise BenchSetupError(f"a {mode} worker did not connect (exit {process.returncode})")
        log_start = server.log_path.stat().st_size
        cpu_start = server_cpu_seconds(server.pid)
        started = time.monotonic()
        for process, _ in processes:
            assert process.stdin is not None
            await process.stdin.send(b"go\n")
        outputs = []
        with anyio.fail_after(PHASE_TIMEOUT_SECONDS + STOP_TIMEOUT_SECONDS):
            for process, lines in processes:
                outputs.append(json.loads(await read_line(lines)))
                await process.wait()
        server_cpu = server_cpu_seconds(server.pid) - cpu_start
        handlers = handler_seconds(server.log_path, (log_start, server.log_path.stat().st_size))
    finally:
        for process, _ in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    clients = [c for out in outputs for c in out["clients"]]
    return {
        "started": started,
        "elapsed": max(c["finished_at"] for c in clients) - started,
        "client_cpu_seconds": sum(out["cpu_seconds"] for out in outputs),
        "server_cpu_seconds": server_cpu,
        "handlers": {tool: seconds_summary(values) for tool, values in handlers.items()},
        "clients": clients,
    }


def latency(clients: list[dict[str, Any]], tool: str) -> dict[str, float]:
    return seconds_summary([s for c in clients for s in c["latencies"][tool]])


def seconds_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"calls": 0}
    return {
        "calls": len(ms),
        "p50_ms": round(quantile(ms, 0.5), 2),
        "p95_ms": round(quantile(ms, 0.95), 2),
        "max_ms": round(max(ms), 2),
    }


def memory_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) and VmRSS of the server process, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


async def audit(url: str, session_id: str) -> dict[str, Any]:
    """From the database: each task claimed once and completed once, by its claimer, with no overlap."""
    database = create_database(url)
    try:
        async with database.engine.connect() as conn:
            statuses = Counter(
                (await conn.execute(select(Task.status).where(Task.session_id == session_id))).scalars().all()
            )
            events = (
                await conn.execute(
                    select(TaskEvent.task_id, TaskEvent.actor, TaskEvent.data)
                    .where(TaskEvent.session_id == session_id, TaskEvent.kind == "status_changed")
                    .order_by(TaskEvent.id)
                )
            ).all()
    finally:
        await database.dispose()
    claims: Counter[str] = Counter()
    completions: Counter[str] = Counter()
    holder: dict[str, str | None] = defaultdict(lambda: None)
    overlapping = completed_by_other = 0
    for task_id, actor, data in events:
        target = data.get("to")
        if target == "in_progress":
            claims[task_id] += 1
            if holder[task_id] not in (None, actor):
                overlapping += 1  # a claim taken while another agent held the task
            holder[task_id] = actor
        elif target == "completed":
            completions[task_id] += 1
            if holder[task_id] != actor:
                completed_by_other += 1
            holder[task_id] = None
    total = sum(statuses.values())
    return {
        "tasks": total,
        "statuses": dict(statuses),
        "claimed_once": sum(1 for n in claims.values() if n == 1),
        "completed_once": sum(1 for n in completions.values() if n == 1),
        "extra_claims": sum(n - 1 for n in claims.values() if n > 1),
        "extra_completions": sum(n - 1 for n in completions.values() if n > 1),
        "overlapping_claims": overlapping,
        "completed_by_non_holder": completed_by_other,
    }


async def run_backend(backend: str, options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-agents-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            seeded_at = time.perf_counter()
            session_id = await migrate_and_seed_ready(url, options.tasks)
            print(
                f"[{backend}] seeded {options.tasks} ready tasks in {time.perf_counter() - seeded_at:.1f}s",
                file=sys.stderr,
            )
            settings = await durability(url)
            async with server_process(url, workdir) as server, floor_process(workdir) as sdk_floor:
                idle = memory_mib(server.pid)
                load_before = os.getloadavg()[0]
                floor = await run_phase(sdk_floor, options, "noop")
                after_floor = memory_mib(server.pid)
                agents = await run_phase(server, options, "tasks", session_id)
                after_agents = memory_mib(server.pid)
                load_after = os.getloadavg()[0]
            checked = await audit(url, session_id)
    out = report(backend, options, floor, agents, checked, (idle, after_floor, after_agents), (load_before, load_after))
    out["durability"] = settings
    print(f"  database: {settings}", flush=True)
    return out


def report(
    backend: str,
    options: Options,
    floor: dict[str, Any],
    agents: dict[str, Any],
    checked: dict[str, Any],
    memory: tuple[dict[str, float], ...],
    load: tuple[float, float],
) -> dict[str, Any]:
    floor_calls = sum(len(c["latencies"][NOOP_TOOL]) for c in floor["clients"])
    floor_rate = floor_calls / floor["elapsed"]
    completed = [t for c in agents["clients"] for t in c["completed"]]
    claimed = [t for c in agents["clients"] for t in c["claimed"]]
    agent_calls = sum(len(c["latencies"][t]) for c in agents["clients"] for t in (NEXT_TOOL, COMPLETE_TOOL))
    claim_counts = Counter(claimed)
    client_double_claims = sum(n - 1 for n in claim_counts.values() if n > 1)
    db_double_claims = checked["extra_claims"] + checked["overlapping_claims"]
    errors = [e for c in agents["clients"] for e in c["errors"]] + [e for c in floor["clients"] for e in c["errors"]]
    out = {
        "backend": backend,
        "clients": options.clients,
        "workers": options.workers,
        "pool_size": int(os.environ[POOL_SIZE_ENV]),
        "wait_seconds": options.wait_seconds,
        "loadavg_1m": [round(load[0], 2), round(load[1], 2)],
        "floor": {
            "calls": floor_calls,
            "seconds": round(floor["elapsed"], 2),
            "calls_per_second": round(floor_rate, 1),
            "latency": latency(floor["clients"], NOOP_TOOL),
            "client_cpu_ms_per_call": round(floor["client_cpu_seconds"] * 1000 / floor_calls, 2),
            "server_cpu_ms_per_call": round(floor["server_cpu_seconds"] * 1000 / floor_calls, 2),
            "server_cpu_share": round(floor["server_cpu_seconds"] / floor["elapsed"], 2),
            "server_handler": floor["handlers"],
        },
        "agents": {
            "tasks_seeded": options.tasks,
            "tasks_completed": len(completed),
            "seconds": round(agents["elapsed"], 2),
            "tasks_per_second": round(len(completed) / agents["elapsed"], 1),
            "calls": agent_calls,
            "calls_per_second": round(agent_calls / agents["elapsed"], 1),
            "calls_per_second_over_floor": round(agent_calls / agents["elapsed"] / floor_rate, 3),
            "latency": {
                NEXT_TOOL: latency(agents["clients"], NEXT_TOOL),
                COMPLETE_TOOL: latency(agents["clients"], COMPLETE_TOOL),
            },
            "client_cpu_ms_per_call": round(agents["client_cpu_seconds"] * 1000 / max(agent_calls, 1), 2),
            "server_cpu_ms_per_task": round(agents["server_cpu_seconds"] * 1000 / max(len(completed), 1), 2),
            "server_cpu_share": round(agents["server_cpu_seconds"] / agents["elapsed"], 2),
            # Issue 14: server CPU per next + complete pair over the SDK floor server's CPU per call.
            "server_cpu_per_pair_over_floor": round(
                agents["server_cpu_seconds"] / max(len(completed), 1) / (floor["server_cpu_seconds"] / floor_calls), 2
            ),
            "server_handler": agents["handlers"],
            "busiest_agent_tasks": max(len(c["completed"]) for c in agents["clients"]),
            "idlest_agent_tasks": min(len(c["completed"]) for c in agents["clients"]),
        },
        "double_claims": {"client_view": client_double_claims, "database": db_double_claims},
        "database_audit": checked,
        "errors": {"count": len(errors), "first": errors[:5]},
        "server_memory_mib": {"idle": memory[0], "after_floor": memory[1], "after_agents": memory[2]},
    }
    print_report(out)
    return out


def print_report(out: dict[str, Any]) -> None:
    floor, agents, audit_ = out["floor"], out["agents"], out["database_audit"]
    peak = out["server_memory_mib"]["after_agents"]["VmHWM"]
    mode = f"agents wait up to {out['wait_seconds']:g} s" if out["wait_seconds"] else "polling agents"
    print(
        f"\n{out['backend']}: {out['clients']} clients in {out['workers']} processes, pool size {out['pool_size']}, "
        f"{mode}, "
        f"1-min load {out['loadavg_1m'][0]} -> {out['loadavg_1m'][1]} on {os.cpu_count()} CPUs"
    )
    print(
        f"  floor   {floor['calls']} bench_noop calls to the SDK floor in {floor['seconds']}s: "
        f"{floor['calls_per_second']} calls/s, p50 {floor['latency']['p50_ms']} ms, p95 {floor['latency']['p95_ms']} "
        f"ms; floor server CPU {floor['server_cpu_ms_per_call']} ms/call ({floor['server_cpu_share']:.0%} of a core)"
    )
    print(
        f"  agents  {agents['tasks_completed']}/{agents['tasks_seeded']} tasks in {agents['seconds']}s: "
        f"{agents['tasks_per_second']} tasks/s, {agents['calls_per_second']} calls/s = "
        f"{agents['calls_per_second_over_floor']} x floor calls/s; server CPU {agents['server_cpu_ms_per_task']} "
        f"ms/task ({agents['server_cpu_share']:.0%} of a core)"
    )
    ratio, cpu_ratio = agents["calls_per_second_over_floor"], agents["server_cpu_per_pair_over_floor"]
    print(
        f"  issue 14: agent calls/s / floor calls/s {ratio} (target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}); "
        f"server CPU per pair / floor server CPU per call {cpu_ratio} "
        f"(target <= 5: {'met' if cpu_ratio <= 5 else 'MISSED'})"
    )
    for tool, stats in agents["latency"].items():
        print(
            f"          {tool:<28} p50 {stats.get('p50_ms')} ms, p95 {stats.get('p95_ms')} ms, "
            f"max {stats.get('max_ms')} ms; handler p50 {agents['server_handler'].get(tool, {}).get('p50_ms')} "
            f"ms, p95 {agents['server_handler'].get(tool, {}).get('p95_ms')} ms"
        )
    print(
        f"  double claims: {out['double_claims']['client_view']} (clients), {out['double_claims']['database']} "
        f"(database); tasks {audit_['statuses']}, claimed once {audit_['claimed_once']}, completed once "
        f"{audit_['completed_once']}, completed by non-holder {audit_['completed_by_non_holder']}; "
        f"errors {out['errors']['count']}"
    )
    print(
        f"  server peak RSS {peak} MiB (target < {RSS_TARGET_MIB} MiB: {'met' if peak < RSS_TARGET_MIB else 'MISSED'})"
    )
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "postgresql-fsync", "both"), default="postgresql")
    parser.add_argument("--clients", type=int, default=50, help="concurrent agent clients")
    parser.add_argument("--workers", type=int, default=0, help="client processes (default: one per 10 clients)")
    parser.add_argument("--tasks", type=int, default=2000, help="ready tasks seeded and drained")
    parser.add_argument(
        "--floor-calls", type=int, default=0, help="no-op calls per client (default: 2 x tasks / clients)"
    )
    parser.add_argument(
        "--pool-size", type=int, help=f"the server's {POOL_SIZE_ENV} (default: the environment's, else 20)"
    )
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=0,
        help="agents call next_task(wait_seconds=…) and wait for work instead of polling (default 0: polling)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    # Internal: the worker processes.
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("noop", "tasks"), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--session-id", default="", help=argparse.SUPPRESS)
    parser.add_argument("--max-tasks", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and (args.clients < 1 or args.tasks < 1 or args.workers < 0 or args.floor_calls < 0):
        parser.error("--clients and --tasks must be >= 1, --workers and --floor-calls >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        anyio.run(run_worker, args)
        return 0
    if args.pool_size is not None:
        os.environ[POOL_SIZE_ENV] = str(args.pool_size)
    os.environ.setdefault(POOL_SIZE_ENV, DEFAULT_POOL_SIZE)  # the server subprocess inherits it
    workers = args.workers or min(args.clients, math.ceil(args.clients / 10))
    floor_calls = args.floor_calls or max(1, math.ceil(2 * args.tasks / args.clients))
    options = Options(args.clients, workers, args.tasks, floor_calls, args.wait_seconds)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    runs = []
    try:
        for backend in backends:
            runs.append(anyio.run(run_backend, backend, options))
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        write_results(args.json, "bench.agent_throughput", argv, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
