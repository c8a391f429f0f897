"""Memory while a partner is down: the backlog goes to the journal, not to RAM.

    .venv/bin/python -m loadtests.bench_outage [--messages N] [--bound B] [--no-spill] [--json]

A German gateway (SQLite journal in a temporary folder) whose French partner is cut off
takes ``N`` texts for France into custody through the control-room path, 64 at a time,
and samples its resident size and its journal's size every ``N/20`` messages. With
``[delivery] spill`` (the default) the egress queue holds ``B`` copies in memory and the
rest waits in the journal only; ``--no-spill`` shows the behaviour without it (copies
beyond the bound are shed: failed back to their sender with a negative report). The link
then comes back and the backlog drains to the French gateway, in order, which the run
checks.

Prints a table and, as its last line, one JSON object: resident size at the bound and at
the end, growth per 10,000 messages beyond the bound, journal growth, messages refused or
shed, and whether the backlog drained in order. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.config import parse_config
from gateway.demo_configs import demo_config_text
from gateway.federation import LocalFederationBus
from gateway.node import Gateway
from loadtests.federation_bench import UNLIMITED_RATES
from protocols.errors import DeliveryRefused
from protocols.schema import v1

_CONCURRENCY = 64
_FR_UNIT = "fr.sdis67.vsav-strasbourg-1"


def rss_bytes() -> int:
    """This process's resident size now (Linux), else its peak."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _journal_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.journal.sqlite3*"))


def _text(gateway: Gateway, number: int) -> v1.Envelope:
    envelope = v1.Envelope()
    envelope.origin.nation = "DE"
    envelope.origin.organisation = "controlroom"
    envelope.origin.unit = "de.controlroom.bench"
    envelope.origin.system = v1.SYSTEM_TYPE_CONTROL_ROOM
    envelope.priority = v1.PRIORITY_ROUTINE
    envelope.destination.unit.nation = "FR"
    envelope.destination.unit.unit = _FR_UNIT
    envelope.text.text = f"backlog #{number:07d} " + "x" * 160
    return envelope


async def run(messages: int, bound: int, spill: bool, folder: Path) -> dict[str, Any]:
    """Cut France off, take ``messages`` texts into custody, sample, reconnect, drain."""
    delivery = f"queue_max_messages = {bound}\nspill = {'true' if spill else 'false'}"
    configs = [
        # The drain measures the backlog, not the partner's rate limits (a policy), and
        # no canaries share the queue with it.
        parse_config(
            demo_config_text(n, partner=p, pei_port=9, delivery=delivery)
            + UNLIMITED_RATES
            + "\n[liveness]\ncanary_interval = 0\n"
        )
        for n, p in (("DE", "FR"), ("FR", "DE"))
    ]
    bus = LocalFederationBus(inbox_size=100_000)
    de = Gateway(configs[0], bus.attach("DE"), journal=folder / "de.journal.sqlite3")
    fr = Gateway(configs[1], bus.attach("FR"), journal=folder / "fr.journal.sqlite3")
    received: list[str] = []
    fr.observers.append(
        lambda o: received.append(o.fields["envelope"].text.text) if o.kind == "received" else None
    )
    samples: list[tuple[int, int, int]] = []
    refused = 0
    step = max(1, messages // 20)
    async with de.running(), fr.running():
        while de.journal is None or fr.journal is None:  # noqa: ASYNC110 - opening is short
            await asyncio.sleep(0.01)
        bus.cut("FR")
        presence_before = de.counters["presence_sent"]
        samples.append((0, rss_bytes(), _journal_bytes(folder)))
        began = time.monotonic()
        for start in range(0, messages, _CONCURRENCY):
            batch = range(start, min(start + _CONCURRENCY, messages))
            results = await asyncio.gather(
                *(de.submit(_text(de, n)) for n in batch), return_exceptions=True
            )
            for result in results:
                if isinstance(result, DeliveryRefused):
                    refused += 1
                elif isinstance(result, BaseException):
                    raise result
            done = batch[-1] + 1
            if done % step < _CONCURRENCY or done == messages:
                samples.append((done, rss_bytes(), _journal_bytes(folder)))
        taken = time.monotonic() - began
        spilled = de.spilled("egress:FR")
        # Presence updates queued during the outage (units' leases ran out): they take
        # places in the queue's memory too.
        presence_queued = de.counters["presence_sent"] - presence_before
        bus.cut("FR", down=False)
        drain_began = time.monotonic()
        shed = de.counters["shed"]  # refused after custody (queue full, spill off)
        accepted = messages - refused - shed
        deadline = drain_began + max(60.0, accepted / 200)
        while (  # noqa: ASYNC110 - counters have no change notification
            fr.counters["accepted_from_partner"] < accepted and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)
        drained = time.monotonic() - drain_began
        delivered = fr.counters["accepted_from_partner"]
    numbers = [int(s.split("#", 1)[1][:7]) for s in received if "backlog #" in s]
    at_bound = next((r for n, r, _j in samples if n >= bound), samples[-1][1])
    beyond = [(n, r) for n, r, _j in samples if n >= bound]
    growth = 0.0
    if len(beyond) >= 2 and beyond[-1][0] > beyond[0][0]:
        growth = (beyond[-1][1] - beyond[0][1]) / (beyond[-1][0] - beyond[0][0]) * 10_000
    return {
        "messages": messages,
        "bound": bound,
        "spill": spill,
        "refused": refused,
        "shed": shed,
        "spilled_at_end_of_outage": spilled,
        "presence_queued": presence_queued,
        "custody_msg_s": round(messages / taken),
        "rss_start_mib": round(samples[0][1] / 2**20, 1),
        "rss_at_bound_mib": round(at_bound / 2**20, 1),
        "rss_end_mib": round(samples[-1][1] / 2**20, 1),
        "rss_growth_mib_per_10k_beyond_bound": round(growth / 2**20, 2),
        "journal_growth_mib": round((samples[-1][2] - samples[0][2]) / 2**20, 1),
        "delivered_after_outage": delivered,
        "drain_s": round(drained, 1),
        "drained_in_order": numbers == sorted(numbers) and len(numbers) == delivered,
        "samples": [
            {"messages": n, "rss_mib": round(r / 2**20, 1), "journal_mib": round(j / 2**20, 1)}
            for n, r, j in samples
        ],
    }


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'messages':>10} {'RSS MiB':>9} {'journal MiB':>12}"]
    lines += [
        f"{s['messages']:>10} {s['rss_mib']:>9} {s['journal_mib']:>12}" for s in result["samples"]
    ]
    lines.append(
        f"spill={result['spill']} bound={result['bound']}: refused {result['refused']}, "
        f"shed {result['shed']}, "
        f"RSS {result['rss_at_bound_mib']} MiB at the bound -> {result['rss_end_mib']} MiB "
        f"({result['rss_growth_mib_per_10k_beyond_bound']} MiB per 10k beyond it), journal "
        f"+{result['journal_growth_mib']} MiB; drained {result['delivered_after_outage']} in "
        f"{result['drain_s']} s, in order: {result['drained_in_order']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench_outage")
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--bound", type=int, default=10_000, help="queue_max_messages")
    parser.add_argument("--no-spill", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the samples as JSON")
    args = parser.parse_args(argv)
    from gateway.logs import configure_logging

    configure_logging("off")
    with tempfile.TemporaryDirectory(prefix="euccs-outage-") as folder:
        result = asyncio.run(run(args.messages, args.bound, not args.no_spill, Path(folder)))
    print(_table(result))
    if not args.json:
        result.pop("samples")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
