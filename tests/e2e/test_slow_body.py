"""A request body that arrives too slowly is cut off (DESIGN §7): the server answers 408 and closes the
connection, instead of holding it open for as long as the client likes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support.server import RunningServer, serve, sqlite_settings

pytestmark = pytest.mark.anyio
BOUND = 20  # seconds; the server's cut-off comes after 0.3 s


async def read_until_closed(stream: Any) -> bytes:
    received = b""
    while True:
        try:
            received += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return received


async def test_a_connection_sending_its_body_slowly_is_answered_408_and_closed(
    sqlite_template: Any, tmp_path: Path
) -> None:
    settings = sqlite_settings(sqlite_template, tmp_path, request_body_timeout_seconds=0.3)
    async with serve(settings) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(head.encode() + b'{"jsonrpc": "2.0", ')  # and never the rest
                answer = await read_until_closed(stream)  # ends only when the server closes the connection
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout"
        assert b"connection: close" in rest.lower()
        assert b"ORCHESTRATOR_REQUEST_BODY_TIMEOUT_SECONDS" in rest
        assert await metric_408(server) == 1


async def metric_408(server: RunningServer) -> float:
    registry = server.runtime.holder.metrics.registry
    return float(registry.get_sample_value("orchestrator_http_requests_total", {"route": "/mcp", "status": "408"}) or 0)
