"""Wall clocks step (NTP corrections, a wrong manual setting): nothing stalls, expires or repeats.

The German gateway's wall clock steps back one hour in the middle of a stream, during
a link outage that forces retransmissions; the French one steps five minutes ahead.
Local timers run on the monotonic clock and expiry is re-based at each hop, so every
text the German gateway acknowledged still arrives exactly once, and none is declared
expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from adapters.tetra import TetraNetworkSimulator
from gateway.config import parse_config
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from gateway.federation import LocalFederationBus
from gateway.node import Gateway
from tests.gateway.federation import eventually
from tests.processes import STORED, reports_with, texts_at

pytestmark = pytest.mark.slow


class SteppedClock:
    """A wall clock that an operator (the test) can step."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_clock_steps_neither_stall_nor_expire_nor_duplicate(tmp_path: Path) -> None:
    clocks = {"DE": SteppedClock(), "FR": SteppedClock()}
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=["2001"]) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=["1001"]) as sim_fr,
        contextlib.AsyncExitStack() as stack,
    ):
        bus = LocalFederationBus()
        fast = "ack_timeout = 0.5\nexpiry_seconds = { routine = 60 }"
        gateways = {
            nation: Gateway(
                parse_config(
                    demo_config_text(
                        nation,
                        partner="FR" if nation == "DE" else "DE",
                        pei_port=sim.port,
                        delivery=fast,
                    )
                ),
                bus.attach(nation),
                journal=tmp_path / f"{nation}.sqlite3",
                clock=clocks[nation],
            )
            for nation, sim in (("DE", sim_de), ("FR", sim_fr))
        }
        for gateway in gateways.values():
            await stack.enter_async_context(gateway.running())
            await gateway.wait_ready(5)

        sent: dict[int, str] = {}

        async def stream(prefix: str, count: int) -> None:
            for number in range(count):
                text = f"{prefix} #{number:02d}"
                sent[await sim_de.send_text("2001", "9001001", text)] = text
                await asyncio.sleep(0.03)

        await stream("before", 5)
        bus.cut("FR")  # in flight and unacknowledged: retransmissions will be needed
        await stream("cut", 5)
        clocks["DE"].offset = -3600.0  # Germany's clock steps back an hour...
        clocks["FR"].offset = +300.0  # ...and France's five minutes ahead
        await stream("stepped", 5)
        await asyncio.sleep(0.6)
        bus.cut("FR", down=False)
        await stream("after", 5)

        await eventually(lambda: len(reports_with(sim_de, "2001", STORED)) == len(sent))
        acknowledged = set(sent.values())
        await eventually(lambda: acknowledged <= set(texts_at(sim_fr, ["1001"])), seconds=15)
        await asyncio.sleep(1.0)  # a late duplicate would show up now
    delivered = texts_at(sim_fr, ["1001"])
    assert sorted(delivered) == sorted(acknowledged)
    assert gateways["DE"].counters["expired"] == 0
    assert gateways["FR"].counters["expired"] == 0
    assert gateways["DE"].counters["federation_retry_FR"] > 0
