"""SIP messages as values, their encoding, and builders for MESSAGE (RFC 3428) and responses.

:class:`SipRequest` and :class:`SipResponse` are both what :class:`SipConnection`
returns and what :func:`encode_message` writes (as h11 uses one ``Request`` type both
ways); ``RequestReceived`` and ``ResponseReceived`` are their event names.

Builders take every random value (tags, branch, Call-ID, boundary) as an argument; the
``make_*`` helpers derive them from a ``randbits``-like callable (``random.getrandbits``
or ``secrets.randbits``) supplied by the caller. No I/O, no clock, no entropy source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from protocols.errors import LocalProtocolError
from protocols.sip._headers import TOKEN, SipHeaders

__all__ = [
    "BRANCH_COOKIE",
    "REASON_PHRASES",
    "ConnectionClosed",
    "PingReceived",
    "PongReceived",
    "RandomBits",
    "RequestReceived",
    "ResponseReceived",
    "SipRequest",
    "SipResponse",
    "build_message_request",
    "build_response",
    "encode_message",
    "has_tag",
    "make_branch",
    "make_call_id",
    "make_tag",
]

#: A ``random.getrandbits``-like callable: ``k`` -> a non-negative int below ``2**k``.
RandomBits = Callable[[int], int]

#: RFC 3261 §8.1.1.7: every branch parameter starts with this magic cookie.
BRANCH_COOKIE = "z9hG4bK"

#: Reason phrases of RFC 3261 §21 used by the builders.
REASON_PHRASES = {
    100: "Trying",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
}

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[\x21-\x7e]+")
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(f"{_WORD}(@{_WORD})?")
_HOST = re.compile(r"[A-Za-z0-9\-.:\[\]]+")
_BAD_REASON = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)


def _check_uri(uri: str, name: str) -> None:
    if not _URI.fullmatch(uri):
        raise LocalProtocolError(f"{name}={uri!r} is not an absolute URI.")


@dataclass(frozen=True, kw_only=True)
class SipRequest:
    """A SIP request: request line, header fields and body (bytes, binary-safe)."""

    method: str
    uri: str
    headers: SipHeaders
    body: bytes = b""

    def __post_init__(self) -> None:
        if not TOKEN.fullmatch(self.method):
            raise LocalProtocolError(f"SIP method {self.method!r} is not a token.")
        _check_uri(self.uri, "Request-URI")


@dataclass(frozen=True, kw_only=True)
class SipResponse:
    """A SIP response: status line, header fields and body (bytes, binary-safe)."""

    status: int
    reason: str
    headers: SipHeaders
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise LocalProtocolError(f"SIP status {self.status} is outside 100..699.")
        if _BAD_REASON.search(self.reason) or self.reason != self.reason.strip(" \t"):
            raise LocalProtocolError(f"Reason phrase {self.reason!r} is not allowed.")


#: Event name of a request returned by ``SipConnection.next_event``.
RequestReceived = SipRequest
#: Event name of a response returned by ``SipConnection.next_event``.
ResponseReceived = SipResponse


@dataclass(frozen=True)
class PingReceived:
    """A double-CRLF keep-alive ping arrived (RFC 5626 §4.4.1); answer with KEEPALIVE_PONG."""


@dataclass(frozen=True)
class PongReceived:
    """A single-CRLF keep-alive pong arrived (RFC 5626 §4.4.1)."""


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer closed the stream between two messages."""


