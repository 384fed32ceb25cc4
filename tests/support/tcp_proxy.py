"""A TCP proxy on 127.0.0.1 whose open connections can be frozen: a half-open connection, made to order.

A frozen connection stays open at both ends and forwards nothing either way, as when a NAT or a firewall
drops a connection's state without telling either side: the client's writes succeed and no answer ever
comes. Connections opened after a freeze forward normally.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
from anyio.abc import SocketStream
from anyio.streams.stapled import MultiListener

CHUNK = 65_536


@dataclass(eq=False)
class _Link:
    thawed: anyio.Event = field(default_factory=anyio.Event)
    frozen: bool = False


class FreezableProxy:
    def __init__(self, port: int, links: list[_Link]) -> None:
        self.port = port
        self._links = links

    def freeze_open_connections(self) -> int:
        """Stop every connection open now from forwarding anything (the sockets stay open); returns how many."""
        for link in self._links:
            link.frozen = True
        return len(self._links)


@asynccontextmanager
async def freezable_proxy(upstream_port: int, upstream_host: str = "127.0.0.1") -> AsyncIterator[FreezableProxy]:
    """A proxy to ``upstream_host:upstream_port`` on a free local port, for as long as the block runs."""
    listener: MultiListener[SocketStream] = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610  # anyio typed attributes, not Django
    links: list[_Link] = []

    async def pump(source: SocketStream, sink: SocketStream, link: _Link) -> None:
        try:
            while True:
                data = await source.receive(CHUNK)
                if link.frozen:
                    await link.thawed.wait()  # never set: the data is held, as a dead path would
                await sink.send(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await sink.aclose()

    async def handle(client: SocketStream) -> None:
        link = _Link()
        links.append(link)
        async with client, await anyio.connect_tcp(upstream_host, upstream_port) as upstream:
            async with anyio.create_task_group() as pumps:
                pumps.start_soon(pump, client, upstream, link)
                pumps.start_soon(pump, upstream, client, link)

    async with listener:
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, handle)
            try:
                yield FreezableProxy(port, links)
            finally:
                group.cancel_scope.cancel()  # the serving, and every connection's pumps
