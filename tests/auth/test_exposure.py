"""Fail closed: a non-loopback bind needs auth (or an explicit opt-out) and an allowed-hosts list."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest

from app.auth.exposure import ExposureRefused, check_exposure, exposure_problems
from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.anyio
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  # binding to every interface is what these tests are about


def problems(**overrides: object) -> list[str]:
    return exposure_problems(Settings(**overrides))  # type: ignore[arg-type]


def test_loopback_binds_need_nothing() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert problems(host=host) == [], host


def test_exposed_bind_without_auth_or_hosts_names_every_setting_to_set(tmp_path: Path) -> None:
    found = problems(host=ALL_INTERFACES)
    assert len(found) == 2
    assert all(p.startswith("ORCHESTRATOR_HOST=0.0.0.0 is not a loopback address") for p in found)
    for name in ("ORCHESTRATOR_AUTH_TOKENS_FILE", "ORCHESTRATOR_JWKS_URL", "ORCHESTRATOR_ALLOW_UNAUTHENTICATED"):
        assert name in found[0]
    assert "ORCHESTRATOR_ALLOWED_HOSTS" in found[1]
    with pytest.raises(ExposureRefused):
        create_app(Settings(host=ALL_INTERFACES, data_dir=tmp_path))


def test_exposed_bind_starts_with_auth_or_opt_out_plus_allowed_hosts(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    assert problems(host="10.1.2.3", auth_tokens_file=tokens, allowed_hosts="orch.example.com") == []
    assert problems(host=ALL_INTERFACES, jwks_url="https://idp/jwks", allowed_hosts="*", public_url="https://o") == []
    assert problems(host=ALL_INTERFACES, allow_unauthenticated=True, allowed_hosts="orch") == []
    only_hosts = problems(host=ALL_INTERFACES, allow_unauthenticated=True)
    assert len(only_hosts) == 1 and "ORCHESTRATOR_ALLOWED_HOSTS" in only_hosts[0]
    check_exposure(Settings(host=ALL_INTERFACES, allow_unauthenticated=True, allowed_hosts=["orch"]))


def test_a_wildcard_bind_with_jwt_auth_needs_the_public_url() -> None:
    """Derived from 0.0.0.0 the public URL is http://127.0.0.1:8000: every 401 would send a remote OAuth
    client to its own machine, and the default audience would match no issued token (DESIGN §7)."""
    jwt = {"jwks_url": "https://idp.example.com/jwks", "allowed_hosts": "orch.example.com"}
    for host in (ALL_INTERFACES, "::"):
        found = problems(host=host, **jwt)
        assert len(found) == 1
        assert "ORCHESTRATOR_PUBLIC_URL is not" in found[0] and "http://127.0.0.1:8000/mcp" in found[0]
    assert problems(host=ALL_INTERFACES, public_url="https://orch.example.com", **jwt) == []
    assert problems(host="10.1.2.3", **jwt) == []  # derived from that address, the URL may well be right
    tokens_only = {"auth_tokens_file": "/run/tokens", "allowed_hosts": "orch.example.com"}
    assert problems(host=ALL_INTERFACES, **tokens_only) == []  # static tokens need no discovery


def serve_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update({"ORCHESTRATOR_DATA_DIR": str(tmp_path), **{f"ORCHESTRATOR_{k.upper()}": v for k, v in values.items()}})
    return env


def test_serve_on_all_interfaces_without_auth_exits_2_naming_the_settings(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env=serve_env(tmp_path, host=ALL_INTERFACES, allowed_hosts="orch.example.com"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "task-orchestrator: cannot start: ORCHESTRATOR_HOST=0.0.0.0 is not a loopback address" in done.stderr
    for name in ("ORCHESTRATOR_AUTH_TOKENS_FILE", "ORCHESTRATOR_JWKS_URL", "ORCHESTRATOR_ALLOW_UNAUTHENTICATED"):
        assert name in done.stderr
    assert not (tmp_path / "orchestrator.db").exists()  # refused before touching anything


async def test_serve_on_all_interfaces_starts_when_unauthenticated_is_allowed_on_purpose(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = serve_env(
        tmp_path, host=ALL_INTERFACES, port=str(port), allow_unauthenticated="true", allowed_hosts="127.0.0.1"
    )
    async with await anyio.open_process([sys.executable, "-m", "app", "serve"], env=env) as process:
        try:
            assert process.stdout is not None
            seen = b""
            # uvicorn binds the socket after the lifespan reports ready; this line comes after the bind.
            with anyio.fail_after(60):
                async for chunk in process.stdout:
                    seen += chunk
                    if b"Uvicorn running on" in seen:
                        break
            assert b'"event": "ready"' in seen, seen[-2000:]
            assert b"Uvicorn running on" in seen, seen[-2000:]
            async with httpx2.AsyncClient(timeout=10) as http:
                health = await http.get(f"http://127.0.0.1:{port}/healthz")
            assert health.status_code == 200
        finally:
            process.terminate()
            with anyio.fail_after(30):
                await process.wait()
    assert process.returncode in (0, -15)
