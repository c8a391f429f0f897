"""Sans-IO radio (MT) side of the TETRA PEI (ETSI EN 300 392-5), for the radio simulator.

:class:`RadioPei` parses AT command lines into :class:`CommandReceived` and the
``AT+CMGS`` user data into :class:`SdsSubmitted`, and produces the radio's answers
as bytes. Rule 1: no I/O, no clock. Rule 2: input never raises; a submission the
radio must refuse becomes :class:`SdsSubmissionFailed`, and the simulator answers
it with ``error(event.cme_error)`` (``+CME ERROR: 32`` for bad user data, 35 for
a malformed ``AT+CMGS`` line). Lines not starting with ``AT`` are ignored, as a
modem does.
"""

from __future__ import annotations

import collections
import string

from protocols.errors import LocalProtocolError
from protocols.tetra._events import (
    MAX_TYPE4_BITS,
    CommandReceived,
    Identity,
    SdsSubmissionFailed,
    SdsSubmitted,
)
from protocols.tetra._pei import (
    DEFAULT_MAX_LINE,
    NEED_DATA,
    TOO_LONG,
    LineBuffer,
    NeedData,
    is_identity,
)

__all__ = ["RadioEvent", "RadioPei"]

RadioEvent = CommandReceived | SdsSubmitted | SdsSubmissionFailed

_CTRL_Z, _ESC = 0x1A, 0x1B
_HEX = frozenset(string.hexdigits)
_CAPABILITY_RANGES = "(0-16777214,00000001-10231638316777214,1-255,0-999999999999999999999999)"


def _parse_command(line: str) -> CommandReceived | None:
    """Split ``AT<name>[=args|?|=?]`` (EN 300 392-5 5.x, V.250 syntax); None if not a command."""
    if line[:2].upper() != "AT":
        return None
    body = line[2:]
    if not body:
        return CommandReceived(name="")
    if body[0].isalpha():  # basic command: ATD1234, ATI7, ATE0
        return CommandReceived(name=body[0].upper(), args=body[1:])
    cut = min((i for i, c in enumerate(body) if c in "=?"), default=len(body))
    name, rest = body[:cut].upper(), body[cut:]
    if rest == "?":
        return CommandReceived(name=name, query=True)
    if rest == "=?":
        return CommandReceived(name=name, test=True)
    return CommandReceived(name=name, args=rest.removeprefix("="))