def encode_message(message: SipRequest | SipResponse) -> bytes:
    """Encode a request or response for a stream transport.

    Content-Length is mandatory on streams (RFC 3261 §18.3 / §20.14): it is appended
    when the headers lack it and must match the body when present.

    Raises:
        LocalProtocolError: Content-Length disagrees with the body or is repeated, or a
            body comes without Content-Type (RFC 3261 §20.15).
    """
    if isinstance(message, SipRequest):
        start = f"{message.method} {message.uri} SIP/2.0"
    else:
        start = f"SIP/2.0 {message.status} {message.reason}"
    headers = message.headers
    lengths = headers.get_all("Content-Length")
    if len(lengths) > 1 or (lengths and lengths[0] != str(len(message.body))):
        raise LocalProtocolError(f"Content-Length {lengths} does not match {len(message.body)}.")
    if message.body and "Content-Type" not in headers:
        raise LocalProtocolError("A SIP message with a body needs a Content-Type.")
    if not lengths:
        headers = headers.with_field("Content-Length", str(len(message.body)))
    lines = [start, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("utf-8") + message.body


def make_branch(randbits: RandomBits) -> str:
    """Return a fresh Via branch (RFC 3261 §8.1.1.7 magic cookie + 64 random bits)."""
    return f"{BRANCH_COOKIE}{randbits(64):016x}"


def make_tag(randbits: RandomBits) -> str:
    """Return a fresh From/To tag (64 random bits, RFC 3261 §19.3)."""
    return f"{randbits(64):016x}"


def make_call_id(randbits: RandomBits, host: str) -> str:
    """Return a fresh Call-ID ``<128 random bits>@host`` (RFC 3261 §8.1.1.4)."""
    return f"{randbits(128):032x}@{host}"


def has_tag(value: str) -> bool:
    """Return True when a From/To value carries a ``tag`` parameter."""
    params = value.rpartition(">")[2] if "<" in value else value
    return bool(_TAG.search(params))


def build_message_request(
    *,
    request_uri: str,
    from_uri: str,
    from_tag: str,
    to_uri: str,
    call_id: str,
    cseq: int,
    via_sent_by: str,
    branch: str,
    body: bytes,
    content_type: str,
    via_transport: str = "TCP",
    max_forwards: int = 70,
    to_tag: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> SipRequest:
    """Build a SIP MESSAGE request (RFC 3428) with the mandatory fields of RFC 3261 §8.1.1.

    Args:
        request_uri: Request-URI (the recipient or the next hop's view of it).
        from_uri: URI of the sender, written ``<from_uri>;tag=from_tag``.
        from_tag: Random From tag (see :func:`make_tag`).
        to_uri: URI of the recipient, written ``<to_uri>`` (with ``;tag=`` if given).
        call_id: Call-ID (see :func:`make_call_id`).
        cseq: CSeq sequence number, below 2**31.
        via_sent_by: ``host[:port]`` of our Via.
        branch: Via branch; must start with ``z9hG4bK`` (see :func:`make_branch`).
        body: Message body (binary-safe).
        content_type: Content-Type of the body (e.g. a multipart/mixed value).
        via_transport: Transport in the Via sent-protocol (TCP, TLS, UDP).
        max_forwards: Max-Forwards, 0..255.
        to_tag: To tag for an in-dialog request; None outside a dialog.
        extra_headers: More fields, written before Content-Type.

    Raises:
        LocalProtocolError: A value is not allowed where it goes.
    """
    for uri, name in ((request_uri, "request_uri"), (from_uri, "from_uri"), (to_uri, "to_uri")):
        _check_uri(uri, name)
        if ">" in uri:
            raise LocalProtocolError(f"{name}={uri!r} contains '>'.")
    if not branch.startswith(BRANCH_COOKIE) or not TOKEN.fullmatch(branch):
        raise LocalProtocolError(f"Via branch {branch!r} must be a token starting z9hG4bK.")
    for tag in (from_tag, to_tag):
        if tag is not None and not TOKEN.fullmatch(tag):
            raise LocalProtocolError(f"Tag {tag!r} is not a token.")
    if not _CALL_ID.fullmatch(call_id):
        raise LocalProtocolError(f"Call-ID {call_id!r} is not allowed.")
    if not 0 <= cseq < 2**31 or not 0 <= max_forwards <= 255:
        raise LocalProtocolError(f"CSeq {cseq} or Max-Forwards {max_forwards} is out of range.")
    if not (_HOST.fullmatch(via_sent_by) and TOKEN.fullmatch(via_transport)):
        raise LocalProtocolError(f"Via {via_transport!r} {via_sent_by!r} is not allowed.")
    fields = [
        ("Via", f"SIP/2.0/{via_transport.upper()} {via_sent_by};branch={branch}"),
        ("Max-Forwards", str(max_forwards)),
        ("From", f"<{from_uri}>;tag={from_tag}"),
        ("To", f"<{to_uri}>" + ("" if to_tag is None else f";tag={to_tag}")),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} MESSAGE"),
        *extra_headers,
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
    ]
    return SipRequest(method="MESSAGE", uri=request_uri, headers=SipHeaders(fields), body=body)


def build_response(
    request_headers: SipHeaders,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """Build a response to a request from its header fields (RFC 3261 §8.2.6).

    Copies every Via (in order), From, To, Call-ID and CSeq. A ``tag`` is added to To
    unless the request's To has one or the status is 100 (RFC 3261 §8.2.6.2).

    Args:
        request_headers: The request's fields (``SipRequest.headers``, or
            ``SipProtocolError.headers`` when answering a malformed request).
        status: Status code, 100..699.
        reason: Reason phrase; defaults to :data:`REASON_PHRASES`.
        to_tag: Our To tag (see :func:`make_tag`); required unless not added.
        extra_headers: More fields (e.g. Allow for 405, Accept for 415).
        body: Response body.
        content_type: Content-Type of ``body``.

    Raises:
        LocalProtocolError: A mandatory field is missing from ``request_headers``, no
            reason phrase is known, or a needed To tag is missing.
    """
    if reason is None:
        if status not in REASON_PHRASES:
            raise LocalProtocolError(f"No default reason phrase for status {status}.")
        reason = REASON_PHRASES[status]
    vias = request_headers.get_all("Via")
    fields: list[tuple[str, str]] = [("Via", via) for via in vias]
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request_headers.get(name)
        if not vias or value is None:
            raise LocalProtocolError(f"Cannot answer: the request has no {name} or Via.")
        if name == "To" and status != 100 and not has_tag(value):
            if to_tag is None or not TOKEN.fullmatch(to_tag):
                raise LocalProtocolError(f"Status {status} needs a To tag, not {to_tag!r}.")
            value = f"{value};tag={to_tag}"
        fields.append((name, value))
    fields += extra_headers
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    fields.append(("Content-Length", str(len(body))))
    return SipResponse(status=status, reason=reason, headers=SipHeaders(fields), body=body)
