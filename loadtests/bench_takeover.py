"""A country on one and on two instances: throughput with each, and the takeover time.

    .venv/bin/python -m loadtests.bench_takeover [--seconds S] [--ttl T]

Real processes on loopback: a private PostgreSQL (``initdb``), Mosquitto with mutual TLS,
the French gateway, and Germany split over two gateways (``DE`` and ``DE-2``,
:mod:`gateway.members`), each with its own radio network and ``[cluster] home`` on one of
two instances (one shared PostgreSQL database), in front of TETRA networks simulated in this
process.

1. **One instance** (``de-1``) runs both German gateways (``de-2`` is not up): French radios
   send texts to a radio of each German gateway for ``S`` seconds, keeping 200 texts on
   their way (a closed loop, so the backlog stays bounded); texts delivered to German radios
   per second.
2. **Two instances**: ``de-2`` starts, ``DE-2`` is handed to it (its home), and each
   instance runs one gateway; the same measurement.
3. **Takeover**: ``de-1`` is killed with SIGKILL while the traffic goes on; the time until
   ``de-2`` has connected ``DE``'s adapter to its radio network's PEI, and until the next
   text reaches a radio of ``DE``.

Prints a table and, as its last line, one JSON object with the figures and the throughput
ratio (two instances / one). Prints figures; asserts nothing. Needs PostgreSQL's binaries
(``scripts/ensure-postgres``) and Mosquitto (``scripts/ensure-mosquitto``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.tetra import TetraNetworkSimulator
from gateway.demo_configs import (
    SPLIT_ALIASES_FR,
    SPLIT_RADIO,
    SPLIT_UNITS,
    split_config_text,
)
from loadtests._postgres import find_bindir, running_postgres
from loadtests._processes import (
    cpu_seconds,
    mqtt_backbone,
    over_mqtt,
    radios_initialised,
    start_gateways,
    while_running,
)
from loadtests.federation_bench import UNLIMITED_RATES
from protocols.errors import LinkError
from protocols.tetra import TextSds

#: French radios writing (each its own radio, so that the French gateway's custody commits
#: group several texts), half of them to a radio of each German gateway.
_SENDERS = [f"11{n:02d}" for n in range(1, 17)]
_ROUTES = {
    sender: SPLIT_ALIASES_FR["rtw-1" if n % 2 else "rtw-2"] for n, sender in enumerate(_SENDERS)
}
#: The senders as units of the French gateway.
_FRENCH_UNITS = "".join(
    f'[[units]]\nunit = "fr.sdis67.bench-{s}"\nadapter = "tetra-fr"\nissi = "{s}"\n'
    for s in _SENDERS
)
#: The German radios written to, and the gateway (member) whose network they are on.
_GERMAN_RADIOS = (("DE", SPLIT_UNITS["DE"]["rtw-1"]), ("DE-2", SPLIT_UNITS["DE-2"]["rtw-2"]))
#: Texts sent and not yet delivered, at most: enough to keep every stage busy, and a
#: backlog that stays bounded (an open loop would measure the queues filling).
_OUTSTANDING = 200


class _Traffic:
    """French radios writing to German radios, with a bounded number of texts on the way."""

    def __init__(
        self, sim_fr: TetraNetworkSimulator, german: dict[str, TetraNetworkSimulator]
    ) -> None:
        self.sim_fr, self.german = sim_fr, german
        self.sent = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._scanned: dict[str, int] = {}
        self._counts: dict[str, int] = dict.fromkeys(german, 0)

    def delivered(self, member: str | None = None) -> int:
        """Texts the German radios (of ``member``'s network) have received (counted once)."""
        for network, radio in _GERMAN_RADIOS:
            received = self.german[network].received.get(radio, [])
            seen = self._scanned.get(radio, 0)
            self._counts[network] += sum(isinstance(c, TextSds) for _s, c in received[seen:])
            self._scanned[radio] = len(received)
        return sum(self._counts.values()) if member is None else self._counts[member]

    async def _send(self, sender: str, alias: str) -> None:
        number = 0
        while True:
            while self.sent - self.delivered() >= _OUTSTANDING:  # noqa: ASYNC110 - polled
                await asyncio.sleep(0.005)
            try:
                await self.sim_fr.send_text(sender, alias, f"{sender} #{number:06d}")
                self.sent += 1
            except LinkError:
                await asyncio.sleep(0.05)
            number += 1

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(s, a)) for s, a in _ROUTES.items()]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def rate(self, seconds: float) -> float:
        """Texts delivered to German radios per second over the next ``seconds``."""
        before, began = self.delivered(), time.monotonic()
        await asyncio.sleep(seconds)
        return (self.delivered() - before) / (time.monotonic() - began)