class RadioPei:
    """Radio side of the PEI: command bytes in, events out; answers as bytes.

    Args:
        max_line: Longest command line or user-data block buffered, in bytes.
    """

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._lines = LineBuffer(max_line)
        self._events: collections.deque[RadioEvent] = collections.deque()
        self._submit: tuple[str, int] | None = None
        self._overflowed = False  # the current user-data block was already refused

    @property
    def in_data_mode(self) -> bool:
        """True between ``AT+CMGS=<dest>,<bits>`` and its Ctrl-Z."""
        return self._submit is not None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes written by the terminal; ``b""`` means the stream ended.

        Raises:
            LocalProtocolError: Data fed after the end of the stream.
        """
        self._lines.receive(data)

    def next_event(self) -> RadioEvent | NeedData:
        """Return the next event, or :data:`NEED_DATA` when more input is needed.

        At end of stream an unfinished line or user-data block is dropped.
        """
        while not self._events:
            if self._submit is not None:
                if not self._step_data(self._submit):
                    return NEED_DATA
                continue
            line = self._lines.pop_line()
            if line is None:
                return NEED_DATA
            if line is TOO_LONG:
                self._events.append(SdsSubmissionFailed(reason="Line too long.", cme_error=35))
            else:
                self._handle_line(line.decode("latin-1").strip())
        return self._events.popleft()

    def _handle_line(self, line: str) -> None:
        command = _parse_command(line)
        if command is None:
            return
        if command.name == "+CMGS" and not (command.query or command.test):
            self._start_submission(command.args)
        else:
            self._events.append(command)

    def _start_submission(self, args: str) -> None:
        # EN 300 392-5 6.13.x AT+CMGS=<called party identity>,<length>: user data follows.
        destination, _, length = (a.strip() for a in args.partition(","))
        valid = is_identity(destination) and destination and length.isascii() and length.isdigit()
        if not valid or not 1 <= int(length[:5] or "0") <= MAX_TYPE4_BITS or len(length) > 5:
            reason = f"Malformed AT+CMGS arguments {args!r}."
            self._events.append(SdsSubmissionFailed(reason=reason, cme_error=35))
            return
        self._submit = (destination, int(length))

    def _step_data(self, submit: tuple[str, int]) -> bool:
        chunk = self._lines.pop_until(bytes([_CTRL_Z, _ESC]))
        if chunk is None:
            return False
        destination, bits = submit
        if chunk is TOO_LONG:
            self._fail("User data too long.", destination, bits)
            # Still inside the block when the buffer overflowed before its Ctrl-Z.
            self._overflowed = self._lines.discarding
            if not self._overflowed:
                self._submit = None
            return True
        self._submit = None
        if self._overflowed:
            self._overflowed = False
        elif chunk[1] == _CTRL_Z:  # ESC cancels the submission without an answer
            self._finish_submission(chunk[0], destination, bits)
        return True

    def _fail(self, reason: str, destination: str, bits: int) -> None:
        self._events.append(
            SdsSubmissionFailed(reason=reason, destination=Identity(destination), bits=bits)
        )

    def _finish_submission(self, data: bytes, destination: str, bits: int) -> None:
        text = "".join(data.decode("latin-1").split())
        octets = (bits + 7) // 8
        if not set(text) <= _HEX:
            self._fail("User data is not hexadecimal.", destination, bits)
        elif len(text) not in ((bits + 3) // 4, 2 * octets):
            self._fail(f"{len(text)} hex digits do not match {bits} bits.", destination, bits)
        else:
            payload = bytes.fromhex(text + "0" * (len(text) % 2))
            self._events.append(
                SdsSubmitted(destination=Identity(destination), bits=bits, payload=payload)
            )

    # ----------------------------------------------------------------- answers

    @staticmethod
    def ok() -> bytes:
        """Final result code ``OK``."""
        return b"OK\r\n"

    @staticmethod
    def error(cme: int | None = None) -> bytes:
        """Final result code ``ERROR``, or ``+CME ERROR: <cme>`` (EN 300 392-5 6.17.x)."""
        return b"ERROR\r\n" if cme is None else f"+CME ERROR: {int(cme)}\r\n".encode("ascii")

    @staticmethod
    def deliver(
        source: str,
        destination: str,
        ai_service: int,
        payload: bytes,
        bits: int,
        *,
        source_type: int = 0,
        destination_type: int = 0,
    ) -> bytes:
        """Unsolicited ``+CTSDSR`` header and user-data line (EN 300 392-5 6.13.x).

        Raises:
            LocalProtocolError: Bad identity, or ``bits`` does not fit ``payload``.
        """
        if not (is_identity(source) and source and is_identity(destination) and destination):
            raise LocalProtocolError(f"Bad identities {source!r} -> {destination!r}.")
        if not 0 < bits <= MAX_TYPE4_BITS or (bits + 7) // 8 != len(payload):
            raise LocalProtocolError(f"bits={bits} does not fit a payload of {len(payload)} bytes.")
        header = (
            f"+CTSDSR: {int(ai_service)},{source},{int(source_type)},{destination},"
            f"{int(destination_type)},{bits}"
        )
        return f"{header}\r\n{payload.hex().upper()}\r\n".encode("ascii")

    @staticmethod
    def send_result(
        instance: int, status: int | None = None, reference: int | None = None
    ) -> bytes:
        """``+CMGS: <SDS instance>[,<SDS status>[,<message reference>]]``.

        Raises:
            LocalProtocolError: ``reference`` given without ``status``.
        """
        if reference is not None and status is None:
            raise LocalProtocolError("A +CMGS message reference needs an SDS status.")
        fields = [str(int(v)) for v in (instance, status, reference) if v is not None]
        return f"+CMGS: {','.join(fields)}\r\n".encode("ascii")

    @staticmethod
    def capability(max_bits: int) -> bytes:
        """Answer to ``AT+CMGS=?`` announcing ``max_bits`` as the largest PDU."""
        if not 8 <= max_bits <= MAX_TYPE4_BITS:
            raise LocalProtocolError(f"max_bits={max_bits} is outside 8..{MAX_TYPE4_BITS}.")
        return f"+CMGS: {_CAPABILITY_RANGES},(8-{max_bits})\r\n".encode("ascii")

    @staticmethod
    def unsolicited(line: str) -> bytes:
        """Any other result line, e.g. ``"+CTOM: 0"``.

        Raises:
            LocalProtocolError: ``line`` contains a line break or Ctrl-Z.
        """
        if any(c in line for c in "\r\n\x1a"):
            raise LocalProtocolError(f"{line!r} is not a single result line.")
        return f"{line}\r\n".encode("latin-1")
