"""The ``task-orchestrator token`` commands: mint a token, or hash one for the tokens file.

``token new`` prints a fresh token exactly once (first line of stdout) and the line to append to
``ORCHESTRATOR_AUTH_TOKENS_FILE`` (second line); the service itself never sees or stores the token.
``token hash`` reads a token from stdin (so it stays out of shell history and the process list) and
prints its SHA-256, or the whole line when ``--subject`` and ``--scopes`` are given.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from app.auth import tokens


def add_token_commands(commands: Any) -> None:
    """Register ``token new`` and ``token hash`` on the CLI's subparsers."""
    token = commands.add_parser("token", help="make bearer tokens for ORCHESTRATOR_AUTH_TOKENS_FILE")
    actions = token.add_subparsers(dest="token_command", required=True)
    new = actions.add_parser("new", help="print a fresh token and its tokens-file line")
    new.add_argument("--subject", required=True, help="who the token is for (the actor's name)")
    new.add_argument("--scopes", required=True, help="comma-separated: tasks:read, tasks:write, admin")
    hashed = actions.add_parser("hash", help="read a token on stdin and print its SHA-256 (or its whole line)")
    hashed.add_argument("--subject", help="with --scopes: print the whole tokens-file line")
    hashed.add_argument("--scopes", help="with --subject: print the whole tokens-file line")


def run_token_command(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run ``token new`` or ``token hash``; 0 on success, 2 on a bad subject, scope list or empty input."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        if args.token_command == "new":  # noqa: S105  # a subcommand name, not a password
            return _new(args, stdout)
        return _hash(args, stdin, stdout)
    except ValueError as exc:
        print(f"task-orchestrator token: {exc}", file=sys.stderr)
        return 2


def _line_parts(subject: str | None, scopes: str | None) -> tuple[str, list[str]]:
    if subject is None or scopes is None:
        raise ValueError("give both --subject and --scopes")
    return tokens.check_subject(subject), tokens.parse_scopes(scopes)


def _new(args: argparse.Namespace, stdout: TextIO) -> int:
    subject, granted = _line_parts(args.subject, args.scopes)
    token = tokens.new_token()
    print(token, file=stdout)
    print(tokens.format_line(tokens.hash_token(token), subject, granted), file=stdout)
    print(
        "task-orchestrator token: line 1 is the token (shown only this once; give it to the client as "
        "'Authorization: Bearer <token>'); append line 2 to ORCHESTRATOR_AUTH_TOKENS_FILE and restart.",
        file=sys.stderr,
    )
    return 0


def _hash(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    token = stdin.read().strip()
    if not token:
        raise ValueError("no token on stdin")
    digest = tokens.hash_token(token)
    if args.subject is None and args.scopes is None:
        print(digest, file=stdout)
        return 0
    subject, granted = _line_parts(args.subject, args.scopes)
    print(tokens.format_line(digest, subject, granted), file=stdout)
    return 0
