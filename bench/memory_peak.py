"""Memory benchmark: the server's peak RSS during five concurrent maximum-size writes and their read-back.

Issue 12 measured five 4 MB bodies at once taking the server from 114 to 1,231 MiB, and their read-back to
1,667 MiB. This runs the server in its own process (``bench.serve_app``, as the other benchmarks do) and
reports ``VmHWM - idle VmRSS`` (``/proc/<pid>/status``) for:

- **legal** (the target, ≤ 100 MiB): five clients at once, each ``orchestrator_update_task`` with a context
  at ``ORCHESTRATOR_MAX_CONTEXT_BYTES`` in its most memory-hungry legal shape (arrays of small objects, 16
  levels allowed), then ``orchestrator_complete_task`` with a ``detailed_work`` at
  ``ORCHESTRATOR_MAX_ARTIFACT_BYTES`` (multi-byte text with quotes and newlines) and 500 file paths; then
  the read-back: five concurrent ``orchestrator_query_tasks(parent_task_id, include_artifacts=true)``, each
  returning one written task with its context and artifact.
- **hostile** (reported, no target): five bodies at once of the issue's shape
  ``{"context": {"a": [{}, {}, …]}}`` as large as the request body limit admits; each is refused.

    python -m bench.memory_peak --backend both --json bench/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client

from app.db import schema
from app.db.engine import create_database
from app.settings import Settings
from bench.agent_throughput import memory_mib
from bench.results import write_results
from bench.seeding import BenchSetupError, fresh_database
from bench.tool_latency import RunningServer, server_process

CLIENTS = 5
TARGET_MIB = 100.0
AGENT = "bench-memory"
PATHS = 500


def max_context(max_bytes: int) -> dict[str, Any]:
    """A legal context just under ``max_bytes``: arrays of small objects, the shape that costs Python the
    most memory per byte."""
    item = {"k": 1}
    per_item = len(json.dumps(item, separators=(",", ":"))) + 1
    count = (max_bytes - 64) // per_item
    return {"items": [dict(item) for _ in range(count)]}


def max_detailed_work(max_bytes: int) -> str:
    """Text of exactly ``max_bytes`` UTF-8 bytes: code-like lines with quotes, newlines and multi-byte text."""
    line = 'print("héllo wörld — ünïcode ✓")\n'
    text = line * (max_bytes // len(line.encode()) + 1)
    data = text.encode()[:max_bytes]
    return data.decode("utf-8", "ignore")


async def call_ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        raise BenchSetupError(f"{tool} failed: {str(result.structured_content)[:300]}")
    return dict(result.structured_content)


async def legal_run(server: RunningServer, settings: Settings) -> dict[str, Any]:
    url = f"{server.base_url}/mcp"
    context = max_context(settings.max_context_bytes)
    work = max_detailed_work(settings.max_artifact_bytes)
    paths = [f"src/module_{i:03d}/" + "p" * 900 + ".py" for i in range(PATHS)]
    async with Client(url, mode="2026-07-28") as c:
        opened = await call_ok(c, "orchestrator_initialize_session", {"working_directory": "/bench/m", "agent": AGENT})
        sid = opened["session"]["id"]
        tasks = []  # (parent, child): each write goes to a child, read back through its parent
        for i in range(CLIENTS):
            arguments = {"title": f"p{i}", "description": "d", "subtasks": [{"title": f"t{i}", "description": "d"}]}
            planned = await call_ok(c, "orchestrator_plan_task", {**arguments, "agent": AGENT})
            tasks.append((planned["task"]["id"], planned["created"][1]["id"]))
        # Warm every path once with small values, so the idle figure includes what first use allocates.
        await call_ok(c, "orchestrator_query_tasks", {"session_id": sid, "include_artifacts": True, "agent": AGENT})
    idle = memory_mib(server.pid)
    sizes: list[int] = []

    async def writer(task_id: str) -> None:  # one maximum-size context, then one maximum-size artifact
        async with Client(url, mode="2026-07-28") as c:
            await call_ok(c, "orchestrator_update_task", {"task_id": task_id, "context": context, "agent": AGENT})
            await call_ok(
                c,
                "orchestrator_complete_task",
                {
                    "task_id": task_id,
                    "summary": "Done.",
                    "detailed_work": work,
                    "next_action": "complete",
                    "file_paths": paths,
                    "agent": AGENT,
                },
            )

    async def reader(parent_id: str) -> None:  # the written task, its context and its artifact
        async with Client(url, mode="2026-07-28") as c:
            arguments = {"session_id": sid, "parent_task_id": parent_id, "include_artifacts": True, "agent": AGENT}
            page = await call_ok(c, "orchestrator_query_tasks", arguments)
            sizes.append(len(json.dumps(page)))
            [task] = page["tasks"]
            if len(task["context"]["items"]) != len(context["items"]) or task["artifacts"][0]["content"] != work:
                raise BenchSetupError("the read-back did not return what was written")

    async with anyio.create_task_group() as group:
        for _, task_id in tasks:
            group.start_soon(writer, task_id)
    after_writes = memory_mib(server.pid)
    async with anyio.create_task_group() as group:
        for parent_id, _ in tasks:
            group.start_soon(reader, parent_id)
    after_reads = memory_mib(server.pid)
    return {
        "idle": idle,
        "after_writes": after_writes,
        "after_reads": after_reads,
        "peak_minus_idle_mib": round(after_reads["VmHWM"] - idle["VmRSS"], 1),
        "context_bytes": len(json.dumps(context, separators=(",", ":")).encode()),
        "detailed_work_bytes": len(work.encode()),
        "read_back_json_bytes": max(sizes),
    }


async def hostile_run(server: RunningServer, settings: Settings) -> dict[str, Any]:
    """Five bodies of ``{"context": {"a": [{}, {}, …]}}`` at the body limit, sent at once (raw JSON-RPC)."""
    limit = settings.request_body_limit
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "bench-memory", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    head = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":' + json.dumps(meta).encode()
    head += b',"name":"orchestrator_plan_task","arguments":{"title":"t","description":"d","agent":"'
    head += AGENT.encode() + b'","context":{"a":['
    tail = b"{}]}}}}"
    body = head + b"{}," * ((limit - len(head) - len(tail)) // 3) + tail
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "orchestrator_plan_task",
    }
    idle = memory_mib(server.pid)
    answers: list[str] = []

    async def send() -> None:
        async with httpx2.AsyncClient(timeout=120) as http:
            response = await http.post(f"{server.base_url}/mcp", content=body, headers=headers)
            answers.append(f"{response.status_code} {response.text[:160]}")

    async with anyio.create_task_group() as group:
        for _ in range(CLIENTS):
            group.start_soon(send)
    after = memory_mib(server.pid)
    return {
        "body_bytes": len(body),
        "idle": idle,
        "after": after,
        "peak_minus_idle_mib": round(after["VmHWM"] - idle["VmRSS"], 1),
        "answers": sorted(set(answers)),
    }


async def migrate(url: str) -> None:
    database = create_database(url)
    try:
        await schema.upgrade(database)
    finally:
        await database.dispose()


async def run_backend(backend: str, mode: str) -> dict[str, Any]:
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix=f"bench-memory-{backend}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(backend, workdir) as url:
            await migrate(url)
            async with server_process(url, workdir) as server:
                run = await (legal_run if mode == "legal" else hostile_run)(server, settings)
    return {"backend": backend, "mode": mode, **run}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_peak", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    runs = []
    try:
        for backend in backends:
            for mode in ("legal", "hostile"):  # each in a fresh server process
                run = anyio.run(run_backend, backend, mode)
                runs.append(run)
                target = f" (target ≤ {TARGET_MIB:.0f})" if mode == "legal" else ""
                print(f"[{backend}] {mode}: peak - idle = {run['peak_minus_idle_mib']} MiB{target}; {json.dumps(run)}")
    except BenchSetupError as exc:
        print(f"bench.memory_peak: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_results(args.json, "bench.memory_peak", argv, runs, target_mib=TARGET_MIB, clients=CLIENTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
