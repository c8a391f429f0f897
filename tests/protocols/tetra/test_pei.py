from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import protocols.tetra as tetra
from protocols.errors import LocalProtocolError
from protocols.tetra import (
    NEED_DATA,
    CommandCompleted,
    CommandReceived,
    Identity,
    PeiConnection,
    QuerySendCapability,
    RadioPei,
    RawCommand,
    SdsReceived,
    SdsRejected,
    SdsSubmissionFailed,
    SdsSubmitted,
    SelectSdsService,
    SendCapability,
    SendResult,
    SendSds,
    SetServiceProfile,
    StatusSds,
    TextSds,
    UnsolicitedResult,
    encode_sds,
)


def events(conn: PeiConnection | RadioPei, data: bytes, *, bytewise: bool = False) -> list[object]:
    out: list[object] = []
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    for chunk in [*[c for c in chunks if c], b""]:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            out.append(event)
    return out


def both(factory: type[PeiConnection] | type[RadioPei], data: bytes) -> list[object]:
    whole = events(factory(), data)
    assert events(factory(), data, bytewise=True) == whole
    return whole


def test_all_is_complete() -> None:
    public = {n for n in dir(tetra) if not n.startswith("_") and n != "annotations"}
    assert public <= set(tetra.__all__) | {"tetra"}
    assert all(hasattr(tetra, n) for n in tetra.__all__)


def test_header_variants_and_line_endings() -> None:
    data = (
        b"+CTSDSR: 13,1234567,16\r8004\r"
        b"+CTSDSR: 13,1234567,0,16\n8004\n"
        b"+CTSDSR: 13,1234567,1,2345678,0,16,1\r\n8004\r\n"
    )
    out = both(PeiConnection, data)
    assert [type(e) for e in out] == [SdsReceived] * 3
    first, _, third = out
    assert isinstance(first, SdsReceived) and first.destination == "0"
    assert isinstance(third, SdsReceived) and third.end_to_end_encryption
    assert third.source_type == 1 and third.content == StatusSds(status=0x8004)
    conn = PeiConnection(own_identity="4242")
    (own,) = events(conn, b"+CTSDSR: 13,1,16\r\n8004\r\n")
    assert isinstance(own, SdsReceived) and own.destination == "4242"
    with pytest.raises(LocalProtocolError):
        PeiConnection(own_identity="x")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"+CTSDSR: 12,1,0,2,0\r\n0201\r\n", "5 fields"),
        (b"+CTSDSR: 12,1,x,2,0,16\r\n0201\r\n", "non-numeric"),
        (b"+CTSDSR: 12,,,2,0,16\r\n0201\r\n", "bad identity"),
        (b"+CTSDSR: 12,1,0,2,0,16\r\nOK\r\n", "not followed"),
        (b"+CTSDSR: 12,1,0,2,0,16\r\n", "not followed"),
        (b"+CTSDSR: 12,1,0,2,0,16\r\n02", "header says"),
        (b"+CTSDSR: 12,1,0,2,0,40\r\n827F01C9\r\n", "header says"),
        (b"+CTSDSR: 12,1,0,2,0,32\r\n827F01C9\r\n", "reserved"),
        (b"+CMGS: 1,x\r\n", "Malformed"),
        (b"+CMGS: 1,2,3,4\r\n", "Malformed"),
    ],
)
def test_rejections(data: bytes, reason: str) -> None:
    out = [e for e in both(PeiConnection, data) if not isinstance(e, CommandCompleted)]
    assert len(out) == 1
    assert isinstance(out[0], SdsRejected) and reason in out[0].reason


def test_rejection_keeps_pid_and_reference() -> None:
    (transfer,) = both(PeiConnection, b"+CTSDSR: 12,1,0,2,0,32\r\n82017FC9\r\n")
    assert isinstance(transfer, SdsRejected)
    assert (transfer.source, transfer.protocol_id, transfer.message_reference) == ("1", 0x82, 0x7F)
    (reserved,) = both(PeiConnection, b"+CTSDSR: 12,1,0,2,0,32\r\n8270C9AA\r\n")
    assert isinstance(reserved, SdsRejected) and reserved.protocol_id == 0x82
    assert reserved.message_reference is None  # message type 7: never answered
    (short,) = both(PeiConnection, b"+CTSDSR: 12,1,0,2,0,24\r\n8270C9\r\n")
    assert isinstance(short, SdsRejected) and short.message_reference is None
    (text,) = both(PeiConnection, b"+CTSDSR: 12,1,0,2,0,16\r\n027F\r\n")
    assert isinstance(text, SdsRejected) and text.reason_code == 0x51


