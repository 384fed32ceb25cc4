"""The benchmark's server process: the real app, plus one no-op tool, on a real uvicorn at 127.0.0.1:0.

It runs like ``task-orchestrator serve``: settings from the ``ORCHESTRATOR_*`` environment,
``create_app(settings)``, and uvicorn with the product's options (``loop``/``http`` left on ``auto``,
so uvloop and httptools from ``uvicorn[standard]``). The only additions are the ``bench_noop`` tool,
served through the same ``OrchestratorMCP.call_tool`` (gate, metrics, log line, error boundary) but
touching no database, and the port: the socket is bound to port 0 first and the chosen port is written
to ``--port-file`` so the benchmark, in another process, knows where to connect.

    python -m bench.serve_app --port-file /tmp/port
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from app.main import create_app
from app.settings import SettingsError, load_settings

NOOP_TOOL = "bench_noop"


class NoopResult(BaseModel):
    echo: str


def register_noop(server: MCPServer) -> None:
    """The floor: a tool with one small argument and a tiny structured result, and no other work."""

    @server.tool(
        name=NOOP_TOOL,
        title="No-op (benchmark floor)",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def bench_noop(text: Annotated[str, Field(max_length=64)]) -> NoopResult:
        """Echo the text back; used as the latency floor of the MCP stack."""
        return NoopResult(echo=text)


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
    register_noop(app.state.server)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, 0))
    port = sock.getsockname()[1]
    partial = args.port_file.with_suffix(".partial")
    partial.write_text(str(port))
    os.replace(partial, args.port_file)  # atomic: the reader never sees a half-written port
    # The same uvicorn options as `task-orchestrator serve` (app/__main__.py).
    config = uvicorn.Config(app, host=settings.host, port=port, log_config=None, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
