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

from dataclasses import dataclass, field

__all__ = ["AwaitingReport", "OriginRecord", "ReportKey", "Tracker"]

#: (adapter name, ISSI of the unit, SDS-TL message reference)
ReportKey = tuple[str, str, int]


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


@dataclass(kw_only=True)
class AwaitingReport:
    """A message delivered to one of our radios, waiting for its SDS-REPORT(s)."""

    message_id: bytes
    origin_nation: str
    origin_unit: str
    priority: int
    adapter: str
    issi: str
    references: set[int]
    want_read: bool
    deadline: float
    delivered: bool = False


class Tracker:
    """Both tables, bounded; the oldest entries are dropped first when full."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.origins: dict[bytes, OriginRecord] = {}
        self._awaiting: dict[ReportKey, AwaitingReport] = {}
        self._parked: dict[ReportKey, tuple[int, float]] = {}

    def add_origin(self, record: OriginRecord) -> None:
        """Remember a message sent abroad."""
        if len(self.origins) >= self.max_entries:
            self.origins.pop(next(iter(self.origins)))
        self.origins[record.message_id] = record

    def add_awaiting(self, record: AwaitingReport) -> None:
        """Remember a local delivery that waits for SDS-REPORTs, under each of its references."""
        while len(self._awaiting) >= self.max_entries:
            self._awaiting.pop(next(iter(self._awaiting)))
        for reference in record.references:
            self._awaiting[(record.adapter, record.issi, reference)] = record

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
        for key in [k for k, v in self._awaiting.items() if v is record]:
            del self._awaiting[key]

    def expired(self, now: float) -> list[AwaitingReport]:
        """Remove and return deliveries whose report deadline passed."""
        done = {id(r): r for r in self._awaiting.values() if r.deadline <= now}
        for record in done.values():
            self.forget(record)
        return list(done.values())

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
        return min((r.deadline for r in self._awaiting.values()), default=None)

    @property
    def awaiting_count(self) -> int:
        """Number of local deliveries still waiting for a report."""
        return len({id(r) for r in self._awaiting.values()})
