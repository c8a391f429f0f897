"""A minimal MQTT 3.1.1 client for load generation: QoS 1 publish and subscribe, no more.

paho-mqtt tops out near 17k messages per second on the reference machine and would
measure itself instead of the brokers; this client writes PUBLISH packets straight to an
asyncio transport (pipelined, no per-message wait) and acknowledges what it receives.
It is for benchmarks only: no reconnect, no session state, no TLS to the broker.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

__all__ = ["WireClient", "connect"]

_CONNECT, _CONNACK, _PUBLISH, _PUBACK, _SUBSCRIBE, _SUBACK = 1, 2, 3, 4, 8, 9


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _remaining_length(len(body)) + body


class WireClient(asyncio.Protocol):
    """One MQTT connection; ``on_message(topic, payload)`` gets every PUBLISH received."""

    def __init__(self, on_message: Callable[[str, bytes], None] | None = None) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acked = 0
        self._ids = itertools.cycle(range(1, 65536))
        self._buffer = bytearray()
        self._writable = asyncio.Event()
        self._writable.set()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.connected, self.subscribed, self.closed):
            if not future.done():
                future.set_result(None)
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            if len(buffer) < 2:
                return
            length, shift, index = 0, 0, 1
            while True:
                if index >= len(buffer):
                    return
                byte = buffer[index]
                length |= (byte & 0x7F) << shift
                index += 1
                if not byte & 0x80:
                    break
                shift += 7
            if len(buffer) < index + length:
                return
            header, body = buffer[0], bytes(buffer[index : index + length])
            del buffer[: index + length]
            self._handle(header >> 4, header & 0x0F, body)

    def _handle(self, kind: int, flags: int, body: bytes) -> None:
        if kind == _CONNACK and not self.connected.done():
            if body[1] != 0:
                self.connected.set_exception(ConnectionError(f"CONNACK return code {body[1]}"))
            else:
                self.connected.set_result(None)
        elif kind == _SUBACK and not self.subscribed.done():
            self.subscribed.set_result(None)
        elif kind == _PUBACK:
            self.acked += 1
        elif kind == _PUBLISH:
            qos = (flags >> 1) & 3
            topic_length = int.from_bytes(body[:2], "big")
            topic = body[2 : 2 + topic_length].decode()
            offset = 2 + topic_length
            if qos:
                packet_id = body[offset : offset + 2]
                offset += 2
                assert self.transport is not None
                self.transport.write(_packet(_PUBACK, 0, packet_id))
            if self.on_message is not None:
                self.on_message(topic, body[offset:])

    # client API
    def connect(self, client_id: str) -> None:
        """Send CONNECT (clean session, keepalive 60 s)."""
        body = _string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(client_id)
        self._write(_packet(_CONNECT, 0, body))

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` at QoS 1."""
        body = next(self._ids).to_bytes(2, "big") + _string(topic) + b"\x01"
        self._write(_packet(_SUBSCRIBE, 0x02, body))

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 without waiting for the PUBACK."""
        body = _string(topic) + next(self._ids).to_bytes(2, "big") + payload
        self._write(_packet(_PUBLISH, 0x02, body))

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        await self._writable.wait()

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the MQTT connection is closed")
        self.transport.write(data)


async def connect(
    host: str,
    port: int,
    client_id: str,
    *,
    subscribe: str | None = None,
    on_message: Callable[[str, bytes], None] | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> WireClient:
    """Open a connection, wait for CONNACK (and SUBACK when subscribing)."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WireClient(on_message), host, port)
    client.connect(client_id)
    async with asyncio.timeout(timeout):
        await client.connected
        if subscribe is not None:
            client.subscribe(subscribe)
            await client.subscribed
    return client
