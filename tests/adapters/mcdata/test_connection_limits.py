"""The SIP listener's per-address bound: a flood from one address cannot take every slot."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import structlog

from protocols.errors import ConfigError
from tests.adapters.mcdata.conftest import ALICE, LMR_1, make_config, mcx_and_adapter
from tests.gateway.federation import eventually

FLOODER = "127.0.0.2"  # the simulated MCX system connects from 127.0.0.1


async def _closed_at_once(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(5.0):
            return await reader.read(1) == b""
    return True


async def test_flood_from_one_address_is_refused_while_the_mcx_system_gets_in() -> None:
    async with mcx_and_adapter(
        inbound_timeout=30.0, max_connections=32, max_connections_per_address=4
    ) as (adapter, sim):
        with structlog.testing.capture_logs() as logs:
            flood = [
                await asyncio.open_connection(
                    "127.0.0.1", adapter.listen_port, local_addr=(FLOODER, 0)
                )
                for _ in range(10)
            ]
            counters = adapter.counters
            await eventually(lambda: counters["connections_refused_per_address"] == 6)
            assert all([await _closed_at_once(reader) for reader, _ in flood[4:]])
            assert not any(reader.at_eof() for reader, _ in flood[:4])
            # The MCX system, from another address, is served meanwhile.
            assert (await sim.send_sds(ALICE, LMR_1, "through the flood")).ok
        assert counters["connections_refused"] == 0
        assert counters["sds_in"] >= 1
        refusals = [e for e in logs if e["event"] == "sip_connection_refused_per_address"]
        assert len(refusals) == 6
        assert {(e["address"], e["limit"], e["log_level"]) for e in refusals} == {
            (FLOODER, 4, "warning")
        }
        for _, writer in flood:
            writer.close()
        await eventually(lambda: adapter.inbound_connections <= 1)  # the MCX system's


def test_per_address_bound_defaults_to_16_or_max_connections() -> None:
    assert make_config(5060).per_address_limit == 16
    assert make_config(5060, max_connections=4).per_address_limit == 4
    assert make_config(5060, max_connections_per_address=2).per_address_limit == 2


@pytest.mark.parametrize("value", [0, 65])
def test_per_address_bound_is_validated(value: int) -> None:
    with pytest.raises(ConfigError, match="max_connections_per_address"):
        make_config(5060, max_connections=64, max_connections_per_address=value)
