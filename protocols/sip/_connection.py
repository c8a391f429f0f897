"""Incremental SIP parser for one stream connection (TCP/TLS), h11-style.

``receive_data(data)`` (``b""`` = end of stream), then ``next_event()`` until it
returns :data:`NEED_DATA`. Events: :class:`SipRequest` (``RequestReceived``),
:class:`SipResponse` (``ResponseReceived``), :class:`PingReceived`,
:class:`PongReceived`, :class:`ConnectionClosed`.

Rules (RFC 3261 §7, §18.3, §20; RFC 5626 §3.5.1):

1. Every line ends with CRLF; a bare CR or LF in a head is an error. Folded header
   lines are unfolded. Header names are case-insensitive and compact forms expanded.
2. Content-Length is mandatory on a stream and frames the body, which is binary.
3. Requests need Via, From, To, Call-ID, CSeq and Max-Forwards; responses all but
   Max-Forwards. CSeq's method must match the request's.
4. Keep-alives between messages: the server side reports a double CRLF as a ping and
   ignores a lone CRLF (RFC 3261 §7.5); the client side reports each CRLF as a pong.
5. A malformed message raises :class:`SipProtocolError` with the status to answer
   (400, 413 body too large, 505 version, 513 head too large) and the connection is
   then CLOSED: the caller should answer if it can and close the transport.

No I/O, no clock. Whole input and byte-at-a-time input give the same events.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

from protocols.errors import LocalProtocolError
from protocols.sip._headers import (
    TOKEN,
    SipHeaders,
    SipProtocolError,
    parse_header_lines,
    parse_media_type,
)
from protocols.sip._messages import (
    ConnectionClosed,
    PingReceived,
    PongReceived,
    SipRequest,
    SipResponse,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEAD",
    "NEED_DATA",
    "SipConnection",
    "SipEvent",
    "SipRole",
    "SipSentinel",
    "SipState",
]

#: Largest body accepted by default (octets); larger ones give 413.
DEFAULT_MAX_BODY = 64 * 1024
#: Largest head (start line, header fields and the empty line) accepted by default;
#: larger ones give 513.
DEFAULT_MAX_HEAD = 16 * 1024

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_VERSION = re.compile(r"SIP/\d+\.\d+", re.IGNORECASE)
_STATUS_LINE = re.compile(r"(SIP/\d+\.\d+) (\d{3}) (.*)", re.IGNORECASE | re.DOTALL)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[\x21-\x7e]+")
_CSEQ = re.compile(r"(\d{1,10})[ \t]+(\S+)")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


class SipSentinel(enum.Enum):
    """Sentinel values returned by ``next_event``."""

    #: No complete event is buffered: call ``receive_data`` first.
    NEED_DATA = "NEED_DATA"


NEED_DATA = SipSentinel.NEED_DATA
NeedData = Literal[SipSentinel.NEED_DATA]

SipEvent = SipRequest | SipResponse | PingReceived | PongReceived | ConnectionClosed


class SipRole(enum.Enum):
    """Which end opened the connection; decides how CRLF keep-alives read (RFC 5626)."""

    #: We connected out: we send pings, a CRLF from the peer is a pong.
    CLIENT = "client"
    #: The peer connected in: it sends pings (double CRLF), we answer with a pong.
    SERVER = "server"


class SipState(enum.Enum):
    """Connection state."""

    #: Messages may arrive.
    OPEN = "open"
    #: The peer closed the stream, or sent something malformed; nothing more is parsed.
    CLOSED = "closed"


@dataclass(frozen=True)
class _Head:
    start: str
    headers: SipHeaders
    length: int


class SipConnection:
    """Parse SIP messages from one stream.

    Args:
        role: Which end opened the connection (keep-alive semantics).
        max_body: Largest Content-Length accepted; larger gives 413.
        max_head: Largest head (up to and including the empty line) accepted; larger
            gives 513.
    """

    def __init__(
        self,
        *,
        role: SipRole = SipRole.SERVER,
        max_body: int = DEFAULT_MAX_BODY,
        max_head: int = DEFAULT_MAX_HEAD,
    ) -> None:
        self._role = role
        self._max_body = max_body
        self._max_head = max_head
        self._buf = bytearray()
        self._eof = False
        self._head: _Head | None = None
        self._error: SipProtocolError | None = None

    @property
    def state(self) -> SipState:
        """OPEN until the stream ended (and was drained) or a protocol error occurred."""
        closed = self._error is not None or (self._eof and not self._buf and not self._head)
        return SipState.CLOSED if closed else SipState.OPEN

    @property
    def error(self) -> SipProtocolError | None:
        """The protocol error that closed the connection, if any."""
        return self._error

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the stream; ``b""`` means the peer closed it.

        Bytes fed after a protocol error are discarded.

        Raises:
            LocalProtocolError: Data fed after the end of the stream.
        """
        if self._eof:
            raise LocalProtocolError("receive_data() called after end of stream.")
        if not data:
            self._eof = True
        elif self._error is None:
            self._buf += data

    def next_event(self) -> SipEvent | NeedData:
        """Return the next event, or :data:`NEED_DATA`.

        Raises:
            SipProtocolError: The peer sent a malformed message; the connection is closed.
            LocalProtocolError: Called again after a protocol error.
        """
        if self._error is not None:
            raise LocalProtocolError(f"Connection closed after a protocol error: {self._error}")
        try:
            return self._next()
        except SipProtocolError as exc:
            self._error = exc
            self._buf.clear()
            self._head = None
            raise

    def _next(self) -> SipEvent | NeedData:
        if self._head is None:
            keepalive = self._keepalive()
            if keepalive is not None:
                return keepalive
            head = self._read_head()
            if head is None:
                return self._at_end(b"")
            self._head = head
        length = self._head.length
        if len(self._buf) < length:
            if self._eof:
                raise SipProtocolError(
                    f"Stream ended {len(self._buf)}/{length} octets into a body."
                )
            return NEED_DATA
        body = bytes(self._buf[:length])
        del self._buf[:length]
        head, self._head = self._head, None
        return _message(head, body)

    def _at_end(self, pending: bytes) -> ConnectionClosed | NeedData:
        if not self._eof:
            return NEED_DATA
        if self._buf or pending:
            raise SipProtocolError("Stream ended in the middle of a message head.")
        return ConnectionClosed()

    def _keepalive(self) -> PingReceived | PongReceived | ConnectionClosed | NeedData | None:
        """Consume CRLF keep-alives before a message (RFC 5626 §3.5.1, RFC 3261 §7.5)."""
        buf = self._buf
        while buf[:1] == b"\r":
            if self._role is SipRole.CLIENT:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    return PongReceived()
                return self._at_end(bytes(buf)) if len(buf) == 1 else None
            if buf[:4] == b"\r\n\r\n":
                del buf[:4]
                return PingReceived()
            if b"\r\n\r\n".startswith(bytes(buf[:4])):
                return self._waiting_crlf()
            if buf[:2] != b"\r\n":
                return None  # a bare CR: reported by the head parser
            del buf[:2]  # a lone CRLF before a message is ignored
        return None

    def _waiting_crlf(self) -> ConnectionClosed | NeedData:
        if self._eof and bytes(self._buf) == b"\r\n":
            self._buf.clear()  # a lone CRLF at the end of the stream
        return self._at_end(bytes(self._buf))

    def _read_head(self) -> _Head | None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        limit = min(len(buf) if end < 0 else end + 2, self._max_head)
        bare = _BARE.search(buf, 0, min(len(buf), limit + 1))
        if bare and bare.start() < limit and not (end < 0 and bare.start() == len(buf) - 1):
            raise SipProtocolError(f"Bare CR or LF at octet {bare.start()} of a message head.")
        if (end < 0 and len(buf) > self._max_head) or end + 4 > self._max_head:
            raise SipProtocolError(
                f"Message head exceeds {self._max_head} octets.",
                status=513,
                reason="Message Too Large",
            )
        if end < 0:
            return None
        raw = bytes(buf[:end])
        del buf[: end + 4]
        return _parse_head(raw, self._max_body)


