"""Waiting for work (DESIGN §4.7): how fast a waiter wakes across replicas, and what idle waiters cost.

Two parts, on PostgreSQL (the only backend with replicas):

1. **Wake latency across replicas.** Two server processes (``bench.serve_app``) on one fresh database.
   Each round, one agent on replica A calls ``orchestrator_next_task(wait_seconds=30)``; once A reports the
   waiter parked (``orchestrator_task_waiters`` on its ``/metrics``), a planner on replica B calls
   ``orchestrator_plan_task``. Measured per round: *commit → claim*, from B's answer (the commit is done,
   and its NOTIFY went out with it) to A's answer with the claimed task; and *plan sent → claim*,
   from the moment the plan call left (an upper bound that includes B's whole call). Against the floor
   of DESIGN §12 in the same run — the SDK's own no-op server (``bench.sdk_floor``) in a process of its
   own, called through a client of its own so that it never follows a heavy answer on the same client —
   with, as context, ``bench_noop`` inside replica A (its own client too) and a claim without waiting
   (``next_task`` on A when a task is already ready), which is the least a claim costs. A's own
   ``orchestrator_wake_latency_seconds`` histogram (commit on B → waiter woken on A, from the payload's
   timestamp) is reported too.
2. **Idle waiters.** ``--idle-agents`` agents wait on replica A for ``--idle-seconds``; over that window:
   A's CPU time (``/proc/<pid>/stat``), the database's transactions (``pg_stat_database``
   ``xact_commit + xact_rollback``) against the same window with no agents (the monitors' own baseline),
   and A's waiter wake-ups by cause (each one is a claim transaction; none is the target while idle).

    python -m bench.wake_latency --backend postgresql-fsync --rounds 200 --idle-agents 50 --idle-seconds 60

``--backend postgresql`` (the default) is the test cluster (``fsync`` off); ``postgresql-fsync`` a
throwaway cluster with ``fsync`` on, as production runs it (``bench.seeding``).

Nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx2
from mcp import Client

from bench.agent_throughput import server_cpu_seconds
from bench.results import write_results
from bench.sdk_floor import NOOP_TOOL as FLOOR_TOOL
from bench.seeding import BenchSetupError, _plain_dsn, durability, fresh_database, migrate_and_seed_ready
from bench.serve_app import NOOP_TOOL
from bench.servers import NO_ACTOR_LIMITS, floor_process, server_process
from bench.tool_latency import RunningServer, quantile

ERA = "2026-07-28"
NEXT_TOOL = "orchestrator_next_task"
PLAN_TOOL = "orchestrator_plan_task"
WAIT_SECONDS = 30
BOUND_SECONDS = 60.0
STATS_FLUSH_SECONDS = 11.0  # PostgreSQL 15 flushes an idle backend's statistics within 10 s
WAITERS_LINE = re.compile(r"^orchestrator_task_waiters (\S+)$", re.MULTILINE)
WAKE_SUM = re.compile(r"^orchestrator_wake_latency_seconds_(sum|count) (\S+)$", re.MULTILINE)
WAKEUPS = re.compile(r'^orchestrator_waiter_wakeups_total\{cause="([^"]+)"\} (\S+)$', re.MULTILINE)
WAKE_BUCKET = re.compile(r'^orchestrator_wake_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.MULTILINE)


def ms(values: list[float]) -> dict[str, float]:
    scaled = [v * 1000 for v in values]
    return {"n": len(scaled), "p50_ms": round(quantile(scaled, 0.5), 2), "p95_ms": round(quantile(scaled, 0.95), 2)}


async def metrics_text(http: httpx2.AsyncClient, server: RunningServer) -> str:
    return (await http.get(f"{server.base_url}/metrics")).text


async def parked(http: httpx2.AsyncClient, server: RunningServer, count: int) -> None:
    """Wait (bounded) until ``server`` reports ``count`` waiters."""
    with anyio.fail_after(BOUND_SECONDS):
        while True:
            found = WAITERS_LINE.search(await metrics_text(http, server))
            if found and float(found.group(1)) == count:
                return
            await anyio.sleep(0.002)


async def wakeups(http: httpx2.AsyncClient, server: RunningServer) -> dict[str, float]:
    """``server``'s waiter wake-ups so far, by cause (``signal``, ``interval``, ``reconnect``, ``draining``)."""
    return {m.group(1): float(m.group(2)) for m in WAKEUPS.finditer(await metrics_text(http, server))}


