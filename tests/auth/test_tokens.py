"""The tokens file: parsing, refusal of malformed lines by number, and the hash-only verifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.__main__ import main
from app.auth.tokens import StaticTokenVerifier, TokensFileError, hash_token, load_tokens_file, new_token
from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.anyio
HASH = "ab" * 32


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_comments_blank_lines_and_trailing_comments_are_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# who may call",
        "",
        f"{HASH} alice tasks:read,tasks:write   # laptop",
        f"   {'CD' * 32}\tci-bot\tadmin",
    )
    entries = load_tokens_file(path)
    assert [(e.digest.hex(), e.subject, sorted(e.scopes)) for e in entries] == [
        (HASH, "alice", ["tasks:read", "tasks:write"]),
        ("cd" * 32, "ci-bot", ["admin", "tasks:read", "tasks:write"]),
    ]


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        (f"{HASH} alice", "expected 3 fields"),
        (f"{HASH} alice tasks:read extra", "expected 3 fields"),
        ("orch_notahash alice tasks:read", "64 hex digits"),
        (f"{HASH} alice tasks:raed", "unknown scope 'tasks:raed'"),
        (f"{HASH} alice ,", "no scopes given"),
        (f"{HASH} team/alice tasks:read", "contains '/'"),
        (f"{HASH} {'x' * 129} tasks:read", "longer than 128"),
    ],
)
def test_malformed_line_is_refused_naming_file_and_line(tmp_path: Path, bad_line: str, problem: str) -> None:
    path = write(tmp_path, "# header", f"{'01' * 32} ok tasks:read", bad_line)
    with pytest.raises(TokensFileError) as caught:
        load_tokens_file(path)
    assert str(caught.value).startswith(f"ORCHESTRATOR_AUTH_TOKENS_FILE={str(path)!r} line 3: ")
    assert problem in str(caught.value)
    assert "orch_notahash" not in str(caught.value)  # a pasted token is never echoed


def test_duplicate_empty_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TokensFileError, match="line 2: the same token hash is already on line 1"):
        load_tokens_file(write(tmp_path, f"{HASH} a tasks:read", f"{HASH} b tasks:read"))
    with pytest.raises(TokensFileError, match="holds no tokens"):
        load_tokens_file(write(tmp_path, "# nobody yet"))
    with pytest.raises(TokensFileError, match="cannot read it"):
        load_tokens_file(tmp_path / "absent")


def test_malformed_tokens_file_stops_create_app_and_serve_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"{HASH} alice tasks:read", "", "oops")
    with pytest.raises(TokensFileError, match="line 3"):
        create_app(Settings(data_dir=tmp_path, auth_tokens_file=path))
    monkeypatch.setenv("ORCHESTRATOR_AUTH_TOKENS_FILE", str(path))
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path))
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"ORCHESTRATOR_AUTH_TOKENS_FILE={str(path)!r} line 3: expected 3 fields" in err


async def test_verifier_accepts_listed_tokens_only_and_keeps_no_plain_token(tmp_path: Path) -> None:
    alice, bob = new_token(), new_token()
    path = write(tmp_path, f"{hash_token(alice)} alice tasks:write", f"{hash_token(bob)} bob tasks:read")
    verifier = StaticTokenVerifier(load_tokens_file(path))
    found = await verifier.verify_token(alice)
    assert found is not None
    assert (found.subject, found.client_id, found.scopes, found.expires_at) == (
        "alice",
        "alice",
        ["tasks:read", "tasks:write"],
        None,
    )
    assert alice not in found.model_dump_json()
    assert (await verifier.verify_token(bob)) is not None
    assert (await verifier.verify_token(alice + "x")) is None
    assert (await verifier.verify_token(hash_token(alice))) is None  # the hash is not a credential
    assert (await verifier.verify_token("")) is None


def test_new_tokens_are_random_and_prefixed() -> None:
    made = {new_token() for _ in range(50)}
    assert len(made) == 50
    assert all(t.startswith("orch_") and len(t) >= 40 for t in made)
