"""Static bearer tokens from ``ORCHESTRATOR_AUTH_TOKENS_FILE`` (DESIGN §7).

The file holds one token per line as ``sha256-hex subject scope,scope``; ``#`` starts a comment and blank
lines are skipped. Only the SHA-256 of each token is ever stored, here or on disk: a presented token is
hashed and its digest compared with every entry in constant time, so neither the tokens nor the position
of a near match leak through timing. A malformed file stops start-up naming the file and the line; it
never loads half a file.

``task-orchestrator token new`` / ``token hash`` use ``new_token``, ``hash_token`` and ``format_line``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mcp.server.auth.provider import AccessToken

from app.auth import identity, scopes
from app.settings import SettingsError

TOKEN_PREFIX = "orch_"  # noqa: S105  # not a secret: a prefix that lets secret scanners spot a leaked token
HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
COMMENT = re.compile(r"(^|\s)#.*$")
LINE_FORM = "'sha256-hex subject scope,scope'"
STATIC_ISSUER = "tokens-file"


class TokensFileError(SettingsError):
    """The tokens file cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class TokenEntry:
    """One line of the tokens file: the token's digest, whose it is, and what it may do."""

    digest: bytes
    subject: str
    scopes: frozenset[str]


def new_token() -> str:
    """A fresh random bearer token (256 bits of entropy)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The lowercase hex SHA-256 of a token, as the tokens file stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def format_line(digest_hex: str, subject: str, granted: Sequence[str]) -> str:
    """A tokens-file line; ``parse_line`` reads it back."""
    return f"{digest_hex} {subject} {','.join(granted)}"


def parse_scopes(text: str) -> list[str]:
    """A comma-separated scope list, each a known scope.

    Raises:
        ValueError: naming an unknown scope and the known ones, or an empty list.
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"no scopes given; known scopes: {', '.join(scopes.KNOWN_SCOPES)}")
    for name in names:
        if name not in scopes.IMPLIED:
            raise ValueError(f"unknown scope {name!r}; known scopes: {', '.join(scopes.KNOWN_SCOPES)}")
    return names


def check_subject(subject: str) -> str:
    """The subject, if it can name an actor.

    Raises:
        ValueError: saying why it cannot.
    """
    problem = identity.subject_problem(subject)
    if problem is not None:
        raise ValueError(problem)
    return subject


def parse_line(text: str) -> TokenEntry | None:
    """One line of the file; None for a blank or comment line.

    Raises:
        ValueError: saying what is wrong (never echoing the line, which may hold a pasted token).
    """
    body = COMMENT.sub("", text).strip()
    if not body:
        return None
    fields = body.split()
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields {LINE_FORM}, found {len(fields)}")
    digest_hex, subject, scope_list = fields
    if not HEX_DIGEST.match(digest_hex):
        raise ValueError(
            "the first field must be the token's SHA-256 as 64 hex digits (never the token itself; "
            "`task-orchestrator token hash` prints it)"
        )
    return TokenEntry(
        digest=bytes.fromhex(digest_hex),
        subject=check_subject(subject),
        scopes=scopes.effective(parse_scopes(scope_list)),
    )


def load_tokens_file(path: Path) -> list[TokenEntry]:
    """Every token of the file.

    Raises:
        TokensFileError: the file is unreadable, a line is malformed (file and line number named), a token
            appears twice, or the file holds no token at all.
    """
    where = f"ORCHESTRATOR_AUTH_TOKENS_FILE={str(path)!r}"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TokensFileError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise TokensFileError(f"{where}: it is not UTF-8 text") from None
    entries: list[TokenEntry] = []
    seen: dict[bytes, int] = {}
    for number, line in enumerate(lines, start=1):
        try:
            entry = parse_line(line)
        except ValueError as exc:
            raise TokensFileError(f"{where} line {number}: {exc}") from None
        if entry is None:
            continue
        if entry.digest in seen:
            raise TokensFileError(f"{where} line {number}: the same token hash is already on line {seen[entry.digest]}")
        seen[entry.digest] = number
        entries.append(entry)
    if not entries:
        raise TokensFileError(f"{where}: the file holds no tokens; add lines of the form {LINE_FORM}")
    return entries


class StaticTokenVerifier:
    """The MCP SDK's ``TokenVerifier`` over the tokens file's hashes."""

    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        self._entries = tuple(entries)

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        match: TokenEntry | None = None
        for entry in self._entries:  # no early exit: every entry is compared, in constant time each
            if hmac.compare_digest(entry.digest, digest):
                match = entry
        if match is None:
            return None
        return AccessToken(
            token=f"sha256:{digest.hex()}",  # the SDK never needs the token itself; keep it out of memory
            client_id=match.subject,
            subject=match.subject,
            scopes=sorted(match.scopes),
            claims={"iss": STATIC_ISSUER},
        )