def wake_histogram(text: str) -> dict[str, Any]:
    """p50/p95 (bucket upper bounds) and mean of A's own commit → wake histogram."""
    sums = {m.group(1): float(m.group(2)) for m in WAKE_SUM.finditer(text)}
    buckets = [(float(m.group(1)), float(m.group(2))) for m in WAKE_BUCKET.finditer(text)]
    count = sums.get("count", 0.0)
    out: dict[str, Any] = {"count": count, "mean_ms": round(sums.get("sum", 0.0) / count * 1000, 2) if count else None}
    for q in (0.5, 0.95):
        bound = next((le for le, n in buckets if count and n >= q * count), None)
        out[f"p{int(q * 100)}_le_ms"] = bound * 1000 if bound is not None else None
    return out


async def plan(c: Client, session_id: str, n: int) -> dict[str, Any]:
    result = await c.call_tool(
        PLAN_TOOL, {"session_id": session_id, "title": f"Wake {n}", "description": "Wake a waiter.", "agent": "b"}
    )
    if result.is_error or result.structured_content is None:
        raise AssertionError(f"plan failed: {result.structured_content}")
    return dict(result.structured_content["task"])


async def next_task(c: Client, session_id: str, wait: float) -> dict[str, Any]:
    result = await c.call_tool(NEXT_TOOL, {"session_id": session_id, "agent": "a", "wait_seconds": wait})
    if result.is_error or result.structured_content is None:
        raise AssertionError(f"next_task failed: {result.structured_content}")
    return dict(result.structured_content)


async def timed_noop(client: Client, tool: str) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, {"text": "ping"})
    elapsed = time.perf_counter() - started
    if result.structured_content != {"echo": "ping"}:
        raise AssertionError(f"{tool} answered {result.structured_content}")
    return elapsed


