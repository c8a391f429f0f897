"""MSB-first bit reader and writer for SDS-TL and LIP PDUs (EN 300 392-2 clause 29).

Rule 1: no I/O, no clock. Rule 2: reading past the end raises
:class:`~protocols.errors.RemoteProtocolError`; writing a value that does not fit
raises :class:`~protocols.errors.LocalProtocolError`.
"""

from __future__ import annotations

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra._events import DeliveryStatus

__all__ = ["BitReader", "BitWriter"]


class BitReader:
    """Read unsigned fields MSB first from ``data``, never past ``bits``."""

    def __init__(self, data: bytes, bits: int, pos: int = 0) -> None:
        if not 0 <= bits <= len(data) * 8:
            raise RemoteProtocolError(
                f"PDU declares {bits} bits but carries {len(data) * 8}.",
                reason_code=DeliveryStatus.CORRUPT_INFORMATION_ELEMENT,
            )
        self._data = data
        self._value = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self.bits = bits
        self.pos = pos

    @property
    def remaining(self) -> int:
        """Bits left before the authoritative length."""
        return self.bits - self.pos

    def read(self, n: int, what: str = "field") -> int:
        """Return the next ``n`` bits as an unsigned integer.

        Raises:
            RemoteProtocolError: The PDU ends before the field does.
        """
        if n > self.remaining:
            raise RemoteProtocolError(
                f"PDU ends at bit {self.bits} inside {what} (needs {n} bits at {self.pos}).",
                reason_code=DeliveryStatus.CORRUPT_INFORMATION_ELEMENT,
            )
        shift = self._total - self.pos - n
        self.pos += n
        return (self._value >> shift) & ((1 << n) - 1)

    def read_signed(self, n: int, what: str = "field") -> int:
        """Return the next ``n`` bits as a two's complement integer."""
        raw = self.read(n, what)
        return raw - (1 << n) if raw >> (n - 1) else raw

    def rest(self) -> tuple[bytes, int]:
        """Return the remaining bits, left-aligned in bytes, and their count (consumes them)."""
        count = self.remaining
        value = self.read(count) if count else 0
        pad = (-count) % 8
        return (value << pad).to_bytes((count + pad) // 8, "big"), count

    def rest_octets(self) -> tuple[bytes, int]:
        """Return the octets from the (octet-aligned) position and the valid bit count.

        The octets are returned as received, pad bits of the last one included.

        Used for 7-bit text, whose GSM packing fills octets from their least
        significant bit, so the last octet's low bits lie past the PDU length.
        """
        start, count = self.pos // 8, self.remaining
        self.pos = self.bits
        return self._data[start:], count


class BitWriter:
    """Append unsigned fields MSB first."""

    def __init__(self) -> None:
        self._value = 0
        self.bits = 0

    def write(self, value: int, n: int, what: str = "field") -> None:
        """Append ``value`` on ``n`` bits.

        Raises:
            LocalProtocolError: ``value`` does not fit in ``n`` bits.
        """
        if not 0 <= value < (1 << n):
            raise LocalProtocolError(f"{what}={value} does not fit in {n} bits.")
        self._value = (self._value << n) | value
        self.bits += n

    def write_signed(self, value: int, n: int, what: str = "field") -> None:
        """Append ``value`` as an ``n``-bit two's complement integer."""
        if not -(1 << (n - 1)) <= value < (1 << (n - 1)):
            raise LocalProtocolError(f"{what}={value} does not fit in {n} signed bits.")
        self.write(value & ((1 << n) - 1), n, what)

    def write_bytes(self, data: bytes, bits: int | None = None) -> None:
        """Append the first ``bits`` bits of ``data`` (all of it by default)."""
        count = len(data) * 8 if bits is None else bits
        value = int.from_bytes(data, "big") >> (len(data) * 8 - count)
        if count:
            self.write(value, count)

    def to_bytes(self) -> tuple[bytes, int]:
        """Return the PDU padded with zero bits to whole octets, and its length in bits."""
        pad = (-self.bits) % 8
        return (self._value << pad).to_bytes((self.bits + pad) // 8, "big"), self.bits
