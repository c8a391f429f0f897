"""Several instances of one gateway: throughput with one and with two, and the takeover time.

    .venv/bin/python -m loadtests.bench_takeover [--seconds S] [--ttl T]

Real processes on loopback: a private PostgreSQL (``initdb``), Mosquitto with mutual TLS,
the French gateway, and one, then two instances of the German gateway (``[cluster]``, one
shared PostgreSQL journal), in front of TETRA networks simulated in this process.

1. **One instance**: French radios send texts to German radios for ``S`` seconds, keeping
   200 texts on their way (a closed loop, so the backlog stays bounded); texts delivered
   to German radios per second.
2. **Two instances** (the second stands by): the same.
3. **Takeover**: the active German instance is killed with SIGKILL while the traffic goes
   on; the time until the standby's adapter has connected to the German radio network's
   PEI, and until the next text reaches a German radio.

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
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from loadtests._postgres import find_bindir, running_postgres
from loadtests._processes import (
    mqtt_backbone,
    over_mqtt,
    radios_initialised,
    start_gateways,
    while_running,
)
from loadtests.federation_bench import UNLIMITED_RATES
from protocols.errors import LinkError
from protocols.tetra import TextSds

#: French radio -> the alias of the German radio it writes to.
_ROUTES = {"1001": "8002001", "1002": "8002002"}
_GERMAN_RADIOS = ("2001", "2002")
#: Texts sent and not yet delivered, at most: enough to keep every stage busy, and a
#: backlog that stays bounded (an open loop would measure the queues filling).
_OUTSTANDING = 200


class _Traffic:
    """French radios writing to German radios, with a bounded number of texts on the way."""

    def __init__(self, sim_fr: TetraNetworkSimulator, sim_de: TetraNetworkSimulator) -> None:
        self.sim_fr, self.sim_de = sim_fr, sim_de
        self.sent = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._scanned: dict[str, int] = {}
        self._count = 0

    def delivered(self) -> int:
        """Texts the German radios have received (counted once: the lists only grow)."""
        for radio in _GERMAN_RADIOS:
            received = self.sim_de.received.get(radio, [])
            seen = self._scanned.get(radio, 0)
            self._count += sum(isinstance(c, TextSds) for _s, c in received[seen:])
            self._scanned[radio] = len(received)
        return self._count

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
    names = {"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg"}
    procs: dict[str, asyncio.subprocess.Process] = {}
    async with contextlib.AsyncExitStack() as stack:
        sim_de = await stack.enter_async_context(
            TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=list(_GERMAN_RADIOS))
        )
        sim_fr = await stack.enter_async_context(
            TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=list(_ROUTES))
        )
        mqtt = stack.enter_context(mqtt_backbone(folder, names))
        # Registered last, so it runs first: the gateways stop before their peers do.
        stack.push_async_callback(_stop_all, procs)
        logs = {n: stack.enter_context((folder / f"{n}.log").open("wb")) for n in _PROCESSES}
        de, fr = folder / "de.toml", folder / "fr.toml"
        de.write_text(
            over_mqtt(
                demo_config_text("DE", partner="FR", pei_port=sim_de.port),
                mqtt["DE"],
                UNLIMITED_RATES,
                f'[journal]\nurl = "{postgres_url}"\n',
                f"[cluster]\nlease_ttl = {ttl}\n",
            )
        )
        fr.write_text(
            over_mqtt(
                demo_config_text("FR", partner="DE", pei_port=sim_fr.port),
                mqtt["FR"],
                UNLIMITED_RATES,
            )
        )

        async def start(name: str, config: Path, *extra: str) -> None:
            procs[name] = await start_gateways(
                [config], folder / f"state-{name}", extra=extra, stderr=logs[name]
            )

        await start("fr", fr)
        await start("de-1", de, "--instance", "de-1")
        await while_running(procs, folder, radios_initialised([sim_de, sim_fr], 1), 60.0)
        traffic = _Traffic(sim_fr, sim_de)
        traffic.start()
        stack.push_async_callback(traffic.stop)
        # The federation is up once a first text has crossed it.
        await while_running(procs, folder, _first_change(traffic.delivered, 0, 60.0), 60.0)
        await asyncio.sleep(max(3.0, seconds / 2))  # warm-up: the rate settles
        one = await traffic.rate(seconds)
        await start("de-2", de, "--instance", "de-2")
        await asyncio.sleep(ttl)  # the second instance stands by
        two = await traffic.rate(seconds)
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
        delivered_at_takeover = traffic.delivered()
        await while_running(
            standby, folder, _first_change(traffic.delivered, delivered_at_takeover, 60.0), 60.0
        )
        delivery_s = time.monotonic() - killed
        after = await traffic.rate(seconds)
    return {
        "seconds": seconds,
        "lease_ttl_s": ttl,
        "one_instance_msg_s": round(one, 1),
        "two_instances_msg_s": round(two, 1),
        "throughput_ratio_two_to_one": round(two / one, 2) if one else None,
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_takeover")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--ttl", type=float, default=3.0, help="[cluster] lease_ttl")
    args = parser.parse_args(argv)
    from gateway.logs import configure_logging

    configure_logging("off")
    with tempfile.TemporaryDirectory(prefix="euccs-takeover-") as folder, _postgres() as url:
        print("running: one instance, two instances, SIGKILL of the active one", file=sys.stderr)
        result = asyncio.run(run(args.seconds, args.ttl, Path(folder), url))
    print(
        f"one instance      {result['one_instance_msg_s']:>8} msg/s\n"
        f"two instances     {result['two_instances_msg_s']:>8} msg/s "
        f"(ratio {result['throughput_ratio_two_to_one']}: the second one stands by)\n"
        f"takeover          adapter up after {result['takeover_adapter_s']} s, first delivery "
        f"after {result['takeover_first_delivery_s']} s (lease ttl {args.ttl:g} s)\n"
        f"after takeover    {result['after_takeover_msg_s']:>8} msg/s"
    )
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
