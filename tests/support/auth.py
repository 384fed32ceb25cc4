"""Credentials for tests: a tokens file written by the test, bearer-carrying MCP clients, and a JWKS
served on 127.0.0.1 with keys made in the test."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.auth.tokens import format_line, hash_token, new_token
from tests.support.server import RunningServer


def write_tokens_file(path: Path, grants: dict[str, str]) -> dict[str, str]:
    """Write ``subject -> "scope,scope"`` as a tokens file (with a comment and a blank line, as operators
    write it); return ``subject -> token``."""
    tokens = {subject: new_token() for subject in grants}
    lines = ["# task-orchestrator tokens: sha256 subject scopes", ""]
    lines += [format_line(hash_token(tokens[s]), s, scopes.split(",")) for s, scopes in grants.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokens


@asynccontextmanager
async def bearer_client(server: RunningServer, era: str, token: str) -> AsyncIterator[Client]:
    """The real MCP client on the given era, sending ``Authorization: Bearer <token>``."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        mode = "legacy" if era == "legacy" else "2026-07-28"
        async with Client(streamable_http_client(server.mcp_url, http_client=http), mode=mode) as c:
            yield c


async def post_mcp(server: RunningServer, headers: dict[str, str] | None = None) -> httpx2.Response:
    """One raw MCP POST (a 2025-11-25 initialize), to observe the HTTP answer of the auth layer."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(
            server.mcp_url,
            json=body,
            headers={"Accept": "application/json, text/event-stream", **(headers or {})},
        )


@dataclass
class Issuer:
    """An RSA signing key published as a JWKS, and a minter of tokens signed with it."""

    issuer: str = "https://issuer.test"
    kid: str = "key-1"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def mint(
        self, audience: str, subject: str = "carol", scope: str | None = "tasks:read tasks:write", **claims: Any
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + 600}
        if scope is not None:
            payload["scope"] = scope
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class JwksServer:
    url: str
    fetches: int = 0


@asynccontextmanager
async def serve_jwks(issuer: Issuer) -> AsyncIterator[JwksServer]:
    """The issuer's JWKS at ``http://127.0.0.1:<port>/jwks.json`` on uvicorn in the test's event loop,
    counting fetches."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections made before uvicorn accepts wait in the backlog: no start-up wait needed
    served = JwksServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/jwks.json")

    async def jwks(request: Request) -> JSONResponse:
        served.fetches += 1
        return JSONResponse(issuer.jwks())

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/jwks.json", jwks)]), log_config=None))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        try:
            yield served
        finally:
            server.should_exit = True
    sock.close()
