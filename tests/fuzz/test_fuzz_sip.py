"""Fuzz the SIP stream parser and the multipart body parser.

Seed: an MCData SDS MESSAGE (multipart: mcdatainfo, signalling, payload) as sent on a
stream, with keep-alives and a response. :class:`SipConnection` yields events or raises
:class:`SipProtocolError` (then stays CLOSED); whole and chunked input agree.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError
from protocols.mcdata import MIME_MCDATA_INFO, MIME_MCDATA_PAYLOAD, MIME_MCDATA_SIGNALLING
from protocols.sip import (
    KEEPALIVE_PING,
    NEED_DATA,
    BodyPart,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    SipConnection,
    SipHeaders,
    SipProtocolError,
    SipRequest,
    SipResponse,
    SipRole,
    SipState,
    build_message_request,
    build_response,
    encode_message,
    encode_multipart,
    parse_multipart,
)
from tests.fuzz._fuzz import Tally, chunked, fuzz_settings, mutated
from tests.fuzz.test_fuzz_mcdata import PAYLOADS, SIGNALLING, XML

_PARTS = (
    BodyPart(content_type=MIME_MCDATA_INFO, body=XML[0]),
    BodyPart(content_type=MIME_MCDATA_SIGNALLING, body=SIGNALLING[1]),
    BodyPart(
        content_type=MIME_MCDATA_PAYLOAD,
        body=PAYLOADS[1],
        headers=SipHeaders([("Content-Disposition", "render")]),
    ),
)
CONTENT_TYPE, BODY = encode_multipart(_PARTS, "euccs-0123456789abcdef")
_REQUEST = build_message_request(
    request_uri="sip:bob@iwf.mcx.example",
    from_uri="sip:alice@mcx.be",
    from_tag="a1b2",
    to_uri="sip:bob@iwf.mcx.example",
    call_id="c0ffee@mcx.be",
    cseq=1,
    via_sent_by="127.0.0.1:5060",
    branch="z9hG4bK776asdhds",
    body=BODY,
    content_type=CONTENT_TYPE,
    extra_headers=[("Accept-Contact", '*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims"')],
)
MESSAGE = encode_message(_REQUEST)
RESPONSE = encode_message(build_response(_REQUEST.headers, 202, to_tag="ff00"))
STREAMS = [
    MESSAGE,
    MESSAGE + MESSAGE,
    KEEPALIVE_PING + MESSAGE + b"\r\n" + RESPONSE,
    RESPONSE,
]
SIP_TOKENS = (
    b"\r\n",
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b'"',
    b"\r\n ",
    b"Content-Length: 99999999999\r\n",
    b"Content-Length: 0\r\n",
    b"l: 3\r\n",
    b"c: text/plain\r\n",
    b"SIP/2.0",
    b"SIP/3.0",
    b"\xc3\x28",
    b"\x00",
)
MULTIPART_TOKENS = (b"\r\n", b"--", b"--euccs-0123456789abcdef", b"\r\n\r\n", b" \t", b"\xff")


def _events(chunks: list[bytes], role: SipRole, max_body: int, max_head: int) -> list[object]:
    """Feed ``chunks`` then EOF; return the events and, last, the error that closed it."""
    connection = SipConnection(role=role, max_body=max_body, max_head=max_head)
    events: list[object] = []
    for chunk in [*chunks, b""]:
        connection.receive_data(chunk)
        try:
            while (event := connection.next_event()) is not NEED_DATA:
                events.append(event)
                if isinstance(event, ConnectionClosed):
                    assert connection.state is SipState.CLOSED
                    return events
        except SipProtocolError as exc:
            _check_closed(connection, exc, chunk)
            events.append(("error", exc.status))
            return events
    raise AssertionError("the stream ended without ConnectionClosed or an error")


def _check_closed(connection: SipConnection, exc: SipProtocolError, chunk: bytes) -> None:
    assert str(exc).strip() and exc.reason
    assert exc.status in (400, 413, 505, 513), exc.status
    assert exc.reason_code == exc.status
    assert connection.state is SipState.CLOSED
    assert connection.error is exc
    with pytest.raises(LocalProtocolError):
        connection.next_event()
    if chunk:
        connection.receive_data(b"ignored")  # discarded after an error, not refused
    assert connection.state is SipState.CLOSED


def test_sip_connection() -> None:
    counts = {"decoded": 0, "refused": 0, "multipart": 0}

    @fuzz_settings
    @given(
        st.data(),
        mutated(STREAMS, SIP_TOKENS, max_size=8192),
        st.sampled_from(SipRole),
        st.sampled_from([(64 * 1024, 16 * 1024), (512, 256)]),
    )
    def run(data: st.DataObject, stream: bytes, role: SipRole, limits: tuple[int, int]) -> None:
        whole = _events([stream] if stream else [], role, *limits)
        pieces = _events(data.draw(chunked(stream)), role, *limits)
        assert pieces == whole, "events differ between whole and chunked input"
        for event in whole:
            if isinstance(event, tuple):
                counts["refused"] += 1
                continue
            assert isinstance(
                event, SipRequest | SipResponse | PingReceived | PongReceived | ConnectionClosed
            )
            if isinstance(event, SipRequest | SipResponse):
                counts["decoded"] += 1
                content_type = event.headers.get("Content-Type")
                if content_type and content_type.lower().startswith("multipart/"):
                    try:
                        parse_multipart(content_type, event.body)
                    except SipProtocolError as exc:
                        assert str(exc).strip()
                    else:
                        counts["multipart"] += 1

    run()
    assert all(counts.values()), counts


def test_parse_multipart() -> None:
    tally = Tally()
    content_types = [
        CONTENT_TYPE,
        'multipart/mixed; boundary="euccs-0123456789abcdef"',
        "Multipart/Mixed;boundary=euccs-0123456789abcdef;charset=utf-8",
    ]

    @fuzz_settings
    @given(
        mutated(
            [c.encode() for c in content_types], (b";", b'"', b"=", b"\\", b" "), max_size=120
        ).map(lambda raw: raw.decode("latin-1")),
        mutated([BODY], MULTIPART_TOKENS, max_size=4096),
    )
    def run(content_type: str, body: bytes) -> None:
        try:
            parts = parse_multipart(content_type, body)
        except SipProtocolError as exc:
            assert exc.status in (400, 415), exc.status
            tally.refused(exc)
        else:
            assert parts and all(isinstance(part, BodyPart) for part in parts)
            tally("decoded")

    run()
    tally.expect("decoded", "refused")