def _parse_head(raw: bytes, max_body: int) -> _Head:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipProtocolError(f"Message head is not UTF-8: {exc.reason}.") from exc
    start, *lines = text.split("\r\n")
    headers = parse_header_lines(lines, "SIP message")
    try:
        _check_start_line(start)
        length = _content_length(headers, max_body)
        _check_required(start, headers, length)
    except SipProtocolError as exc:
        exc.headers = headers
        raise
    return _Head(start=start, headers=headers, length=length)


def _check_version(version: str) -> None:
    if not _VERSION.fullmatch(version):
        raise SipProtocolError(f"Malformed SIP version {version[:20]!r}.")
    if version.upper() != "SIP/2.0":
        raise SipProtocolError(
            f"SIP version {version!r} is not supported.",
            status=505,
            reason="Version Not Supported",
        )


def _check_start_line(start: str) -> None:
    if _BAD_TEXT.search(start):
        raise SipProtocolError("Start line holds a control character.")
    status = _STATUS_LINE.fullmatch(start)
    if start[:4].upper() == "SIP/":
        if status is None:
            raise SipProtocolError(f"Malformed status line {start[:80]!r}.")
        _check_version(status.group(1))
        if not 100 <= int(status.group(2)) <= 699:
            raise SipProtocolError(f"Status code {status.group(2)} is outside 100..699.")
        return
    parts = start.split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not _URI.fullmatch(parts[1]):
        raise SipProtocolError(f"Malformed request line {start[:80]!r}.")
    _check_version(parts[2])


