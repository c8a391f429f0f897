"""Two national gateways on simulated TETRA networks, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.tetra import TetraNetworkSimulator
from gateway.config import parse_config
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from gateway.federation import LocalFederationBus
from gateway.node import Gateway, Observation
from gateway.runner import build_gateways
from protocols.tetra import SdsReport, TextSds

DE_RTW, DE_HLF = "2001", "2002"
FR_VSAV, FR_FPT = "1001", "1002"
ALIAS_OF_FR_VSAV = "9001001"  # in the German plan
ALIAS_OF_DE_RTW = "8002001"  # in the French plan


@dataclass
class Federation:
    bus: LocalFederationBus
    de: Gateway
    fr: Gateway
    sim_de: TetraNetworkSimulator
    sim_fr: TetraNetworkSimulator
    observed: list[Observation]


async def eventually(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` (gateway counters have no change notification)."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def federation(
    tmp_path: Path,
    delivery: dict[str, str] | None = None,
    *,
    de_partners: Sequence[str] = ("FR",),
    **extra: str,
) -> AsyncIterator[Federation]:
    """DE and FR gateways on simulated networks.

    ``extra[nation]`` is appended TOML, ``delivery[nation]`` goes into ``[delivery]``;
    ``de_partners``: DE's partner countries (one not running is reached through
    ``bus.attach``).
    """
    delivery = delivery or {}
    units = {"DE": ["2001", "2002", "2003", "2004", "2999"], "FR": ["1001", "1002", "1003", "1004"]}
    async with (
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["DE"], units=units["DE"], groups={"3001": ["2003", "2004"]}
        ) as sim_de,
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["FR"],
            units=units["FR"],
            max_pdu_bits=1184,
            groups={"4001": ["1003", "1004"]},
        ) as sim_fr,
    ):
        configs = [
            parse_config(
                demo_config_text(
                    "DE",
                    partners=de_partners,
                    pei_port=sim_de.port,
                    delivery=delivery.get("DE", ""),
                )
                + extra.get("DE", "")
            ),
            parse_config(
                demo_config_text(
                    "FR", partner="DE", pei_port=sim_fr.port, delivery=delivery.get("FR", "")
                )
                + extra.get("FR", "")
            ),
        ]
        bus = LocalFederationBus()
        de, fr = build_gateways(configs, bus, state_dir=tmp_path)
        observed: list[Observation] = []
        de.observers.append(observed.append)
        fr.observers.append(observed.append)
        async with de.running(), fr.running():
            await de.wait_ready(5)
            await fr.wait_ready(5)
            yield Federation(bus, de, fr, sim_de, sim_fr, observed)


def texts(sim: TetraNetworkSimulator, issi: str) -> list[TextSds]:
    return [c for _s, c in sim.received.get(issi, []) if isinstance(c, TextSds)]


def reports(sim: TetraNetworkSimulator, issi: str, *, stored: bool = False) -> list[SdsReport]:
    """SDS-REPORTs a radio received; the interim 0x21 "stored" ones only if ``stored``."""
    return [
        c
        for _s, c in sim.reports.get(issi, [])
        if isinstance(c, SdsReport) and (stored or c.delivery_status != 0x21)
    ]
