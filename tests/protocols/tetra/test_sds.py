from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra import (
    ConcatInfo,
    OtherSds,
    SdsAck,
    SdsReport,
    SdsTimestamp,
    ShortReport,
    StatusSds,
    StorageForward,
    TextSds,
    decode_sds,
    encode_sds,
    validity_period_seconds,
)


def hexdecode(text: str, bits: int | None = None, ai: int = 12):  # type: ignore[no-untyped-def]
    data = bytes.fromhex(text)
    return decode_sds(data, len(data) * 8 if bits is None else bits, ai)


def test_status_and_short_report() -> None:
    assert hexdecode("8004", ai=13) == StatusSds(status=0x8004)
    assert hexdecode("0000", ai=13) == StatusSds(status=0)
    assert hexdecode("7ECA", ai=13) == ShortReport(report_type=2, message_reference=0xCA)
    assert hexdecode("7ACA", ai=13) == StatusSds(status=0x7ACA)  # strict: id 011110
    with pytest.raises(RemoteProtocolError, match="16 bits"):
        hexdecode("800400", ai=13)


def test_sds_types_1_to_3_and_bad_service() -> None:
    assert hexdecode("1234", ai=9) == OtherSds(protocol_id=None, payload=b"\x12\x34", bits=16)
    assert hexdecode("12345678", ai=10).bits == 32
    with pytest.raises(RemoteProtocolError, match="SDS type 3"):
        hexdecode("1234", ai=11)
    with pytest.raises(RemoteProtocolError, match="AI service 0") as info:
        hexdecode("1234", ai=0)
    assert info.value.reason_code == 0x50


def test_length_rules() -> None:
    with pytest.raises(RemoteProtocolError, match="outside"):
        decode_sds(b"\x02" * 300, 2048)
    with pytest.raises(RemoteProtocolError, match="header says"):
        decode_sds(b"\x02\x01", 24)
    with pytest.raises(RemoteProtocolError, match="protocol identifier"):
        decode_sds(b"\x02", 4)
    # bits beyond the header length are ignored
    assert decode_sds(b"\x02\x01AB", 24) == TextSds(protocol_id=2, text="A")


def test_transfer_with_storage_forward_types() -> None:
    text = hexdecode("82039C5101020301746573746D657373616765")
    assert isinstance(text, TextSds)
    assert text.storage_forward == StorageForward(
        validity_period=10, forward_address_type=1, forward_address=str(0x010203)
    )
    assert text.short_form_report is False
    ext = hexdecode("8201000B" + "03" + "1230" + "0141")
    assert isinstance(ext, TextSds) and ext.text == "A"
    assert ext.storage_forward == StorageForward(
        validity_period=1, forward_address_type=3, forward_address="123"
    )


