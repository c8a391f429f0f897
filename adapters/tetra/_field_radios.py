"""The simulated field radios behind a :class:`TetraNetworkSimulator`.

What it does: remember which field radios exist and are reachable, hand out
SDS-TL message references per sender, reassemble concatenated texts that reach
a field radio, record what each radio received, and say which SDS-REPORTs a
radio answers with.

What it must not do: I/O or reading the clock (``now`` is an argument), or parse
PEI bytes (the codec in :mod:`protocols.tetra` does).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols.tetra import (
    DeliveryStatus,
    Reassembler,
    SdsAck,
    SdsContent,
    SdsReport,
    ShortReport,
    TextSds,
)

__all__ = ["FieldRadios"]

_REPORT_TYPES = (SdsReport, SdsAck, ShortReport)
#: Transfers per sender a field radio remembers to recognise retransmissions.
_RECENT_TRANSFERS = 32


@dataclass
class FieldRadios:
    """State of the simulated field radios.

    Attributes:
        units: ISSIs of the field radios that exist.
        reassembly_timeout: Seconds a radio waits for the missing parts of a text.
        received: Per field radio, ``(source, content)`` of every non-report SDS it
            received, concatenated texts reassembled.
        reports: Per field radio, ``(source, content)`` of every SDS-REPORT,
            SDS-ACK or short report it received.
        retransmissions: Per field radio, how many SDS-TL transfers it discarded as
            retransmissions of one it already had (same sender, protocol
            identifier, message reference and content), as a terminal does.
        on_received: Called with ``(source, destination, content)`` for every
            non-report SDS a field radio hands to its user (load generators time
            deliveries with it).
    """

    units: list[str]
    reassembly_timeout: float = 60.0
    received: dict[str, list[tuple[str, SdsContent]]] = field(default_factory=dict)
    reports: dict[str, list[tuple[str, SdsContent]]] = field(default_factory=dict)
    retransmissions: dict[str, int] = field(default_factory=dict)
    on_received: Callable[[str, str, SdsContent], None] | None = None
    _recent: dict[tuple[str, str], OrderedDict[tuple[int, int], SdsContent]] = field(
        default_factory=dict
    )
    _reachable: dict[str, bool] = field(default_factory=dict)
    _references: dict[str, int] = field(default_factory=dict)
    _reassembler: Reassembler = field(init=False)

    def __post_init__(self) -> None:
        for unit in self.units:
            self.received.setdefault(unit, [])
            self.reports.setdefault(unit, [])
            self.retransmissions.setdefault(unit, 0)
            self._reachable.setdefault(unit, True)
        self._reassembler = Reassembler(self.reassembly_timeout)

    def set_reachable(self, issi: str, reachable: bool) -> None:
        """Switch a field radio on (reachable) or off.

        Args:
            issi: The field radio.
            reachable: False makes every SDS to it fail with ``+CMGS`` status 5.

        Raises:
            KeyError: If ``issi`` is not a simulated field radio.
        """
        if issi not in self._reachable:
            raise KeyError(f"{issi!r} is not a simulated field radio ({self.units}).")
        self._reachable[issi] = reachable

    def is_reachable(self, issi: str) -> bool:
        """True if ``issi`` exists and is switched on."""
        return self._reachable.get(issi, False)

    def next_reference(self, sender: str, count: int = 1) -> int:
        """Reserve ``count`` consecutive message references of ``sender``; return the first."""
        first = self._references.get(sender, 0)
        self._references[sender] = (first + count) % 256
        return first

    def accept(self, source: str, destination: str, content: SdsContent, now: float) -> None:
        """Record an SDS that reached field radio ``destination``.

        A repeated SDS-TL transfer (same sender, PID, message reference and
        content among the radio's last few) is a retransmission: the radio
        answers it again but does not hand it to its user a second time.

        Args:
            source: Who sent it (the gateway radio's ISSI).
            destination: The field radio.
            content: The decoded SDS (a single part, for concatenated texts).
            now: Current time, for the reassembly timer.
        """
        if isinstance(content, _REPORT_TYPES):
            self.reports[destination].append((source, content))
            return
        if self._is_retransmission(source, destination, content):
            self.retransmissions[destination] = self.retransmissions.get(destination, 0) + 1
            return
        if isinstance(content, TextSds) and content.concat is not None:
            whole = self._reassembler.add(source, destination, content, now)
            if whole is None:
                return
            content = whole
        self.received[destination].append((source, content))
        if self.on_received is not None:
            self.on_received(source, destination, content)

    def _is_retransmission(self, source: str, destination: str, content: SdsContent) -> bool:
        reference = getattr(content, "message_reference", None)
        protocol_id = getattr(content, "protocol_id", None)
        if reference is None or protocol_id is None:
            return False
        recent = self._recent.setdefault((source, destination), OrderedDict())
        key = (protocol_id, reference)
        if recent.get(key) == content:
            return True
        recent[key] = content
        recent.move_to_end(key)
        while len(recent) > _RECENT_TRANSFERS:
            recent.popitem(last=False)
        return False

    @staticmethod
    def reports_for(content: SdsContent) -> list[SdsReport]:
        """SDS-REPORTs a field radio answers ``content`` with (received, then consumed)."""
        if not isinstance(content, TextSds) or content.message_reference is None:
            return []
        statuses = []
        if content.delivery_report_request & 1:
            statuses.append(DeliveryStatus.RECEIVED)
        if content.delivery_report_request & 2:
            statuses.append(DeliveryStatus.CONSUMED)
        return [
            SdsReport(
                protocol_id=content.protocol_id,
                delivery_status=status,
                message_reference=content.message_reference,
            )
            for status in statuses
        ]
