"""Benchmark of the delivery machinery: prints figures, asserts nothing.

    .venv/bin/python -m loadtests.bench_delivery [--messages N] [--dir DIR]

Measures, on this machine:
* the scheduler: offer + pop in a mixed priority stream, and the share of
  service routine traffic keeps while high-priority traffic alone saturates;
* the journal: custody (insert) and release (delete) of envelopes with fsync on
  every commit, one writer at a time and with many concurrent writers (group
  commit), and the mean number of operations per fsync.

Run it on the disk the gateway will use (``--dir``): fsync latency decides the
journal figures.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import tempfile
import time
from pathlib import Path

from gateway.journal import AsyncJournal, Journal, NewEntry
from gateway.scheduler import Scheduler
from protocols.schema import v1

_PRIORITIES = (
    v1.PRIORITY_ROUTINE,
    v1.PRIORITY_ROUTINE,
    v1.PRIORITY_ROUTINE,
    v1.PRIORITY_HIGH,
    v1.PRIORITY_IMMINENT_PERIL,
    v1.PRIORITY_EMERGENCY,
)


def _envelope(number: int) -> bytes:
    envelope = v1.Envelope(message_id=number.to_bytes(16, "big"))
    envelope.origin.nation = "DE"
    envelope.origin.unit = "de.bos.rtw-kehl-1"
    envelope.destination.unit.nation = "FR"
    envelope.destination.unit.unit = "fr.sdis67.vsav-strasbourg-1"
    envelope.text.text = "Patient transfer to Strasbourg university hospital, ETA 12 min"
    return envelope.SerializeToString()


def bench_scheduler(count: int) -> None:
    rng = random.Random(7)
    scheduler: Scheduler[int] = Scheduler(max_items=count + 1, max_bytes=1 << 40)
    start = time.perf_counter()
    for n in range(count):
        scheduler.offer(n, rng.choice(_PRIORITIES), size=200, now=n * 1e-4)
    for n in range(count):
        scheduler.pop(1.0 + n * 1e-4)
    elapsed = time.perf_counter() - start
    print(f"{'scheduler offer+pop, mixed priorities':<48} {count / elapsed:>10,.0f} msg/s")

    # HIGH alone saturates the destination (one offered per pop); ROUTINE is offered on top.
    scheduler = Scheduler(max_items=1_000_000, max_bytes=1 << 40)
    served: dict[int, int] = {v1.PRIORITY_HIGH: 0, v1.PRIORITY_ROUTINE: 0}
    for step in range(20_000):
        now = step * 0.01
        scheduler.offer(step, v1.PRIORITY_HIGH, size=200, now=now)
        if step % 2 == 0:
            scheduler.offer(-step, v1.PRIORITY_ROUTINE, size=200, now=now)
        entry = scheduler.pop(now)
        if entry is not None:
            served[entry.priority] += 1
    share = served[v1.PRIORITY_ROUTINE] / sum(served.values())
    print(f"{'routine share of service, HIGH saturating':<48} {share:>10.0%} (offered 33%)")


async def bench_journal(count: int, directory: Path) -> None:
    payload = _envelope(1)
    journal = AsyncJournal(directory / "bench.sqlite3")
    journal.recover()
    journal.start()
    try:

        def add(n: int, j: Journal) -> list[int]:
            return j.add(
                [
                    NewEntry(
                        message_id=n.to_bytes(16, "big"),
                        queue="egress:FR",
                        priority=1,
                        envelope=payload,
                    )
                ]
            )

        sequential = min(count, 500)
        start = time.perf_counter()
        for n in range(sequential):
            await journal.submit(functools.partial(add, n))
        elapsed = time.perf_counter() - start
        print(
            f"{'journal custody, one writer (fsync each)':<48} {sequential / elapsed:>10,.0f}"
            f" msg/s  {elapsed / sequential * 1e3:.2f} ms/commit"
        )
        commits_before, ops_before = journal.commits, journal.operations
        start = time.perf_counter()
        ids = await asyncio.gather(
            *(journal.submit(functools.partial(add, n)) for n in range(count))
        )
        elapsed = time.perf_counter() - start
        group = (journal.operations - ops_before) / max(1, journal.commits - commits_before)
        print(
            f"{'journal custody, concurrent (group commit)':<48} {count / elapsed:>10,.0f}"
            f" msg/s  {group:.0f} ops/fsync"
        )
        start = time.perf_counter()
        await asyncio.gather(
            *(journal.submit(functools.partial(Journal.remove, entry_ids=i)) for i in ids)
        )
        elapsed = time.perf_counter() - start
        print(f"{'journal release, concurrent':<48} {count / elapsed:>10,.0f} msg/s")
    finally:
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the journal is written")
    args = parser.parse_args()
    bench_scheduler(args.messages)
    if args.dir is not None:
        asyncio.run(bench_journal(args.messages, args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench_journal(args.messages, Path(tmp)))


if __name__ == "__main__":
    main()
