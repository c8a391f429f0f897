"""Gateways as real processes: what an operator runs, for crash and fault tests."""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path

from adapters.tetra import TetraNetworkSimulator
from protocols.tetra import SdsReport, TextSds

ROOT = Path(__file__).resolve().parents[1]
#: SDS-TL "message stored": the gateway's acknowledgement that it has a message in custody.
STORED = 0x21


async def start_gateways(
    configs: list[Path], state: Path, *, stderr: int | None = asyncio.subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    """Start ``euccs-gw run`` for ``configs`` with journals in ``state``."""
    args = [a for c in configs for a in ("-c", str(c))]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "run",
        *args,
        "--state-dir",
        str(state),
        "--log-level",
        "warning",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )


async def radios_initialised(sims: list[TetraNetworkSimulator], count: int) -> None:
    """Wait until every simulated network saw ``count`` gateway connections initialise."""

    def ready(sim: TetraNetworkSimulator) -> bool:
        initialisations = sum(1 for c in sim.commands if c.name == "+CMGS" and c.test)
        return sim.connection_count >= count and initialisations >= count

    for sim in sims:
        await sim.wait_for(functools.partial(ready, sim))


def reports_with(sim: TetraNetworkSimulator, issi: str, status: int) -> set[int]:
    """Message references of the SDS-REPORTs with ``status`` that radio ``issi`` received."""
    return {
        c.message_reference
        for _s, c in sim.reports.get(issi, [])
        if isinstance(c, SdsReport) and c.delivery_status == status
    }


def texts_at(sim: TetraNetworkSimulator, issis: list[str]) -> list[str]:
    """Texts the radios received, without the gateway's sender prefix, in arrival order."""
    return [
        c.text.split("] ", 1)[-1]
        for issi in issis
        for _s, c in sim.received.get(issi, [])
        if isinstance(c, TextSds)
    ]