@pytest.mark.parametrize(
    ("user_data", "what"),
    [
        # SDS-REPORT (type 1), SF control set, forward address type 4 (reserved).
        ("8211003304", "reserved"),
        # SDS-REPORT requiring an ack, status 0x5C, MR 0x33, same bad SF info.
        ("82195C3304", "reserved"),
        # Reserved message types 3..7, octets long enough to hold a "reference".
        ("8230C9AA00", "reserved"),
        ("8250C9AA00", "reserved"),
        ("8270C9AA00", "reserved"),
    ],
)
def test_corrupt_report_ack_or_reserved_type_has_no_reference_to_answer(
    user_data: str, what: str
) -> None:
    # Only an SDS-TRANSFER may be answered with a (negative) SDS-REPORT: a report
    # answering a corrupt report could bounce between two entities for ever.
    data = f"+CTSDSR: 12,2001,0,1000,0,40\r\n{user_data}\r\n".encode()
    (rejected,) = both(PeiConnection, data)
    assert isinstance(rejected, SdsRejected) and what in rejected.reason
    assert rejected.source == "2001" and rejected.protocol_id == 0x82
    assert rejected.message_reference is None


def test_corrupt_transfer_keeps_its_reference() -> None:
    # SDS-TRANSFER (type 0) with a report request, SF control, reserved forward address type.
    (rejected,) = both(PeiConnection, b"+CTSDSR: 12,2001,0,1000,0,40\r\n8205330400\r\n")
    assert isinstance(rejected, SdsRejected) and "reserved" in rejected.reason
    assert (rejected.protocol_id, rejected.message_reference) == (0x82, 0x33)


def test_results_and_outstanding_commands() -> None:
    conn = PeiConnection()
    assert conn.send(SetServiceProfile(profile=1, layer1=3, layer2=130)) == b"AT+CTSP=1,3,130\r\n"
    assert conn.send(SetServiceProfile(profile=2, layer1=0)) == b"AT+CTSP=2,0\r\n"
    assert conn.send(SelectSdsService()) == b"AT+CTSDS=12,0,0,0,0\r\n"
    assert conn.send(QuerySendCapability()) == b"AT+CMGS=?\r\n"
    sent = conn.send(SendSds(destination=Identity("1234567"), payload=bytes.fromhex("821000C9")))
    assert sent == b"AT+CMGS=1234567,32\r\n821000C9\x1a"
    assert conn.send(RawCommand(line="AT+CNUMF?")) == b"AT+CNUMF?\r\n"
    assert len(conn.outstanding_commands) == 6
    with pytest.raises(LocalProtocolError):
        conn.send("AT")  # type: ignore[arg-type]
    data = (
        b"AT+CTSP=1,3,130\r\nOK\r\n\r\nERROR\r\n+CME ERROR: 35\r\n"
        b"+CMGS: (0-16777214,1-255),(8-1184)\r\nOK\r\n+CMGS: 0\r\nOK\r\n+CMGS: 0,4,7\r\n"
        b"+CME ERROR: x\r\n+CMGS: (weird)\r\n+CTOM: 0\r\n>\r\nTETRA radio\r\n+CTXD\r\n"
    )
    out = events(conn, data)
    assert out == [
        CommandCompleted(command="AT+CTSP=1,3,130", ok=True),
        CommandCompleted(command="AT+CTSP=2,0", ok=False),
        CommandCompleted(command="AT+CTSDS=12,0,0,0,0", ok=False, cme_error=35),
        SendCapability(max_pdu_bits=1184),
        CommandCompleted(command="AT+CMGS=?", ok=True),
        SendResult(sds_instance=0),
        CommandCompleted(command="AT+CMGS=1234567,32", ok=True),
        SendResult(sds_instance=0, sds_status=4, message_reference=7),
        CommandCompleted(command="AT+CNUMF?", ok=False),
        UnsolicitedResult(name="+CMGS", value="(weird)"),
        UnsolicitedResult(name="+CTOM", value="0"),
        UnsolicitedResult(name="", value="TETRA radio"),
        UnsolicitedResult(name="+CTXD", value=""),
    ]
    assert events(PeiConnection(), b"OK") == [CommandCompleted(command="", ok=True)]
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_long_lines_are_discarded() -> None:
    conn = PeiConnection(max_line=16)
    data = b"+CTOM: " + b"9" * 40 + b"\r\n+CTOM: 1\r\n" + b"z" * 40
    out = both(lambda: PeiConnection(max_line=16), data)  # type: ignore[arg-type]
    assert [type(e) for e in out] == [SdsRejected, UnsolicitedResult, SdsRejected]
    assert events(conn, b"") == []


