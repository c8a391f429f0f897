"""Misbehaving national systems: a radio that stops reading, a radio that floods the PEI.

In both cases every text the gateway acknowledged (0x21) must reach the far radio
exactly once, and the gateway must keep serving its other traffic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.gateway.federation import (
    ALIAS_OF_DE_RTW,
    ALIAS_OF_FR_VSAV,
    DE_RTW,
    FR_FPT,
    FR_VSAV,
    Federation,
    eventually,
    federation,
)
from tests.processes import STORED, reports_with, texts_at

pytestmark = pytest.mark.slow


async def _send_texts(fed: Federation, prefix: str, count: int) -> dict[int, str]:
    sent = {}
    for number in range(count):
        text = f"{prefix} #{number:02d}"
        sent[await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, text)] = text
    return sent


def _assert_exactly_once(fed: Federation, sent: dict[int, str]) -> None:
    acknowledged = {sent[mr] for mr in reports_with(fed.sim_de, DE_RTW, STORED) if mr in sent}
    assert acknowledged == set(sent.values())
    delivered = texts_at(fed.sim_fr, [FR_VSAV])
    assert sorted(delivered) == sorted(acknowledged)


async def test_far_radio_that_stops_reading_delays_but_loses_nothing(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        fed.sim_fr.set_stalled(True)  # the French radio hangs: TCP backpressure
        sent = await _send_texts(fed, "stalled", 10)
        # Meanwhile the other direction keeps working (the German side is healthy).
        await fed.sim_fr.send_text(FR_FPT, ALIAS_OF_DE_RTW, "toujours là ?")
        await asyncio.sleep(2.0)  # let command timeouts and reconnect attempts happen
        assert texts_at(fed.sim_fr, [FR_VSAV]) == []
        fed.sim_fr.set_stalled(False)
        await eventually(lambda: len(texts_at(fed.sim_fr, [FR_VSAV])) >= 10, seconds=30)
        await asyncio.sleep(0.5)  # a duplicate would show up now
        _assert_exactly_once(fed, sent)
        assert texts_at(fed.sim_de, [DE_RTW]) == ["toujours là ?"]


async def test_radio_flooding_the_pei_with_garbage_does_not_stop_traffic(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        junk = (
            b"+CTSDSR: 12,2001,0,9001001,0,9999\r\nZZZZ\r\n"  # lies about its length
            + b"OK\r\n" * 50  # results nobody asked for
            + b"+CME ERROR: 4\r\n" * 20
            + bytes(range(256)) * 8  # binary noise
            + b"\r\n+CTSDSR: 12,2001,0,9001001,0,16\r\n8204\r\n"  # too short for SDS-TL
        )
        for _ in range(20):
            await fed.sim_de.send_raw(junk)
        sent = await _send_texts(fed, "after the flood", 10)
        await eventually(lambda: len(texts_at(fed.sim_fr, [FR_VSAV])) >= 10, seconds=30)
        await asyncio.sleep(0.5)
        _assert_exactly_once(fed, sent)
        assert fed.de.counters["rejected_input"] >= 1
