"""Where the server's CPU goes for one call of each figure: the share of each layer, sampled with py-spy.

The tool_latency figures say how far each call is from the SDK floor; this says which layer of the server
the distance is in, so a target can be judged reachable or not before anyone optimises. For each backend
the run makes the same fresh, seeded database as ``bench.tool_latency`` (10,000 tasks in the queried
session), starts the real app (``bench.serve_app``), and for each figure makes ``--calls`` calls one at a
time with the real ``mcp`` client while ``py-spy record --format raw`` samples the server (``pip install
py-spy``; it needs permission to read the server's memory, as root or with ptrace allowed). It reads the
server's CPU over the same calls from /proc and splits it by the layers of ``LAYERS``: each sampled stack
counts for the first layer one of whose markers it contains, so a service's statement counts as the
service's even though it runs under the SDK's handler. SQLAlchemy's own work runs in greenlets whose
stacks do not show the service that called it, so it is matched by its package; SQLite's work runs in
aiosqlite's thread and counts as the driver's. The event loop's own share includes the socket work of
the database round trips (uvloop does it in C, under no Python frame of the caller).

    python -m bench.layer_split --backend postgresql-fsync --calls 300

Figures: ``noop`` (the in-service ``bench_noop``), ``plan``, ``query``, ``status``, ``pair`` (next_task +
complete_task; its milliseconds are per pair). A measurement, not a test: nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench.results import write_results
from bench.seeding import durability, fresh_database, migrate_and_seed, parse_backends
from bench.servers import NO_ACTOR_LIMITS, loadavg, server_process, thread_cpu_seconds
from bench.tool_latency import BY_KEY, ERAS, Workload, query_view, sampling_profile

WARMUP_CALLS = 20
SAMPLE_RATE_HZ = 1000


@dataclass(frozen=True)
class Layer:
    name: str
    markers: tuple[str, ...]  # substrings of a py-spy frame ("function (path:line)"); any one matches


# Order matters: the first layer with a marker anywhere in a stack takes the sample.
LAYERS = (
    Layer("services: app/services, app/db and the SQLAlchemy they run", ("(app/services/", "(app/db/", "sqlalchemy/")),
    Layer("SDK: the tool's result converted (text copy, dump)", ("FuncMetadata.convert_result",)),
    # Only what runs inside the call: app/tools also has middleware around the SDK's whole dispatch.
    Layer("tool edge: ours and the SDK's argument validation", ("OrchestratorMCP.call_tool",)),
    Layer(
        "SDK: the answer re-validated, serialised and sent",
        ("ServerRunner._serialize", "_write (mcp/server/_streamable_http_modern"),
    ),
    Layer("SDK: the request parsed and dispatched", ("handle_modern_request", "StreamableHTTPSessionManager")),
    Layer("HTTP: Starlette and the service's middleware", ("Starlette.__call__", "Router.app", "(app/http/")),
    # SQLite runs in aiosqlite's worker thread: on that backend this layer is the database engine itself.
    Layer("database driver: asyncpg's replies; SQLite in its thread", ("asyncpg/", "aiosqlite/")),
    Layer("uvicorn, the event loop and the rest", ("",)),
)
FIGURE_KEYS = ("noop", "plan", "query", "status", "pair")


def layer_of(stack: str) -> str:
    """The layer a sampled stack (frames joined by ``;``) counts for."""
    for layer in LAYERS:
        if any(marker in stack for marker in layer.markers):
            return layer.name
    raise AssertionError("the last layer matches every stack")


def split(raw_lines: Iterable[str]) -> dict[str, float]:
    """Each layer's share (0 to 1) of the samples in py-spy's raw format (``frame;frame;… count`` per line)."""
    counts: Counter[str] = Counter()
    for line in raw_lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            counts[layer_of(stack)] += int(count)
    total = sum(counts.values())
    return {layer.name: (counts[layer.name] / total if total else 0.0) for layer in LAYERS}


async def sampled(pid: int, output: Path, calls: int, run: Any) -> float:
    """``calls`` awaited ``run()`` calls while py-spy samples ``pid`` into ``output``; the server's CPU ms per call."""
    async with sampling_profile(pid, output, file_format="raw", rate_hz=SAMPLE_RATE_HZ):
        cpu = thread_cpu_seconds(pid)
        for _ in range(calls):
            await run()
        return (thread_cpu_seconds(pid) - cpu) / calls * 1000


