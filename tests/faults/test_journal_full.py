"""The journal's disk fills up under traffic: custody is refused cleanly, nothing is lost.

The gateways run as a real process. Mid-stream the test lowers the process's file
size limit (RLIMIT_FSIZE) below what its journals need, which is what a full disk
looks like to SQLite: every write that grows a file fails. While that lasts, new
texts must be refused with a negative report (0x40) instead of being acknowledged,
the process must stay up, and once the limit is lifted traffic must flow again.
Every text acknowledged with 0x21 must arrive exactly once; no refused text may
arrive at all.
"""

from __future__ import annotations

import asyncio
import resource
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

pytestmark = [pytest.mark.slow, pytest.mark.interop]

REFUSED = 0x40  # network overload: the gateway cannot take custody


def _limit_file_size(pid: int, limit: int) -> None:
    _soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


async def test_full_journal_refuses_custody_and_recovers_without_loss(tmp_path: Path) -> None:
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=["2001"]) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=["1001"]) as sim_fr,
    ):
        configs = [tmp_path / "de.toml", tmp_path / "fr.toml"]
        configs[0].write_text(demo_config_text("DE", partner="FR", pei_port=sim_de.port))
        configs[1].write_text(demo_config_text("FR", partner="DE", pei_port=sim_fr.port))
        state = tmp_path / "state"
        proc = await start_gateways(configs, state)
        sent: dict[int, str] = {}
        try:
            async with asyncio.timeout(60):
                await radios_initialised([sim_de, sim_fr], 1)

                async def send(number: int) -> int:
                    text = f"disk-test #{number:03d}"
                    mr = await sim_de.send_text("2001", "9001001", text)
                    sent[mr] = text
                    return mr

                for number in range(10):
                    await send(number)
                await sim_de.wait_for(lambda: len(reports_with(sim_de, "2001", STORED)) == 10)

                wals = [p.stat().st_size for p in state.glob("*-wal") if p.stat().st_size]
                _limit_file_size(proc.pid, min(wals))  # no journal file may grow: "disk full"
                during = [await send(number) for number in range(10, 20)]
                await sim_de.wait_for(
                    lambda: (
                        set(during)
                        <= reports_with(sim_de, "2001", REFUSED)
                        | reports_with(sim_de, "2001", STORED)
                    )
                )
                assert proc.returncode is None, "the gateway died of a full disk"
                refused = reports_with(sim_de, "2001", REFUSED) & set(during)
                assert refused, "nothing was refused: the fault did not bite"

                _limit_file_size(proc.pid, resource.RLIM_INFINITY)
                after = [await send(number) for number in range(20, 30)]
                await sim_de.wait_for(lambda: set(after) <= reports_with(sim_de, "2001", STORED))
                acknowledged = {sent[mr] for mr in reports_with(sim_de, "2001", STORED)}
                await sim_fr.wait_for(lambda: acknowledged <= set(texts_at(sim_fr, ["1001"])))
        except LinkError:
            pytest.fail("the gateway dropped its radio link")
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    delivered = texts_at(sim_fr, ["1001"])
    assert sorted(delivered) == sorted(set(delivered)), "a text was delivered twice"
    assert not {sent[mr] for mr in refused} & set(delivered), "a refused text was delivered"
    assert acknowledged <= set(delivered)