async def wake_rounds(
    a: RunningServer, b: RunningServer, sdk_floor: RunningServer, session_id: str, rounds: int
) -> dict[str, Any]:
    floor: list[float] = []
    in_service: list[float] = []
    claim_ready: list[float] = []
    commit_to_claim: list[float] = []
    sent_to_claim: list[float] = []
    plan_call: list[float] = []
    async with (
        Client(f"{sdk_floor.base_url}/mcp", mode=ERA) as cf,
        Client(f"{a.base_url}/mcp", mode=ERA) as cn,
        Client(f"{a.base_url}/mcp", mode=ERA) as ca,
        Client(f"{b.base_url}/mcp", mode=ERA) as cb,
        httpx2.AsyncClient() as http,
    ):
        for n in range(rounds + 10):  # the first 10 rounds warm up
            # Each no-op on a client of its own: a call right after a heavy answer on the same client
            # costs more (issue 14), which would make the floor look slower and every ratio better.
            sdk = await timed_noop(cf, FLOOR_TOOL)
            noop = await timed_noop(cn, NOOP_TOOL)
            # A claim that needs no waiting: the least any claim costs (task planned beforehand on B).
            await plan(cb, session_id, n)
            started = time.perf_counter()
            ready = await next_task(ca, session_id, 0)
            direct = time.perf_counter() - started
            assert ready["task"] is not None
            # The measured round: park a waiter on A, then plan through B.
            claimed: dict[str, Any] = {}
            done_at = [0.0]
            async with anyio.create_task_group() as group:

                async def wait(claimed: dict[str, Any] = claimed, done_at: list[float] = done_at) -> None:
                    claimed.update(await next_task(ca, session_id, WAIT_SECONDS))
                    done_at[0] = time.perf_counter()

                group.start_soon(wait)
                await parked(http, a, 1)
                sent = time.perf_counter()
                task = await plan(cb, session_id, n)
                answered = time.perf_counter()
            if claimed.get("task", {}).get("id") != task["id"]:
                raise AssertionError(f"round {n}: the waiter got {claimed} instead of {task['id']}")
            if n >= 10:
                floor.append(sdk)
                in_service.append(noop)
                claim_ready.append(direct)
                plan_call.append(answered - sent)
                commit_to_claim.append(done_at[0] - answered)
                sent_to_claim.append(done_at[0] - sent)
        server_side = wake_histogram(await metrics_text(http, a))
    out = {
        "floor": ms(floor),
        "in_service_noop": ms(in_service),
        "claim_without_waiting": ms(claim_ready),
        "plan_call_on_b": ms(plan_call),
        "commit_to_claim": ms(commit_to_claim),
        "plan_sent_to_claim": ms(sent_to_claim),
        "server_commit_to_wake": server_side,
    }
    p50 = out["commit_to_claim"]["p50_ms"]
    out["commit_to_claim_over_floor_p50"] = round(p50 / out["floor"]["p50_ms"], 2)
    out["commit_to_claim_over_in_service_noop_p50"] = round(p50 / out["in_service_noop"]["p50_ms"], 2)
    out["claim_without_waiting_over_floor_p50"] = round(
        out["claim_without_waiting"]["p50_ms"] / out["floor"]["p50_ms"], 2
    )
    return out


async def database_transactions(admin_dsn: str, name: str) -> int:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", name)
        return int(value)
    finally:
        await conn.close()


async def window(server: RunningServer, admin_dsn: str, name: str, seconds: float) -> dict[str, float]:
    """Server CPU and database transactions over ``seconds`` of wall time.

    PostgreSQL publishes an idle backend's counters up to ``STATS_FLUSH_SECONDS`` late, so the window is
    framed by that much quiet on both sides: what came before has been published when it starts, what
    happened inside has been published when it is read (the probe itself connects to another database).
    """
    await anyio.sleep(STATS_FLUSH_SECONDS)
    xacts = await database_transactions(admin_dsn, name)
    cpu = server_cpu_seconds(server.pid)
    await anyio.sleep(seconds)
    cpu = server_cpu_seconds(server.pid) - cpu
    await anyio.sleep(STATS_FLUSH_SECONDS)
    xacts = await database_transactions(admin_dsn, name) - xacts
    return {
        "seconds": seconds,
        "server_cpu_seconds": round(cpu, 3),
        "cpu_share_of_a_core": round(cpu / seconds, 4),
        "database_transactions": xacts,
    }


async def idle_waiters(
    server: RunningServer, session_id: str, agents: int, seconds: float, admin_dsn: str, name: str
) -> dict[str, Any]:
    baseline = await window(server, admin_dsn, name, seconds)
    async with AsyncExitStack() as stack, httpx2.AsyncClient() as http:
        clients = [await stack.enter_async_context(Client(f"{server.base_url}/mcp", mode=ERA)) for _ in range(agents)]
        answers: list[dict[str, Any]] = []
        async with anyio.create_task_group() as group:
            for n, c in enumerate(clients):

                async def wait(c: Client = c, n: int = n) -> None:
                    result = await c.call_tool(
                        NEXT_TOOL,
                        {
                            "session_id": session_id,
                            "agent": f"idle-{n}",
                            "wait_seconds": seconds + 3 * STATS_FLUSH_SECONDS,
                        },
                    )
                    answers.append(dict(result.structured_content or {}))

                group.start_soon(wait)
            await parked(http, server, agents)
            woken = await wakeups(http, server)
            waiting: dict[str, Any] = dict(await window(server, admin_dsn, name, seconds))
            after = await wakeups(http, server)
            # What the waiters did meanwhile: each wake-up is one claim transaction (a re-check or a signal).
            waiting["waiter_wakeups"] = {k: v - woken.get(k, 0.0) for k, v in after.items() if v - woken.get(k, 0.0)}
            group.cancel_scope.cancel()  # the waits would end by themselves a little later
    return {
        "agents": agents,
        "no_waiters": baseline,
        "waiters": waiting,
        "extra_transactions": waiting["database_transactions"] - baseline["database_transactions"],
    }


