"""Sans-IO codecs of the TETRA PEI (ETSI EN 300 392-5): both ends of the serial line.

* :class:`PeiConnection` is the terminal (TE, gateway) side: it parses what a radio
  writes (``+CTSDSR`` records, ``+CMGS`` results, final result codes, other
  unsolicited results) into events and turns commands into bytes.
* :class:`RadioPei` is the radio (MT) side used by the radio simulator: it parses
  AT command lines and ``AT+CMGS`` user data and produces the radio's answers.

Both follow h11's shape: ``receive_data(data)`` (``b""`` = end of stream),
``next_event()`` returning an event or :data:`NEED_DATA`, and methods returning
bytes to write. Rule 1: no I/O, no clock. Rule 2: malformed input never raises;
it becomes an event (:class:`SdsRejected`, :class:`SdsSubmissionFailed`) and
parsing goes on with the next line. Results are identical whether input arrives
whole or one byte at a time.
"""

from __future__ import annotations

import collections
import enum
import re
import string
from dataclasses import dataclass
from typing import Literal

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra._events import (
    MAX_TYPE4_BITS,
    CommandCompleted,
    DeliveryStatus,
    Identity,
    PeiCommand,
    QuerySendCapability,
    RawCommand,
    SdsReceived,
    SdsRejected,
    SelectSdsService,
    SendCapability,
    SendResult,
    SendSds,
    SetServiceProfile,
    UnsolicitedResult,
)
from protocols.tetra._sds import decode_sds

__all__ = [
    "DEFAULT_MAX_LINE",
    "NEED_DATA",
    "TOO_LONG",
    "LineBuffer",
    "PeiConnection",
    "PeiEvent",
    "PeiSentinel",
    "is_identity",
]

#: Longest line (bytes) either codec buffers; longer lines are discarded with an event.
#: A full 2047-bit SDS is 512 hex digits, so 8 KiB leaves ample room.
DEFAULT_MAX_LINE = 8192
_CR, _LF, _CTRL_Z, _ESC = 0x0D, 0x0A, 0x1A, 0x1B
_HEX = frozenset(string.hexdigits)
_CAPABILITY = re.compile(r"\(\s*([0-9]{1,9})\s*-\s*([0-9]{1,9})\s*\)\s*$")
_CORRUPT = DeliveryStatus.CORRUPT_INFORMATION_ELEMENT


class PeiSentinel(enum.Enum):
    """Sentinel values returned by ``next_event``."""

    #: No complete event is buffered: call ``receive_data`` first.
    NEED_DATA = "NEED_DATA"


NEED_DATA = PeiSentinel.NEED_DATA
NeedData = Literal[PeiSentinel.NEED_DATA]

PeiEvent = (
    SdsReceived | SdsRejected | SendResult | CommandCompleted | SendCapability | UnsolicitedResult
)