def _content_length(headers: SipHeaders, max_body: int) -> int:
    values = headers.get_all("Content-Length")
    if len(values) != 1:
        what = "Missing" if not values else "Repeated"
        raise SipProtocolError(f"{what} Content-Length (mandatory on streams, RFC 3261 §18.3).")
    if not (values[0].isascii() and values[0].isdigit() and len(values[0]) <= 10):
        raise SipProtocolError(f"Malformed Content-Length {values[0][:20]!r}.")
    length = int(values[0])
    if length > max_body:
        raise SipProtocolError(
            f"Body of {length} octets exceeds {max_body}.",
            status=413,
            reason="Request Entity Too Large",
        )
    return length


def _check_required(start: str, headers: SipHeaders, length: int) -> None:
    is_request = start[:4].upper() != "SIP/"
    required = (*_REQUIRED, "Max-Forwards") if is_request else _REQUIRED
    for name in required:
        if name not in headers:
            raise SipProtocolError(f"Missing mandatory {name} header.")
        if name != "Via" and len(headers.get_all(name)) > 1:
            raise SipProtocolError(f"Repeated {name} header.")
    cseq = _CSEQ.fullmatch(headers.get("CSeq") or "")
    if cseq is None or int(cseq.group(1)) >= 2**31 or not TOKEN.fullmatch(cseq.group(2)):
        raise SipProtocolError(f"Malformed CSeq {headers.get('CSeq')!r}.")
    if is_request:
        if cseq.group(2) != start.split(" ", maxsplit=1)[0]:
            raise SipProtocolError("CSeq method does not match the request method.")
        forwards = headers.get("Max-Forwards") or ""
        # 1*DIGIT (RFC 3261 25.1): leading zeros are allowed; int() must never see
        # thousands of digits (it refuses more than 4,300 with a ValueError).
        digits = forwards.lstrip("0") or "0"
        if not (
            forwards.isascii() and forwards.isdigit() and len(digits) <= 3 and int(digits) <= 255
        ):
            raise SipProtocolError(f"Malformed Max-Forwards {forwards[:20]!r}.")
    content_types = headers.get_all("Content-Type")
    if len(content_types) > 1:
        raise SipProtocolError("Repeated Content-Type header.")
    if content_types:
        parse_media_type(content_types[0])
    elif length:
        raise SipProtocolError("A body without Content-Type (RFC 3261 §20.15).")


def _message(head: _Head, body: bytes) -> SipRequest | SipResponse:
    if head.start[:4].upper() == "SIP/":
        _, status, reason = head.start.split(" ", 2)
        return SipResponse(
            status=int(status), reason=reason.strip(" \t"), headers=head.headers, body=body
        )
    method, uri, _ = head.start.split(" ")
    return SipRequest(method=method, uri=uri, headers=head.headers, body=body)
