from __future__ import annotations

import random

import pytest

from protocols.errors import LocalProtocolError
from protocols.sip import (
    BRANCH_COOKIE,
    NEED_DATA,
    SipConnection,
    SipHeaders,
    SipProtocolError,
    SipRequest,
    SipResponse,
    build_message_request,
    build_response,
    canonical_name,
    encode_message,
    has_tag,
    make_branch,
    make_call_id,
    make_tag,
    parse_media_type,
    split_commas,
)


def parse_one(wire: bytes) -> object:
    conn = SipConnection()
    conn.receive_data(wire)
    return conn.next_event()


def message(**overrides: object) -> SipRequest:
    randbits = random.Random(7).getrandbits
    kwargs: dict[str, object] = {
        "request_uri": "sip:bob@mcx.example.de",
        "from_uri": "sip:alice@mcx.example.eu",
        "from_tag": make_tag(randbits),
        "to_uri": "sip:bob@mcx.example.de",
        "call_id": make_call_id(randbits, "gw.example.eu"),
        "cseq": 1,
        "via_sent_by": "gw.example.eu:5061",
        "branch": make_branch(randbits),
        "body": b"hello",
        "content_type": "text/plain;charset=UTF-8",
        "via_transport": "tls",
    }
    kwargs.update(overrides)
    return build_message_request(**kwargs)  # type: ignore[arg-type]


def test_random_helpers_use_the_given_source() -> None:
    assert make_branch(lambda bits: 0xAB) == "z9hG4bK00000000000000ab"
    assert make_tag(lambda bits: bits) == "0000000000000040"
    assert make_call_id(lambda bits: 1, "h") == "00000000000000000000000000000001@h"
    assert make_branch(random.Random(1).getrandbits) == make_branch(random.Random(1).getrandbits)


def test_message_request_layout_and_roundtrip() -> None:
    request = message(extra_headers=[("Accept-Contact", "*;+g.3gpp.mcdata.sds")])
    wire = encode_message(request)
    lines = wire.split(b"\r\n")
    assert lines[0] == b"MESSAGE sip:bob@mcx.example.de SIP/2.0"
    assert lines[1].startswith(
        b"Via: SIP/2.0/TLS gw.example.eu:5061;branch=" + BRANCH_COOKIE.encode()
    )
    assert [line.split(b":")[0] for line in lines[2:10]] == [
        b"Max-Forwards",
        b"From",
        b"To",
        b"Call-ID",
        b"CSeq",
        b"Accept-Contact",
        b"Content-Type",
        b"Content-Length",
    ]
    assert b"CSeq: 1 MESSAGE" in lines and b"To: <sip:bob@mcx.example.de>" in lines
    assert wire.endswith(b"Content-Length: 5\r\n\r\nhello")
    assert parse_one(wire) == request
    in_dialog = message(to_tag="b1")
    assert in_dialog.headers.get("To") == "<sip:bob@mcx.example.de>;tag=b1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"request_uri": "bob"},
        {"from_uri": "sip:a>b@x"},
        {"branch": "abc"},
        {"branch": "z9hG4bK x"},
        {"from_tag": "a b"},
        {"to_tag": "a;b"},
        {"call_id": "a b"},
        {"cseq": 2**31},
        {"max_forwards": 256},
        {"via_sent_by": "host name"},
        {"via_transport": "T CP"},
        {"extra_headers": [("Bad Name", "x")]},
    ],
)
def test_message_request_refuses_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        message(**overrides)


def test_responses_copy_the_request_fields() -> None:
    request = message()
    request = SipRequest(
        method=request.method,
        uri=request.uri,
        headers=request.headers.with_field("Via", "SIP/2.0/TLS p1;branch=z9hG4bKp1"),
        body=request.body,
    )
    ok = build_response(request.headers, 200, to_tag="t9")
    assert ok.reason == "OK"
    assert ok.headers.get_all("Via") == request.headers.get_all("Via")
    for name in ("From", "Call-ID", "CSeq"):
        assert ok.headers.get(name) == request.headers.get(name)
    assert ok.headers.get("To") == "<sip:bob@mcx.example.de>;tag=t9"
    assert parse_one(encode_message(ok)) == ok
    accepted = build_response(request.headers, 202, to_tag="t9")
    assert encode_message(accepted).startswith(b"SIP/2.0 202 Accepted\r\n")
    trying = build_response(request.headers, 100)
    assert trying.headers.get("To") == "<sip:bob@mcx.example.de>"
    tagged = build_response(ok.headers, 486)
    assert tagged.headers.get("To") == ok.headers.get("To") and tagged.reason == "Busy Here"
    unsupported = build_response(
        request.headers,
        415,
        to_tag="t9",
        extra_headers=[("Accept", "multipart/mixed")],
        body=b"{}",
        content_type="application/json",
    )
    assert unsupported.headers.get("Accept") == "multipart/mixed"
    assert unsupported.reason == "Unsupported Media Type"
    assert parse_one(encode_message(unsupported)) == unsupported
    custom = build_response(request.headers, 499, "Custom Reason", to_tag="t")
    assert custom.reason == "Custom Reason"


