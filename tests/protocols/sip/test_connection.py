from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocols.sip as sip
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.mcdata import (
    MIME_MCDATA_INFO,
    MIME_MCDATA_PAYLOAD,
    MIME_MCDATA_SIGNALLING,
    ContentType,
    DataPayload,
    DispositionRequest,
    McdataId,
    McdataInfo,
    Payload,
    RequestType,
    SdsMessage,
    SdsSignalling,
    decode_mcdata_info,
    decode_sds_message,
    encode_mcdata_info,
    encode_sds_message,
)
from protocols.sip import (
    NEED_DATA,
    ConnectionClosed,
    PingReceived,
    PongReceived,
    RequestReceived,
    ResponseReceived,
    SipConnection,
    SipHeaders,
    SipProtocolError,
    SipRequest,
    SipResponse,
    SipRole,
    SipState,
    encode_message,
    find_part,
    parse_multipart,
)

Event = object


def feed(conn: SipConnection, data: bytes, chunks: list[bytes] | None = None) -> list[Event]:
    out: list[Event] = []
    for chunk in [*(chunks if chunks is not None else [data]), b""]:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            out.append(event)
            if isinstance(event, ConnectionClosed):
                return out
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def both(data: bytes, **kwargs: object) -> list[Event]:
    whole = feed(SipConnection(**kwargs), data)  # type: ignore[arg-type]
    assert feed(SipConnection(**kwargs), data, bytewise(data)) == whole  # type: ignore[arg-type]
    return whole


