"""Resources and prompts pass the gates tool calls pass: the fair share (DESIGN §7) and the call gate (§8).

``resources/read``, ``resources/list`` and ``prompts/get`` read the database like the read tools, but they
are not tool calls, so ``OrchestratorMCP.call_tool``'s guards never saw them: one caller could read in a
tight loop past every per-actor limit, and reads went on through a drain or a restart (and then failed as
internal errors while the database was being replaced). Each such request now takes one of the actor's
places in flight and a token from its bucket, and is admitted by the RebootManager like a tool call.

A refusal is a JSON-RPC error, as everything on these methods is: -32000 (the range for server errors;
the session and listen quotas use it too) with the §6 error object as ``data`` — its ``code``
(``rate_limited``, ``unavailable``), message and ``retry_after_seconds`` — so a client can tell a retryable
refusal from a mistake of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp import MCPError

from app import errors
from app.auth import identity
from app.tools.fair_share import Refused
from app.tools.holder import ServiceHolder

REFUSED = -32000  # JSON-RPC's range for implementation-defined server errors


@asynccontextmanager
async def admitted(holder: ServiceHolder, ctx: Any) -> AsyncIterator[None]:
    """Run the block as one of the caller's calls in flight, admitted by the call gate.

    Raises:
        MCPError(-32000): the caller is over its rate or cap in flight, or the service is not ready, or the
            database is away (``data`` is the §6 error; retryable, with ``retry_after_seconds``).
    """
    actor = identity.resolve_caller(ctx, None).actor
    try:
        async with holder.fair_share.admit(actor), holder.reboot.track_call(None):
            yield
    except errors.OrchestratorError as exc:
        if not exc.retryable:
            raise  # the caller's mistake (e.g. not_found): the handler answers it in its own terms
        if isinstance(exc, Refused) and exc.hold_seconds > 0:
            await anyio.sleep(exc.hold_seconds)  # as for tools: a loop ignoring retry_after waits it out here
        raise MCPError(code=REFUSED, message=exc.message, data=exc.to_dict()) from None
