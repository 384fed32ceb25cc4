"""Fairness: another agent's p50 while one actor floods the service, divided by its p50 alone (DESIGN §7).

For each backend the run makes a fresh database, migrates it and seeds one session of ``--tasks`` tasks,
starts the real app in its own process (``bench.serve_app``, default settings unless ``--limits off``)
and then:

1. **Alone**: the *calm* agent (its own ``agent`` name, one call at a time, as an LLM agent calls)
   calls ``orchestrator_query_tasks`` (``limit=20``) ``--calls`` times after a warm-up: its p50 alone.
2. **Flooded**: a separate *flood* process (``--flood``, internal) opens ``--concurrency`` calls at once,
   all as one actor (agent ``flood``), each looping the same ``orchestrator_query_tasks`` (or, with
   ``--flood-tool plan``, ``orchestrator_plan_task``) as fast as the answers come, ignoring refusals: a
   runaway loop. Once it has made its first calls, the calm agent repeats
   its ``--calls`` calls: its p50 under the flood. Then the flood stops and reports what it got.

The figure is ``p50 flooded / p50 alone`` (target ≤ 2). The flood's outcomes (ok, ``rate_limited``,
other) show the fair share at work. ``--limits off`` runs the same with the per-actor limits set out of
reach, for contrast. Nothing here fails on a time.

    python -m bench.fairness --backend sqlite --calls 300 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench.results import write_results
from bench.seeding import BenchSetupError, fresh_database, migrate_and_seed_ready
from bench.servers import NO_ACTOR_LIMITS, REPO_ROOT, server_process
from bench.tool_latency import summarise

QUERY_TOOL = "orchestrator_query_tasks"
PLAN_TOOL = "orchestrator_plan_task"
CALM_AGENT = "calm"
# The calm agent starts a call at most every 0.1 s: ten a minute's worth of LLM turns a second, half the
# default rate limit (1,200 a minute). Unpaced, on a quiet machine it would itself be a runaway loop.
CALM_INTERVAL_SECONDS = 0.1
FLOOD_AGENT = "flood"
ERA = "2026-07-28"
FLOOD_START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
TARGET_RATIO = 2.0


# ------------------------------------------------------------------------------------------------ flood


def flood_call(tool: str, session_id: str, n: int, i: int) -> tuple[str, dict[str, Any]]:
    if tool == "plan":
        title = f"flood {n}-{i}"
        return PLAN_TOOL, {
            "title": title,
            "description": "A runaway loop's task.",
            "agent": FLOOD_AGENT,
            "session_id": session_id,
        }
    return QUERY_TOOL, {"session_id": session_id, "agent": FLOOD_AGENT, "limit": 20}


async def run_flood(url: str, session_id: str, concurrency: int, tool: str) -> None:
    """The runaway actor: ``concurrency`` loops of one tool until stdin closes; outcomes to stdout."""
    outcomes: Counter[str] = Counter()
    started = False
    async with Client(url, mode=ERA) as client, anyio.create_task_group() as group:

        async def loop(n: int) -> None:
            nonlocal started
            i = 0
            while True:
                i += 1
                try:
                    result = await client.call_tool(*flood_call(tool, session_id, n, i))
                except Exception as exc:  # a runaway loop carries on whatever happens; counted, not fatal
                    outcomes[f"raised {type(exc).__name__}"] += 1
                    continue
                body = result.structured_content or {}
                outcomes[body["error"]["code"] if result.is_error else "ok"] += 1
                if not started:
                    started = True
                    print("started", flush=True)

        for n in range(concurrency):
            group.start_soon(loop, n)
        await anyio.to_thread.run_sync(sys.stdin.read)  # the main process closes stdin to stop the flood
        group.cancel_scope.cancel()
    print(json.dumps(dict(outcomes)), flush=True)


# ------------------------------------------------------------------------------------------------- calm


async def calm_calls(client: Client, session_id: str, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        result = await client.call_tool(QUERY_TOOL, {"session_id": session_id, "agent": CALM_AGENT, "limit": 20})
        seconds.append(time.perf_counter() - started)
        await anyio.sleep(max(0.0, CALM_INTERVAL_SECONDS - seconds[-1]))
        if result.is_error or len((result.structured_content or {}).get("tasks", [])) != 20:
            raise AssertionError(f"{QUERY_TOOL} failed for the calm agent: {result.structured_content}")
    return seconds


async def flooded(url: str, session_id: str, options: argparse.Namespace, measure: Any) -> tuple[Any, dict[str, int]]:
    """Run ``measure()`` while a flood process hammers ``url``; its result and the flood's outcomes."""
    flood = [url, session_id, str(options.concurrency), options.flood_tool]
    process = await anyio.open_process(
        [sys.executable, "-m", "bench.fairness", "--flood", *flood],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stderr=subprocess.DEVNULL,  # a pipe nobody reads would stall the flood once full
    )
    assert process.stdin is not None
    assert process.stdout is not None
    output = b""
    try:
        with anyio.fail_after(FLOOD_START_TIMEOUT_SECONDS):
            while b"started" not in output:
                output += await process.stdout.receive()
        measured = await measure()
    finally:
        await process.stdin.aclose()
        with anyio.move_on_after(STOP_TIMEOUT_SECONDS) as scope:
            async for chunk in process.stdout:
                output += chunk
            await process.wait()
        if scope.cancelled_caught:
            process.kill()
            await process.wait()
    last = output.decode().strip().splitlines()[-1]
    return measured, json.loads(last) if last.startswith("{") else {}


