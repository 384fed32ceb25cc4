"""Reading a request body that the SDK's body limit has already buffered, and handing it on unchanged.

``SessionQuota`` and ``ToolListReplay`` look at a ``/mcp`` POST's body before the SDK does; both sit inside
the SDK's ``RequestBodyLimitMiddleware``, so the body they read is complete and bounded.
"""

from __future__ import annotations

from starlette.types import Message, Receive


async def read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """The request's body messages and the body itself."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` first, then whatever ``receive`` brings."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
