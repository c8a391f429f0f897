"""Custody survives SIGKILL: what a gateway acknowledged to a radio arrives exactly once.

The gateways run as a real ``euccs-gw run`` process with journals in a state
directory; the radio networks are simulated in this process. A stream of texts
flows from German radios to French ones; the process is killed with SIGKILL in
the middle of the stream and started again on the same state directory. A text
counts as acknowledged when its radio received the SDS-TL "message stored"
report (0x21), which the gateway sends only after its journal commit.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from adapters.tetra import TetraNetworkSimulator
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from protocols.errors import LinkError
from tests.processes import (
    STORED,
    radios_initialised,
    reports_with,
    start_gateways,
    texts_at,
)

SENDERS = {"2001": "9001001", "2002": "9001002"}  # German radio -> alias of a French radio
RECEIVERS = {"9001001": "1001", "9001002": "1002"}

pytestmark = [pytest.mark.slow, pytest.mark.interop]


async def test_sigkill_mid_stream_loses_and_duplicates_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=list(SENDERS)) as sim_de,
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["FR"], units=["1001", "1002"], delivery_latency=0.04
        ) as sim_fr,
    ):
        configs = [tmp_path / "de.toml", tmp_path / "fr.toml"]
        configs[0].write_text(demo_config_text("DE", partner="FR", pei_port=sim_de.port))
        configs[1].write_text(demo_config_text("FR", partner="DE", pei_port=sim_fr.port))
        state = tmp_path / "state"

        def arrived() -> list[str]:
            return texts_at(sim_fr, list(RECEIVERS.values()))

        before_kill: set[str] = set()
        sent: dict[tuple[str, int], str] = {}  # (sender, message reference) -> text
        after_restart: set[tuple[str, int]] = set()
        proc = await start_gateways(configs, state)
        try:
            async with asyncio.timeout(60):
                await radios_initialised([sim_de, sim_fr], 1)
                for number in range(80):
                    if number == 40:
                        # The French radio is slower than the German stream: a backlog is
                        # in custody now. No clean-up of any kind:
                        proc.send_signal(signal.SIGKILL)
                        assert await proc.wait() == -signal.SIGKILL
                        before_kill = set(arrived())
                        proc = await start_gateways(configs, state)
                        await radios_initialised([sim_de, sim_fr], 2)
                    sender = ("2001", "2002")[number % 2]
                    text = f"crash-test #{number:03d}"
                    try:
                        mr = await sim_de.send_text(sender, SENDERS[sender], text)
                    except LinkError:
                        continue  # the gateway was not connected: nobody acknowledged it
                    sent[(sender, mr)] = text
                    if number >= 40:
                        after_restart.add((sender, mr))
                    await asyncio.sleep(0.01)

                def acked() -> set[tuple[str, int]]:
                    return {(s, mr) for s in SENDERS for mr in reports_with(sim_de, s, STORED)}

                await sim_de.wait_for(lambda: after_restart <= acked())
                acknowledged = {
                    sent[(s, mr)] for s in SENDERS for mr in reports_with(sim_de, s, STORED)
                }
                assert len(acknowledged) >= 50, "too few texts acknowledged to test anything"

                await sim_fr.wait_for(lambda: acknowledged <= set(arrived()))
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    delivered = arrived()
    duplicates = sorted({t for t in delivered if delivered.count(t) > 1})
    assert duplicates == [], f"delivered more than once: {duplicates}"
    assert acknowledged <= set(delivered)
    assert set(delivered) <= set(sent.values())
    # Texts accepted before the kill but delivered after it: resumed from the journal.
    resumed = {t for t in delivered if int(t[-3:]) < 40} - before_kill
    assert resumed, "the kill left nothing in custody; the test proved nothing"
