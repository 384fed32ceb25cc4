"""Opaque identifiers: a prefix plus 64 random bits in hex, never sequential, never guessable."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_session_id() -> str:
    return new_id("sess")


def new_task_id() -> str:
    return new_id("task")


def new_artifact_id() -> str:
    return new_id("art")
