"""The SDK floor (DESIGN §12): a minimal ``MCPServer`` with one no-op tool, in a process of its own.

Every benchmark ratio divides by this server's figures: what the MCP SDK itself costs per call on this
machine, with the same ``mcp``, Starlette and uvicorn as the service (they come from the same
environment), JSON responses (``json_response=True``, as ``app.main.create_app`` serves), the streamable
HTTP app at ``/mcp``, and the uvicorn options of ``task-orchestrator serve`` (``app.runtime.serving``:
no logging config of uvicorn's own, lifespan on, ``loop``/``http`` on ``auto`` so uvloop and httptools,
and uvicorn's access log at WARNING as the service's logging set-up leaves it). Nothing of ``app`` is
imported, so the process holds the SDK and nothing else.

The one tool, ``bench_noop(text)`` → ``{"echo": text}``, is the same definition the service's benchmark
process registers in-service (``bench.serve_app``), so the client code is identical for both. ``/readyz``
answers 200 once the SDK's session manager runs, so the benchmarks wait for this server as they wait for
the service.

    python -m bench.sdk_floor --port-file /tmp/floor-port
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import PlainTextResponse

NOOP_TOOL = "bench_noop"
FLOOR_SERVER_NAME = "sdk-floor"
HOST = "127.0.0.1"
# app.runtime.serving: min(drain timeout, 5 s) rounded up; only the shutdown uses it.
GRACEFUL_SHUTDOWN_SECONDS = 5


class NoopResult(BaseModel):
    echo: str


def register_noop(server: MCPServer) -> None:
    """The no-op tool: one small argument and a tiny structured result, and no other work."""

    @server.tool(
        name=NOOP_TOOL,
        title="No-op (benchmark floor)",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def bench_noop(text: Annotated[str, Field(max_length=64)]) -> NoopResult:
        """Echo the text back; used as the latency floor of the MCP stack."""
        return NoopResult(echo=text)


def bind_and_announce(host: str, port_file: Path) -> socket.socket:
    """A socket bound to ``host``:0; the chosen port is written to ``port_file`` atomically."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(sock.getsockname()[1]))
    os.replace(partial, port_file)  # the reader never sees a half-written port
    return sock


def serve_on(app: Any, sock: socket.socket) -> None:
    """uvicorn with the options of ``app.runtime.serving.serve`` on an already bound socket."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[sock])


def build_floor_app() -> Any:
    """The floor's ASGI app: the SDK's own streamable HTTP app, as the service builds its MCP part."""
    server = MCPServer(FLOOR_SERVER_NAME)
    register_noop(server)

    @server.custom_route("/readyz", methods=["GET"])
    async def readyz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ready")

    return server.streamable_http_app(streamable_http_path="/mcp", stateless_http=False, json_response=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the bound port")
    args = parser.parse_args(argv)
    app = build_floor_app()
    # The service's logging set-up (app.observability.logging) keeps uvicorn's access log at WARNING;
    # without this the SDK's INFO handler would print a line per request and inflate the floor.
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    serve_on(app, bind_and_announce(HOST, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
