"""The benchmark's server process: the real app, plus one no-op tool, on a real uvicorn at 127.0.0.1:0.

It runs like ``task-orchestrator serve``: settings from the ``ORCHESTRATOR_*`` environment,
``create_app(settings)`` with the heap settled at ready (``app.runtime.heap``), and uvicorn with the
product's options (``bench.sdk_floor.serve_on``: those of ``app.runtime.serving``, ``loop``/``http`` left
on ``auto``, so uvloop and httptools from ``uvicorn[standard]``). The only additions are the
``bench_noop`` tool (the same definition the SDK floor serves), served through the same
``OrchestratorMCP.call_tool`` (gate, metrics, log line, error boundary) but touching no database — the
in-service no-op, a second figure beside the SDK floor — and the port: the socket is bound to port 0
first and the chosen port is written to ``--port-file`` so the benchmark, in another process, knows where to connect.

    python -m bench.serve_app --port-file /tmp/port
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.main import create_app
from app.runtime import heap
from app.settings import SettingsError, load_settings
from bench.sdk_floor import NOOP_TOOL, bind_and_announce, register_noop, serve_on

__all__ = ["NOOP_TOOL", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_app", description=__doc__)
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the bound port")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bench.serve_app: invalid settings: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    heap.request(app)  # as ``task-orchestrator serve`` does
    register_noop(app.state.server)
    serve_on(app, bind_and_announce(settings.host, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