# ----------------------------------------------------------------------------- radio side


def test_radio_commands() -> None:
    data = (
        b"AT\r\nATI7\r\nat+ctsp=1,3,130\r\nAT+CMGS=?\r\nAT+CNUMF?\r\nAT+CTOM\r\nAT&F\r\n"
        b"garbage\r\n\r\n"
    )
    assert both(RadioPei, data) == [
        CommandReceived(name=""),
        CommandReceived(name="I", args="7"),
        CommandReceived(name="+CTSP", args="1,3,130"),
        CommandReceived(name="+CMGS", test=True),
        CommandReceived(name="+CNUMF", query=True),
        CommandReceived(name="+CTOM"),
        CommandReceived(name="&F"),
    ]


def test_radio_submissions() -> None:
    data = (
        b"AT+CMGS=1234567,32\r\n821000C9\x1a"
        b"AT+CMGS=1234567,84\r\n0A0093E93A4FA4FFFFE14\x1a"
        b"AT+CMGS=1234567,32\r\n82Z000C9\x1a"
        b"AT+CMGS=1234567,32\r\n8210\x1a"
        b"AT+CMGS=1234567,32\r\n821000C9\x1b"
        b"AT+CMGS=12x,32\r\nAT+CMGS=1,99999\r\nAT+CMGS=1,0\r\n"
    )
    radio = RadioPei()
    out = events(radio, data)
    assert events(RadioPei(), data, bytewise=True) == out
    assert out[0] == SdsSubmitted(
        destination=Identity("1234567"), bits=32, payload=bytes.fromhex("821000C9")
    )
    assert isinstance(out[1], SdsSubmitted) and len(out[1].payload) == 11
    assert [type(e) for e in out[2:]] == [SdsSubmissionFailed] * 5
    assert [e.cme_error for e in out[2:]] == [32, 32, 35, 35, 35]  # type: ignore[attr-defined]
    assert not radio.in_data_mode


def test_radio_long_data_and_lines() -> None:
    data = b"AT+CMGS=1,32\r\n" + b"0" * 40 + b"\x1aAT+X" + b"Y" * 40 + b"\r\nAT\r\n"
    out = both(lambda: RadioPei(max_line=16), data)  # type: ignore[arg-type]
    assert [type(e) for e in out] == [SdsSubmissionFailed, SdsSubmissionFailed, CommandReceived]
    radio = RadioPei()
    radio.receive_data(b"AT+CMGS=1,32\r\n82")
    assert radio.next_event() is NEED_DATA and radio.in_data_mode
    radio.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        radio.receive_data(b"x")


def test_radio_answers() -> None:
    assert RadioPei.ok() == b"OK\r\n"
    assert RadioPei.error() == b"ERROR\r\n"
    assert RadioPei.error(32) == b"+CME ERROR: 32\r\n"
    assert RadioPei.send_result(0) == b"+CMGS: 0\r\n"
    assert RadioPei.send_result(0, 4, 7) == b"+CMGS: 0,4,7\r\n"
    assert RadioPei.capability(1184).endswith(b",(8-1184)\r\n")
    assert RadioPei.unsolicited("+CTOM: 0") == b"+CTOM: 0\r\n"
    with pytest.raises(LocalProtocolError):
        RadioPei.send_result(0, reference=3)
    with pytest.raises(LocalProtocolError):
        RadioPei.capability(4)
    with pytest.raises(LocalProtocolError):
        RadioPei.unsolicited("a\r\nb")
    with pytest.raises(LocalProtocolError):
        RadioPei.deliver("x", "1", 12, b"\x02", 8)
    with pytest.raises(LocalProtocolError):
        RadioPei.deliver("1", "2", 12, b"\x02", 16)


