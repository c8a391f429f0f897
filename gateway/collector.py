"""Keep Python's cyclic garbage collector from stopping message handling at random.

A full (generation 2) collection scans every long-lived container object and stops the
event loop while it runs. Under overload a gateway holds tens of thousands of messages in
its queues, each a long-lived object the collector scans again and again; measured under
2x overload (``docs/performance.md``), each gateway process ran about one full collection a
second, each stopping it for 25 to 57 ms, the slowest emergencies' latency. Those
collections found almost nothing: queued messages are freed by reference counting, and the
gateway makes next to no cyclic garbage (0 to a few dozen objects per full collection,
now and then a few hundred after a reconnection).

So, for a running gateway process (:func:`tuned_collector`):

* what start-up built (modules, configuration, codecs) is moved out of the collector's
  scans for good (:func:`gc.freeze`);
* young generations are still collected as usual (they are small and quick);
* full collections run on a timer, every :data:`FULL_COLLECTION_INTERVAL` seconds, instead
  of whenever enough objects survived: cyclic garbage waits at most that long, and the
  pause comes once a minute instead of once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator

import structlog

__all__ = ["FULL_COLLECTION_INTERVAL", "full_collections", "tuned_collector"]

#: Seconds between two full collections of a running gateway process.
FULL_COLLECTION_INTERVAL = 60.0
#: A generation-2 threshold no running gateway reaches: no automatic full collection.
_NO_AUTOMATIC_FULL = 1_000_000_000

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """Freeze what exists now and stop automatic full collections; undone on exit.

    Run :func:`full_collections` meanwhile, or cyclic garbage is never collected.
    """
    previous = gc.get_threshold()
    gc.collect()  # no garbage of start-up is frozen for good
    gc.freeze()
    gc.set_threshold(previous[0], previous[1], _NO_AUTOMATIC_FULL)
    log.debug("gc.tuned", frozen=gc.get_freeze_count(), thresholds=gc.get_threshold())
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


async def full_collections(interval: float = FULL_COLLECTION_INTERVAL) -> None:
    """Run a full collection every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            started = time.perf_counter()
            found = gc.collect()
            log.debug(
                "gc.full_collection",
                collected=found,
                pause_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        except Exception:  # never stop collecting: garbage would grow without bound
            log.exception("gc.full_collection_failed")
