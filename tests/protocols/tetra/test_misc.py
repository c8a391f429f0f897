from __future__ import annotations

import pytest

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra import (
    Identity,
    LocationReport,
    OtherSds,
    PeiJsonDecoder,
    RawCommand,
    SdsReceived,
    SendSds,
    TextSds,
    decode_sds,
    encode_sds,
)
from protocols.tetra._bits import BitWriter
from protocols.tetra._lip import _altitude_code


@pytest.mark.parametrize(
    "build",
    [
        lambda: TextSds(protocol_id=0x82, text="x"),
        lambda: TextSds(protocol_id=2, text="x", coding_scheme=True),
        lambda: LocationReport(latitude=1.0, longitude=None),
        lambda: LocationReport(latitude=91.0, longitude=0.0),
        lambda: LocationReport(latitude=0.0, longitude=181.0),
        lambda: SendSds(destination=Identity("1"), payload=b"\x01\x02", bits=8),
        lambda: RawCommand(line="ATZ\r\nATD"),
        lambda: SdsReceived(
            source=Identity("x"),
            destination=Identity("1"),
            ai_service=13,
            content=OtherSds(protocol_id=None, payload=b"", bits=0),
        ),
    ],
)
def test_events_refuse_impossible_values(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_bit_writer_refusals() -> None:
    writer = BitWriter()
    with pytest.raises(LocalProtocolError):
        writer.write(4, 2)
    with pytest.raises(LocalProtocolError):
        writer.write_signed(2, 2)


def test_decoded_value_refused_by_event_becomes_remote_error() -> None:
    # external forward address of 25 digits: the event refuses it
    pdu = bytes.fromhex("8201000B19" + "1" * 26 + "0141")
    with pytest.raises(RemoteProtocolError, match="forward_address") as info:
        decode_sds(pdu, len(pdu) * 8)
    assert info.value.reason_code == 0x5C


def test_short_lip_payload_and_udh_without_concat() -> None:
    assert decode_sds(b"\x0a\x00", 12) == OtherSds(protocol_id=0x0A, payload=b"\x0a\x00", bits=12)
    text = TextSds(protocol_id=0x8A, text="hi", message_reference=3)
    assert decode_sds(*encode_sds(text)) == text
    assert [_altitude_code(m) for m in (-500, 0, 1500, 99999)] == [1, 201, 1451, 2047]


def test_json_decoder_vocabulary() -> None:
    decoder = PeiJsonDecoder()
    assert decoder.feed(b"") == []
    out = decoder.feed(
        b"+CTSDSR: 13,1,0,2,0,16\r\n7ECA\r\n"
        b"+CTSDSR: 12,1,0,2,0,32\r\n822001C9\r\n"
        b"+CTSDSR: 12,1,0,2,0,24\r\n0C1234\r\n"
        b"+CTSDSR: 12,1,0,2,0,80\r\n8A00C901050003090201\r\n"
    )
    assert [e["event"] for e in out] == ["sds_short_report", "sds_ack", "sds_data"]
    assert out[0]["report_type"] == 2 and out[2]["payload_hex"] == "0C1234"
    assert out[1]["protocol_id"] == 0x82
    (error,) = decoder.close()
    assert error["event"] == "decode_error" and error["source"] == "1"


def test_other_sds_encodes_as_is() -> None:
    other = OtherSds(protocol_id=0x0C, payload=b"\x0c\x12\x30", bits=20)
    assert encode_sds(other) == (b"\x0c\x12\x30", 20)
