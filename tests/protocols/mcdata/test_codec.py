from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import protocols.mcdata as mcdata
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.mcdata import (
    DATE_TIME_MAX,
    ContentType,
    DataPayload,
    DispositionRequest,
    McdataId,
    MessageType,
    NotificationType,
    Payload,
    SdsMessage,
    SdsNotification,
    SdsSignalling,
    date_time_from_unix,
    decode_data_payload,
    decode_notification,
    decode_sds_message,
    decode_signalling,
    encode_data_payload,
    encode_notification,
    encode_sds_message,
    encode_signalling,
    peek_message_type,
    unix_from_date_time,
)

CONFORMANCE = Path(__file__).resolve().parents[3].parent / "shared" / "conformance"
CONV = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
MSG = uuid.UUID("11111111-2222-3333-4444-555555555555")
REPLY = uuid.UUID("99999999-8888-7777-6666-555555555555")
T0 = date_time_from_unix(1_750_000_000)

ids = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: s == s.strip())
blobs = st.binary(min_size=1, max_size=40)


@st.composite
def signallings(draw: st.DrawFn) -> SdsSignalling:
    return SdsSignalling(
        date_time=draw(st.integers(0, DATE_TIME_MAX)),
        conversation_id=draw(st.uuids()),
        message_id=draw(st.uuids()),
        in_reply_to=draw(st.none() | st.uuids()),
        application_id=draw(st.none() | st.integers(0, 255)),
        disposition_request=draw(st.sampled_from(DispositionRequest) | st.integers(4, 15)),
        extended_application_id=draw(st.none() | blobs),
        user_location=draw(st.none() | blobs),
        sender=draw(st.none() | ids.map(McdataId)),
        application_metadata=draw(st.none() | blobs),
    )


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    kind = draw(st.sampled_from(ContentType) | st.integers(7, 255))
    if kind in (ContentType.TEXT, ContentType.HYPERLINKS, ContentType.FILEURL):
        return Payload(content_type=kind, data=draw(st.text(max_size=30)).encode("utf-8"))
    return Payload(content_type=kind, data=draw(st.binary(max_size=30)))


data_payloads = st.lists(payloads(), min_size=1, max_size=5).map(
    lambda items: DataPayload(payloads=tuple(items))
)


@st.composite
def notifications(draw: st.DrawFn) -> SdsNotification:
    return SdsNotification(
        notification=draw(st.sampled_from(NotificationType) | st.integers(5, 255)),
        date_time=draw(st.integers(0, DATE_TIME_MAX)),
        conversation_id=draw(st.uuids()),
        message_id=draw(st.uuids()),
        application_id=draw(st.none() | st.integers(0, 255)),
        extended_application_id=draw(st.none() | blobs),
        sender=draw(st.none() | ids.map(McdataId)),
    )


def full_signalling() -> SdsSignalling:
    return SdsSignalling(
        date_time=T0,
        conversation_id=CONV,
        message_id=MSG,
        in_reply_to=REPLY,
        application_id=7,
        disposition_request=DispositionRequest.DELIVERY_AND_READ,
        extended_application_id=b"app.example",
        user_location=b"\x01\x02\x03",
        sender=McdataId("sip:alice@mcx.example.eu"),
        application_metadata=b"meta",
    )


def test_all_is_complete() -> None:
    public = {n for n in dir(mcdata) if not n.startswith("_") and n != "annotations"}
    assert public <= set(mcdata.__all__)
    assert all(hasattr(mcdata, n) for n in mcdata.__all__)


def test_no_mcdata_or_sip_conformance_vectors_left_unrun() -> None:
    # The conformance README says every vector must run; there are none for MCData/SIP
    # yet. If some appear, this fails so that they get wired in here.
    if not CONFORMANCE.is_dir():
        pytest.skip(f"{CONFORMANCE} is missing")
    names = [
        p.name for p in CONFORMANCE.iterdir() if any(k in p.name.lower() for k in ("mcdata", "sip"))
    ]
    assert names == []


def test_signalling_known_bytes() -> None:
    minimal = SdsSignalling(date_time=0x0102030405, conversation_id=CONV, message_id=MSG)
    wire = encode_signalling(minimal)
    assert wire == b"\x01\x01\x02\x03\x04\x05" + CONV.bytes + MSG.bytes
    assert decode_signalling(wire) == minimal
    full = encode_signalling(full_signalling())
    tail = full[38:]
    assert tail.startswith(b"\x21" + REPLY.bytes + b"\x22\x07\x83\x7d\x00\x0bapp.example")
    assert tail.endswith(b"\x51\x00\x18sip:alice@mcx.example.eu\x53\x00\x04meta")
    assert decode_signalling(full) == full_signalling()