async def _measured(
    traffic: _Traffic, seconds: float, procs: dict[str, asyncio.subprocess.Process]
) -> tuple[float, dict[str, float]]:
    """Texts delivered per second, and each German instance's share of a core meanwhile."""
    instances = {n: p for n, p in procs.items() if p.returncode is None}
    before = {n: cpu_seconds(p.pid) for n, p in instances.items()}
    began = time.monotonic()
    rate = await traffic.rate(seconds)
    took = time.monotonic() - began
    cores = {}
    for name, proc in instances.items():
        start, end = before[name], cpu_seconds(proc.pid)
        if start is not None and end is not None:
            cores[name] = round((end - start) / took, 2)
    return rate, cores


async def _first_change(value: Any, since: int, within: float) -> float:
    """Seconds until ``value()`` exceeds ``since`` (polled every 10 ms).

    Raises:
        TimeoutError: it did not within ``within`` seconds.
    """
    began = time.monotonic()
    while value() <= since:
        if time.monotonic() - began >= within:
            raise TimeoutError(f"no change within {within:g} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def run(seconds: float, ttl: float, folder: Path, postgres_url: str) -> dict[str, Any]:
    """The three phases against the given PostgreSQL; return the figures.

    Raises:
        RuntimeError: a gateway did not come up or exited (the message has its log's end).
    """
    names = {"DE": "gw-de", "DE-2": "gw-de-2", "FR": "gw-fr"}
    procs: dict[str, asyncio.subprocess.Process] = {}
    async with contextlib.AsyncExitStack() as stack:
        sims: dict[str, TetraNetworkSimulator] = {}
        for member in names:
            sims[member] = await stack.enter_async_context(
                TetraNetworkSimulator(
                    radio_issi=SPLIT_RADIO[member],
                    units=[*SPLIT_UNITS[member].values(), *(_SENDERS if member == "FR" else ())],
                )
            )
        mqtt = stack.enter_context(mqtt_backbone(folder, names))
        # Registered last, so it runs first: the gateways stop before their peers do.
        stack.push_async_callback(_stop_all, procs)
        logs = {n: stack.enter_context((folder / f"{n}.log").open("wb")) for n in _PROCESSES}
        files = {member: folder / f"{member.lower()}.toml" for member in names}
        for member, home in (("DE", "de-1"), ("DE-2", "de-2"), ("FR", None)):
            clustered = (
                (_FRENCH_UNITS,)
                if home is None
                else (
                    f'[journal]\nurl = "{postgres_url}"\n',
                    f'[cluster]\nlease_ttl = {ttl}\nhome = "{home}"\n',
                )
            )
            files[member].write_text(
                over_mqtt(
                    split_config_text(member, sims[member].port),
                    mqtt[member],
                    UNLIMITED_RATES,
                    *clustered,
                )
            )
        german = [files["DE"], files["DE-2"]]

        async def start(name: str, configs: list[Path], *extra: str) -> None:
            procs[name] = await start_gateways(
                configs, folder / f"state-{name}", extra=extra, stderr=logs[name]
            )

        await start("fr", [files["FR"]])
        await start("de-1", german, "--instance", "de-1")  # runs both: de-2 is not up
        await while_running(procs, folder, radios_initialised(list(sims.values()), 1), 60.0)
        sim_fr, sim_de = sims["FR"], sims["DE"]
        traffic = _Traffic(sim_fr, {"DE": sims["DE"], "DE-2": sims["DE-2"]})
        traffic.start()
        stack.push_async_callback(traffic.stop)
        # The federation is up once a first text has crossed it.
        await while_running(procs, folder, _first_change(traffic.delivered, 0, 60.0), 60.0)
        await asyncio.sleep(max(3.0, seconds / 2))  # warm-up: the rate settles
        one, one_cores = await _measured(traffic, seconds, procs)
        handed = sims["DE-2"].connection_count
        await start("de-2", german, "--instance", "de-2")
        handback_s = await while_running(
            procs,
            folder,
            _first_change(lambda: sims["DE-2"].connection_count, handed, 60),
            60,
        )
        await asyncio.sleep(max(3.0, seconds / 2))  # the rate settles
        two, two_cores = await _measured(traffic, seconds, procs)
        connections = sim_de.connection_count
        procs["de-1"].send_signal(signal.SIGKILL)
        await procs["de-1"].wait()
        killed = time.monotonic()
        standby = {"de-2": procs["de-2"], "fr": procs["fr"]}
        adapter_s = await while_running(
            standby, folder, _first_change(lambda: sim_de.connection_count, connections, 60), 60
        )
        # Counted from the new instance's connection: texts the dead one handed to the
        # radios just before the kill may still arrive for a few milliseconds after it.
        delivered_at_takeover = traffic.delivered("DE")
        await while_running(
            standby,
            folder,
            _first_change(lambda: traffic.delivered("DE"), delivered_at_takeover, 60.0),
            60.0,
        )
        delivery_s = time.monotonic() - killed
        after = await traffic.rate(seconds)
    return {
        "seconds": seconds,
        "lease_ttl_s": ttl,
        "one_instance_msg_s": round(one, 1),
        "two_instances_msg_s": round(two, 1),
        "throughput_ratio_two_to_one": round(two / one, 2) if one else None,
        "handback_adapter_s": round(handback_s, 2),
        "one_instance_cores": one_cores,
        "two_instances_cores": two_cores,
        "takeover_adapter_s": round(adapter_s, 2),
        "takeover_first_delivery_s": round(delivery_s, 2),
        "after_takeover_msg_s": round(after, 1),
    }


_PROCESSES = ("fr", "de-1", "de-2")


async def _stop_all(procs: dict[str, asyncio.subprocess.Process]) -> None:
    """SIGTERM every gateway; SIGKILL what has not stopped 20 s later."""
    running = [p for p in procs.values() if p.returncode is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    _done, late = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in running], timeout=20)
    for proc in running:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for future in late:
        future.cancel()


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed: run scripts/ensure-postgres")
    with running_postgres(bindir) as cluster:
        yield cluster.url


