"""The network between a gateway and its broker fails: cut 30 s, reset, half-open, delayed.

Two gateways federate over a real Mosquitto with mutual TLS; the German gateway's
connection to the broker goes through a TCP proxy the test controls. Texts flow
from German to French radios the whole time. Whatever the network does, every
text the German gateway acknowledged (SDS-TL 0x21) reaches the French radio
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from adapters.tetra import TetraNetworkSimulator
from gateway.config import GatewayConfig, parse_config
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from gateway.federation import FederationLink, LocalFederationBus
from gateway.mqtt_link import MqttFederationLink
from gateway.node import Gateway
from gateway.runner import build_gateways
from tests.faults.proxy import FaultProxy, fault_proxy
from tests.interop.mosquitto import MqttWorld
from tests.processes import STORED, reports_with, texts_at

pytestmark = [pytest.mark.slow, pytest.mark.interop]

CUT_SECONDS = 30.0


async def _stream(sim: TetraNetworkSimulator, sent: dict[int, str], prefix: str, n: int) -> None:
    for number in range(n):
        text = f"{prefix} #{number:03d}"
        with contextlib.suppress(OSError):  # the radio side never fails in this test
            sent[await sim.send_text("2001", "9001001", text)] = text
        await asyncio.sleep(0.05)


@dataclass
class Crossing:
    de: Gateway
    proxy: FaultProxy
    sim_de: TetraNetworkSimulator
    sim_fr: TetraNetworkSimulator


@contextlib.asynccontextmanager
async def crossing(world: MqttWorld, *, proxied: tuple[str, ...]) -> AsyncIterator[Crossing]:
    """DE and FR over the real broker; the ``proxied`` countries reach it through the proxy."""
    async with (
        fault_proxy(world.broker.host, world.broker.port) as proxy,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=["2001"]) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=["1001"]) as sim_fr,
        contextlib.AsyncExitStack() as stack,
    ):
        configs = [
            parse_config(demo_config_text("DE", partner="FR", pei_port=sim_de.port)),
            parse_config(demo_config_text("FR", partner="DE", pei_port=sim_fr.port)),
        ]
        links: dict[str, MqttFederationLink] = {}

        def link(
            config: GatewayConfig, _bus: LocalFederationBus, epoch: Callable[[], int]
        ) -> FederationLink:
            settings = replace(world.settings(config.nation), keepalive=2)
            if config.nation in proxied:
                settings = replace(settings, host="127.0.0.1", port=proxy.port)
            links[config.nation] = MqttFederationLink(
                config.nation, settings, epoch=epoch, gateway_name=f"gw-{config.nation.lower()}"
            )
            return links[config.nation]

        state = Path(world.federation.bundle_dir).parent / f"state-{uuid.uuid4().hex[:8]}"
        de, fr = build_gateways(configs, LocalFederationBus(), state_dir=state, link_factory=link)
        await stack.enter_async_context(de.running())
        await stack.enter_async_context(fr.running())
        await de.wait_ready(10)
        await fr.wait_ready(10)
        await links["DE"].wait_until(lambda: links["DE"].reachable("FR"), 10)
        yield Crossing(de, proxy, sim_de, sim_fr)


async def test_link_faults_lose_and_duplicate_nothing_acknowledged(mqtt_world: MqttWorld) -> None:
    async with crossing(mqtt_world, proxied=("DE",)) as c:  # only Germany crosses the fault
        de, proxy, sim_de, sim_fr = c.de, c.proxy, c.sim_de, c.sim_fr
        sent: dict[int, str] = {}
        async with asyncio.timeout(CUT_SECONDS + 60):
            await _stream(sim_de, sent, "before", 10)
            await _fault(proxy, "cut", CUT_SECONDS, sim_de, sent)
            await _fault(proxy, "half_open", 8.0, sim_de, sent)
            await _fault(proxy, "delay", 3.0, sim_de, sent, delay=0.3)
            proxy.set("pass")
            await _stream(sim_de, sent, "after", 10)

            # Every text is acknowledged (0x21) once the German journal has it.
            await sim_de.wait_for(lambda: set(sent) <= reports_with(sim_de, "2001", STORED))
            acknowledged = {sent[mr] for mr in reports_with(sim_de, "2001", STORED) if mr in sent}
            await sim_fr.wait_for(lambda: acknowledged <= set(texts_at(sim_fr, ["1001"])))
            await asyncio.sleep(1.0)  # a late duplicate would show up now
    delivered = texts_at(sim_fr, ["1001"])
    assert len(acknowledged) == len(sent), "every text was acknowledged despite the faults"
    assert sorted(delivered) == sorted(set(delivered)), "a text was delivered twice"
    assert acknowledged <= set(delivered)
    assert proxy.connections >= 3, "the link reconnected through the proxy after the faults"
    assert de.counters["retransmissions"] + de.counters["federation_retry_FR"] > 0


async def test_broker_restart_loses_nothing_acknowledged(mqtt_world: MqttWorld) -> None:
    """The broker restarts (no persistence: whatever it held is gone) in mid-stream."""
    world = mqtt_world
    async with crossing(world, proxied=("DE", "FR")) as c:
        proxy, sim_de, sim_fr = c.proxy, c.sim_de, c.sim_fr
        sent: dict[int, str] = {}
        async with asyncio.timeout(90):
            await _stream(sim_de, sent, "before", 10)
            restart = asyncio.create_task(asyncio.to_thread(_restart, world, proxy))
            await _stream(sim_de, sent, "during", 20)
            await restart
            await _stream(sim_de, sent, "after", 10)
            # Every text is acknowledged (0x21) once the German journal has it.
            await sim_de.wait_for(lambda: set(sent) <= reports_with(sim_de, "2001", STORED))
            acknowledged = {sent[mr] for mr in reports_with(sim_de, "2001", STORED) if mr in sent}
            await sim_fr.wait_for(lambda: acknowledged <= set(texts_at(sim_fr, ["1001"])))
            await asyncio.sleep(1.0)  # a late duplicate would show up now
    delivered = texts_at(sim_fr, ["1001"])
    assert len(acknowledged) == len(sent)
    assert sorted(delivered) == sorted(set(delivered)), "a text was delivered twice"
    assert acknowledged <= set(delivered)
    assert proxy.connections >= 4, "both gateways reconnected to the restarted broker"


def _restart(world: MqttWorld, proxy: FaultProxy) -> None:
    world.broker.stop()  # every session and queued message of the broker is gone
    world.broker.start()
    proxy.target = (world.broker.host, world.broker.port)


async def _fault(
    proxy: FaultProxy,
    mode: str,
    seconds: float,
    sim: TetraNetworkSimulator,
    sent: dict[int, str],
    *,
    delay: float = 0.0,
) -> None:
    proxy.set(mode, delay=delay)  # type: ignore[arg-type]
    await asyncio.gather(
        _stream(sim, sent, mode, max(1, int(seconds / 1.0))),
        asyncio.sleep(seconds),
    )