@asynccontextmanager
async def two_replicas(url: str, workdir: Path) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    (workdir / "a").mkdir()
    (workdir / "b").mkdir()
    # One measuring client calls as agent "a" about a hundred times a second on a quiet machine: the fair
    # share would refuse it, and it is not what this measures.
    async with (
        server_process(url, workdir / "a", NO_ACTOR_LIMITS) as a,
        server_process(url, workdir / "b", NO_ACTOR_LIMITS) as b,
    ):
        yield a, b


async def run(options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-wake-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(options.backend, workdir) as url:
            settings = await durability(url)
            session_id = await migrate_and_seed_ready(url, 0)
            name = url.rsplit("/", 1)[1]
            load = [os.getloadavg()[0]]
            async with two_replicas(url, workdir) as (a, b), floor_process(workdir) as sdk_floor:
                wake = await wake_rounds(a, b, sdk_floor, session_id, options.rounds)
                load.append(os.getloadavg()[0])
                idle = await idle_waiters(
                    a, session_id, options.idle_agents, options.idle_seconds, _plain_dsn(url, "postgres"), name
                )
                load.append(os.getloadavg()[0])
    out = {
        "backend": options.backend,
        "durability": settings,
        "wake_latency": wake,
        "idle": idle,
        "loadavg_1m": [round(x, 2) for x in load],
    }
    print_report(out)
    return out


def print_report(out: dict[str, Any]) -> None:
    w, idle = out["wake_latency"], out["idle"]
    print(
        f"\nwake latency across replicas ({w['floor']['n']} rounds, {out['backend']} {out['durability']}, "
        f"1-min load {out['loadavg_1m']}):"
    )
    keys = ("floor", "in_service_noop", "claim_without_waiting", "plan_call_on_b", "commit_to_claim")
    for key in (*keys, "plan_sent_to_claim"):
        print(f"  {key:<24} p50 {w[key]['p50_ms']:>7} ms   p95 {w[key]['p95_ms']:>7} ms")
    print(f"  commit_to_claim p50 / SDK floor p50 = {w['commit_to_claim_over_floor_p50']} (target <= 2)")
    print(f"  commit_to_claim p50 / in-service no-op p50 = {w['commit_to_claim_over_in_service_noop_p50']}")
    print(f"  claim without waiting p50 / SDK floor p50 = {w['claim_without_waiting_over_floor_p50']}")
    print(f"  server-side commit on B -> waiter woken on A: {w['server_commit_to_wake']}")
    print(f"idle: {idle['agents']} agents waiting {idle['waiters']['seconds']} s on one replica:")
    print(f"  no waiters : {idle['no_waiters']}")
    print(f"  waiters    : {idle['waiters']}")
    print(f"  database transactions caused by the waiters: {idle['extra_transactions']}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wake_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        choices=("postgresql", "postgresql-fsync"),
        default="postgresql",
        help="the test cluster (fsync off) or a throwaway cluster with fsync on",
    )
    parser.add_argument("--rounds", type=int, default=200, help="measured wake rounds (after 10 warm-up rounds)")
    parser.add_argument("--idle-agents", type=int, default=50, help="agents waiting in the idle part")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="length of each idle window")
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args(argv)
    try:
        result = anyio.run(run, options)
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if options.json is not None:
        write_results(options.json, "bench.wake_latency", argv, [result])
    return 0


if __name__ == "__main__":
    sys.exit(main())