def _cores(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.2f}" for name, share in sorted(used.items())) or "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_takeover")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--ttl", type=float, default=3.0, help="[cluster] lease_ttl")
    args = parser.parse_args(argv)
    from gateway.logs import configure_logging

    configure_logging("off")
    with tempfile.TemporaryDirectory(prefix="euccs-takeover-") as folder, _postgres() as url:
        print(
            "running: Germany (DE, DE-2) on one instance, on two, SIGKILL of the one running DE",
            file=sys.stderr,
        )
        result = asyncio.run(run(args.seconds, args.ttl, Path(folder), url))
    print(
        f"one instance      {result['one_instance_msg_s']:>8} msg/s\n"
        f"two instances     {result['two_instances_msg_s']:>8} msg/s "
        f"(ratio {result['throughput_ratio_two_to_one']}; DE-2 went to its home instance in "
        f"{result['handback_adapter_s']} s)\n"
        f"cores used        one instance {_cores(result['one_instance_cores'])}; two instances "
        f"{_cores(result['two_instances_cores'])}\n"
        f"takeover          adapter up after {result['takeover_adapter_s']} s, first delivery "
        f"after {result['takeover_first_delivery_s']} s (lease ttl {args.ttl:g} s)\n"
        f"after takeover    {result['after_takeover_msg_s']:>8} msg/s"
    )
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
