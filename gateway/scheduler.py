"""Per-destination priority scheduler: strict urgency, weighted sharing with aging, bounded.

It is pure: it does no I/O and never reads a clock; every method that needs the
time takes ``now`` (seconds, from one monotonic clock; ``now`` must never go
backwards between calls). :class:`AsyncScheduler` adds waiting for the asyncio
layer and is the only asyncio-aware part.

Service rule
------------
Each call to :meth:`Scheduler.pop` picks the next entry as follows; within a
class, entries are always served first in, first out.

1. **Urgent classes, strictly.** If any ``PRIORITY_EMERGENCY`` entry is queued,
   the oldest one is served; otherwise, if any ``PRIORITY_IMMINENT_PERIL`` entry
   is queued, the oldest one is served. Nothing (not even an aged entry) ever
   overtakes these two classes.
2. **Aging.** Otherwise, look at the head (oldest) entry of ``PRIORITY_HIGH`` and
   of ``PRIORITY_ROUTINE``. A head is *overdue* when ``now - enqueued_at`` is
   strictly greater than its class's ``max_wait`` (defaults: HIGH 2.0 s,
   ROUTINE 5.0 s). If one or both heads are overdue, the overdue head with the
   earliest ``enqueued_at`` is served (tie: HIGH first, then the lower ``seq``).
   So an overdue routine entry is served before every HIGH entry that arrived
   after it; under sustained HIGH load a routine entry waits at most its
   ``max_wait`` plus the time needed to serve the entries older than itself.
3. **Weighted round-robin.** Otherwise (nothing overdue), HIGH and ROUTINE share
   service by smooth weighted round-robin (default weights HIGH 4, ROUTINE 1:
   the pattern is H H R H H, repeated). Each non-empty class's counter grows by
   its weight, the class with the largest counter is served (tie: HIGH), and
   that counter is lowered by the sum of the non-empty classes' weights. The
   counters are reset whenever HIGH or ROUTINE is empty, so every busy period
   starts a fresh cycle. Entries served by rule 1 or 2 do not advance the
   round-robin.

Priorities other than the four known classes are treated as ``PRIORITY_ROUTINE``.

Bounds and shedding
-------------------
The scheduler is bounded in entries (``max_items``) and in bytes (``max_bytes``,
the sum of the callers' ``size`` values). When :meth:`Scheduler.offer` would
exceed either bound, it evicts entries of the *lowest* class strictly below the
new entry's class, newest first, moving up class by class (still strictly below
the new entry), until both bounds hold again *after* admission, and returns the
evicted entries: the caller owes each sender a negative report. Pinned entries
are never evicted, and an EMERGENCY entry is never evicted (no class is above
it). If not enough can be evicted, :class:`QueueFull` is raised and nothing
changes. An entry larger than ``max_bytes`` is always refused with
:class:`QueueFull`.

:meth:`Scheduler.force` admits regardless of the bounds (delivery receipts: small
and always owed). Forced entries are flagged ``pinned``: they count toward both
bounds (so they can make a later :meth:`~Scheduler.offer` evict more, or refuse)
but are never evicted. :meth:`Scheduler.push_front` returns a popped entry that
could not be sent to the head of its class, keeping its ``seq``, ``enqueued_at``
and ``pinned`` flag, also regardless of the bounds; it is evictable unless pinned.

Expiry
------
Entries may carry ``expires_at``; an entry is expired when ``now >= expires_at``.
:meth:`Scheduler.expire` removes and returns *every* expired entry wherever it
sits in the queue, using a heap with lazy deletion (``O(k log n)`` for ``k``
expired entries). :meth:`Scheduler.pop` never returns an expired entry: an
expired entry it meets at the head of a class is set aside, not dropped, and is
returned by the next :meth:`Scheduler.expire` call; :meth:`Scheduler.next_expiry`
accounts for set-aside entries (it then returns a time that has already passed).
An entry offered or forced when already expired is set aside the same way
without touching the bounds or evicting anything. Callers should therefore call
``expire(now)`` whenever ``next_expiry()`` is due and report what it returns.
Every admitted entry thus leaves the scheduler exactly once: popped, evicted,
expired, or removed with :meth:`Scheduler.remove`.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, TypeVar

from protocols.errors import DeliveryRefused
from protocols.schema import v1
from protocols.tetra import DeliveryStatus

__all__ = [
    "DEFAULT_MAX_WAIT",
    "DEFAULT_WEIGHTS",
    "AsyncScheduler",
    "Entry",
    "QueueFull",
    "Scheduler",
]

T = TypeVar("T")

_E = v1.PRIORITY_EMERGENCY
_P = v1.PRIORITY_IMMINENT_PERIL
_H = v1.PRIORITY_HIGH
_R = v1.PRIORITY_ROUTINE

#: Classes from most to least urgent.
_CLASSES: tuple[int, ...] = (_E, _P, _H, _R)
#: Classes served strictly before everything else, most urgent first.
_STRICT: tuple[int, ...] = (_E, _P)
#: Classes sharing the remaining service by weighted round-robin with aging.
_SHARED: tuple[int, ...] = (_H, _R)

#: Default round-robin weights of the shared classes.
DEFAULT_WEIGHTS: Mapping[int, int] = MappingProxyType({_H: 4, _R: 1})
#: Default seconds after which a shared-class entry is overdue (see the module docstring).
DEFAULT_MAX_WAIT: Mapping[int, float] = MappingProxyType({_H: 2.0, _R: 5.0})

#: Dead slots tolerated in a class FIFO (or heap) before it is compacted.
_COMPACT_MIN = 32


class QueueFull(DeliveryRefused):
    """The scheduler cannot admit an entry: full of at-least-as-urgent entries, or oversized."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry(Generic[T]):
    """A queued item with its scheduling data.

    Attributes:
        item: The caller's payload (typically a ``v1.Envelope``).
        priority: The priority class (one of the four known classes).
        size: Size in bytes, as given by the caller; counts toward ``max_bytes``.
        enqueued_at: When it was first admitted (kept by :meth:`Scheduler.push_front`).
        expires_at: When it expires, or None if it never does.
        seq: Admission counter of its scheduler; unique, increasing.
        pinned: Admitted by :meth:`Scheduler.force`; never evicted.
    """

    item: T
    priority: int
    size: int
    enqueued_at: float
    expires_at: float | None
    seq: int
    pinned: bool = False

    def is_expired(self, now: float) -> bool:
        """Return whether the entry is expired at ``now`` (``now >= expires_at``)."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(eq=False, slots=True)
class _Slot(Generic[T]):
    """A place in a class FIFO; ``alive`` is cleared on removal (lazy deletion)."""

    entry: Entry[T]
    alive: bool = True


def _normalise(priority: int) -> int:
    return priority if priority in _CLASSES else _R


class Scheduler(Generic[T]):
    """Bounded priority scheduler for one destination; see the module docstring for the rules.

    Args:
        max_items: Bound on the number of queued entries (at least 1).
        max_bytes: Bound on the sum of queued entries' sizes (at least 1).
        weights: Round-robin weights for ``PRIORITY_HIGH`` and ``PRIORITY_ROUTINE``
            (integers >= 1); missing keys take :data:`DEFAULT_WEIGHTS`.
        max_wait: Seconds after which a HIGH or ROUTINE entry is overdue (>= 0,
            ``math.inf`` disables aging); missing keys take :data:`DEFAULT_MAX_WAIT`.

    Raises:
        ValueError: A bound, weight or max_wait is invalid, or is given for another class.
    """

    def __init__(
        self,
        *,
        max_items: int,
        max_bytes: int,
        weights: Mapping[int, int] | None = None,
        max_wait: Mapping[int, float] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items={max_items} must be at least 1")
        if max_bytes < 1:
            raise ValueError(f"max_bytes={max_bytes} must be at least 1")
        merged_weights = dict(DEFAULT_WEIGHTS)
        for cls, weight in (weights or {}).items():
            if cls not in _SHARED:
                raise ValueError(f"weights: class {cls} is not PRIORITY_HIGH or PRIORITY_ROUTINE")
            if weight < 1:
                raise ValueError(f"weights[{cls}]={weight} must be at least 1")
            merged_weights[cls] = weight
        merged_wait = dict(DEFAULT_MAX_WAIT)
        for cls, wait in (max_wait or {}).items():
            if cls not in _SHARED:
                raise ValueError(f"max_wait: class {cls} is not PRIORITY_HIGH or PRIORITY_ROUTINE")
            if math.isnan(wait) or wait < 0:
                raise ValueError(f"max_wait[{cls}]={wait} must be >= 0")
            merged_wait[cls] = wait
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.weights: Mapping[int, int] = MappingProxyType(merged_weights)
        self.max_wait: Mapping[int, float] = MappingProxyType(merged_wait)
        self._fifos: dict[int, deque[_Slot[T]]] = {c: deque() for c in _CLASSES}
        self._counts: dict[int, int] = dict.fromkeys(_CLASSES, 0)
        self._dead: dict[int, int] = dict.fromkeys(_CLASSES, 0)
        self._live: dict[int, _Slot[T]] = {}
        self._bytes = 0
        self._heap: list[tuple[float, int, _Slot[T]]] = []
        self._heap_tick = 0
        self._expiring = 0
        self._set_aside: list[Entry[T]] = []
        self._next_seq = 0
        self._credit: dict[int, int] = dict.fromkeys(_SHARED, 0)

    # Introspection -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Entry[T]]:
        """Yield queued entries, most urgent class first, FIFO within a class.

        This is not necessarily service order (round-robin and aging interleave
        HIGH and ROUTINE); set-aside expired entries are not included.
        """
        for cls in _CLASSES:
            for slot in self._fifos[cls]:
                if slot.alive:
                    yield slot.entry

    @property
    def bytes(self) -> int:
        """Sum of the sizes of the queued entries."""
        return self._bytes

    def depths(self) -> dict[int, int]:
        """Return the number of queued entries per priority class (all four classes)."""
        return dict(self._counts)

    def oldest_wait(self, now: float) -> dict[int, float]:
        """Return, per non-empty class, how long its head (oldest) entry has waited at ``now``."""
        waits: dict[int, float] = {}
        for cls in _CLASSES:
            head = self._head(cls)
            if head is not None:
                waits[cls] = now - head.entry.enqueued_at
        return waits

    def next_expiry(self) -> float | None:
        """Return the earliest ``expires_at`` of a queued or set-aside entry, or None."""
        self._trim_heap()
        candidates = [e.expires_at for e in self._set_aside if e.expires_at is not None]
        if self._heap:
            candidates.append(self._heap[0][0])
        return min(candidates) if candidates else None

    # Admission -----------------------------------------------------------------------------

    def offer(
        self,
        item: T,
        priority: int,
        *,
        size: int,
        now: float,
        expires_at: float | None = None,
    ) -> list[Entry[T]]:
        """Queue ``item``; return the entries evicted to make room.

        Args:
            item: The payload.
            priority: Its priority class; unknown values are treated as ROUTINE.
            size: Its size in bytes (>= 0).
            now: The current time; becomes ``enqueued_at``.
            expires_at: When it expires, or None. If already expired at ``now`` it is
                not queued but set aside for the next :meth:`expire`, evicting nothing.

        Returns:
            The evicted entries, in eviction order (lowest class first, newest first
            within a class); each sender is owed a negative report.

        Raises:
            QueueFull: ``size`` exceeds ``max_bytes``, or the bounds cannot be met by
                evicting unpinned entries of classes below ``priority``. Nothing changes.
            ValueError: ``size`` is negative.
        """
        cls = _normalise(priority)
        self._check_size(size)
        if size > self.max_bytes:
            raise QueueFull(
                f"entry of {size} bytes is larger than max_bytes={self.max_bytes}",
                reason_code=DeliveryStatus.DESTINATION_QUEUE_FULL,
            )
        if expires_at is not None and now >= expires_at:
            self._set_aside.append(self._new_entry(item, cls, size, now, expires_at, pinned=False))
            return []
        victims = self._plan_eviction(cls, size)
        for slot in victims:
            self._kill(slot)
        self._append(self._new_entry(item, cls, size, now, expires_at, pinned=False))
        return [slot.entry for slot in victims]

    def force(
        self,
        item: T,
        priority: int,
        *,
        size: int,
        now: float,
        expires_at: float | None = None,
    ) -> None:
        """Queue ``item`` as a pinned entry, ignoring both bounds (receipts: small, always owed).

        The entry counts toward the bounds but is never evicted. Arguments are as
        for :meth:`offer`; an entry already expired at ``now`` is set aside.

        Raises:
            ValueError: ``size`` is negative.
        """
        cls = _normalise(priority)
        self._check_size(size)
        entry = self._new_entry(item, cls, size, now, expires_at, pinned=True)
        if entry.is_expired(now):
            self._set_aside.append(entry)
        else:
            self._append(entry)

    def holds(self, entry: Entry[T]) -> bool:
        """Return True if ``entry`` is queued here now (it was offered or put back)."""
        return entry.seq in self._live

    def push_front(self, entry: Entry[T]) -> None:
        """Put a popped entry back at the head of its class, ignoring both bounds.

        Several entries put back keep their admission order among themselves, whatever
        the order in which they come back (concurrent sends fail in any order).

        The entry keeps its ``seq``, ``enqueued_at``, ``expires_at`` and ``pinned``
        flag, so its waiting time keeps counting for aging. If it has expired, the
        next :meth:`expire` (or :meth:`pop`) will find it.

        Args:
            entry: An entry previously popped from this scheduler.

        Raises:
            ValueError: The entry is still queued, has an unknown priority, or was
                not issued by this scheduler.
        """
        if entry.priority not in _CLASSES:
            raise ValueError(f"entry seq={entry.seq} has unknown priority {entry.priority}")
        if not 0 <= entry.seq < self._next_seq:
            raise ValueError(f"entry seq={entry.seq} was not issued by this scheduler")
        if entry.seq in self._live:
            raise ValueError(f"entry seq={entry.seq} is still queued")
        self._check_size(entry.size)
        self._insert(entry, front=True)

    # Removal -------------------------------------------------------------------------------

    def pop(self, now: float, *, urgent: bool | None = None) -> Entry[T] | None:
        """Remove and return the next entry by the service rule, or None when none is left.

        ``urgent``: True takes only EMERGENCY and IMMINENT_PERIL entries, False only the
        others (two consumers of one queue, each with its own kind); None takes any.

        Never returns an entry expired at ``now``: such entries met at a class head
        are set aside for the next :meth:`expire`.
        """
        while True:
            choice = self._choose(now, urgent)
            if choice is None:
                return None
            cls, wrr_busy = choice
            slot = self._fifos[cls].popleft()
            self._detach(slot)
            if slot.entry.is_expired(now):
                self._set_aside.append(slot.entry)
                continue
            if wrr_busy:
                total = sum(self.weights[c] for c in wrr_busy)
                for c in wrr_busy:
                    self._credit[c] += self.weights[c]
                self._credit[cls] -= total
            return slot.entry

    def expire(self, now: float) -> list[Entry[T]]:
        """Remove and return every entry expired at ``now``, wherever it is queued.

        Also returns entries set aside earlier by :meth:`pop`, :meth:`offer` or
        :meth:`force`. The result is ordered by ``(expires_at, seq)``.
        """
        out = self._set_aside
        self._set_aside = []
        while self._heap and self._heap[0][0] <= now:
            _, _, slot = heapq.heappop(self._heap)
            if slot.alive:
                self._kill(slot)
                out.append(slot.entry)
        out.sort(key=lambda e: (math.inf if e.expires_at is None else e.expires_at, e.seq))
        return out

    def remove(self, predicate: Callable[[Entry[T]], bool]) -> list[Entry[T]]:
        """Remove and return the queued entries (pinned included) matching ``predicate``.

        Useful for cancelling. ``O(n)``. The result is in :meth:`__iter__` order.
        """
        matched = [slot for cls in _CLASSES for slot in self._fifos[cls] if slot.alive]
        matched = [slot for slot in matched if predicate(slot.entry)]
        for slot in matched:
            self._kill(slot)
        return [slot.entry for slot in matched]

    # Internals -----------------------------------------------------------------------------

    @staticmethod
    def _check_size(size: int) -> None:
        if size < 0:
            raise ValueError(f"size={size} must be >= 0")

    def _new_entry(
        self,
        item: T,
        cls: int,
        size: int,
        now: float,
        expires_at: float | None,
        *,
        pinned: bool,
    ) -> Entry[T]:
        entry = Entry(
            item=item,
            priority=cls,
            size=size,
            enqueued_at=now,
            expires_at=expires_at,
            seq=self._next_seq,
            pinned=pinned,
        )
        self._next_seq += 1
        return entry

    def _append(self, entry: Entry[T]) -> None:
        self._insert(entry, front=False)

    def _insert(self, entry: Entry[T], *, front: bool) -> None:
        slot = _Slot(entry)
        fifo = self._fifos[entry.priority]
        if not front:
            fifo.append(slot)
        elif not fifo or fifo[0].entry.seq > entry.seq:
            fifo.appendleft(slot)
        else:
            # Back ahead of everything admitted after it, behind what was admitted before
            # and put back earlier: entries put back in any order keep their first order.
            index = next((i for i, s in enumerate(fifo) if s.entry.seq > entry.seq), len(fifo))
            fifo.insert(index, slot)
        self._counts[entry.priority] += 1
        self._bytes += entry.size
        self._live[entry.seq] = slot
        if entry.expires_at is not None:
            heapq.heappush(self._heap, (entry.expires_at, self._heap_tick, slot))
            self._heap_tick += 1
            self._expiring += 1

    def _detach(self, slot: _Slot[T]) -> None:
        """Account for a live slot leaving the queue; the caller handles its FIFO position."""
        entry = slot.entry
        slot.alive = False
        self._counts[entry.priority] -= 1
        self._bytes -= entry.size
        del self._live[entry.seq]
        if entry.expires_at is not None:
            self._expiring -= 1
            if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * self._expiring:
                self._heap = [(e, t, s) for e, t, s in self._heap if s.alive]
                heapq.heapify(self._heap)

    def _kill(self, slot: _Slot[T]) -> None:
        """Remove a live slot that stays in its FIFO as a dead slot (lazy deletion)."""
        self._detach(slot)
        cls = slot.entry.priority
        self._dead[cls] += 1
        if self._dead[cls] > _COMPACT_MIN and self._dead[cls] > self._counts[cls]:
            self._fifos[cls] = deque(s for s in self._fifos[cls] if s.alive)
            self._dead[cls] = 0

    def _head(self, cls: int) -> _Slot[T] | None:
        fifo = self._fifos[cls]
        while fifo and not fifo[0].alive:
            fifo.popleft()
            self._dead[cls] -= 1
        return fifo[0] if fifo else None

    def _trim_heap(self) -> None:
        while self._heap and not self._heap[0][2].alive:
            heapq.heappop(self._heap)

    def _choose(self, now: float, urgent: bool | None) -> tuple[int, tuple[int, ...]] | None:
        """Pick the class to serve; also return the busy classes if round-robin decided."""
        if urgent is not False:
            for cls in _STRICT:
                if self._head(cls) is not None:
                    return cls, ()
        if urgent:
            return None
        overdue: list[tuple[float, int, int, int]] = []
        busy: list[int] = []
        for cls in _SHARED:
            head = self._head(cls)
            if head is None:
                continue
            busy.append(cls)
            if now - head.entry.enqueued_at > self.max_wait[cls]:
                overdue.append((head.entry.enqueued_at, -cls, head.entry.seq, cls))
        if overdue:
            return min(overdue)[3], ()
        if not busy:
            return None
        if len(busy) == 1:
            self._credit = dict.fromkeys(_SHARED, 0)
            return busy[0], ()
        best = max(busy, key=lambda c: (self._credit[c] + self.weights[c], c))
        return best, tuple(busy)

    def _plan_eviction(self, cls: int, size: int) -> list[_Slot[T]]:
        """Choose the victims that let an entry of ``cls`` and ``size`` in, or raise QueueFull."""
        need_items = len(self) + 1 - self.max_items
        need_bytes = self._bytes + size - self.max_bytes
        victims: list[_Slot[T]] = []
        # Lowest class first, strictly below ``cls`` (so never EMERGENCY); newest first.
        for victim_cls in [c for c in reversed(_CLASSES) if c < cls]:
            for slot in reversed(self._fifos[victim_cls]):
                if need_items <= 0 and need_bytes <= 0:
                    break
                if slot.alive and not slot.entry.pinned:
                    victims.append(slot)
                    need_items -= 1
                    need_bytes -= slot.entry.size
        if need_items > 0 or need_bytes > 0:
            raise QueueFull(
                f"queue full ({len(self)}/{self.max_items} messages, "
                f"{self._bytes}/{self.max_bytes} bytes): cannot admit {size} bytes at "
                f"priority {cls} by shedding less urgent unpinned messages",
                reason_code=DeliveryStatus.DESTINATION_QUEUE_FULL,
            )
        return victims


class AsyncScheduler(Scheduler[T]):
    """:class:`Scheduler` with awaitable :meth:`get` and :meth:`wait_nonempty`.

    Admissions (:meth:`offer`, :meth:`force`, :meth:`push_front`) wake waiters.
    Waiting does not watch expiry deadlines: drive :meth:`expire` from a timer on
    :meth:`next_expiry`.
    """

    def __init__(
        self,
        *,
        max_items: int,
        max_bytes: int,
        weights: Mapping[int, int] | None = None,
        max_wait: Mapping[int, float] | None = None,
    ) -> None:
        super().__init__(
            max_items=max_items, max_bytes=max_bytes, weights=weights, max_wait=max_wait
        )
        self._ready = asyncio.Event()

    def offer(
        self,
        item: T,
        priority: int,
        *,
        size: int,
        now: float,
        expires_at: float | None = None,
    ) -> list[Entry[T]]:
        """See :meth:`Scheduler.offer`; wakes waiters."""
        evicted = super().offer(item, priority, size=size, now=now, expires_at=expires_at)
        self._ready.set()
        return evicted

    def force(
        self,
        item: T,
        priority: int,
        *,
        size: int,
        now: float,
        expires_at: float | None = None,
    ) -> None:
        """See :meth:`Scheduler.force`; wakes waiters."""
        super().force(item, priority, size=size, now=now, expires_at=expires_at)
        self._ready.set()

    def push_front(self, entry: Entry[T]) -> None:
        """See :meth:`Scheduler.push_front`; wakes waiters."""
        super().push_front(entry)
        self._ready.set()

    async def wait_nonempty(self) -> None:
        """Return once at least one entry is queued (immediately if one already is)."""
        while not len(self):
            self._ready.clear()
            await self._ready.wait()

    async def get(self, clock: Callable[[], float], *, urgent: bool | None = None) -> Entry[T]:
        """Wait for and return the next entry, as :meth:`Scheduler.pop` at ``clock()``.

        Args:
            clock: Returns the current time on the scheduler's clock; read at each attempt.
            urgent: Which entries to wait for (see :meth:`Scheduler.pop`).
        """
        while True:
            entry = self.pop(clock(), urgent=urgent)
            if entry is not None:
                return entry
            self._ready.clear()
            await self._ready.wait()
