"""Gateways as real processes: what an operator runs, for crash and fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.tetra import TetraNetworkSimulator
from protocols.tetra import SdsReport, TextSds

ROOT = Path(__file__).resolve().parents[1]
#: SDS-TL "message stored": the gateway's acknowledgement that it has a message in custody.
STORED = 0x21


async def start_gateways(
    configs: list[Path],
    state: Path,
    *,
    stderr: Any = asyncio.subprocess.DEVNULL,
    extra: Sequence[str] = (),
    log_level: str = "warning",
) -> asyncio.subprocess.Process:
    """Start ``euccs-gw run`` for ``configs`` with journals in ``state``.

    ``extra``: more arguments of ``run`` (e.g. ``--instance``); ``stderr``: where the
    JSON log lines at ``log_level`` go (a file, not a pipe nobody reads).
    """
    args = [*(a for c in configs for a in ("-c", str(c))), *extra]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "run",
        *args,
        "--state-dir",
        str(state),
        "--log-level",
        log_level,
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


@contextlib.contextmanager
def mqtt_backbone(directory: Path, names: dict[str, str]) -> Iterator[dict[str, str]]:
    """Mint a federation PKI and run Mosquitto with mutual TLS on a free port.

    Yields each country's ``[federation.mqtt]`` table (TOML text) for gateway ``names``
    (country -> gateway name); the broker stops afterwards.
    """
    import certs
    from gateway.mqtt_broker import MosquittoBroker, mint_broker_credential

    now = datetime.now(UTC)
    federation = certs.mint_federation(
        directory / "pki", sorted(names), now=now, gateway_names=names
    )
    credential = mint_broker_credential(federation, now=now, country=sorted(names)[0])
    broker = MosquittoBroker.for_federation(
        federation, federation.bundle(), credential, directory / "broker"
    )
    broker.start()
    try:
        yield {
            country: "\n".join(
                [
                    "[federation.mqtt]",
                    'host = "127.0.0.1"',
                    f"port = {broker.port}",
                    f'cert = "{federation.gateways[country].cert}"',
                    f'key = "{federation.gateways[country].key}"',
                    f'bundle = "{federation.bundle_dir}"',
                    f'broker_identity = "{credential.identity.uri}"',
                    "keepalive = 5",
                    "reconnect_cap = 1",
                    "",
                ]
            )
            for country in names
        }
    finally:
        broker.stop()


def over_mqtt(config_text: str, mqtt_table: str, *extra_tables: str) -> str:
    """A demo gateway configuration moved from the embedded bus to the MQTT backbone."""
    assert 'transport = "local"' in config_text
    text = config_text.replace('transport = "local"', 'transport = "mqtt"', 1)
    return "\n".join([text, mqtt_table, *extra_tables])
