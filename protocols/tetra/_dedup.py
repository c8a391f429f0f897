"""SDS-TL duplicate detection for received SDS-TRANSFERs (EN 300 392-2 clause 29).

A sender that gets no SDS-REPORT in time sends the same SDS-TRANSFER again with
the same message reference; the receiving SDS-TL entity must recognise the
retransmission, not hand it to its user a second time, and answer it again.
:class:`DuplicateFilter` remembers the transfers handed on, keyed on (source,
protocol identifier, message reference).

Design, kept simple on purpose:

* A transfer is remembered once it is handed on: a single transfer at once, the
  parts of a concatenated text only when the whole text is complete (parts of an
  incomplete text are the reassembler's business, and a text given up can still be
  completed by a retransmission).
* A retransmission is the same key *and* the same content: a sender that reuses a
  reference for a new message (e.g. after a restart) is not silenced.
* Memory is bounded in time (an entry is forgotten ``window`` seconds after it was
  remembered, which should exceed the senders' retransmission period) and in size
  (beyond ``max_entries`` the oldest entry is forgotten).
* A retransmission that asked for a report is answered like the original: with the
  status of the last SDS-REPORT sent for it (:meth:`DuplicateFilter.note_report`),
  else "message received" (0x00).

Rule 1: no I/O and no clock: time is the ``now`` argument (any monotonic clock).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from protocols.errors import LocalProtocolError
from protocols.tetra._events import DeliveryStatus, OtherSds, SdsContent, TextSds

__all__ = ["DuplicateFilter", "Retransmission", "transfer_fields"]

#: (protocol identifier, message reference, delivery report request) of an SDS-TRANSFER.
TransferFields = tuple[int, int, int]
_Key = tuple[str, int, int]


def transfer_fields(content: SdsContent) -> TransferFields | None:
    """Return (PID, message reference, report request) if ``content`` is an SDS-TRANSFER.

    Texts with an SDS-TL PID are transfers; so is :class:`OtherSds` whose user data
    starts with an SDS-TL header of message type 0 (29.4.2.4). Reports, acks, statuses
    and PDUs without SDS-TL give None.
    """
    if isinstance(content, TextSds):
        if content.protocol_id < 0x80 or content.message_reference is None:
            return None
        return content.protocol_id, content.message_reference, content.delivery_report_request
    if isinstance(content, OtherSds):
        pid, data = content.protocol_id, content.payload
        if pid is None or pid < 0x80 or content.bits < 24 or len(data) < 3 or data[1] >> 4:
            return None
        return pid, data[2], (data[1] >> 2) & 0x3
    return None


@dataclass(frozen=True, kw_only=True)
class Retransmission:
    """A received SDS-TRANSFER already handed on: discard it, answer ``report_status``.

    ``report_status`` is None when the transfer asked for no report.
    """

    protocol_id: int
    message_reference: int
    report_status: int | None


@dataclass
class _Seen:
    at: float
    content: SdsContent
    report_status: int = DeliveryStatus.RECEIVED


class DuplicateFilter:
    """Recognise retransmitted SDS-TRANSFERs (sans-IO; time is an argument).

    Args:
        window: Seconds a transfer is remembered after :meth:`remember`.
        max_entries: Most transfers remembered; beyond it the oldest is forgotten.
    """

    def __init__(self, window: float = 300.0, *, max_entries: int = 4096) -> None:
        if not window > 0 or max_entries < 1:
            raise LocalProtocolError("window must be > 0 and max_entries >= 1.")
        self._window = window
        self._max_entries = max_entries
        self._seen: OrderedDict[_Key, _Seen] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, source: str, content: SdsContent, now: float) -> Retransmission | None:
        """Return a :class:`Retransmission` if ``content`` from ``source`` was handed on.

        Other content (not a transfer, not remembered, or a different message under a
        remembered key) gives None; nothing is remembered by this call.
        """
        self._expire(now)
        fields = transfer_fields(content)
        if fields is None:
            return None
        pid, reference, report_request = fields
        seen = self._seen.get((source, pid, reference))
        if seen is None or seen.content != content:
            return None
        return Retransmission(
            protocol_id=pid,
            message_reference=reference,
            report_status=seen.report_status if report_request else None,
        )

    def remember(self, source: str, content: SdsContent, now: float) -> None:
        """Remember a transfer handed on at ``now`` (other content is ignored)."""
        fields = transfer_fields(content)
        if fields is None:
            return
        key = (source, fields[0], fields[1])
        self._seen.pop(key, None)
        self._seen[key] = _Seen(at=now, content=content)
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)

    def note_report(
        self, destination: str, protocol_id: int, message_reference: int, delivery_status: int
    ) -> None:
        """Record the SDS-REPORT sent for a remembered transfer; its retransmissions get it."""
        seen = self._seen.get((destination, protocol_id, message_reference))
        if seen is not None:
            seen.report_status = delivery_status

    def _expire(self, now: float) -> None:
        # Entries are kept in the order they were remembered, so the oldest come first.
        while self._seen:
            key, seen = next(iter(self._seen.items()))
            if now < seen.at + self._window:
                return
            del self._seen[key]
