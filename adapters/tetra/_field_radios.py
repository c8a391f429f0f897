"""The simulated field radios behind a :class:`TetraNetworkSimulator`.

What it does: remember which field radios exist and are reachable, hand out
SDS-TL message references per sender, reassemble concatenated texts that reach
a field radio, record what each radio received, and say which SDS-REPORTs a
radio answers with.

What it must not do: I/O or reading the clock (``now`` is an argument), or parse
PEI bytes (the codec in :mod:`protocols.tetra` does).
"""

from __future__ import annotations

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
    """

    units: list[str]
    reassembly_timeout: float = 60.0
    received: dict[str, list[tuple[str, SdsContent]]] = field(default_factory=dict)
    reports: dict[str, list[tuple[str, SdsContent]]] = field(default_factory=dict)
    _reachable: dict[str, bool] = field(default_factory=dict)
    _references: dict[str, int] = field(default_factory=dict)
    _reassembler: Reassembler = field(init=False)

    def __post_init__(self) -> None:
        for unit in self.units:
            self.received.setdefault(unit, [])
            self.reports.setdefault(unit, [])
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

        Args:
            source: Who sent it (the gateway radio's ISSI).
            destination: The field radio.
            content: The decoded SDS (a single part, for concatenated texts).
            now: Current time, for the reassembly timer.
        """
        if isinstance(content, _REPORT_TYPES):
            self.reports[destination].append((source, content))
            return
        if isinstance(content, TextSds) and content.concat is not None:
            whole = self._reassembler.add(source, destination, content, now)
            if whole is None:
                return
            content = whole
        self.received[destination].append((source, content))

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
