"""Fixtures: a simulated MCX system on loopback TCP and an MCData adapter connected to it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters import LinkState, LinkStateChanged
from adapters.mcdata import (
    McdataAdapter,
    McdataAdapterConfig,
    McdataEvent,
    McdataNotificationReceived,
    McdataRejected,
    McdataSdsReceived,
    McdataSystemSimulator,
)
from protocols.sip import (
    NEED_DATA,
    SipConnection,
    SipResponse,
    SipRole,
)

ALICE = "sip:alice@mcx.fr.example.eu"
BOB = "sip:bob@mcx.fr.example.eu"
CAROL = "sip:carol@mcx.fr.example.eu"
FIRE = "sip:fire-1@mcx.fr.example.eu"
#: LMR (TETRA) users and a cross-border group behind the gateway, as MCData IDs.
LMR_1 = "sip:de.thw.2001@iwf.de.example.eu"
LMR_2 = "sip:de.thw.2002@iwf.de.example.eu"
LMR_GROUP = "sip:border-ops@iwf.de.example.eu"


class Recorder:
    """Sink that records adapter events, lets tests wait for them and can refuse messages."""

    def __init__(self) -> None:
        self.events: list[McdataEvent] = []
        self.refuse: Callable[[McdataEvent], BaseException | None] | None = None
        self._changed = asyncio.Condition()

    async def __call__(self, event: McdataEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        if self.refuse is not None and not isinstance(event, LinkStateChanged):
            error = self.refuse(event)
            if error is not None:
                raise error

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(predicate)

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def sds(self) -> list[McdataSdsReceived]:
        return self.of_type(McdataSdsReceived)

    def notifications(self) -> list[McdataNotificationReceived]:
        return self.of_type(McdataNotificationReceived)

    def rejected(self) -> list[McdataRejected]:
        return self.of_type(McdataRejected)

    def states(self) -> list[LinkState]:
        return [event.state for event in self.of_type(LinkStateChanged)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(peer_port: int, **overrides: Any) -> McdataAdapterConfig:
    values: dict[str, Any] = {
        "name": "mcdata-test",
        "server_uri": "sip:iwf.de.example.eu",
        "peer_host": "127.0.0.1",
        "peer_port": peer_port,
        "request_timeout": 2.0,
        "connect_timeout": 1.0,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
    }
    values.update(overrides)
    return McdataAdapterConfig(**values)


async def wait_sim(sim: McdataSystemSimulator, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5.0):
        await sim.wait_for(predicate)


class RawSip:
    """A raw TCP client for malformed input: writes bytes, reads responses with the codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = SipConnection(role=SipRole.CLIENT)

    @classmethod
    async def open(cls, port: int) -> RawSip:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def next_event(self, limit: float = 5.0) -> object:
        """The next event; ``ConnectionClosed`` when the adapter closed the connection."""
        async with asyncio.timeout(limit):
            while True:
                event = self.conn.next_event()
                if event is not NEED_DATA:
                    return event
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    data = b""
                self.conn.receive_data(data)

    async def response(self, limit: float = 5.0) -> SipResponse:
        event = await self.next_event(limit)
        assert isinstance(event, SipResponse), event
        return event

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def mcx_and_adapter(
    *, inbound_timeout: float, **options: Any
) -> AsyncIterator[tuple[McdataAdapter, McdataSystemSimulator]]:
    """A simulated MCX system (no groups) and an adapter connected to it.

    ``options`` go into the adapter's config (:func:`make_config`).
    """
    recorder = Recorder()
    async with McdataSystemSimulator(
        users=(ALICE, BOB, CAROL), groups={}, request_timeout=2.0
    ) as sim:
        rng = random.Random(7)
        adapter = McdataAdapter(
            make_config(sim.port, **options),
            recorder,
            random=rng.random,
            randbits=rng.getrandbits,
            inbound_timeout=inbound_timeout,
        )
        async with adapter:
            sim.gateway_port = adapter.listen_port
            await adapter.wait_connected(5.0)
            yield adapter, sim


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def adapter_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def sim(sim_options: dict[str, Any]) -> AsyncIterator[McdataSystemSimulator]:
    options: dict[str, Any] = {
        "users": (ALICE, BOB, CAROL),
        "groups": {FIRE: [ALICE, BOB]},
        "request_timeout": 2.0,
    }
    options.update(sim_options)
    async with McdataSystemSimulator(**options) as simulator:
        yield simulator


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def adapter(
    sim: McdataSystemSimulator, recorder: Recorder, adapter_options: dict[str, Any]
) -> AsyncIterator[McdataAdapter]:
    config = make_config(sim.port, **adapter_options)
    rng = random.Random(7)
    async with McdataAdapter(
        config, recorder, random=rng.random, randbits=rng.getrandbits
    ) as running:
        sim.gateway_port = running.listen_port
        await running.wait_connected(5.0)
        yield running
