"""Concatenated text SDS: splitting for sending and reassembly on reception.

:func:`split_text` cuts a text into PID 0x8A SDS-TRANSFER parts with a GSM-style
user data header (EN 300 392-2 29.5.x, protocols.md 2.7) that fit the radio's
``AT+CMGS=?`` maximum. :class:`Reassembler` joins received parts (0x8A or 0x8C).
Rule 1: no I/O and no clock: time is the ``now`` argument. Rule 2: memory is
bounded; the oldest incomplete message is given up when too many are pending.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from protocols.errors import LocalProtocolError
from protocols.tetra._events import (
    MAX_TYPE4_BITS,
    ConcatInfo,
    DeliveryStatus,
    Identity,
    SdsTimestamp,
    TextSds,
)
from protocols.tetra._sds import encode_sds
from protocols.tetra._text import choose_coding_scheme, text_bits

__all__ = ["IncompleteMessage", "Reassembler", "split_text"]

_SINGLE_PID, _IMMEDIATE_PID, _UDH_PID = 0x82, 0x89, 0x8A


def _single(text: str, reference: int, coding: int, **fields: object) -> TextSds:
    immediate = bool(fields.pop("immediate", False))
    return TextSds(
        protocol_id=_IMMEDIATE_PID if immediate else _SINGLE_PID,
        text=text,
        coding_scheme=coding,
        immediate=immediate,
        message_reference=reference,
        **fields,  # type: ignore[arg-type]
    )


def _chunks(text: str, coding: int, budget: int) -> Iterator[str]:
    part: list[str] = []
    used = 0
    for char in text:
        size = text_bits(char, coding)
        if size > budget:
            raise LocalProtocolError(
                f"destination_max_bits leaves {budget} bits per part, too few for {char!r}."
            )
        if used + size > budget:
            yield "".join(part)
            part, used = [], 0
        part.append(char)
        used += size
    yield "".join(part)


def _check_split_arguments(message_reference_start: int, destination_max_bits: int) -> None:
    if not 0 <= message_reference_start <= 0xFF:
        raise LocalProtocolError(f"message_reference_start={message_reference_start} not 0..255.")
    if destination_max_bits < 1:
        raise LocalProtocolError(f"destination_max_bits={destination_max_bits} is not positive.")


def _fits(text: TextSds, max_bits: int) -> bool:
    try:
        return encode_sds(text)[1] <= max_bits
    except LocalProtocolError as exc:
        if exc.reason_code != DeliveryStatus.MESSAGE_TOO_LONG:
            raise
        return False


def split_text(
    text: str,
    *,
    destination_max_bits: int,
    message_reference_start: int,
    coding_scheme: int | None = None,
    delivery_report_request: int = 0,
    immediate: bool = False,
    timestamp: SdsTimestamp | None = None,
) -> list[TextSds]:
    """Split ``text`` into SDS that each fit ``destination_max_bits`` (PID included).

    Returns one PID 0x82 (0x89 if ``immediate``) SDS-TRANSFER when the text fits,
    else PID 0x8A parts with message references ``message_reference_start``,
    +1, ... (modulo 256) and a user data header whose 8-bit reference is the first
    part's message reference. ``coding_scheme`` defaults to
    :func:`choose_coding_scheme`. Characters are never cut in half.

    Raises:
        LocalProtocolError: Bad arguments, a character that does not fit a part,
            or more than 255 parts.
    """
    _check_split_arguments(message_reference_start, destination_max_bits)
    max_bits = min(destination_max_bits, MAX_TYPE4_BITS)
    coding = choose_coding_scheme(text) if coding_scheme is None else coding_scheme
    fields: dict[str, object] = {
        "delivery_report_request": delivery_report_request,
        "timestamp": timestamp,
    }
    single = _single(text, message_reference_start, coding, immediate=immediate, **fields)
    if _fits(single, max_bits):
        return [single]
    # Overhead of a part: PID 8, SDS-TRANSFER header 16, text header 8, timestamp 24,
    # user data header 48 (length, IEI 0x00, IEL, reference, total, sequence).
    overhead = 8 + 16 + 8 + (24 if timestamp is not None else 0) + 48
    chunks = list(_chunks(text, coding, max_bits - overhead))
    if len(chunks) > 255:
        raise LocalProtocolError(
            f"Text needs {len(chunks)} parts; at most 255 fit one concatenated message.",
            reason_code=DeliveryStatus.CONCATENATED_TOO_LONG,
        )
    return [
        TextSds(
            protocol_id=_UDH_PID,
            text=chunk,
            coding_scheme=coding,
            message_reference=(message_reference_start + index) % 256,
            concat=ConcatInfo(
                reference=message_reference_start, total=len(chunks), sequence=index + 1
            ),
            **fields,  # type: ignore[arg-type]
        )
        for index, chunk in enumerate(chunks)
    ]


@dataclass(frozen=True, kw_only=True)
class IncompleteMessage:
    """A concatenated message given up before all its parts arrived.

    The adapter may answer the sender (``source``) with a negative SDS-REPORT
    carrying :attr:`DeliveryStatus.CONCATENATION_INCOMPLETE` (0x5D) for
    ``message_reference`` (the first received part's, or the part 1's if received).
    """

    source: Identity
    destination: Identity
    protocol_id: int
    message_reference: int | None
    reference: int
    total: int
    received: tuple[int, ...]
    reason: str
    reason_code: int = DeliveryStatus.CONCATENATION_INCOMPLETE


@dataclass
class _Pending:
    first_seen: float
    parts: dict[int, TextSds]


_Key = tuple[str, str, int, int, int]


class Reassembler:
    """Join the parts of concatenated text SDS (sans-IO; time is an argument).

    Parts are keyed by sender, destination, PID, concatenation reference and part
    count, so parts of different senders or references never mix; duplicates are
    ignored.

    Args:
        timeout: Seconds after the first part after which an incomplete message is
            given up (reported by :meth:`handle_timer`).
        max_pending: Most incomplete messages kept; beyond it the oldest is given up.
    """

    def __init__(self, timeout: float, *, max_pending: int = 64) -> None:
        if timeout <= 0 or max_pending < 1:
            raise LocalProtocolError("timeout must be > 0 and max_pending >= 1.")
        self._timeout = timeout
        self._max_pending = max_pending
        self._pending: dict[_Key, _Pending] = {}
        self._evicted: list[IncompleteMessage] = []
        self._evicted_at = 0.0

    @property
    def pending_count(self) -> int:
        """Number of incomplete messages held."""
        return len(self._pending)

    def add(self, source: str, destination: str, part: TextSds, now: float) -> TextSds | None:
        """Add a received text; return the whole message once complete, else None.

        A text without ``concat`` (or a 1-part message) is returned at once. The
        reassembled message has ``concat=None``, the texts joined in sequence order
        and every other field (message reference included) from part 1.
        """
        parts = self.add_part(source, destination, part, now)
        return None if parts is None else self.join(parts)

    def add_part(
        self, source: str, destination: str, part: TextSds, now: float
    ) -> tuple[TextSds, ...] | None:
        """Like :meth:`add`, but return the message's parts (in sequence order) once complete.

        The caller sees every part of a completed message (each with its own SDS-TL
        message reference, e.g. to remember them for duplicate detection) and builds
        the whole message with :meth:`join`. A text without ``concat`` gives ``(part,)``.
        """
        concat = part.concat
        if concat is None or concat.total == 1:
            return (part,)
        key = (source, destination, part.protocol_id, concat.reference, concat.total)
        entry = self._pending.get(key)
        if entry is None:
            self._make_room(now)
            entry = self._pending[key] = _Pending(first_seen=now, parts={})
        entry.parts.setdefault(concat.sequence, part)
        if len(entry.parts) < concat.total:
            return None
        del self._pending[key]
        return tuple(entry.parts[i] for i in range(1, concat.total + 1))

    @staticmethod
    def join(parts: tuple[TextSds, ...]) -> TextSds:
        """Join the parts returned by :meth:`add_part` into the whole message."""
        first = parts[0]
        if first.concat is None:
            return first
        return dataclasses.replace(first, text="".join(p.text for p in parts), concat=None)

    def _make_room(self, now: float) -> None:
        if len(self._pending) >= self._max_pending:
            key = min(self._pending, key=lambda k: self._pending[k].first_seen)
            self._evicted.append(self._incomplete(key, self._pending.pop(key), "too many pending"))
            self._evicted_at = now

    def get_timer(self) -> float | None:
        """Return when :meth:`handle_timer` must next be called, or None."""
        deadlines = [p.first_seen + self._timeout for p in self._pending.values()]
        if self._evicted:
            deadlines.append(self._evicted_at)  # report the given-up message at once
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[IncompleteMessage]:
        """Give up messages whose first part is older than the timeout at ``now``."""
        expired = self._evicted
        self._evicted = []
        for key, entry in list(self._pending.items()):
            if now >= entry.first_seen + self._timeout:
                del self._pending[key]
                expired.append(self._incomplete(key, entry, "timed out"))
        return expired

    def flush(self) -> list[IncompleteMessage]:
        """Give up every incomplete message (e.g. at end of stream)."""
        gone = self._evicted + [
            self._incomplete(k, p, "stream ended") for k, p in self._pending.items()
        ]
        self._pending.clear()
        self._evicted = []
        return gone

    @staticmethod
    def _incomplete(key: _Key, entry: _Pending, why: str) -> IncompleteMessage:
        source, destination, pid, reference, total = key
        received = tuple(sorted(entry.parts))
        part = entry.parts[received[0]]
        return IncompleteMessage(
            source=Identity(source),
            destination=Identity(destination),
            protocol_id=pid,
            message_reference=part.message_reference,
            reference=reference,
            total=total,
            received=received,
            reason=f"Concatenated message {reference} ({why}): got parts {received} of {total}.",
        )