def test_pair_radio_against_terminal() -> None:
    terminal, radio = PeiConnection(own_identity="1001"), RadioPei()
    text = TextSds(
        protocol_id=0x82, text="Grüße aus Aachen", message_reference=5, delivery_report_request=1
    )
    payload, bits = encode_sds(text)
    radio.receive_data(
        terminal.send(SendSds(destination=Identity("2002"), payload=payload, bits=bits))
    )
    submitted = radio.next_event()
    assert submitted == SdsSubmitted(destination=Identity("2002"), bits=bits, payload=payload)
    gsm = TextSds(protocol_id=0x82, text="abcd", coding_scheme=0, message_reference=6)
    gsm_payload, gsm_bits = encode_sds(gsm)
    assert gsm_bits % 8 == 4  # odd nibble count: the last octet still travels whole
    terminal.receive_data(
        radio.send_result(0)
        + radio.ok()
        + radio.deliver("2002", "1001", 12, payload, bits)
        + radio.deliver("2002", "1001", 12, gsm_payload, gsm_bits, source_type=1)
        + radio.send_result(0, 4, 5)
    )
    out = []
    while (event := terminal.next_event()) is not NEED_DATA:
        out.append(event)
    assert out[0] == SendResult(sds_instance=0)
    assert out[1] == CommandCompleted(command=f"AT+CMGS=2002,{bits}", ok=True)
    assert isinstance(out[2], SdsReceived) and out[2].content == text
    assert isinstance(out[3], SdsReceived) and out[3].content == gsm
    assert out[4] == SendResult(sds_instance=0, sds_status=4, message_reference=5)


lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"+CTSDSR: 12,1,0,2,0,32",
                b"+CTSDSR: 13,1,0,2,0,16",
                b"OK",
                b"",
                b"+CMGS: 0,4,7",
                b"+CMGS: (8-1184)",
                b"821000C9",
                b"8004",
                b"AT+CMGS=1,32",
                b"\x1a",
                b"+CME ERROR: 4",
                b"AT+CTSP=1,3,130",
            ]
        ),
        st.binary(max_size=30),
    ),
    max_size=20,
)


@given(lines, st.sampled_from([b"\r\n", b"\r", b"\n"]))
def test_fuzz_terminal_never_raises(parts: list[bytes], sep: bytes) -> None:
    data = sep.join(parts)
    whole = events(PeiConnection(max_line=64), data)
    assert events(PeiConnection(max_line=64), data, bytewise=True) == whole


@given(lines, st.sampled_from([b"\r\n", b"\r", b"\n"]))
def test_fuzz_radio_never_raises(parts: list[bytes], sep: bytes) -> None:
    data = sep.join(parts)
    whole = events(RadioPei(max_line=64), data)
    assert events(RadioPei(max_line=64), data, bytewise=True) == whole


def test_a_capability_answer_with_an_absurd_number_is_unsolicited_not_a_crash() -> None:
    # int() refuses more than 4,300 digits: a hostile line must not end the session.
    data = b"+CMGS: (8-" + b"9" * 5000 + b")\r\n+CMGS: 0,4,7\r\n"
    for bytewise in (False, True):
        got = events(PeiConnection(), data, bytewise=bytewise)
        assert [type(e) for e in got] == [UnsolicitedResult, SendResult]
        assert got[1] == SendResult(sds_instance=0, sds_status=4, message_reference=7)


def test_discarding_survives_large_chunks() -> None:
    conn = PeiConnection(max_line=16)
    conn.receive_data(b"9" * 20)
    assert isinstance(conn.next_event(), SdsRejected)
    conn.receive_data(b"9" * 20)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\n+CTOM: 1\r\n")
    assert conn.next_event() == UnsolicitedResult(name="+CTOM", value="1")
