"""Drive the built image in a real container (podman): what ``docker run`` users and the chart rely on.

``deploy/check.sh`` builds the image (on a stand-in base, see there) and runs this with the project's
virtualenv, whose ``mcp`` client and ``app.auth.tokens`` it uses. Checks, in order, each one line:

1. a read-only root filesystem without a volume at /data: exits 3 with one line naming /data;
2. read-only, all capabilities dropped, a tokens file mounted: /healthz 200, /readyz 200 and ready,
   runs as uid 10001, /mcp refuses a request without a token (401);
3. one MCP session with the real client and a bearer token: tools/list, plan a task, query it back;
4. /metrics passes ``promtool check metrics`` and exports every series the app's Metrics declares;
5. the image's HEALTHCHECK (``podman healthcheck run``) reports healthy;
6. SIGTERM with a slow call in flight (held from outside on the SQLite write lock in the /data
   volume): /readyz turns 503, the call completes once the lock goes, and the container exits 0.

Usage: python container.py PODMAN IMAGE
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import app_series
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from smoke import exposed_names

from app.auth.tokens import format_line, hash_token, new_token

WAIT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 30
IMAGE_UID = 10001
TOKENS_DIR_IN_CONTAINER = "/run/secrets/orchestrator"


class CheckFailed(Exception):
    """One check did not hold; the message says what was seen."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # http://127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # as above
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(what: str, probe: Callable[[], bool], seconds: float = WAIT_SECONDS) -> None:
    """Poll ``probe`` (a cheap HTTP request) until it holds; the other side is another process."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:
            pass  # not listening yet, or the connection was reset while it starts
        time.sleep(0.2)
    raise CheckFailed(f"{what}: not within {seconds:.0f}s")


def metric(base: str, name: str) -> float | None:
    for row in get(f"{base}/metrics")[1].decode().splitlines():
        if row.startswith(name + " "):
            return float(row.split()[1])
    return None


class Container:
    """One ``podman run -d`` of the image, removed at the end."""

    def __init__(self, podman: str, image: str, name: str) -> None:
        self.podman, self.image, self.name = podman, image, name

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.podman, *args], capture_output=True, text=True, timeout=120, check=False)  # noqa: S603  # podman, our arguments

    def start(self, options: list[str]) -> None:
        started = self.run("run", "--detach", "--name", self.name, *options, self.image)
        if started.returncode != 0:
            raise CheckFailed(f"podman run failed: {started.stderr.strip()}")

    def logs(self) -> str:
        result = self.run("logs", self.name)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.run("rm", "--force", "--time", "0", self.name)


def secure_options(data: Path | None, tokens: Path) -> list[str]:
    """Read-only root, no capabilities, no privilege gain, a tmpfs /tmp; the tokens file read-only."""
    options = [
        "--read-only",
        "--tmpfs",
        "/tmp",  # noqa: S108  # a tmpfs inside the container
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        f"{tokens.parent}:{TOKENS_DIR_IN_CONTAINER}:ro",
        "--env",
        f"ORCHESTRATOR_AUTH_TOKENS_FILE={TOKENS_DIR_IN_CONTAINER}/{tokens.name}",
        "--env",
        "ORCHESTRATOR_ALLOWED_HOSTS=127.0.0.1,localhost",
        "--env",
        f"ORCHESTRATOR_DRAIN_TIMEOUT_SECONDS={DRAIN_TIMEOUT_SECONDS}",
        "--env",
        "ORCHESTRATOR_LOG_FORMAT=json",
    ]
    if data is not None:
        options += ["--volume", f"{data}:/data"]
    return options


def check_read_only_without_volume(podman: str, image: str, tokens: Path) -> str:
    result = subprocess.run(  # noqa: S603  # podman, our arguments
        [podman, "run", "--rm", *secure_options(None, tokens), image],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # podman itself may add lines about healthcheck timers it cannot install without systemd.
    lines = [line for line in result.stderr.splitlines() if "systemd" not in line] + result.stdout.splitlines()
    if result.returncode != 3 or len(lines) != 1 or "/data is not writable" not in lines[0]:
        raise CheckFailed(f"read-only root without /data: status {result.returncode}, output {lines}")
    return lines[0]


async def mcp_session(mcp_url: str, token: str) -> dict[str, Any]:
    """tools/list, initialize_session, plan_task, query_tasks with the real client; what it saw."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            tools = sorted(tool.name for tool in (await client.list_tools()).tools)
            for needed in ("orchestrator_plan_task", "orchestrator_query_tasks"):
                if needed not in tools:
                    raise CheckFailed(f"tools/list lacks {needed}: {tools}")
            await tool(client, "orchestrator_initialize_session", {"working_directory": "/srv/check"})
            planned = await tool(client, "orchestrator_plan_task", {"title": "Container check", "description": "d"})
            task_id = planned["task"]["id"]
            found = await tool(client, "orchestrator_query_tasks", {"search_text": "Container"})
            if [task["id"] for task in found["tasks"]] != [task_id]:
                raise CheckFailed(f"query_tasks did not return the planned task {task_id}: {found}")
            return {"tools": len(tools), "task_id": task_id}