async def run_backend(backend: str, options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-fair-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            session_id = await migrate_and_seed_ready(url, options.tasks)
            async with server_process(url, workdir) as server:
                mcp_url = f"{server.base_url}/mcp"
                async with Client(mcp_url, mode=ERA) as calm:
                    await calm_calls(calm, session_id, options.warmup)
                    alone = await calm_calls(calm, session_id, options.calls)
                    during, flood = await flooded(
                        mcp_url, session_id, options, lambda: calm_calls(calm, session_id, options.calls)
                    )
    report = {
        "backend": backend,
        "limits": options.limits,
        "flood_tool": options.flood_tool,
        "concurrency": options.concurrency,
        "alone": summarise(alone),
        "flooded": summarise(during),
        "flood_outcomes": flood,
    }
    report["p50_ratio"] = round(report["flooded"]["p50_ms"] / report["alone"]["p50_ms"], 2)
    report["p95_ratio"] = round(report["flooded"]["p95_ms"] / report["alone"]["p95_ms"], 2)
    print(
        f"[{backend}, limits {options.limits}, flood of {options.flood_tool}] "
        f"calm p50 alone {report['alone']['p50_ms']:.2f} ms, "
        f"flooded {report['flooded']['p50_ms']:.2f} ms: ratio {report['p50_ratio']:.2f} (target <= {TARGET_RATIO:g}); "
        f"p95 {report['alone']['p95_ms']:.2f} -> {report['flooded']['p95_ms']:.2f} ms; flood got {flood}"
    )
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--calls", type=int, default=300, help="measured calm calls, alone and flooded")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured calm calls first")
    parser.add_argument("--concurrency", type=int, default=32, help="the flood's calls at once")
    parser.add_argument("--tasks", type=int, default=200, help="tasks seeded in the session the calm agent reads")
    parser.add_argument("--flood-tool", choices=["query", "plan"], default="query", help="what the flood calls")
    parser.add_argument("--limits", choices=["on", "off"], default="on", help="off: per-actor limits out of reach")
    parser.add_argument("--json", type=Path, help="also write the numbers, the command and the machine here")
    parser.add_argument("--flood", nargs=4, metavar=("URL", "SESSION", "CONCURRENCY", "TOOL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flood is None and (args.calls < 1 or args.warmup < 0 or args.concurrency < 1 or args.tasks < 20):
        parser.error("--calls and --concurrency must be >= 1, --warmup >= 0, --tasks >= 20")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.flood is not None:
        url, session_id, concurrency, tool = args.flood
        anyio.run(run_flood, url, session_id, int(concurrency), tool)
        return 0
    if args.limits == "off":
        os.environ.update(NO_ACTOR_LIMITS)  # the server process inherits them
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    runs = []
    try:
        for backend in backends:
            runs.append(anyio.run(run_backend, backend, args))
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        write_results(args.json, "bench.fairness", argv, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
