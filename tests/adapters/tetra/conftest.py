"""Fixtures: a simulated radio network on loopback TCP and an adapter connected to it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters import LinkState, LinkStateChanged
from adapters.tetra import AdapterEvent, TetraAdapter, TetraAdapterConfig, TetraNetworkSimulator
from protocols.tetra import TextSds

RADIO = "1000"
UNITS = ("2001", "2002")


class Recorder:
    """Sink that records adapter events and lets tests wait for them."""

    def __init__(self) -> None:
        self.events: list[AdapterEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: AdapterEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        async with asyncio.timeout(limit), self._changed:
            await self._changed.wait_for(predicate)

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def states(self) -> list[LinkState]:
        return [event.state for event in self.of_type(LinkStateChanged)]


def make_config(port: int, **overrides: Any) -> TetraAdapterConfig:
    values: dict[str, Any] = {
        "name": "tetra-test",
        "url": f"tcp://127.0.0.1:{port}",
        "keepalive_interval": 5.0,
        "command_timeout": 1.0,
        "send_timeout": 2.0,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
    }
    values.update(overrides)
    return TetraAdapterConfig(**values)


async def wait_sim(sim: TetraNetworkSimulator, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5.0):
        await sim.wait_for(predicate)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def adapter_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def sim(sim_options: dict[str, Any]) -> AsyncIterator[TetraNetworkSimulator]:
    options: dict[str, Any] = {"radio_issi": RADIO, "units": UNITS, "delivery_latency": 0.002}
    options.update(sim_options)
    async with TetraNetworkSimulator(**options) as simulator:
        yield simulator


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def adapter(
    sim: TetraNetworkSimulator, recorder: Recorder, adapter_options: dict[str, Any]
) -> AsyncIterator[TetraAdapter]:
    config = make_config(sim.port, **adapter_options)
    async with TetraAdapter(config, recorder, random=random.Random(7).random) as running:
        await running.wait_connected(5.0)
        yield running


def text(adapter: TetraAdapter, destination: str, body: str, report: int = 1) -> TextSds:
    """An SDS-TL text to ``destination`` with the adapter's next reference for it."""
    return TextSds(
        protocol_id=0x82,
        text=body,
        message_reference=adapter.allocate_reference(destination),
        delivery_report_request=report,
    )