async def tool(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    if result.is_error or result.structured_content is None:
        raise CheckFailed(f"{name} failed: {result.structured_content or result.content}")
    return dict(result.structured_content)


def check_metrics(base: str, promtool: str) -> int:
    status, body = get(f"{base}/metrics")
    if status != 200:
        raise CheckFailed(f"/metrics answered {status}")
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False)  # noqa: S603  # promtool
    if lint.returncode != 0:
        raise CheckFailed(f"promtool check metrics: {(lint.stdout + lint.stderr).decode().strip()}")
    text = body.decode()
    missing = sorted(set(app_series.exported_series()) - exposed_names(text))
    if missing:
        raise CheckFailed(f"/metrics lacks {missing}")
    return len(text.splitlines())


async def sigterm_with_slow_call(container: Container, base: str, token: str, database: Path) -> str:
    """Hold the SQLite write lock, start plan_task, SIGTERM, see 503, release: the call lands, exit 0."""
    answers: list[Any] = []
    holder = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=90) as http:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
                await tool(client, "orchestrator_initialize_session", {"working_directory": "/srv/check"})
                holder.execute("BEGIN IMMEDIATE")  # every writer now waits (busy timeout 30 s)
                async with anyio.create_task_group() as group:

                    async def slow_call() -> None:
                        arguments = {"title": "Slow", "description": "d"}
                        answers.append(await client.call_tool("orchestrator_plan_task", arguments))

                    group.start_soon(slow_call)
                    await anyio.to_thread.run_sync(
                        wait_for, "the call in flight", lambda: metric(base, "orchestrator_tool_calls_in_flight") == 1
                    )
                    sent = time.monotonic()
                    killed = container.run("kill", "--signal", "TERM", container.name)
                    if killed.returncode != 0:
                        raise CheckFailed(f"podman kill --signal TERM: {killed.stderr.strip()}")
                    await anyio.to_thread.run_sync(
                        wait_for, "/readyz 503 while draining", lambda: get(f"{base}/readyz")[0] == 503
                    )
                    if answers:
                        raise CheckFailed("the slow call answered while the database was still held")
                    holder.execute("ROLLBACK")
    finally:
        holder.close()
    waited = await anyio.to_thread.run_sync(container.run, "wait", container.name)
    took = time.monotonic() - sent
    (answer,) = answers
    if answer.is_error or answer.structured_content["task"]["title"] != "Slow":
        raise CheckFailed(f"the call in flight did not complete: {answer.structured_content}")
    if waited.stdout.strip() != "0":
        raise CheckFailed(f"exit status {waited.stdout.strip() or waited.stderr.strip()} after SIGTERM, not 0")
    drained = [json.loads(line) for line in container.logs().splitlines() if '"event": "drained"' in line]
    if not drained or (drained[0].get("waited_for"), drained[0].get("cancelled")) != (1, 0):
        raise CheckFailed(f"no 'drained' log line with waited_for 1, cancelled 0: {drained}")
    return f"the call in flight completed, exit status 0, {took:.1f}s from SIGTERM to exit"


