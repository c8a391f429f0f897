"""Gateways as real processes (``euccs-gw run``), their broker and simulated radio networks.

Shared by the benchmarks that run a federation across processes and by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.tetra import TetraNetworkSimulator

__all__ = [
    "mqtt_backbone",
    "over_mqtt",
    "radios_initialised",
    "start_gateways",
    "while_running",
]

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) process ``pid`` has used, from ``/proc`` (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


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


async def while_running(
    procs: dict[str, asyncio.subprocess.Process],
    folder: Path,
    waiting: Coroutine[Any, Any, Any],
    within: float,
) -> float:
    """Await ``waiting`` for at most ``within`` seconds, failing at once if a gateway exits."""
    began = time.monotonic()
    task: asyncio.Future[Any] = asyncio.ensure_future(waiting)
    exits: dict[asyncio.Future[Any], str] = {
        asyncio.ensure_future(p.wait()): name for name, p in procs.items()
    }
    try:
        done, _pending = await asyncio.wait(
            [task, *exits], timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for future in (task, *exits):
            future.cancel()
    failed = task not in done or task.cancelled() or task.exception() is not None
    if failed:
        gone = [exits[f] for f in done if f in exits]
        what = f"gateway {', '.join(gone)} exited" if gone else f"nothing after {within:g} s"
        logs = "\n".join(
            f"--- {n}.log\n" + (folder / f"{n}.log").read_text(errors="replace")[-1500:]
            for n in (gone or list(procs))
        )
        raise RuntimeError(f"{what}\n{logs}")
    return time.monotonic() - began


async def radios_initialised(sims: list[TetraNetworkSimulator], count: int) -> None:
    """Wait until every simulated network saw ``count`` gateway connections initialise."""

    def ready(sim: TetraNetworkSimulator) -> bool:
        initialisations = sum(1 for c in sim.commands if c.name == "+CMGS" and c.test)
        return sim.connection_count >= count and initialisations >= count

    for sim in sims:
        await sim.wait_for(functools.partial(ready, sim))


@contextlib.contextmanager
def mqtt_backbone(
    directory: Path, names: dict[str, str], pids: dict[str, int] | None = None
) -> Iterator[dict[str, str]]:
    """Mint a federation PKI and run Mosquitto with mutual TLS on a free port.

    Yields each member's ``[federation.mqtt]`` table (TOML text) for gateway ``names``
    (member -> gateway name: a country, or ``DE-2`` for another gateway of a split
    country, whose certificate its country's CA issues); the broker stops afterwards.
    ``pids``, if given, gets the broker's process id under ``"mosquitto"``.
    """
    import certs
    from certs.ca import CertificateAuthority
    from certs.identity import Role
    from gateway.members import member_nation
    from gateway.mqtt_broker import MosquittoBroker, mint_broker_credential

    now = datetime.now(UTC)
    countries = {m: n for m, n in names.items() if m == member_nation(m)}
    federation = certs.mint_federation(
        directory / "pki", sorted(countries), now=now, gateway_names=countries
    )
    credentials = dict(federation.gateways)
    for member in sorted(set(names) - set(countries)):
        ca = CertificateAuthority.load(federation.ca_dirs[member_nation(member)])
        out = directory / "pki" / member_nation(member) / f"gateway-{names[member]}"
        credentials[member] = certs.Credential.of(
            ca.issue(Role.GATEWAY, names[member], now=now, out=out)
        )
    credential = mint_broker_credential(federation, now=now, country=sorted(countries)[0])
    broker = MosquittoBroker.for_federation(
        federation, federation.bundle(), credential, directory / "broker", gateways=names
    )
    broker.start()
    if pids is not None and broker.pid is not None:
        pids["mosquitto"] = broker.pid
    try:
        yield {
            country: "\n".join(
                [
                    "[federation.mqtt]",
                    'host = "127.0.0.1"',
                    f"port = {broker.port}",
                    f'cert = "{credentials[country].cert}"',
                    f'key = "{credentials[country].key}"',
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
