"""The actor of a call (DESIGN §3 "Actors"), from the bearer token, the ``agent`` argument and clientInfo.

With auth on, the actor is the token's subject, or ``subject/agent`` when an agent name is given (one
team token, several agents), and the scopes are the token's. With auth off, the actor is the ``agent``
argument, else the MCP client's ``clientInfo.name``, else ``anonymous``, with every scope.
"""

from __future__ import annotations

import re
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

from app.services.caller import ALL_SCOPES, Caller

ANONYMOUS = "anonymous"
# Actors are at most 200 characters (the column): a subject of 128, "/", an agent name of 64.
SUBJECT_MAX_CHARS = 128


def subject_problem(subject: str) -> str | None:
    """Why a credential's subject cannot name an actor, or None when it can.

    A subject must not contain ``/``: ``subject/agent`` would otherwise be ambiguous, and the subject
    ``alice/bot`` could act as ``alice`` with agent ``bot``.
    """
    if not subject:
        return "the subject is empty"
    if len(subject) > SUBJECT_MAX_CHARS:
        return f"the subject is longer than {SUBJECT_MAX_CHARS} characters"
    if "/" in subject:
        return "the subject contains '/', which separates subject and agent in actor names"
    if any(ch.isspace() or not ch.isprintable() for ch in subject):
        return "the subject contains whitespace or control characters"
    return None


def client_name(ctx: Any) -> str | None:
    """``clientInfo.name`` of the MCP client, when the transport carries it (not on legacy stateless)."""
    try:
        params = ctx.session.client_params
    except (AttributeError, ValueError, RuntimeError):
        return None
    info = getattr(params, "client_info", None) if params is not None else None
    name = getattr(info, "name", None)
    return readable_name(name[:64]) if isinstance(name, str) and name else None


# Control characters (NUL among them) and lone surrogates: not text a stored actor may hold (DESIGN §3).
UNREADABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def readable_name(name: str) -> str:
    """A client name as an actor can hold it: each control character or lone surrogate becomes U+FFFD.

    The name is the client's own choice, not a call argument there is a field to refuse, and refusing
    every call of a client for its name would leave it no way to work; so it is cleaned alike on both
    backends (PostgreSQL cannot store NUL, SQLite would) while staying distinct from other names.
    """
    return UNREADABLE.sub("\ufffd", name)


def resolve_caller(ctx: Any, agent: str | None) -> Caller:
    """Who is calling, and what they may do.

    The principal (token subject, else client name) is what several agents of one client or token share;
    a call without a session falls back to the principal's single active session.
    """
    token = get_access_token()
    if token is not None:
        subject = token.subject or token.client_id
        actor = f"{subject}/{agent}" if agent else subject
        return Caller(actor=actor, scopes=frozenset(token.scopes), principal=subject)
    client = client_name(ctx)
    return Caller(actor=agent or client or ANONYMOUS, scopes=ALL_SCOPES, principal=client)


def granted_scopes(auth_enabled: bool) -> frozenset[str]:
    """The scopes of the current call: the verified token's; none when auth is on but no token reached
    us (an in-process call, never a request through the HTTP edge); every scope when auth is off."""
    token = get_access_token()
    if token is not None:
        return frozenset(token.scopes)
    return frozenset() if auth_enabled else ALL_SCOPES
