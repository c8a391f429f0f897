"""Sans-IO SIP for MCData SDS: stream framing, MESSAGE/response builders, multipart bodies.

Only what standalone MCData SDS over the signalling plane needs (RFC 3261 framing on
TCP/TLS, RFC 3428 MESSAGE, RFC 5626 CRLF keep-alives, RFC 2046 multipart/mixed). No
I/O, no asyncio, no clock, no entropy: random values are arguments or come from a
caller-supplied ``randbits`` callable. Peer errors are :class:`SipProtocolError`
(a :class:`~protocols.errors.RemoteProtocolError` carrying the SIP status to answer).
"""

from protocols.sip._connection import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEAD,
    NEED_DATA,
    SipConnection,
    SipEvent,
    SipRole,
    SipSentinel,
    SipState,
)
from protocols.sip._headers import (
    COMPACT_FORMS,
    SipHeaders,
    SipProtocolError,
    canonical_name,
    parse_media_type,
    split_commas,
)
from protocols.sip._messages import (
    BRANCH_COOKIE,
    REASON_PHRASES,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    RandomBits,
    RequestReceived,
    ResponseReceived,
    SipRequest,
    SipResponse,
    build_message_request,
    build_response,
    encode_message,
    has_tag,
    make_branch,
    make_call_id,
    make_tag,
)
from protocols.sip._multipart import (
    DEFAULT_PART_TYPE,
    BodyPart,
    encode_multipart,
    find_part,
    make_boundary,
    parse_multipart,
)

#: RFC 5626 §4.4.1 keep-alive ping (client to server).
KEEPALIVE_PING = b"\r\n\r\n"
#: RFC 5626 §4.4.1 keep-alive pong (server to client).
KEEPALIVE_PONG = b"\r\n"

__all__ = [
    "BRANCH_COOKIE",
    "COMPACT_FORMS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEAD",
    "DEFAULT_PART_TYPE",
    "KEEPALIVE_PING",
    "KEEPALIVE_PONG",
    "NEED_DATA",
    "REASON_PHRASES",
    "BodyPart",
    "ConnectionClosed",
    "PingReceived",
    "PongReceived",
    "RandomBits",
    "RequestReceived",
    "ResponseReceived",
    "SipConnection",
    "SipEvent",
    "SipHeaders",
    "SipProtocolError",
    "SipRequest",
    "SipResponse",
    "SipRole",
    "SipSentinel",
    "SipState",
    "build_message_request",
    "build_response",
    "canonical_name",
    "encode_message",
    "encode_multipart",
    "find_part",
    "has_tag",
    "make_boundary",
    "make_branch",
    "make_call_id",
    "make_tag",
    "parse_media_type",
    "parse_multipart",
    "split_commas",
]