def test_optional_ies_in_any_order_and_unknown_ones_skipped() -> None:
    base = encode_signalling(SdsSignalling(date_time=T0, conversation_id=CONV, message_id=MSG))
    ies = (
        b"\x51\x00\x03bob"  # sender (TLV-E)
        + b"\x9a"  # unknown type 1 (half-octet) IE
        + b"\xc0"  # unknown type 2 IE
        + b"\x30\x02zz"  # unknown TLV IE
        + b"\x7a\x00\x03abc"  # unknown TLV-E IE
        + b"\x81"  # disposition DELIVERY
        + b"\x21"
        + REPLY.bytes
    )
    decoded = decode_signalling(base + ies)
    assert decoded.sender == "bob"
    assert decoded.disposition_request is DispositionRequest.DELIVERY
    assert decoded.in_reply_to == REPLY
    odd = decode_signalling(base + b"\x8c")
    assert odd.disposition_request == 12 and not isinstance(
        odd.disposition_request, DispositionRequest
    )
    none = decode_signalling(base + b"\x80")
    assert none.disposition_request is DispositionRequest.NONE
    assert encode_signalling(none) == base  # NONE is written as "no IE"


@pytest.mark.parametrize(
    ("tail", "match"),
    [
        (b"\x21" + REPLY.bytes[:5], "InReplyTo message ID truncated"),
        (b"\x22", "Application ID truncated"),
        (b"\x51\x00", "Sender MCData user ID length truncated"),
        (b"\x51\x00\x09abc", "Sender MCData user ID truncated: needs 9 octets, 3 left"),
        (b"\x51\x00\x00", "Sender MCData user ID IE is empty"),
        (b"\x7e\x00\x00", "User location IE is empty"),
        (b"\x51\x00\x02\xff\xfe", "not UTF-8"),
        (b"\x51\x00\x01 ", "not a valid MCData ID"),
        (b"\x22\x01\x22\x02", "Application ID IE repeated"),
        (b"\x81\x82", "disposition request type IE repeated"),
        (b"\x30\x05ab", "unknown IE 0x30 truncated"),
        (b"\x7a\x00\x10ab", "unknown IE 0x7A truncated"),
    ],
)
def test_malformed_optional_ies(tail: bytes, match: str) -> None:
    base = encode_signalling(SdsSignalling(date_time=T0, conversation_id=CONV, message_id=MSG))
    with pytest.raises(RemoteProtocolError, match=match):
        decode_signalling(base + tail)


def test_mandatory_fields_and_message_type() -> None:
    with pytest.raises(RemoteProtocolError, match="Message type truncated"):
        decode_signalling(b"")
    with pytest.raises(RemoteProtocolError, match="not SDS_SIGNALLING_PAYLOAD"):
        decode_signalling(b"\x03" + bytes(37))
    with pytest.raises(RemoteProtocolError, match="Date and time truncated"):
        decode_signalling(b"\x01\x00\x00")
    with pytest.raises(RemoteProtocolError, match="Conversation ID truncated"):
        decode_signalling(b"\x01" + bytes(5) + bytes(15))
    with pytest.raises(RemoteProtocolError, match="Message ID truncated"):
        decode_signalling(b"\x01" + bytes(5) + bytes(16) + bytes(3))