def check(name: str, action: Callable[[], str]) -> None:
    """Print one line for the check and raise on its failure (the later checks depend on it)."""
    try:
        try:
            detail = action()
        except BaseExceptionGroup as group:  # from a task group: report what is inside
            raise CheckFailed("; ".join(f"{type(e).__name__}: {e}" for e in leaves(group))) from group
        except (OSError, httpx2.HTTPError, subprocess.SubprocessError) as exc:
            raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc
    except CheckFailed as exc:
        print(f"FAIL  {name}: {exc}")
        raise
    print(f"ok    {name}: {detail}")


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    return [leaf for e in group.exceptions for leaf in (leaves(e) if isinstance(e, BaseExceptionGroup) else [e])]


def main(podman: str, image: str) -> int:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("FAIL  promtool is not on PATH")
        return 1
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = new_token()
    work = Path(tempfile.mkdtemp(prefix="orchestrator-container-"))
    container = Container(podman, image, f"orchestrator-check-{os.getpid()}")
    try:
        tokens = work / "auth" / "tokens"
        tokens.parent.mkdir()
        tokens.write_text(format_line(hash_token(token), "container-check", ["tasks:read", "tasks:write"]) + "\n")
        tokens.chmod(0o644)
        data = work / "data"
        data.mkdir()
        os.chown(data, IMAGE_UID, IMAGE_UID)
        check(
            "read-only root, no /data volume: one line, exit 3",
            lambda: check_read_only_without_volume(podman, image, tokens),
        )

        def start() -> str:
            container.start([*secure_options(data, tokens), "--publish", f"127.0.0.1:{port}:8000"])
            wait_for("/healthz 200", lambda: get(f"{base}/healthz")[0] == 200)
            status, body = get(f"{base}/readyz")
            if status != 200 or json.loads(body).get("ready") is not True:
                raise CheckFailed(f"/readyz answered {status} {body[:300]!r}")
            uid = container.run("exec", container.name, "python", "-c", "import os; print(os.getuid())").stdout.strip()
            if uid != str(IMAGE_UID):
                raise CheckFailed(f"runs as uid {uid}, not {IMAGE_UID}")
            refused = get(f"{base}/mcp", {"Accept": "application/json, text/event-stream"})[0]
            if refused != 401:
                raise CheckFailed(f"/mcp without a token answered {refused}, not 401")
            return f"/healthz 200, /readyz 200, uid {uid}, /mcp without a token 401"

        check("read-only root, caps dropped, tokens file: probes and auth", start)
        seen: dict[str, Any] = {}

        def session() -> str:
            seen.update(anyio.run(mcp_session, f"{base}/mcp", token))
            return f"{seen['tools']} tools listed, planned {seen['task_id']} and found it with query_tasks"

        check("one MCP session with the real client and a bearer token", session)
        check("/metrics through promtool check metrics", lambda: f"{check_metrics(base, promtool)} lines, every series")

        def healthcheck() -> str:
            result = container.run("healthcheck", "run", container.name)
            if result.returncode != 0:
                raise CheckFailed(f"podman healthcheck run: status {result.returncode} {result.stdout}{result.stderr}")
            return result.stdout.strip() or "healthy"

        check("the image's HEALTHCHECK (podman healthcheck run)", healthcheck)
        check(
            "SIGTERM with a slow call in flight",
            lambda: anyio.run(sigterm_with_slow_call, container, base, token, data / "orchestrator.db"),
        )
    except CheckFailed:
        print(container.logs()[-4000:], file=sys.stderr)
        return 1
    finally:
        container.remove()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
