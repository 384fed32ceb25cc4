"""``task-orchestrator token new`` / ``token hash``: what they print is exactly what the service accepts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.__main__ import main
from app.auth.tokens import StaticTokenVerifier, hash_token, load_tokens_file

pytestmark = pytest.mark.anyio


async def test_token_new_prints_a_token_and_the_line_that_admits_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "new", "--subject", "ci-bot", "--scopes", "tasks:read,tasks:write"]) == 0
    out, err = capsys.readouterr()
    token, line = out.splitlines()
    digest, subject, scopes = line.split(" ")
    assert (digest, subject, scopes) == (hash_token(token), "ci-bot", "tasks:read,tasks:write")
    assert "ORCHESTRATOR_AUTH_TOKENS_FILE" in err and token not in err
    path = tmp_path / "tokens"
    path.write_text(line + "\n", encoding="utf-8")
    found = await StaticTokenVerifier(load_tokens_file(path)).verify_token(token)
    assert found is not None and (found.subject, found.scopes) == ("ci-bot", ["tasks:read", "tasks:write"])


def test_token_new_refuses_unknown_scopes_and_bad_subjects(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "new", "--subject", "ci", "--scopes", "tasks:all"]) == 2
    assert main(["token", "new", "--subject", "team/ci", "--scopes", "admin"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "unknown scope 'tasks:all'" in err and "contains '/'" in err


def test_token_hash_reads_stdin_and_prints_the_digest_or_the_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("orch_secret-value\n"))
    assert main(["token", "hash"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("orch_secret-value"))
    assert main(["token", "hash", "--subject", "alice", "--scopes", "admin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["token", "hash"]) == 2
    out, err = capsys.readouterr()
    digest = hash_token("orch_secret-value")
    assert out.splitlines() == [digest, f"{digest} alice admin"]
    assert "no token on stdin" in err
