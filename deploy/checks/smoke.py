"""Run the image's contract without a container engine: the real server, its probes, its metrics, SIGTERM.

No container can be built or run where the checks run, so this starts what the image starts (its
ENTRYPOINT and CMD, read from the Dockerfile: ``task-orchestrator serve``) on loopback with a throwaway
SQLite directory, and then checks what the image, the chart and compose rely on:
- the Dockerfile's HEALTHCHECK command, run as written, passes against the live server and fails once
  the server is gone;
- /readyz answers 200 with ``ready: true`` (the readiness probe), /healthz 200 (startup and liveness);
- /metrics exports every series the app's Metrics object declares (the names the dashboard and alerts
  were checked against);
- SIGTERM stops the server cleanly (exit status 0, the lifespan reaches ``stopped``) within the drain
  timeout plus a margin (what the kubelet and ``docker stop`` do after the preStop hook).

``container.py`` checks the same in the built image, in a container.

Usage: python smoke.py DOCKERFILE
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import app_series

START_DEADLINE_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 5
STOP_MARGIN_SECONDS = 15.0


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    if not (isinstance(parsed, list) and all(isinstance(part, str) for part in parsed)):
        raise SystemExit(f"not an exec-form JSON array: {arguments}")
    return parsed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # a fixed http://127.0.0.1 URL
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode} during start-up")
        try:
            if get(f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise SystemExit(f"/healthz did not answer 200 within {START_DEADLINE_SECONDS:.0f}s")


def reached_stopped(log_path: Path) -> bool:
    """True when the JSON log records the service state moving to ``stopped`` (DESIGN §8)."""
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "service_state" and record.get("to") == "stopped":
            return True
    return False


def exposed_names(exposition: str) -> set[str]:
    """Sample names the text exposition declares, derived from its TYPE lines as Prometheus names them."""
    names: set[str] = set()
    for match in re.finditer(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        name, kind = match.groups()
        base = name.removesuffix("_total")
        if kind == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


def main(dockerfile: Path) -> int:
    final = instructions(dockerfile)
    entrypoint = next(exec_form(a) for i, a in final if i == "ENTRYPOINT")
    cmd = next(exec_form(a) for i, a in final if i == "CMD")
    healthcheck_args = next(a for i, a in final if i == "HEALTHCHECK")
    healthcheck = exec_form(healthcheck_args[healthcheck_args.index("CMD ") + 4 :])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="orchestrator-smoke-") as tmp:
        env = {
            **os.environ,
            "ORCHESTRATOR_HOST": "127.0.0.1",  # loopback only: the image's 0.0.0.0 would need auth
            "ORCHESTRATOR_PORT": str(port),
            "ORCHESTRATOR_DATA_DIR": tmp,
            "ORCHESTRATOR_DATABASE_URL": "",
            "ORCHESTRATOR_DRAIN_TIMEOUT_SECONDS": str(DRAIN_TIMEOUT_SECONDS),
        }
        log_path = Path(tmp) / "server.log"
        print(f"INFO starting {shlex.join(entrypoint + cmd)} on {base}")
        with log_path.open("wb") as log:
            server = subprocess.Popen(entrypoint + cmd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603  # the Dockerfile's own entrypoint
        try:
            wait_until_up(base, server)
            check = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30, check=False)  # noqa: S603  # the Dockerfile's HEALTHCHECK
            if check.returncode != 0:
                failures.append(f"HEALTHCHECK failed against the live server: {check.stderr.decode()[-500:]}")
            status, body = get(f"{base}/readyz")
            if status != 200 or json.loads(body).get("ready") is not True:
                failures.append(f"/readyz answered {status} {body.decode()[:300]}")
            status, body = get(f"{base}/metrics")
            missing = set(app_series.exported_series()) - exposed_names(body.decode())
            if status != 200 or missing:
                failures.append(f"/metrics answered {status}; series missing from it: {sorted(missing)}")
            server.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                code = server.wait(timeout=DRAIN_TIMEOUT_SECONDS + STOP_MARGIN_SECONDS)
                print(f"INFO SIGTERM: exited with status {code} after {time.monotonic() - started:.1f}s")
                # The drain replaces uvicorn's handler, which would re-raise the signal: a clean stop is 0.
                if code != 0 or not reached_stopped(log_path):
                    failures.append(f"SIGTERM: status {code} without the lifespan reaching 'stopped'")
            except subprocess.TimeoutExpired:
                failures.append(f"SIGTERM: still running after {DRAIN_TIMEOUT_SECONDS + STOP_MARGIN_SECONDS:.0f}s")
            after = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30, check=False)  # noqa: S603  # as above
            if after.returncode == 0:
                failures.append("HEALTHCHECK passed with the server stopped: it cannot detect a dead server")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        if failures:
            print(log_path.read_text()[-3000:], file=sys.stderr)
    for failure in failures:
        print(f"ERROR {failure}", file=sys.stderr)
    if not failures:
        print("INFO HEALTHCHECK, /healthz, /readyz, /metrics and SIGTERM behave as the image, chart and compose expect")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