@pytest.mark.parametrize(
    ("pdu", "match"),
    [
        ("8201000C", "reserved"),
        ("8201000B000141", "no digits"),
        ("8201000B01A00141", "non-decimal"),
        ("8230C9", "reserved"),
        ("8A00C901050003C90300", "impossible"),
        ("8A00C90102000341424344", "overruns"),
        ("027F41", "coding scheme 127"),
        ("8C00C9000100", "impossible"),
        ("8C00C900010105", "0x05"),
    ],
)
def test_malformed_pdus(pdu: str, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        hexdecode(pdu)


def test_report_ack_other() -> None:
    report = hexdecode("831921C9" + "A1" + "BEEF01" + "CAFE")
    assert report == SdsReport(
        protocol_id=0x83,
        delivery_status=0x21,
        message_reference=0xC9,
        ack_required=True,
        storage_forward=StorageForward(
            validity_period=20, forward_address_type=1, forward_address=str(0xBEEF01)
        ),
        user_data=b"\xca\xfe",
    )
    assert hexdecode("822001C9") == SdsAck(
        protocol_id=0x82, delivery_status=1, message_reference=0xC9
    )
    assert hexdecode("830055") == OtherSds(protocol_id=0x83, payload=b"\x83\x00\x55", bits=24)
    assert hexdecode("82F0") == OtherSds(protocol_id=0x82, payload=b"\x82\xf0", bits=16)
    assert hexdecode("0C1234").protocol_id == 0x0C
    assert hexdecode("0A8F") == OtherSds(protocol_id=0x0A, payload=b"\x0a\x8f", bits=16)


def test_udh_other_elements_and_wide_reference() -> None:
    text = hexdecode("8A00C901" + "0A" + "2402AABB" + "080412340302" + "41")
    assert isinstance(text, TextSds)
    assert text.concat == ConcatInfo(reference=0x1234, total=3, sequence=2)
    assert text.text == "A"


def test_concatenated_sds_0x8c() -> None:
    part1 = TextSds(
        protocol_id=0x8C,
        text="Hello ",
        message_reference=7,
        concat=ConcatInfo(reference=0x123, total=2, sequence=1),
    )
    data, bits = encode_sds(part1)
    assert decode_sds(data, bits) == part1
    part2 = TextSds(
        protocol_id=0x8C,
        text="world",
        message_reference=8,
        concat=ConcatInfo(reference=5, total=2, sequence=2),
    )
    assert decode_sds(*encode_sds(part2)) == part2


def test_validity_periods() -> None:
    expected: dict[int, float | None] = {
        0: 0.0,
        1: 10.0,
        6: 60.0,
        10: 300.0,
        16: 3600.0,
        22: 43200.0,
        24: 86400.0,
    }
    expected |= {30: 12 * 86400.0, 31: None, 17: 7200.0, 25: 48 * 3600.0}
    for code, seconds in expected.items():
        assert validity_period_seconds(code) == seconds
    with pytest.raises(LocalProtocolError):
        validity_period_seconds(32)


# ----------------------------------------------------------------------------- encoders


def test_encode_known_vectors() -> None:
    report = SdsReport(
        protocol_id=0x82, delivery_status=0, message_reference=0xCA, ack_required=True
    )
    assert encode_sds(report) == (bytes.fromhex("821800CA"), 32)
    text = TextSds(
        protocol_id=0x82,
        text="testmessage",
        message_reference=0xC9,
        delivery_report_request=1,
        timestamp=SdsTimestamp(timeframe=1, month=4, day=11, hour=10, minute=15),
    )
    assert encode_sds(text)[0].hex().upper() == "8206C981445A8F746573746D657373616765"
    assert encode_sds(TextSds(protocol_id=2, text="testmessage"))[0].hex().upper() == (
        "0201746573746D657373616765"
    )
    assert encode_sds(StatusSds(status=0x8004)) == (b"\x80\x04", 16)
    assert encode_sds(ShortReport(report_type=2, message_reference=0xCA)) == (b"\x7e\xca", 16)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (StatusSds(status=0x7C01), "SHORT-REPORT"),
        (OtherSds(protocol_id=1, payload=b"\x01", bits=16), "does not fit"),
        (TextSds(protocol_id=0x03, text="x"), "not a text"),
        (TextSds(protocol_id=0x09, text="x"), "immediate"),
        (TextSds(protocol_id=0x02, text="x", message_reference=1), "Simple text"),
        (TextSds(protocol_id=0x8C, text="x", message_reference=1), "needs concatenation"),
        (
            TextSds(
                protocol_id=0x82,
                text="x",
                message_reference=1,
                concat=ConcatInfo(reference=1, total=2, sequence=1),
            ),
            "cannot carry",
        ),
        (
            TextSds(
                protocol_id=0x8C,
                text="x",
                message_reference=1,
                concat=ConcatInfo(reference=0x1000, total=2, sequence=1),
            ),
            "12 bits",
        ),
        (
            TextSds(
                protocol_id=0x8C,
                text="x",
                message_reference=1,
                concat=ConcatInfo(reference=1, total=2, sequence=3),
            ),
            "impossible",
        ),
        (TextSds(protocol_id=0x82, text="x" * 300, message_reference=1), "exceeds"),
        (
            SdsReport(
                protocol_id=0x82,
                delivery_status=0,
                message_reference=1,
                storage_forward=StorageForward(
                    validity_period=1, forward_address_type=7, forward_address="1"
                ),
            ),
            "none",
        ),
        (
            SdsReport(
                protocol_id=0x82,
                delivery_status=0,
                message_reference=1,
                storage_forward=StorageForward(validity_period=1, forward_address_type=5),
            ),
            "reserved",
        ),
        (
            SdsReport(
                protocol_id=0x82,
                delivery_status=0,
                message_reference=1,
                storage_forward=StorageForward(validity_period=1, forward_address_type=1),
            ),
            "needs a forward_address",
        ),
        (
            SdsReport(
                protocol_id=0x82,
                delivery_status=0,
                message_reference=1,
                storage_forward=StorageForward(
                    validity_period=1, forward_address_type=2, forward_address="123"
                ),
            ),
            "17 digits",
        ),
    ],
)
def test_encode_refusals(content: object, match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        encode_sds(content)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- round trips

timestamps = st.none() | st.builds(
    SdsTimestamp,
    timeframe=st.integers(0, 3),
    month=st.integers(0, 15),
    day=st.integers(0, 31),
    hour=st.integers(0, 31),
    minute=st.integers(0, 63),
)
addresses = st.one_of(
    st.tuples(st.just(0), st.integers(0, 255).map(str)),
    st.tuples(st.just(1), st.integers(0, 2**24 - 1).map(str)),
    st.tuples(
        st.just(2),
        st.builds(
            lambda a, b, c: f"{a:04d}{b:05d}{c:08d}",
            st.integers(0, 1023),
            st.integers(0, 16383),
            st.integers(0, 16777215),
        ),
    ),
    st.tuples(st.just(3), st.text("0123456789", min_size=1, max_size=24)),
    st.tuples(st.just(7), st.none()),
)
storage = st.none() | st.builds(
    lambda v, a: StorageForward(validity_period=v, forward_address_type=a[0], forward_address=a[1]),
    st.integers(0, 31),
    addresses,
)
texts = st.text(alphabet=st.characters(codec="latin-1"), max_size=40)


@st.composite
def sds_tl_texts(draw: st.DrawFn) -> TextSds:
    pid = draw(st.sampled_from([0x82, 0x89, 0x8A, 0x8C]))
    concat = None
    if pid in (0x8A, 0x8C):
        total = draw(st.integers(1, 255))
        top = 0xFFF if pid == 0x8C else 0xFFFF
        concat = draw(
            st.builds(
                ConcatInfo,
                reference=st.integers(0, top),
                total=st.just(total),
                sequence=st.integers(1, total),
            )
        )
    return TextSds(
        protocol_id=pid,
        text=draw(texts),
        coding_scheme=1,
        immediate=pid == 0x89,
        message_reference=draw(st.integers(0, 255)),
        delivery_report_request=draw(st.integers(0, 3)),
        short_form_report=draw(st.booleans()),
        storage_forward=draw(storage),
        timestamp=draw(timestamps),
        concat=concat,
    )


@given(sds_tl_texts())
def test_sds_tl_text_round_trip(text: TextSds) -> None:
    assert decode_sds(*encode_sds(text)) == text


@given(st.sampled_from([2, 9]), texts, timestamps)
def test_simple_text_round_trip(pid: int, body: str, stamp: SdsTimestamp | None) -> None:
    text = TextSds(protocol_id=pid, text=body, immediate=pid == 9, timestamp=stamp)
    assert decode_sds(*encode_sds(text)) == text


@given(st.sampled_from([0, 1, 13, 26]), st.text(max_size=20))
def test_text_coding_round_trip(scheme: int, body: str) -> None:
    text = TextSds(protocol_id=0x82, text=body, coding_scheme=scheme, message_reference=1)
    try:
        encoded = encode_sds(text)
    except LocalProtocolError:
        return
    assert decode_sds(*encoded) == text


@given(
    st.integers(0x80, 0xFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.booleans(),
    storage,
    st.binary(max_size=8),
)
def test_report_round_trip(
    pid: int, status: int, ref: int, ack: bool, sf: StorageForward | None, user: bytes
) -> None:
    report = SdsReport(
        protocol_id=pid,
        delivery_status=status,
        message_reference=ref,
        ack_required=ack,
        storage_forward=sf,
        user_data=user,
    )
    assert decode_sds(*encode_sds(report)) == report


@given(st.integers(0x80, 0xFF), st.integers(0, 255), st.integers(0, 255))
def test_ack_round_trip(pid: int, status: int, ref: int) -> None:
    ack = SdsAck(protocol_id=pid, delivery_status=status, message_reference=ref)
    assert decode_sds(*encode_sds(ack)) == ack


@given(st.integers(0, 0xFFFF))
def test_status_round_trip(value: int) -> None:
    content = decode_sds(value.to_bytes(2, "big"), 16, 13)
    assert encode_sds(content) == (value.to_bytes(2, "big"), 16)


@given(st.binary(max_size=260), st.integers(0, 2100), st.sampled_from([9, 10, 11, 12, 13, 0]))
def test_decode_fuzz_only_remote_errors(data: bytes, bits: int, ai: int) -> None:
    try:
        content = decode_sds(data, bits, ai)
    except RemoteProtocolError:
        return
    assert content is not None


def test_report_with_storage_forward_without_address() -> None:
    report = SdsReport(
        protocol_id=0x82,
        delivery_status=0x21,
        message_reference=4,
        storage_forward=StorageForward(validity_period=31),
    )
    data, bits = encode_sds(report)
    assert data.hex().upper() == "82112104FF" and bits == 40
    assert decode_sds(data, bits) == report
