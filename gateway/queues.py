"""Per-destination priority queues: emergency first, bounded, nothing dropped silently.

:class:`PriorityQueue` keeps one FIFO per priority class and always serves the
most urgent non-empty class. It is bounded in messages; when full, a new item
evicts the *newest* item of the *lowest* class strictly below its own and the
evicted item is returned to the caller, who owes its sender a negative report.
An emergency item is never evicted. If nothing can be evicted, :meth:`put`
raises :class:`QueueFull`.

The decision code (:meth:`PriorityQueue.offer`, :meth:`PriorityQueue.pop`) is
synchronous and pure; :class:`AsyncPriorityQueue` adds waiting for the asyncio
layer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from protocols.errors import DeliveryRefused
from protocols.schema import v1
from protocols.tetra import DeliveryStatus

__all__ = ["AsyncPriorityQueue", "PriorityQueue", "QueueFull", "Queued"]

T = TypeVar("T")

#: Classes from most to least urgent.
_CLASSES = (
    v1.PRIORITY_EMERGENCY,
    v1.PRIORITY_IMMINENT_PERIL,
    v1.PRIORITY_HIGH,
    v1.PRIORITY_ROUTINE,
)


class QueueFull(DeliveryRefused):
    """The queue is full of items at least as urgent as the new one."""


@dataclass(frozen=True, kw_only=True)
class Queued(Generic[T]):
    """An item with its priority class."""

    priority: int
    item: T


class PriorityQueue(Generic[T]):
    """Bounded strict-priority queue with FIFO order inside each class."""

    def __init__(self, *, max_items: int) -> None:
        if max_items < 1:
            raise ValueError(f"max_items={max_items} must be at least 1")
        self.max_items = max_items
        self._fifos: dict[int, deque[T]] = {p: deque() for p in _CLASSES}

    def __len__(self) -> int:
        return sum(len(f) for f in self._fifos.values())

    def __iter__(self) -> Iterator[Queued[T]]:
        for priority in _CLASSES:
            for item in self._fifos[priority]:
                yield Queued(priority=priority, item=item)

    def depths(self) -> dict[int, int]:
        """Return the number of queued items per priority class."""
        return {p: len(f) for p, f in self._fifos.items()}

    def offer(self, item: T, priority: int) -> Queued[T] | None:
        """Queue ``item``; return an evicted lower-class item, if one had to make room.

        Raises:
            QueueFull: the queue is full and nothing less urgent can be evicted.
        """
        if priority not in self._fifos:
            priority = v1.PRIORITY_ROUTINE
        evicted: Queued[T] | None = None
        if len(self) >= self.max_items:
            evicted = self._evict_below(priority)
            if evicted is None:
                raise QueueFull(
                    f"queue full ({self.max_items} messages at priority {priority} or above)",
                    reason_code=DeliveryStatus.DESTINATION_QUEUE_FULL,
                )
        self._fifos[priority].append(item)
        return evicted

    def _evict_below(self, priority: int) -> Queued[T] | None:
        for victim_class in reversed(_CLASSES):
            if victim_class >= priority or victim_class == v1.PRIORITY_EMERGENCY:
                return None
            fifo = self._fifos[victim_class]
            if fifo:
                return Queued(priority=victim_class, item=fifo.pop())
        return None  # pragma: no cover - the loop always returns

    def pop(self) -> Queued[T] | None:
        """Remove and return the most urgent item, or None when empty."""
        for priority in _CLASSES:
            fifo = self._fifos[priority]
            if fifo:
                return Queued(priority=priority, item=fifo.popleft())
        return None

    def force(self, item: T, priority: int) -> None:
        """Append ``item`` to its class ignoring the bound (receipts: small, always owed)."""
        self._fifos[priority if priority in self._fifos else v1.PRIORITY_ROUTINE].append(item)

    def push_front(self, item: T, priority: int) -> None:
        """Put an item back at the head of its class (a delivery to retry), ignoring the bound."""
        self._fifos[priority if priority in self._fifos else v1.PRIORITY_ROUTINE].appendleft(item)


class AsyncPriorityQueue(PriorityQueue[T]):
    """:class:`PriorityQueue` with an awaitable :meth:`get`."""

    def __init__(self, *, max_items: int) -> None:
        super().__init__(max_items=max_items)
        self._ready = asyncio.Event()

    def offer(self, item: T, priority: int) -> Queued[T] | None:
        """See :meth:`PriorityQueue.offer`; wakes a waiting :meth:`get`."""
        evicted = super().offer(item, priority)
        self._ready.set()
        return evicted

    def push_front(self, item: T, priority: int) -> None:
        """See :meth:`PriorityQueue.push_front`."""
        super().push_front(item, priority)
        self._ready.set()

    def force(self, item: T, priority: int) -> None:
        """See :meth:`PriorityQueue.force`; wakes a waiting :meth:`get`."""
        super().force(item, priority)
        self._ready.set()

    async def get(self) -> Queued[T]:
        """Wait for and return the most urgent item."""
        while True:
            queued = self.pop()
            if queued is not None:
                return queued
            self._ready.clear()
            await self._ready.wait()
