from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError
from protocols.sip import (
    DEFAULT_PART_TYPE,
    BodyPart,
    SipHeaders,
    SipProtocolError,
    encode_multipart,
    make_boundary,
    parse_multipart,
)

CT = "multipart/mixed;boundary=b1"

part_types = st.sampled_from(
    [
        "application/vnd.3gpp.mcdata-info+xml",
        "application/vnd.3gpp.mcdata-signalling",
        "application/vnd.3gpp.mcdata-payload",
        "text/plain;charset=UTF-8",
    ]
)
parts = st.builds(
    lambda content_type, body, cid: BodyPart(
        content_type=content_type,
        body=body,
        headers=SipHeaders([("Content-ID", cid)] if cid else []),
    ),
    part_types,
    st.binary(max_size=80),
    st.none() | st.from_regex(r"<[a-z0-9]{1,8}@x>", fullmatch=True),
)


@given(st.lists(parts, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_multipart_roundtrip(items: list[BodyPart], rnd: random.Random) -> None:
    boundary = make_boundary(rnd.getrandbits)
    content_type, body = encode_multipart(items, boundary)
    assert content_type == f"multipart/mixed;boundary={boundary}"
    assert parse_multipart(content_type, body) == tuple(items)


@given(st.binary(max_size=200))
def test_arbitrary_bodies_never_crash(body: bytes) -> None:
    for data in (body, b"--b1\r\n" + body, b"--b1\r\n" + body + b"\r\n--b1--"):
        try:
            result = parse_multipart(CT, data)
        except SipProtocolError as exc:
            assert exc.status == 400
        else:
            assert all(isinstance(p, BodyPart) for p in result)


@given(st.lists(parts, min_size=1, max_size=3))
def test_every_truncation_before_the_close_delimiter_fails(items: list[BodyPart]) -> None:
    _, body = encode_multipart(items, "b1")
    close = body.rindex(b"\r\n--b1--")
    for end in range(close + 1):
        with pytest.raises(SipProtocolError):
            parse_multipart(CT, body[:end])


def test_preamble_padding_epilogue_and_quoted_boundary() -> None:
    body = (
        b"preamble\r\n--a b\r\n"
        b"Content-Type: application/vnd.3gpp.mcdata-signalling\r\n\r\n\x01\x00\r\n--a b-\r\n"
        b"\r\n--a b \t \r\n"
        b"\r\nno headers at all\r\n--a b\r\n"
        b"\r\n--a b\r\n"
        b"Content-ID: <x@y>\r\n"
        b"\r\n--a b--epilogue\r\n--a b\r\nignored"
    )
    result = parse_multipart('multipart/mixed; boundary="a b"', body)
    assert [p.body for p in result] == [b"\x01\x00\r\n--a b-\r\n", b"no headers at all", b"", b""]
    assert [p.media_type for p in result] == [
        "application/vnd.3gpp.mcdata-signalling",
        DEFAULT_PART_TYPE,
        DEFAULT_PART_TYPE,
        DEFAULT_PART_TYPE,
    ]
    assert result[3].headers.get("content-id") == "<x@y>"
    with pytest.raises(LocalProtocolError, match="occurs inside a part"):
        encode_multipart(result, "a b")  # the first part holds a line starting "--a b"
    content_type, encoded = encode_multipart(result, "a c")
    assert content_type == 'multipart/mixed;boundary="a c"'
    assert parse_multipart(content_type, encoded) == result


def test_a_line_that_only_starts_with_the_delimiter_is_content() -> None:
    body = b"--b1x\r\n--b1\r\nContent-Type: text/plain\r\n\r\n--b1y\r\n--b1--"
    (part,) = parse_multipart(CT, body)
    assert part.body == b"--b1y"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "match"),
    [
        ("application/sdp", b"", 415, "not multipart"),
        ("multipart/mixed", b"", 400, "boundary None"),
        ("multipart/mixed;boundary=" + "x" * 71, b"", 400, "invalid boundary"),
        ('multipart/mixed;boundary="ends "', b"", 400, "invalid boundary"),
        (CT, b"no delimiter at all", 400, "no close delimiter"),
        (CT, b"--b1--\r\n", 400, "no part"),
        (CT, b"--b1junk\r\n--b1--", 400, "no part"),
        (CT, b"--b1\r\n\r\n--b1x", 400, "no close delimiter"),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\nopen", 400, "no close delimiter"),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n--b1--", 400, "not terminated"),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\n--b1--", None, None),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\n\r\n--b1-- ", None, None),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\n\r\n--b1 x", 400, None),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\n\r\n--b1\r\nx", 400, None),
        (CT, b"--b1\r\nContent-Type: text/plain\r\n\r\n\r\n--b1--", None, None),
        (CT, b"--b1\r\nContent-Type: a/b\r\n\r\n\r\n--b1--", None, None),
        (CT, b"--b1\r\nContent-Type: text\r\n\r\n\r\n--b1--", 400, "Malformed Content-Type"),
        (CT, b"--b1\r\nc: a/b\r\nC: a/b\r\n\r\n\r\n--b1--", 400, "2 Content-Types"),
        (CT, b"--b1\r\nX: \xff\r\n\r\n\r\n--b1--", 400, "not UTF-8"),
        (CT, b"--b1\r\nX: a\nY: b\r\n\r\n\r\n--b1--", 400, "bare CR or LF"),
        (CT, b"--b1\r\nX: a\r\nno colon\r\n\r\n\r\n--b1--", 400, "malformed header"),
        (CT, b"--b1\r\nX: a\r\nY: b\r\n\r\n--b1--", None, None),
    ],
)
def test_malformed_multipart(
    content_type: str, body: bytes, status: int | None, match: str | None
) -> None:
    if status is None:
        (part,) = parse_multipart(content_type, body)
        assert part.body == b""
        return
    with pytest.raises(SipProtocolError) as info:
        parse_multipart(content_type, body)
    assert info.value.status == status
    if match:
        assert match in str(info.value)


def test_encoder_refusals() -> None:
    part = BodyPart(content_type="text/plain", body=b"x")
    with pytest.raises(LocalProtocolError, match="at least one part"):
        encode_multipart([], "b1")
    with pytest.raises(LocalProtocolError, match="Invalid multipart boundary"):
        encode_multipart([part], "bad boundary ")
    with pytest.raises(LocalProtocolError, match="Invalid multipart boundary"):
        encode_multipart([part], "b1", subtype="mi xed")
    inner = BodyPart(content_type="text/plain", body=b"abc--b1def")
    with pytest.raises(LocalProtocolError, match="occurs inside a part"):
        encode_multipart([inner], "b1")
    with pytest.raises(LocalProtocolError, match="as content_type"):
        BodyPart(content_type="a/b", body=b"", headers=SipHeaders([("c", "a/b")]))
    with pytest.raises(LocalProtocolError):
        BodyPart(content_type="a/b\r\nX: y", body=b"")
    assert encode_multipart([part], "b1", "related")[0] == "multipart/related;boundary=b1"