async def run_backend(backend: str, figures: list[str], calls: int, era: str, raw_dir: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"layers-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            settings = await durability(url)
            ready = (calls + WARMUP_CALLS) * figures.count("pair") + 10
            seeded = await migrate_and_seed(url, 10_000, ready_count=ready)
            out: dict[str, Any] = {"backend": backend, "durability": settings, "era": era, "figures": {}}
            load_before = loadavg()
            async with (
                server_process(url, workdir, NO_ACTOR_LIMITS) as service,
                Client(f"{service.base_url}/mcp", mode=ERAS[era]) as client,
            ):
                workload = Workload(seeded)
                workload.query_view = query_view(await client.list_tools(cache_mode="bypass"))
                for key in figures:
                    figure = BY_KEY[key]

                    async def run(figure: Any = figure) -> Any:
                        return await workload.run(figure, client)

                    for _ in range(WARMUP_CALLS):
                        await run()
                    raw = (raw_dir or workdir) / f"{backend}-{era}-{key}.raw"
                    raw.parent.mkdir(parents=True, exist_ok=True)
                    cpu_ms = await sampled(service.pid, raw, calls, run)
                    shares = split(raw.read_text().splitlines())
                    out["figures"][key] = {
                        "server_cpu_ms": round(cpu_ms, 3),
                        "layers": {name: round(share, 4) for name, share in shares.items()},
                    }
            out["loadavg"] = [[round(x, 2) for x in load_before], [round(x, 2) for x in loadavg()]]
            print_split(out)
            return out


def print_split(run: dict[str, Any]) -> None:
    figures = run["figures"]
    print(
        f"\n{run['backend']} ({', '.join(f'{k} {v}' for k, v in run['durability'].items() if k != 'backend')}), "
        f"era {run['era']}; load {run['loadavg'][0]} -> {run['loadavg'][1]}"
    )
    print("server CPU ms per call (per pair for pair), then each layer's share and its ms:")
    print(f"{'layer':58}" + "".join(f"{key:>16}" for key in figures))
    print(f"{'server CPU (ms)':58}" + "".join(f"{figures[k]['server_cpu_ms']:16.2f}" for k in figures))
    for layer in LAYERS:
        cells = ""
        for key in figures:
            share = figures[key]["layers"][layer.name]
            cells += f"{share * 100:8.1f}%{share * figures[key]['server_cpu_ms']:7.2f}"
        print(f"{layer.name[:58]:58}{cells}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.layer_split", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="postgresql-fsync", help="sqlite, postgresql, postgresql-fsync, both, all")
    parser.add_argument("--figures", default=",".join(FIGURE_KEYS), help="comma list of: " + ", ".join(FIGURE_KEYS))
    parser.add_argument("--calls", type=int, default=300, help="sampled calls per figure (pairs for pair)")
    parser.add_argument("--era", default="2026-07-28", choices=sorted(ERAS), help="the protocol era of the client")
    parser.add_argument("--raw-dir", type=Path, help="keep py-spy's raw stacks here (one file per figure)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = [f for f in figures if f not in FIGURE_KEYS]
    if unknown or not figures:
        parser.error(f"--figures: unknown {unknown} (allowed: {', '.join(FIGURE_KEYS)})")
    if not 1 <= args.calls <= 10_000:
        parser.error(f"--calls must be 1-10000, got {args.calls}")
    args.figure_list = figures
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = [
        anyio.run(run_backend, backend, args.figure_list, args.calls, args.era, args.raw_dir)
        for backend in parse_backends(args.backend, both=("sqlite", "postgresql"))
    ]
    if args.json:
        write_results(args.json, "bench.layer_split", argv, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