def test_response_builder_refusals() -> None:
    headers = message().headers
    with pytest.raises(LocalProtocolError, match="No default reason"):
        build_response(headers, 499, to_tag="t")
    with pytest.raises(LocalProtocolError, match="needs a To tag"):
        build_response(headers, 200)
    with pytest.raises(LocalProtocolError, match="needs a To tag"):
        build_response(headers, 200, to_tag="a b")
    with pytest.raises(LocalProtocolError, match="has no Call-ID"):
        build_response(headers.without("call-id"), 200, to_tag="t")
    with pytest.raises(LocalProtocolError, match="or Via"):
        build_response(headers.without("v"), 200, to_tag="t")


def test_has_tag() -> None:
    assert has_tag("<sip:a@b>;tag=1")
    assert has_tag("sip:a@b ; TAG = 1")
    assert not has_tag("<sip:a@b;tag=1>")  # a URI parameter, not a header parameter
    assert not has_tag('"tag=x" <sip:a@b>')


def test_encode_checks_content_length_and_type() -> None:
    headers = SipHeaders([("Content-Length", "3")])
    with pytest.raises(LocalProtocolError, match="does not match"):
        encode_message(SipResponse(status=200, reason="OK", headers=headers, body=b"ab"))
    twice = SipHeaders([("l", "0"), ("Content-Length", "0")])
    with pytest.raises(LocalProtocolError, match="does not match"):
        encode_message(SipResponse(status=200, reason="OK", headers=twice))
    with pytest.raises(LocalProtocolError, match="needs a Content-Type"):
        encode_message(SipResponse(status=200, reason="OK", headers=SipHeaders(), body=b"x"))
    appended = encode_message(SipResponse(status=200, reason="OK", headers=SipHeaders()))
    assert appended == b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "build",
    [
        lambda: SipRequest(method="BAD METHOD", uri="sip:a@b", headers=SipHeaders()),
        lambda: SipRequest(method="MESSAGE", uri="no-scheme", headers=SipHeaders()),
        lambda: SipResponse(status=99, reason="x", headers=SipHeaders()),
        lambda: SipResponse(status=700, reason="x", headers=SipHeaders()),
        lambda: SipResponse(status=200, reason="a\r\nb", headers=SipHeaders()),
        lambda: SipResponse(status=200, reason=" OK", headers=SipHeaders()),
        lambda: SipHeaders([("X", "a\nb")]),
        lambda: SipHeaders([("X", " a")]),
        lambda: SipHeaders([("", "a")]),
    ],
)
def test_invalid_messages_are_local_errors(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_headers_names_and_lookups() -> None:
    headers = SipHeaders(
        [
            ("v", "SIP/2.0/TCP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2"),
            ("VIA", "SIP/2.0/TCP c;branch=z9hG4bK3"),
            ("call-id", "x"),
            ("cseq", "1 MESSAGE"),
            ("X-Custom", "1"),
            ("Contact", '"Doe, John" <sip:j@x;a=1,2>, <sip:k@y>'),
        ]
    )
    assert [name for name, _ in headers] == ["Via", "Via", "Call-ID", "CSeq", "X-Custom", "Contact"]
    assert len(headers) == 6 and "via" in headers and "Max-Forwards" not in headers
    assert 5 not in headers
    assert len(headers.get_list("Via")) == 3
    assert headers.get_list("m") == ('"Doe, John" <sip:j@x;a=1,2>', "<sip:k@y>")
    assert headers.get("x-custom") == "1" and headers.get("nope") is None
    assert headers.without("VIA").get_all("v") == ()
    assert canonical_name("L") == "Content-Length" and canonical_name("x-y") == "x-y"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"


def test_split_commas_escapes_and_empties() -> None:
    assert split_commas(r'"a\",b", c,,') == [r'"a\",b"', "c"]
    assert split_commas("") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/plain", ("text/plain", {})),
        (
            'Multipart/Mixed ; Boundary="a \\"b\\" c";x=y',
            ("multipart/mixed", {"boundary": 'a "b" c', "x": "y"}),
        ),
        (" application/vnd.3gpp.mcdata-info+xml ", ("application/vnd.3gpp.mcdata-info+xml", {})),
    ],
)
def test_media_types(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_media_type(value) == expected


@pytest.mark.parametrize("value", ["text", "text/plain;", "text/plain; a", 'a/b; c="d', "/x"])
def test_bad_media_types(value: str) -> None:
    with pytest.raises(SipProtocolError) as info:
        parse_media_type(value)
    assert info.value.status == 400


def test_folded_header_values_are_unfolded() -> None:
    wire = (
        b"OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c@h\r\nCSeq: 1 OPTIONS\r\n"
        b"Subject:\r\n  first part  \r\n\tsecond part\r\nEmpty:\r\nContent-Length: 0\r\n\r\n"
    )
    request = parse_one(wire)
    assert isinstance(request, SipRequest)
    assert request.headers.get("Subject") == "first part second part"
    assert request.headers.get("Empty") == ""
    conn = SipConnection()
    assert conn.next_event() is NEED_DATA