def is_identity(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 24


class _TooLong(enum.Enum):
    """Marker returned by :class:`LineBuffer` for a line longer than its limit."""

    TOO_LONG = "TOO_LONG"


TOO_LONG = _TooLong.TOO_LONG


class LineBuffer:
    """Split a byte stream into lines ending CR LF, bare CR or bare LF (EN 300 392-5 5.x)."""

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit
        self._skip_lf = False  # a CR ended the last line: a following LF belongs to it
        self._discarding = False  # inside an over-long line, dropping bytes until its end
        self.eof = False

    @property
    def discarding(self) -> bool:
        """True while dropping the rest of an over-long line or block."""
        return self._discarding

    def receive(self, data: bytes) -> None:
        """Feed ``data``; ``b""`` marks the end of the stream.

        Raises:
            LocalProtocolError: Data fed after the end of the stream.
        """
        if self.eof:
            raise LocalProtocolError("receive_data() called after end of stream.")
        if data:
            self.feed(data)
        else:
            self.eof = True

    def feed(self, data: bytes) -> None:
        self._buf += data

    def _consume_lf(self) -> None:
        if self._skip_lf and self._buf:
            if self._buf[0] == _LF:
                del self._buf[0]
            self._skip_lf = False

    def _take(self, end: int) -> bytes:
        chunk = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return chunk

    def pop_line(self) -> bytes | _TooLong | None:
        """Return the next complete line, ``TOO_LONG`` once per over-long line, or None."""
        while True:
            self._consume_lf()
            match = re.search(rb"[\r\n]", self._buf)
            if match is None:
                return self._overflow()
            self._skip_lf = self._buf[match.start()] == _CR
            line = self._take(match.start())
            if self._discarding:
                self._discarding = False
                continue
            return TOO_LONG if len(line) > self._limit else line

    def pop_until(self, terminators: bytes) -> tuple[bytes, int] | _TooLong | None:
        """Return the bytes before the first terminator and that terminator, or None."""
        self._consume_lf()
        index = next((i for i, b in enumerate(self._buf) if b in terminators), None)
        if index is None:
            return self._overflow()
        terminator = self._buf[index]
        chunk = self._take(index)
        if self._discarding:  # end of a block already reported as too long
            self._discarding = False
            return b"", terminator
        return TOO_LONG if len(chunk) > self._limit else (chunk, terminator)

    def _overflow(self) -> _TooLong | None:
        if len(self._buf) > self._limit:
            self._buf.clear()
            if not self._discarding:
                self._discarding = True
                return TOO_LONG
        elif self._discarding:
            self._buf.clear()
        return None

    def pop_rest(self) -> bytes:
        """Return and drop whatever follows the last line ending (used at end of stream)."""
        self._consume_lf()
        rest = b"" if self._discarding else bytes(self._buf)
        self._buf.clear()
        return rest


# --------------------------------------------------------------------------- terminal side


@dataclass(frozen=True, kw_only=True)
class _Header:
    """A parsed ``+CTSDSR`` header waiting for its user-data line (or why it is bad)."""

    line: str
    ai_service: int = 0
    source: str | None = None
    source_type: int = 0
    destination: str | None = None
    destination_type: int = 0
    bits: int = 0
    e2ee: bool = False
    error: str | None = None


def _parse_ctsdsr(line: str, own_identity: str) -> _Header:
    """Parse a ``+CTSDSR`` header (EN 300 392-5 6.13.x, field order of V2.7.1).

    ``<AI service>,[<calling id>],[<calling id type>],<called id>,<called id type>,
    <length>[,<e2ee>]``; the shortened 3- and 4-field forms (AI service, calling
    identity, [type,] length) omit the called party, which is then ``own_identity``.
    """
    fields = [f.strip() for f in line.partition(":")[2].split(",")]
    if len(fields) == 3:
        fields = [fields[0], fields[1], "0", own_identity, "0", fields[2]]
    elif len(fields) == 4:
        fields = [*fields[:3], own_identity, "0", fields[3]]
    if len(fields) not in (6, 7):
        return _Header(line=line, error=f"+CTSDSR header has {len(fields)} fields.")
    ai, source, source_type, destination, destination_type, length, *e2ee = fields
    numbers = [ai, source_type or "0", destination_type, length, *e2ee]
    if not all(n.isascii() and n.isdigit() and len(n) <= 6 for n in numbers):
        return _Header(line=line, error=f"+CTSDSR header has a non-numeric field: {line!r}.")
    source_ok = is_identity(source) and bool(source)
    if not (source_ok and is_identity(destination) and destination):
        return _Header(line=line, error=f"+CTSDSR header has a bad identity: {line!r}.")
    return _Header(
        line=line,
        ai_service=int(ai),
        source=source,
        source_type=int(source_type or "0"),
        destination=destination,
        destination_type=int(destination_type),
        bits=int(length),
        e2ee=bool(e2ee and int(e2ee[0])),
    )


def _parse_cmgs(value: str) -> PeiEvent:
    """``+CMGS: <SDS instance>[,<SDS status>[,<message reference>]]`` or the test answer."""
    if "(" in value:
        match = _CAPABILITY.search(value)
        if match is None:
            return UnsolicitedResult(name="+CMGS", value=value)
        return SendCapability(max_pdu_bits=int(match.group(2)))
    parts = [p.strip() for p in value.split(",")]
    if len(parts) > 3 or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        return SdsRejected(reason=f"Malformed +CMGS result {value!r}.", raw=f"+CMGS: {value}")
    numbers = [int(p) for p in parts] + [None, None]
    return SendResult(
        sds_instance=int(parts[0]), sds_status=numbers[1], message_reference=numbers[2]
    )


class PeiConnection:
    """Terminal side of the PEI: radio output in, events out; commands in, bytes out.

    Args:
        own_identity: The radio's own identity, used as destination when a
            ``+CTSDSR`` header omits the called party.
        max_line: Longest line buffered, in bytes.
    """

    def __init__(self, *, own_identity: str = "0", max_line: int = DEFAULT_MAX_LINE) -> None:
        if not (is_identity(own_identity) and own_identity):
            raise LocalProtocolError(f"own_identity={own_identity!r} is not a TETRA identity.")
        self._own = own_identity
        self._lines = LineBuffer(max_line)
        self._events: collections.deque[PeiEvent] = collections.deque()
        self._outstanding: collections.deque[str] = collections.deque()
        self._pending: _Header | None = None
        self._closed = False

    @property
    def outstanding_commands(self) -> tuple[str, ...]:
        """Command lines sent and not yet answered by a final result code, oldest first."""
        return tuple(self._outstanding)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the radio; ``b""`` means the stream ended.

        Raises:
            LocalProtocolError: Data fed after the end of the stream.
        """
        self._lines.receive(data)

    def next_event(self) -> PeiEvent | NeedData:
        """Return the next event, or :data:`NEED_DATA` when more input is needed."""
        while not self._events:
            line = self._lines.pop_line()
            if line is None:
                if not self._lines.eof or self._closed:
                    return NEED_DATA
                self._finish()
            elif line is TOO_LONG:
                self._events.append(SdsRejected(reason="Line too long; discarded."))
            else:
                self._handle_line(line.decode("latin-1").strip())
        return self._events.popleft()

    def _finish(self) -> None:
        self._closed = True
        rest = self._lines.pop_rest().decode("latin-1").strip()
        if rest:
            self._handle_line(rest)
        if self._pending is not None:
            self._events.append(self._missing_data(self._pending))
            self._pending = None

    def _handle_line(self, line: str) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if line and not line.startswith("+") and line.upper() not in ("OK", "ERROR"):
                self._events.append(self._user_data(pending, line))
                return
            self._events.append(self._missing_data(pending))
        self._handle_record(line)

    def _handle_record(self, line: str) -> None:
        upper = line.upper()
        if not line or upper.startswith("AT") or line == ">":
            return  # blank line, command echo or user-data prompt
        if upper in ("OK", "ERROR"):
            self._complete(ok=upper == "OK")
        elif upper.startswith("+CME ERROR"):
            code = line.partition(":")[2].strip()
            cme = int(code) if code.isascii() and code.isdigit() and len(code) < 6 else None
            self._complete(ok=False, cme_error=cme)
        elif upper.startswith("+CTSDSR:"):
            self._pending = _parse_ctsdsr(line, self._own)
        elif upper.startswith("+CMGS:"):
            self._events.append(_parse_cmgs(line.partition(":")[2].strip()))
        elif line.startswith("+"):
            name, _, value = line.partition(":")
            self._events.append(UnsolicitedResult(name=name.strip(), value=value.strip()))
        else:
            self._events.append(UnsolicitedResult(name="", value=line))

    def _complete(self, *, ok: bool, cme_error: int | None = None) -> None:
        command = self._outstanding.popleft() if self._outstanding else ""
        self._events.append(CommandCompleted(command=command, ok=ok, cme_error=cme_error))

    @staticmethod
    def _missing_data(header: _Header) -> SdsRejected:
        return SdsRejected(
            reason=header.error or "+CTSDSR header is not followed by its user-data line.",
            source=Identity(header.source) if header.source else None,
            destination=Identity(header.destination) if header.destination else None,
            raw=header.line,
        )

    def _user_data(self, header: _Header, line: str) -> SdsReceived | SdsRejected:
        # EN 300 392-5 6.13.x: the header's length (bits) is authoritative; hex digits
        # past it are ignored and an odd number of digits is accepted.
        if header.error is not None:
            return SdsRejected(reason=header.error, raw=f"{header.line}\n{line}")
        reject = _Rejecter(header, line)
        if header.bits > MAX_TYPE4_BITS:
            return reject(f"SDS length {header.bits} bits exceeds {MAX_TYPE4_BITS} bits.")
        if not set(line) <= _HEX:
            return reject("User data is not hexadecimal.")
        digits = (header.bits + 3) // 4
        if len(line) < digits:
            return reject(f"User data has {len(line) * 4} bits, header says {header.bits}.")
        # Keep whole octets when sent (7-bit text fills the last octet LSB first).
        digits = max(digits, min(len(line), 2 * ((header.bits + 7) // 8)))
        text = line[:digits] + "0" * (digits % 2)
        payload = bytes.fromhex(text)
        try:
            content = decode_sds(payload, header.bits, header.ai_service)
        except RemoteProtocolError as exc:
            return reject(str(exc), exc.reason_code, payload)
        assert header.source is not None and header.destination is not None
        return SdsReceived(
            source=Identity(header.source),
            destination=Identity(header.destination),
            ai_service=header.ai_service,
            content=content,
            source_type=header.source_type,
            destination_type=header.destination_type,
            end_to_end_encryption=header.e2ee,
        )

    def send(self, command: PeiCommand) -> bytes:
        """Return the bytes of ``command`` and remember it until its final result code.

        ``SendSds`` gives ``AT+CMGS=<dest>,<bits>`` CR LF, the user data in upper-case
        hex and Ctrl-Z (EN 300 392-5 6.13.x; protocols.md 1.4).
        """
        if isinstance(command, SetServiceProfile):
            line = f"AT+CTSP={command.profile},{command.layer1}"
            line += "" if command.layer2 is None else f",{command.layer2}"
        elif isinstance(command, SelectSdsService):
            line = (
                f"AT+CTSDS={command.ai_service},{command.identity_type},{command.area},"
                f"{command.access_priority},{command.end_to_end_encryption}"
            )
        elif isinstance(command, QuerySendCapability):
            line = "AT+CMGS=?"
        elif isinstance(command, SendSds):
            line = f"AT+CMGS={command.destination},{command.bits}"
            self._outstanding.append(line)
            return f"{line}\r\n{command.payload.hex().upper()}\x1a".encode("ascii")
        elif isinstance(command, RawCommand):
            line = command.line
        else:
            raise LocalProtocolError(f"{command!r} is not a PEI command.")
        self._outstanding.append(line)
        return f"{line}\r\n".encode("latin-1")


class _Rejecter:
    """Build :class:`SdsRejected` for a header, keeping what can be read of the PDU.

    The message reference (what a negative SDS-REPORT would answer) is kept only for
    an SDS-TRANSFER (SDS-TL message type 0, EN 300 392-2 29.4.2.4). A corrupt
    SDS-REPORT or SDS-ACK, or a PDU of a reserved or application-defined message
    type, gets none: SDS-TL never answers a report or an ack with a report (two
    entities would bounce negative reports at each other for ever).
    """

    def __init__(self, header: _Header, line: str) -> None:
        self._header = header
        self._line = line

    def __call__(
        self, reason: str, code: int | None = _CORRUPT, payload: bytes = b""
    ) -> SdsRejected:
        header = self._header
        pid = payload[0] if payload and header.ai_service == 12 and header.bits >= 8 else None
        reference = None
        if pid is not None and pid >= 0x80 and header.bits >= 24 and payload[1] >> 4 == 0:
            reference = payload[2]  # SDS-TRANSFER: PID | type, flags | message reference
        return SdsRejected(
            reason=reason,
            reason_code=_CORRUPT if code is None else code,
            source=Identity(header.source) if header.source else None,
            destination=Identity(header.destination) if header.destination else None,
            protocol_id=pid,
            message_reference=reference,
            raw=f"{header.line}\n{self._line}",
        )
