"""What makes a repeated write the same operation: the actor, the request_id, the tool and its arguments.

DESIGN §3: a repeat with the same actor, request_id, tool and arguments replays the stored result; the
same actor and request_id with another tool or other arguments is ``idempotency_conflict``, never a
silent replay. The tool edge knows the arguments as the caller sent them and binds their digest to the
call with :func:`bound_arguments`; ``Service._write`` reads it with :func:`current_digest` and stores it
beside the result. Arguments are compared as sent (canonical JSON, keys sorted, ``request_id`` left
out), so spelling out a default the first call left implicit counts as other arguments — the digest must
not depend on what the server would fill in. A call made in process without the edge (tests, the
benchmark seeder) binds nothing and is compared by tool only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_digest: ContextVar[str | None] = ContextVar("orchestrator_arguments_digest", default=None)


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """sha256 of the arguments as canonical JSON, without ``request_id`` (it names the operation)."""
    body = {key: value for key, value in arguments.items() if key != "request_id"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@contextmanager
def bound_arguments(arguments: Mapping[str, Any]) -> Iterator[None]:
    """Make the digest of this call's arguments known to the write it runs (only when it has a request_id)."""
    token = _digest.set(arguments_digest(arguments) if arguments.get("request_id") is not None else None)
    try:
        yield
    finally:
        _digest.reset(token)


def current_digest() -> str | None:
    return _digest.get()
