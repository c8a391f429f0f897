"""Delivery tracking: which message is where, and which report answers which message.

Pure bookkeeping with time as an argument:

* :class:`OriginRecord` — a message our radio sent abroad: who must get the
  SDS-REPORT when the partner's receipt comes back.
* :class:`AwaitingReport` — a message we delivered to one of our radios with an
  SDS-TL report request: which envelope a radio's SDS-REPORT answers, and when to
  stop waiting for it.

:class:`Tracker` keeps both tables bounded and tells the asyncio layer when its
next deadline is (:meth:`Tracker.next_deadline`).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["AwaitingReport", "OriginRecord", "ReportKey", "Tracker"]

#: (adapter name, the unit's ISSI or MCData ID, SDS-TL message reference or MCData message ID)
ReportKey = tuple[str, str, int | bytes]


@dataclass(kw_only=True)
class OriginRecord:
    """A message accepted from one of our radios and sent to a partner."""

    message_id: bytes
    adapter: str
    source_issi: str
    protocol_id: int | None
    message_reference: int | None
    report_request: int
    priority: int
    states: list[int] = field(default_factory=list)
    #: MCData origins: the conversation of the SDS and the MCData ID it was addressed to,
    #: so that disposition notifications can name them.
    conversation_id: bytes = b""
    addressed_to: str = ""
    #: The partner countries it was sent to: only their receipts apply to it (empty in
    #: records journaled before it was kept: any partner's then).
    nations: tuple[str, ...] = ()


@dataclass(kw_only=True)
class AwaitingReport:
    """A message delivered to one of our radios, waiting for its SDS-REPORT(s)."""

    message_id: bytes
    origin_nation: str
    origin_unit: str
    priority: int
    adapter: str
    issi: str
    references: set[int | bytes]
    want_read: bool
    deadline: float
    delivered: bool = False
    #: A final receipt (FAILED or READ) is decided: a timeout or an eviction adds none.
    settled: bool = False
    #: Journal row of the copy, released with the first receipt.
    entry_id: int | None = None
    #: The partner gateway of a split country that sent it ("": the one named like the
    #: origin country); its receipts go back there.
    origin_member: str = ""


class Tracker:
    """Both tables, bounded; the oldest entries are dropped first when full."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.origins: dict[bytes, OriginRecord] = {}
        self._awaiting: dict[ReportKey, AwaitingReport] = {}
        #: Keys of each waiting delivery (by identity) and deadlines in a heap (lazy deletion).
        self._keys: dict[int, list[ReportKey]] = {}
        self._deadlines: list[tuple[float, int, AwaitingReport]] = []
        self._parked: dict[ReportKey, tuple[int, float]] = {}
        self._evicted: list[AwaitingReport] = []
        #: Origin records ended while a read of the journal was in progress, with the
        #: number of records ended before them (see :meth:`begin_read`).
        self._ended: dict[bytes, int] = {}
        self._ended_count = 0
        #: Reads in progress, by the number of records ended when they began.
        self._reads: Counter[int] = Counter()

    def add_origin(self, record: OriginRecord) -> None:
        """Remember a message sent abroad."""
        if len(self.origins) >= self.max_entries:
            self.origins.pop(next(iter(self.origins)))
        self.origins[record.message_id] = record

    def end_origin(self, message_id: bytes) -> None:
        """Forget a message sent abroad for good: its final receipt came.

        While a read begun earlier is in progress it is remembered as ended, so that a
        record that read holds (from memory or from the journal) is not applied again.
        """
        self.origins.pop(message_id, None)
        if self._reads:
            self._ended.pop(message_id, None)  # kept in the order they ended
            self._ended[message_id] = self._ended_count
        self._ended_count += 1

    def begin_read(self) -> int:
        """Begin a read of origin records (a snapshot of memory, then the journal).

        Returns:
            The token for :meth:`ended_since` and :meth:`end_read`.
        """
        token = self._ended_count
        self._reads[token] += 1
        return token

    def ended_since(self, message_id: bytes, token: int) -> bool:
        """True if the record of ``message_id`` ended after the read ``token`` began."""
        ended = self._ended.get(message_id)
        return ended is not None and ended >= token

    def ended(self, message_id: bytes) -> bool:
        """True if a row of ``message_id`` read back now is stale.

        That is: its record ended, and a read that began before its drop was durable in
        the journal is still in progress.
        """
        return message_id in self._ended

    def dropped(self, message_ids: Iterable[bytes]) -> None:
        """The ended records ``message_ids`` are gone from the journal now (durably).

        Reads that began before this may still hold a row of them: they are remembered
        as ended until those reads are over.
        """
        if not self._reads:
            return
        for message_id in message_ids:
            if message_id in self._ended:
                del self._ended[message_id]
                self._ended[message_id] = self._ended_count
        self._ended_count += 1

    def end_read(self, token: int) -> None:
        """The read ``token`` is over: forget what only it needed to know."""
        self._reads[token] -= 1
        if self._reads[token] <= 0:
            del self._reads[token]
        oldest = min(self._reads, default=self._ended_count)
        while self._ended:
            first = next(iter(self._ended))
            if self._ended[first] >= oldest:
                break
            del self._ended[first]

    def add_awaiting(self, record: AwaitingReport) -> None:
        """Remember a local delivery that waits for SDS-REPORTs, under each of its references."""
        while len(self._awaiting) >= self.max_entries:
            oldest = self._awaiting[next(iter(self._awaiting))]
            self.forget(oldest)
            self._evicted.append(oldest)  # its origin still gets a receipt (take_evicted)
        keys = [(record.adapter, record.issi, reference) for reference in record.references]
        for key in keys:
            previous = self._awaiting.get(key)
            if previous is not None:  # a reference reused: the older delivery loses that key
                self._keys[id(previous)].remove(key)
            self._awaiting[key] = record
        self._keys[id(record)] = keys
        heapq.heappush(self._deadlines, (record.deadline, id(record), record))

    def match_report(self, key: ReportKey) -> AwaitingReport | None:
        """Return the delivery an SDS-REPORT from ``key`` answers (None if unknown)."""
        return self._awaiting.get(key)

    def settle_part(self, key: ReportKey) -> bool:
        """Mark one part's "received" report; return True once every part has reported."""
        record = self._awaiting.get(key)
        if record is None or key[2] not in record.references:
            return False  # unknown, or a repeated report for a part already settled
        record.references.discard(key[2])
        return not record.references

    def forget(self, record: AwaitingReport) -> None:
        """Drop every key of a delivery."""
        for key in self._keys.pop(id(record), []):
            if self._awaiting.get(key) is record:
                del self._awaiting[key]

    def take_evicted(self) -> list[AwaitingReport]:
        """Deliveries forgotten since the last call because the table was full.

        Their reports can no longer be matched: the caller settles them as if their
        deadline had passed, so their origins are not left without a receipt.
        """
        evicted, self._evicted = self._evicted, []
        return evicted

    def expired(self, now: float) -> list[AwaitingReport]:
        """Remove and return deliveries whose report deadline passed."""
        done: list[AwaitingReport] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, record = heapq.heappop(self._deadlines)
            if id(record) in self._keys:
                self.forget(record)
                done.append(record)
        return done

    def park_report(self, key: ReportKey, status: int, now: float) -> None:
        """Keep a report that arrived before its delivery was registered.

        A radio can answer part 1 of a long text while part 2 is still being sent.
        """
        if len(self._parked) >= 1024:
            self._parked.pop(next(iter(self._parked)))
        self._parked[key] = (status, now)

    def take_parked(self, key: ReportKey, now: float, *, max_age: float = 60.0) -> int | None:
        """Return and remove a parked report status for ``key`` if it is recent enough."""
        parked = self._parked.pop(key, None)
        if parked is None or now - parked[1] > max_age:
            return None
        return parked[0]

    def next_deadline(self) -> float | None:
        """Return the earliest report deadline, or None."""
        while self._deadlines and id(self._deadlines[0][2]) not in self._keys:
            heapq.heappop(self._deadlines)  # forgotten already
        return self._deadlines[0][0] if self._deadlines else None

    @property
    def awaiting_count(self) -> int:
        """Number of local deliveries still waiting for a report."""
        return len(self._keys)