def error_of(data: bytes, chunks: list[bytes] | None = None, **kwargs: object) -> SipProtocolError:
    conn = SipConnection(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(SipProtocolError) as info:
        feed(conn, data, chunks)
    assert conn.state is SipState.CLOSED and conn.error is info.value
    return info.value


def both_error(data: bytes, **kwargs: object) -> SipProtocolError:
    whole = error_of(data, None, **kwargs)
    single = error_of(data, bytewise(data), **kwargs)
    assert (single.status, str(single)) == (whole.status, str(whole))
    return whole


SIGNALLING = SdsSignalling(
    date_time=3_958_000_000,
    conversation_id=uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
    message_id=uuid.UUID("11111111-2222-3333-4444-555555555555"),
    disposition_request=DispositionRequest.DELIVERY,
    sender=McdataId("sip:alice@mcx.example.eu"),
)
DATA = DataPayload(payloads=(Payload.from_text("Lage: Brücke gesperrt, Umleitung über B28"),))
INFO = McdataInfo(
    request_type=RequestType.ONE_TO_ONE_SDS,
    calling_user=McdataId("sip:alice@mcx.example.eu"),
    called_user=McdataId("sip:bob@mcx.example.de"),
)


def realistic_message() -> bytes:
    """A SIP MESSAGE as an MCData server sends it over TLS: compact and folded headers,
    two Via lines (one with two values), a 3-part multipart/mixed body with a preamble."""
    signalling, data = encode_sds_message(SdsMessage(signalling=SIGNALLING, data=DATA))
    assert data is not None
    body = (
        b"This is a multi-part message in MIME format.\r\n"
        b"--boundary1\r\n"
        b"Content-Type: application/vnd.3gpp.mcdata-info+xml\r\n\r\n"
        + encode_mcdata_info(INFO)
        + b"\r\n--boundary1\r\n"
        b"Content-Type: application/vnd.3gpp.mcdata-signalling\r\n\r\n"
        + signalling
        + b"\r\n--boundary1 \t\r\n"
        b"Content-Type: application/vnd.3gpp.mcdata-payload\r\n"
        b"Content-Disposition: render;handling=optional\r\n\r\n"
        + data
        + b"\r\n--boundary1--\r\nepilogue"
    )
    head = (
        "MESSAGE sip:bob@mcx.example.de SIP/2.0\r\n"
        "v: SIP/2.0/TLS p1.mcx.example.de:5061;branch=z9hG4bK-p1-77,\r\n"
        " SIP/2.0/TLS p2.mcx.example.eu:5061;branch=z9hG4bK-p2-1\r\n"
        "VIA : SIP/2.0/TLS ue.mcx.example.eu:5061;branch=z9hG4bKue9;rport\r\n"
        "Max-Forwards: 68\r\n"
        'f: "Alice Müller" <sip:alice@mcx.example.eu>;tag=a73kszlfl\r\n'
        "t: <sip:bob@mcx.example.de>\r\n"
        "i: 1j9FpLxk3uxtm8tn@ue.mcx.example.eu\r\n"
        "CSeq: 17 MESSAGE\r\n"
        'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mcdata.sds"\r\n'
        "c: multipart/mixed;\r\n"
        '\tboundary="boundary1"\r\n'
        f"l: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("utf-8") + body


def test_all_is_complete() -> None:
    public = {n for n in dir(sip) if not n.startswith("_") and n != "annotations"}
    assert public <= set(sip.__all__)
    assert all(hasattr(sip, n) for n in sip.__all__)


def test_realistic_mcdata_message() -> None:
    wire = realistic_message()
    events = both(wire + wire)
    assert events[2:] == [ConnectionClosed()]
    request = events[0]
    assert isinstance(request, RequestReceived) and events[1] == request
    assert request.method == "MESSAGE" and request.uri == "sip:bob@mcx.example.de"
    headers = request.headers
    assert len(headers.get_all("via")) == 2
    assert [v.split(";")[0] for v in headers.get_list("Via")] == [
        "SIP/2.0/TLS p1.mcx.example.de:5061",
        "SIP/2.0/TLS p2.mcx.example.eu:5061",
        "SIP/2.0/TLS ue.mcx.example.eu:5061",
    ]
    assert headers.get("From") == '"Alice Müller" <sip:alice@mcx.example.eu>;tag=a73kszlfl'
    assert headers.get("CALL-ID") == "1j9FpLxk3uxtm8tn@ue.mcx.example.eu"
    content_type = headers.get("Content-Type")
    assert content_type == 'multipart/mixed; boundary="boundary1"'
    parts = parse_multipart(content_type, request.body)
    assert [p.media_type for p in parts] == [
        MIME_MCDATA_INFO,
        MIME_MCDATA_SIGNALLING,
        MIME_MCDATA_PAYLOAD,
    ]
    assert parts[2].headers.get("Content-Disposition") == "render;handling=optional"
    info_part = find_part(parts, MIME_MCDATA_INFO)
    signalling = find_part(parts, MIME_MCDATA_SIGNALLING)
    payload = find_part(parts, MIME_MCDATA_PAYLOAD)
    assert info_part and signalling and payload
    assert decode_mcdata_info(info_part.body) == INFO
    message = decode_sds_message(signalling.body, payload.body)
    assert isinstance(message, SdsMessage)
    assert message.signalling == SIGNALLING
    assert message.data.payloads[0].content_type is ContentType.TEXT
    assert message.data.payloads[0].text == "Lage: Brücke gesperrt, Umleitung über B28"
    assert find_part(parts, "text/plain") is None


def test_response_and_empty_reason() -> None:
    wire = (
        b"SIP/2.0 202 Accepted \r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x@h\r\nCSeq: 4 MESSAGE\r\nContent-Length: 0\r\n\r\n"
        b"sip/2.0 200 \r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x@h\r\nCSeq: 4 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    first, second, closed = both(wire)
    assert isinstance(first, ResponseReceived)
    assert (first.status, first.reason, first.body) == (202, "Accepted", b"")
    assert isinstance(second, SipResponse) and (second.status, second.reason) == (200, "")
    assert closed == ConnectionClosed()


def test_keepalives_server_role() -> None:
    request = realistic_message()
    events = both(b"\r\n\r\n" + b"\r\n" + request + b"\r\n\r\n\r\n")
    assert [type(e) for e in events] == [PingReceived, SipRequest, PingReceived, ConnectionClosed]
    assert both(b"\r\n") == [ConnectionClosed()]
    assert both(b"") == [ConnectionClosed()]
    assert both_error(b"\r\n\r").status == 400
    assert both_error(b"\r").status == 400
    assert "Bare CR" in str(both_error(b"\r\n\rX"))


def test_keepalives_client_role() -> None:
    role = SipRole.CLIENT
    events = both(b"\r\n\r\n\r\n", role=role)
    assert events == [PongReceived()] * 3 + [ConnectionClosed()]
    assert both_error(b"\r", role=role).status == 400
    assert "Bare CR" in str(both_error(b"\rX", role=role))
    conn = SipConnection(role=role)
    conn.receive_data(b"\r\n")
    assert conn.next_event() == PongReceived()  # a pong is reported at once
    assert conn.next_event() is NEED_DATA and conn.state is SipState.OPEN


def request_bytes(*lines: str, body: bytes = b"", start: str = "MESSAGE sip:b@x SIP/2.0") -> bytes:
    head = [
        start,
        "Via: SIP/2.0/TCP h;branch=z9hG4bK1",
        "Max-Forwards: 70",
        "From: <sip:a@x>;tag=1",
        "To: <sip:b@x>",
        "Call-ID: c@h",
        "CSeq: 1 MESSAGE",
        *lines,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body


OK_LINES = ("Content-Length: 0",)


@pytest.mark.parametrize(
    ("wire", "status", "match"),
    [
        (request_bytes(), 400, "Missing Content-Length"),
        (request_bytes("l: 0", "Content-Length: 0"), 400, "Repeated Content-Length"),
        (request_bytes("l: -1"), 400, "Malformed Content-Length"),
        (request_bytes("l: 12345678901"), 400, "Malformed Content-Length"),
        (request_bytes("l: ٣"), 400, "Malformed Content-Length"),
        (request_bytes("l: 70000"), 413, "exceeds 65536"),
        (request_bytes("l: 3", body=b"abc"), 400, "without Content-Type"),
        (request_bytes("l: 0", "c: text"), 400, None),
        (request_bytes("l: 0", "c: a/b", "Content-Type: a/b"), 400, "Repeated Content-Type"),
        (request_bytes(*OK_LINES, start="MESSAGE sip:b@x SIP/3.0"), 505, "not supported"),
        (request_bytes(*OK_LINES, start="MESSAGE sip:b@x HTTP/1.1"), 400, "SIP version"),
        (request_bytes(*OK_LINES, start="MESSAGE  sip:b@x SIP/2.0"), 400, "request line"),
        (request_bytes(*OK_LINES, start="MESSAGE b@x SIP/2.0"), 400, "request line"),
        (request_bytes(*OK_LINES, start="MESS(AGE sip:b@x SIP/2.0"), 400, "request line"),
        (request_bytes(*OK_LINES, start="MESSAGE sip:b@x\x01 SIP/2.0"), 400, "control"),
        (request_bytes(*OK_LINES, start="SIP/2.0 2000 OK"), 400, "status line"),
        (request_bytes(*OK_LINES, start="SIP/2.0 099 Early"), 400, "outside 100..699"),
        (request_bytes(*OK_LINES, start="SIP/2.1 200 OK"), 505, "not supported"),
        (request_bytes(*OK_LINES, start="SIP/2.0 200"), 400, "status line"),
        (request_bytes(*OK_LINES, start="SIP/x 200 OK"), 400, "status line"),
        (request_bytes(*OK_LINES, start="INFO sip:b@x SIP/2.0"), 400, "CSeq method"),
        (request_bytes("l: 0", "Max-Forwards: 1"), 400, "Repeated Max-Forwards"),
        (request_bytes("l: 0", "To: <sip:z@x>"), 400, "Repeated To"),
        (request_bytes("l: 0", "Bad Name: x"), 400, "malformed header line"),
        (request_bytes("l: 0", "NoColon"), 400, "malformed header line"),
        (request_bytes("l: 0", "Subject: a\x00b"), 400, "invalid value"),
        (b"MESSAGE sip:b@x SIP/2.0\r\n continuation\r\nl: 0\r\n\r\n", 400, "continuation"),
        (b"MESSAGE sip:b@x SIP/2.0\r\nl: 0\r\n\r\n", 400, "Missing mandatory Via"),
        (b"MESSAGE sip:b@x SIP/2.0\xff\r\nl: 0\r\n\r\n", 400, "not UTF-8"),
        (b"MESSAGE sip:b@x SIP/2.0\nl: 0\r\n\r\n", 400, "Bare CR or LF at octet 23"),
        (b"MESSAGE sip:b@x SIP/2.0\r\nl: 0\r\r\n\r\n", 400, "Bare CR or LF"),
        (b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n", 400, "Missing mandatory Via"),
    ],
)
def test_malformed_messages(wire: bytes, status: int, match: str | None) -> None:
    error = both_error(wire)
    assert error.status == status and error.reason_code == status
    assert error.reason == sip.REASON_PHRASES[status]
    if match:
        assert match.lower() in str(error).lower()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("CSeq", "x MESSAGE"),
        ("CSeq", "2147483648 MESSAGE"),
        ("CSeq", "1 MESS(AGE"),
        ("Max-Forwards", "256"),
        ("Max-Forwards", "x"),
        ("Max-Forwards", "7" * 5000),  # beyond int()'s digit limit: refused, never raised
        ("Max-Forwards", "0" * 5000 + "256"),
    ],
)
def test_malformed_cseq_and_max_forwards(field: str, value: str) -> None:
    wire = b"\r\n".join(
        f"{field}: {value}".encode() if line.startswith(field.encode() + b":") else line
        for line in request_bytes("l: 0").split(b"\r\n")
    )
    error = both_error(wire)
    assert error.status == 400 and field in str(error)


def test_errors_carry_parsed_headers_for_the_answer() -> None:
    error = both_error(request_bytes("l: 99999999"))
    assert error.status == 413 and error.headers is not None
    answer = sip.build_response(error.headers, error.status, error.reason, to_tag="t1")
    assert answer.headers.get("To") == "<sip:b@x>;tag=t1"
    assert encode_message(answer).startswith(b"SIP/2.0 413 Request Entity Too Large\r\n")
    no_headers = both_error(b"MESSAGE sip:b@x SIP/2.0\r\nBad Name: x\r\n\r\n")
    assert no_headers.headers is None


def test_head_and_body_limits() -> None:
    wire = request_bytes("l: 10", "c: text/plain", body=b"0123456789")
    assert isinstance(both(wire, max_body=10)[0], SipRequest)
    assert both_error(wire, max_body=9).status == 413
    head_size = wire.index(b"\r\n\r\n") + 4
    assert isinstance(both(wire, max_head=head_size)[0], SipRequest)
    too_large = both_error(wire, max_head=head_size - 1)
    assert (too_large.status, too_large.reason) == (513, "Message Too Large")
    assert both_error(b"X" * 100, max_head=50).status == 513
    bare_late = b"MESSAGE sip:b@x SIP/2.0\r\n" + b"X" * 60 + b"\n"
    assert both_error(bare_late, max_head=50).status == 513


def test_eof_inside_a_message() -> None:
    wire = request_bytes("l: 5", "c: text/plain", body=b"abc")
    assert "2/5" not in str(both_error(wire)) and "3/5" in str(both_error(wire))
    assert "message head" in str(both_error(wire[:30]))


def test_state_after_error_and_after_eof() -> None:
    conn = SipConnection()
    conn.receive_data(b"GARBAGE\r\n\r\n")
    with pytest.raises(SipProtocolError):
        conn.next_event()
    assert conn.state is SipState.CLOSED
    conn.receive_data(request_bytes("l: 0"))  # discarded after an error
    with pytest.raises(LocalProtocolError, match="closed after a protocol error"):
        conn.next_event()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after end of stream"):
        conn.receive_data(b"x")
    fresh = SipConnection()
    states = [fresh.state]
    fresh.receive_data(b"")
    states.append(fresh.state)
    assert states == [SipState.OPEN, SipState.CLOSED] and fresh.error is None
    assert fresh.next_event() == ConnectionClosed() == fresh.next_event()


def test_sip_protocol_error_is_a_remote_protocol_error() -> None:
    error = SipProtocolError("x")
    assert isinstance(error, RemoteProtocolError)
    assert (error.status, error.reason, error.reply_hint, error.headers) == (
        400,
        "Bad Request",
        "Bad Request",
        None,
    )


tokens = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
values = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"]) | st.just("\t"),
    max_size=30,
).map(lambda s: s.strip(" \t"))
extra_headers = st.lists(
    st.tuples(tokens, values).filter(
        lambda f: (
            sip.canonical_name(f[0])
            not in (
                "Content-Length",
                "Content-Type",
                "CSeq",
                "Max-Forwards",
                "From",
                "To",
                "Call-ID",
            )
        )
    ),
    max_size=5,
)


@st.composite
def messages(draw: st.DrawFn) -> SipRequest | SipResponse:
    body = draw(st.binary(max_size=60))
    method = draw(tokens)
    fields = [
        ("Via", f"SIP/2.0/TLS h{i};branch=z9hG4bK{i}") for i in range(draw(st.integers(1, 3)))
    ]
    fields += [
        ("From", "<sip:a@x>;tag=1"),
        ("To", "<sip:b@x>"),
        ("Call-ID", draw(tokens)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
        *draw(extra_headers),
    ]
    if body or draw(st.booleans()):
        fields.append(("Content-Type", "application/octet-stream"))
    if draw(st.booleans()):
        return SipResponse(
            status=draw(st.integers(100, 699)),
            reason=draw(values),
            headers=SipHeaders([*fields, ("Content-Length", str(len(body)))]),
            body=body,
        )
    fields.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    return SipRequest(
        method=method,
        uri=draw(st.sampled_from(["sip:b@x", "sips:b@x;transport=tls", "tel:+4912345"])),
        headers=SipHeaders(fields),
        body=body,
    )


@given(st.lists(messages(), min_size=1, max_size=3), st.data())
def test_roundtrip_in_random_chunks(
    items: list[SipRequest | SipResponse], data: st.DataObject
) -> None:
    wire = b"".join(encode_message(m) for m in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    expected = [
        m
        if "Content-Length" in m.headers
        else type(m)(
            **{**m.__dict__, "headers": m.headers.with_field("Content-Length", str(len(m.body)))}
        )
        for m in items
    ]
    assert feed(SipConnection(), wire, [c for c in chunks if c]) == [*expected, ConnectionClosed()]


@given(messages())
def test_every_truncation_is_a_protocol_error(message: SipRequest | SipResponse) -> None:
    wire = encode_message(message)
    assert feed(SipConnection(), wire)[0] is not None
    for end in range(1, len(wire)):
        error = error_of(wire[:end])
        assert error.status == 400


@given(st.binary(max_size=300), st.sampled_from(SipRole))
def test_arbitrary_bytes_never_crash(data: bytes, role: SipRole) -> None:
    conn = SipConnection(role=role)
    try:
        events = feed(conn, data)
    except SipProtocolError as exc:
        assert 400 <= exc.status <= 599
        assert conn.state is SipState.CLOSED
    else:
        assert events[-1] == ConnectionClosed()


@given(messages(), st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_messages_never_crash(
    message: SipRequest | SipResponse, at: int, value: int
) -> None:
    wire = bytearray(encode_message(message))
    wire[at % len(wire)] = value
    try:
        events = feed(SipConnection(), bytes(wire))
    except SipProtocolError:
        return
    assert events[-1] == ConnectionClosed()