def test_data_payload_known_bytes_and_text() -> None:
    data = DataPayload(
        payloads=(
            Payload.from_text("Grüße aus Kehl"),
            Payload(content_type=ContentType.BINARY, data=b"\x00\xff"),
            Payload.from_text("https://example.eu/a", ContentType.HYPERLINKS),
            Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x00\x2a"),
        )
    )
    wire = encode_data_payload(data)
    assert wire[:2] == b"\x03\x04"
    assert wire[2:6] == b"\x78\x00\x11\x01"
    assert decode_data_payload(wire) == data
    assert data.payloads[0].text == "Grüße aus Kehl"
    assert data.payloads[1].text is None
    unknown = decode_data_payload(b"\x03\x01\x78\x00\x02\x63z")
    assert unknown.payloads[0].content_type == 0x63


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (b"\x03", "Number of payloads truncated"),
        (b"\x03\x00", "Number of payloads is 0"),
        (b"\x03\x01\x77\x00\x01\x01", "IEI 0x77, expected 0x78"),
        (b"\x03\x01\x78\x00\x00", "Payload 1 has no content type"),
        (b"\x03\x02\x78\x00\x01\x02", "Payload 2 IEI truncated"),
        (b"\x03\x01\x78\x00\x05\x01ab", "Payload 1 truncated"),
        (b"\x03\x01\x78\x00\x02\x01\xc3", "TEXT payload is not UTF-8"),
        (b"\x03\x01\x78\x00\x01\x02\x00", "1 octets after the last of 1 payloads"),
        (b"\x01\x01", "not DATA_PAYLOAD"),
    ],
)
def test_malformed_data_payload(wire: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        decode_data_payload(wire)


def test_notification_known_bytes() -> None:
    note = SdsNotification(
        notification=NotificationType.DELIVERED,
        date_time=T0,
        conversation_id=CONV,
        message_id=MSG,
        application_id=1,
        extended_application_id=b"x",
        sender=McdataId("sip:bob@mcx.example.de"),
    )
    wire = encode_notification(note)
    assert wire[:2] == b"\x05\x02"
    assert decode_notification(wire) == note
    assert decode_sds_message(wire, None) == note
    assert encode_sds_message(note) == (wire, None)
    undelivered = decode_notification(wire[:1] + b"\x01" + wire[2:39])
    assert undelivered.notification is NotificationType.UNDELIVERED
    with pytest.raises(RemoteProtocolError, match="SDS disposition notification type"):
        decode_notification(b"\x05")
    with pytest.raises(RemoteProtocolError, match=r"unknown IE 0x21 truncated"):
        decode_notification(wire[:39] + b"\x21\x05")  # 0x21 is not known here: TLV skip


def test_sds_message_dispatch() -> None:
    message = SdsMessage(
        signalling=full_signalling(),
        data=DataPayload(payloads=(Payload.from_text("hi"),)),
    )
    signalling, data = encode_sds_message(message)
    assert data is not None
    assert decode_sds_message(signalling, data) == message
    assert peek_message_type(signalling) is MessageType.SDS_SIGNALLING_PAYLOAD
    assert peek_message_type(b"\x42") == 0x42
    with pytest.raises(RemoteProtocolError, match="without its DATA PAYLOAD"):
        decode_sds_message(signalling, None)
    note = encode_notification(
        SdsNotification(
            notification=NotificationType.READ, date_time=0, conversation_id=CONV, message_id=MSG
        )
    )
    with pytest.raises(RemoteProtocolError, match="must not come with a DATA PAYLOAD"):
        decode_sds_message(note, data)
    with pytest.raises(RemoteProtocolError, match="0x03 is not an SDS signalling"):
        decode_sds_message(data, data)
    with pytest.raises(RemoteProtocolError, match="empty"):
        decode_sds_message(b"", None)


def test_date_time_helpers() -> None:
    assert unix_from_date_time(date_time_from_unix(1_750_000_000)) == 1_750_000_000
    assert date_time_from_unix(0) == 2_208_988_800
    with pytest.raises(LocalProtocolError):
        date_time_from_unix(-3_000_000_000)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SdsSignalling(date_time=-1, conversation_id=CONV, message_id=MSG),
        lambda: SdsSignalling(date_time=DATE_TIME_MAX + 1, conversation_id=CONV, message_id=MSG),
        lambda: SdsSignalling(date_time=0, conversation_id="x", message_id=MSG),  # type: ignore[arg-type]
        lambda: SdsSignalling(date_time=0, conversation_id=CONV, message_id=MSG, in_reply_to=b"x"),  # type: ignore[arg-type]
        lambda: SdsSignalling(
            date_time=0, conversation_id=CONV, message_id=MSG, application_id=256
        ),
        lambda: SdsSignalling(
            date_time=0, conversation_id=CONV, message_id=MSG, disposition_request=16
        ),
        lambda: SdsSignalling(date_time=0, conversation_id=CONV, message_id=MSG, user_location=b""),
        lambda: SdsSignalling(
            date_time=0, conversation_id=CONV, message_id=MSG, user_location=bytes(65536)
        ),
        lambda: SdsSignalling(
            date_time=0, conversation_id=CONV, message_id=MSG, sender=McdataId("")
        ),
        lambda: SdsSignalling(
            date_time=0, conversation_id=CONV, message_id=MSG, sender=McdataId("a\x00b")
        ),
        lambda: SdsSignalling(
            date_time=0, conversation_id=CONV, message_id=MSG, sender=McdataId("\ud800")
        ),
        lambda: Payload(content_type=256, data=b""),
        lambda: Payload(content_type=ContentType.BINARY, data=bytes(65535)),
        lambda: Payload(content_type=ContentType.FILEURL, data=b"\xff"),
        lambda: DataPayload(payloads=()),
        lambda: DataPayload(payloads=(Payload.from_text("x"),) * 256),
        lambda: SdsNotification(
            notification=300, date_time=0, conversation_id=CONV, message_id=MSG
        ),
        lambda: SdsNotification(
            notification=2, date_time=0, conversation_id=CONV, message_id=MSG, application_id=-1
        ),
    ],
)
def test_invalid_values_are_local_errors(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_largest_values_encode() -> None:
    big = Payload(content_type=ContentType.BINARY, data=bytes(65534))
    wire = encode_data_payload(DataPayload(payloads=(big,)))
    assert decode_data_payload(wire).payloads == (big,)
    sig = SdsSignalling(
        date_time=DATE_TIME_MAX, conversation_id=CONV, message_id=MSG, user_location=bytes(65535)
    )
    assert decode_signalling(encode_signalling(sig)) == sig


@given(signallings())
def test_signalling_roundtrip(signalling: SdsSignalling) -> None:
    assert decode_signalling(encode_signalling(signalling)) == signalling


@given(data_payloads)
def test_data_payload_roundtrip(data: DataPayload) -> None:
    assert decode_data_payload(encode_data_payload(data)) == data


@given(notifications())
def test_notification_roundtrip(note: SdsNotification) -> None:
    assert decode_notification(encode_notification(note)) == note


@given(signallings(), data_payloads)
def test_sds_message_roundtrip(signalling: SdsSignalling, data: DataPayload) -> None:
    message = SdsMessage(signalling=signalling, data=data)
    assert decode_sds_message(*encode_sds_message(message)) == message


def _ie_boundaries(wire: bytes, mandatory: int) -> set[int]:
    """Offsets where an optional IE starts or the message ends (valid truncation points)."""
    points, position = {len(wire)}, mandatory
    while position < len(wire):
        points.add(position)
        iei = wire[position]
        if iei & 0x80:
            position += 1
        elif iei in (0x21, 0x22):
            position += 17 if iei == 0x21 else 2
        else:
            position += 3 + int.from_bytes(wire[position + 1 : position + 3], "big")
    return points


@given(signallings())
def test_signalling_every_truncation(signalling: SdsSignalling) -> None:
    wire = encode_signalling(signalling)
    valid = _ie_boundaries(wire, 38)
    for end in range(len(wire)):
        if end in valid:
            decode_signalling(wire[:end])  # fewer optional IEs: still a valid message
        else:
            with pytest.raises(RemoteProtocolError):
                decode_signalling(wire[:end])


@given(notifications())
def test_notification_every_truncation(note: SdsNotification) -> None:
    wire = encode_notification(note)
    valid = _ie_boundaries(wire, 39)
    for end in range(len(wire)):
        if end in valid:
            assert decode_notification(wire[:end]).message_id == note.message_id
        else:
            with pytest.raises(RemoteProtocolError):
                decode_notification(wire[:end])


@given(data_payloads)
def test_data_payload_every_truncation(data: DataPayload) -> None:
    wire = encode_data_payload(data)
    for end in range(len(wire)):
        with pytest.raises(RemoteProtocolError):
            decode_data_payload(wire[:end])


@given(st.binary(max_size=120), st.sampled_from([0x01, 0x03, 0x05]))
@example(b"\x00" * 37 + b"\x51\x00\x02\xc3\x28", 0x01)
def test_arbitrary_bytes_never_crash(tail: bytes, kind: int) -> None:
    wire = bytes([kind]) + tail
    for decoder in (decode_signalling, decode_data_payload, decode_notification):
        try:
            decoded = decoder(wire)
        except RemoteProtocolError as exc:
            assert str(exc), "a refusal must say why"
        else:
            assert decoded is not None
    with contextlib.suppress(RemoteProtocolError):
        decode_sds_message(wire, tail or None)


@given(signallings(), st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_signalling_never_crashes(signalling: SdsSignalling, at: int, value: int) -> None:
    wire = bytearray(encode_signalling(signalling))
    wire[at % len(wire)] = value
    try:
        decoded = decode_signalling(bytes(wire))
    except RemoteProtocolError:
        return
    assert isinstance(decoded, SdsSignalling)


def test_tlv_e_writer_refuses_bad_lengths() -> None:
    from protocols.mcdata._ies import tlv_e

    assert tlv_e(0x51, b"a", "x") == b"\x51\x00\x01a"
    for value in (b"", bytes(65536)):
        with pytest.raises(LocalProtocolError, match=r"must be 1\.\.65535 octets"):
            tlv_e(0x51, value, "x")
