"""A TCP proxy the tests control: the network between a gateway and its broker, misbehaving.

Modes (switch at any time; they apply to existing and new connections):

``pass``
    Forward bytes both ways.
``cut``
    Reset every connection (TCP RST) and reset new ones at once: the link is down.
``half_open``
    Keep every connection open but forward nothing, either way: the socket looks
    fine, nothing arrives (the failure keepalives and canaries exist for).
``delay``
    Forward with an added one-way delay of :attr:`FaultProxy.delay` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Literal

Mode = Literal["pass", "cut", "half_open", "delay"]


class FaultProxy:
    """Listens on a free loopback port and forwards to ``(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.port = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_all()
        if self._server is not None:
            await self._server.wait_closed()

    def set(self, mode: Mode, *, delay: float = 0.0) -> None:
        """Switch mode; ``cut`` resets every open connection now."""
        self.mode = mode
        self.delay = delay
        if mode == "cut":
            self._reset_all()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "cut":
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._writers.update((writer, up_writer))
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump(reader, up_writer))
                tasks.create_task(self._pump(up_reader, writer))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, up_writer):
                self._writers.discard(end)
                _reset(end)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.mode == "half_open":
                continue  # swallowed: the other side never hears of it
            if self.mode == "delay" and self.delay:
                await asyncio.sleep(self.delay)
            if writer.is_closing():
                return
            writer.write(data)
            await writer.drain()
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0: close with RST, like a router that lost the connection state.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    writer.transport.abort()


@contextlib.asynccontextmanager
async def fault_proxy(host: str, port: int) -> AsyncIterator[FaultProxy]:
    """A running :class:`FaultProxy` for the duration of the block."""
    proxy = FaultProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
