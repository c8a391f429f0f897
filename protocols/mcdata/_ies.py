"""Information element framing of TS 24.282 clause 15 (MONP rules of TS 24.379 Annex I).

Formats (octets): ``V`` value only; ``TV`` one-octet IEI + fixed value; half-octet
``TV 1`` (IEI in the high nibble, value in the low nibble); ``TLV`` IEI + one-octet
length + value; ``TLV-E`` IEI + two-octet length (big-endian) + value.

Unknown optional IEs are skipped by the class of their IEI, following TS 24.007
clause 11.2.4 **(inferred: TS 24.282 has no text of its own for this, and
protocols.md §5 does not give one)**: bit 8 set (0x80-0xFF) means a one-octet type 1/2
IE; 0x70-0x7F a TLV-E IE; anything else a TLV IE.

This module does no I/O. Readers raise :class:`~protocols.errors.RemoteProtocolError`
and never anything else; writers raise :class:`~protocols.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.errors import LocalProtocolError, RemoteProtocolError

MAX_TLVE = 0xFFFF


class IeFormat(enum.Enum):
    """How an optional IE is framed."""

    #: IEI + fixed-length value.
    TV = "TV"
    #: IEI + one-octet length + value.
    TLV = "TLV"
    #: IEI + two-octet length + value.
    TLV_E = "TLV-E"


@dataclass(frozen=True)
class IeSpec:
    """A known optional IE: its name, format and (for TV) value length."""

    name: str
    fmt: IeFormat
    length: int = 0


class Reader:
    """Consume a message octet by octet; every shortfall is a :class:`RemoteProtocolError`."""

    def __init__(self, data: bytes, message: str) -> None:
        self._data = data
        self._pos = 0
        self.message = message

    @property
    def remaining(self) -> int:
        """Octets not yet consumed."""
        return len(self._data) - self._pos

    def error(self, text: str) -> RemoteProtocolError:
        """Return an error naming the message and the offset reached."""
        return RemoteProtocolError(f"{self.message}: {text} (at octet {self._pos}).")

    def take(self, count: int, field: str) -> bytes:
        """Return the next ``count`` octets of ``field``."""
        if self.remaining < count:
            raise self.error(f"{field} truncated: needs {count} octets, {self.remaining} left")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def byte(self, field: str) -> int:
        """Return the next octet as an integer."""
        return self.take(1, field)[0]

    def uint16(self, field: str) -> int:
        """Return the next two octets as a big-endian integer."""
        return int.from_bytes(self.take(2, field), "big")

    def optional_ies(
        self, known: dict[int, IeSpec], half_octet: dict[int, str]
    ) -> tuple[dict[int, bytes], dict[int, int]]:
        """Read the optional IEs up to the end of the message.

        Args:
            known: Known full-octet IEIs and their formats.
            half_octet: Known half-octet IEIs (high nibble) and their names.

        Returns:
            The values of the known full-octet IEs and of the known half-octet IEs.

        Raises:
            RemoteProtocolError: Truncated or overrunning IEs, or a known IE repeated.
        """
        values: dict[int, bytes] = {}
        halves: dict[int, int] = {}
        while self.remaining:
            iei = self.byte("IEI")
            if iei >> 4 in half_octet:
                name = half_octet[iei >> 4]
                if iei >> 4 in halves:
                    raise self.error(f"{name} IE repeated")
                halves[iei >> 4] = iei & 0x0F
            elif iei in known:
                spec = known[iei]
                if iei in values:
                    raise self.error(f"{spec.name} IE repeated")
                values[iei] = self._value(spec.fmt, spec.length, spec.name)
            else:
                self._skip_unknown(iei)
        return values, halves

    def _value(self, fmt: IeFormat, length: int, name: str) -> bytes:
        if fmt is IeFormat.TLV:
            length = self.byte(f"{name} length")
        elif fmt is IeFormat.TLV_E:
            length = self.uint16(f"{name} length")
        return self.take(length, name)

    def _skip_unknown(self, iei: int) -> None:
        name = f"unknown IE 0x{iei:02X}"
        if iei & 0x80:
            return  # type 1 (half-octet TV) or type 2 (T): the IEI octet is the whole IE
        self._value(IeFormat.TLV_E if iei >> 4 == 0x7 else IeFormat.TLV, 0, name)


def tv(iei: int, value: bytes) -> bytes:
    """Encode a TV IE."""
    return bytes([iei]) + value


def tlv_e(iei: int, value: bytes, name: str) -> bytes:
    """Encode a TLV-E IE.

    Raises:
        LocalProtocolError: The value is empty or longer than 65535 octets.
    """
    if not 1 <= len(value) <= MAX_TLVE:
        raise LocalProtocolError(f"{name} must be 1..{MAX_TLVE} octets, not {len(value)}.")
    return bytes([iei]) + len(value).to_bytes(2, "big") + value
