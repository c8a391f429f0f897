"""Fuzz the TETRA codecs: PEI streams (both ends), the JSON Lines decoder, SDS-TL, LIP, text.

PEI codecs never raise on input (their rule 2): every outcome is an event, and the events
are the same whether the stream arrives whole or in pieces. The SDS, LIP and text decoders
return a value or raise :class:`RemoteProtocolError` carrying a delivery status.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra import (
    NEED_DATA,
    AiService,
    CommandCompleted,
    CommandReceived,
    ConcatInfo,
    Identity,
    LocationReport,
    PeiCommand,
    PeiConnection,
    PeiJsonDecoder,
    QuerySendCapability,
    RadioPei,
    RawCommand,
    SdsContent,
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
    decode_location,
    decode_sds,
    decode_text,
    encode_location,
    encode_sds,
)
from tests.fuzz._fuzz import Tally, chunked, conformance_inputs, fuzz_settings, mutated

VECTORS = conformance_inputs()

PEI_TOKENS = (
    b"\r\n",
    b"\r",
    b"\n",
    b"+CTSDSR: ",
    b"+CTSDSR: 12,1234567,0,2345678,0,",
    b"+CMGS: ",
    b"+CME ERROR: ",
    b"OK\r\n",
    b"ERROR\r\n",
    b",",
    b"0A",
    b"8A",
    b"8C",
    b"82",
    b"FFFFFFFF",
    b"2047",
    b"99999999",
    b"(8-2047)",
    b"\x1a",
    b"\x1b",
)

_HEADER = re.compile(rb"\+CTSDSR: *(\d+),[^\r\n]*,(\d+)\r\n([0-9A-Fa-f]*)\r\n")


def _vector_sds() -> list[tuple[bytes, int, int]]:
    """``(payload, bits, ai_service)`` of every ``+CTSDSR`` record of the vectors."""
    found = []
    for data in VECTORS:
        for match in _HEADER.finditer(data):
            digits = match.group(3).decode("ascii")
            payload = bytes.fromhex(digits + "0" * (len(digits) % 2))
            found.append((payload, int(match.group(2)), int(match.group(1))))
    return found


def _encoded_sds() -> list[tuple[bytes, int, int]]:
    contents: list[SdsContent] = [
        TextSds(protocol_id=0x02, text="hello"),
        TextSds(protocol_id=0x82, text="Grüße", message_reference=7, delivery_report_request=3),
        TextSds(protocol_id=0x82, text="gsm", coding_scheme=0, message_reference=1),
        TextSds(protocol_id=0x89, text="now", immediate=True, message_reference=2),
        TextSds(
            protocol_id=0x8A,
            text="part",
            message_reference=3,
            concat=ConcatInfo(reference=9, total=2, sequence=1),
        ),
        TextSds(
            protocol_id=0x8C,
            text="part",
            message_reference=4,
            concat=ConcatInfo(reference=300, total=3, sequence=2),
        ),
        StatusSds(status=0x8004),
        LocationReport(latitude=48.57, longitude=7.81, velocity_kmh=40.0, direction_deg=90.0),
    ]
    found = []
    for content in contents:
        payload, bits = encode_sds(content)
        service = AiService.STATUS if isinstance(content, StatusSds) else AiService.SDS_TYPE_4
        found.append((payload, bits, int(service)))
    return found


SDS_SEEDS = _vector_sds() + _encoded_sds()
LIP_SEEDS = [(p, b) for p, b, ai in SDS_SEEDS if ai == AiService.SDS_TYPE_4 and p[:1] == b"\x0a"]
LIP_SEEDS += [
    encode_location(LocationReport(latitude=-33.9, longitude=151.2, time_elapsed=1)),
    encode_location(
        LocationReport(latitude=50.0, longitude=-4.5, long_report=True, altitude_m=120.0)
    ),
]


def _radio_seeds() -> list[bytes]:
    pei = PeiConnection()
    commands: list[PeiCommand] = [
        SendSds(
            destination=Identity("1234567"), payload=bytes.fromhex("8204010201746573"), bits=64
        ),
        SendSds(destination=Identity("2345678"), payload=b"\x80\x04", bits=16),
        QuerySendCapability(),
        SetServiceProfile(profile=1, layer1=3),
        SelectSdsService(),
        RawCommand(line="ATE0"),
    ]
    seeds = [pei.send(command) for command in commands]
    seeds += [
        b"AT\r\nATI7\r\nAT+CTOM=?\r\nAT+CNUMF?\r\n",
        b"AT+CMGS=1234567,12\r\n8A0\x1b",
        b"AT+CMGS=1234567,8\r\n0 2\r\n\x1a",
    ]
    return seeds


RADIO_SEEDS = _radio_seeds()


# --------------------------------------------------------------------------- PEI, terminal side


def _drain_terminal(pei: PeiConnection, into: list[object]) -> None:
    while (event := pei.next_event()) is not NEED_DATA:
        into.append(event)


def _terminal_events(chunks: list[bytes], max_line: int) -> list[object]:
    pei = PeiConnection(own_identity="9000000", max_line=max_line)
    events: list[object] = []
    for chunk in chunks:
        pei.receive_data(chunk)
        _drain_terminal(pei, events)
    pei.receive_data(b"")
    _drain_terminal(pei, events)
    with pytest.raises(LocalProtocolError):
        pei.receive_data(b"AT\r\n")
    return events


def test_pei_connection() -> None:
    tally = Tally()
    kinds = (
        SdsReceived,
        SdsRejected,
        SendResult,
        CommandCompleted,
        SendCapability,
        UnsolicitedResult,
    )

    @fuzz_settings
    @given(st.data(), mutated(VECTORS + RADIO_SEEDS, PEI_TOKENS), st.sampled_from([64, 8192]))
    def run(data: st.DataObject, stream: bytes, max_line: int) -> None:
        whole = _terminal_events([stream] if stream else [], max_line)
        pieces = _terminal_events(data.draw(chunked(stream)), max_line)
        assert pieces == whole, "events differ between whole and chunked input"
        for event in whole:
            assert isinstance(event, kinds), event
            if isinstance(event, SdsRejected):
                tally.refused(Exception(event.reason))
            elif isinstance(event, SdsReceived):
                tally("decoded")

    run()
    tally.expect("decoded", "refused")


# --------------------------------------------------------------------------- PEI, radio side


def _radio_events(chunks: list[bytes], max_line: int) -> list[object]:
    radio = RadioPei(max_line=max_line)
    events: list[object] = []
    for chunk in [*chunks, b""]:
        radio.receive_data(chunk)
        while (event := radio.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def test_radio_pei() -> None:
    tally = Tally()

    @fuzz_settings
    @given(st.data(), mutated(RADIO_SEEDS * 4 + VECTORS, PEI_TOKENS), st.sampled_from([64, 8192]))
    def run(data: st.DataObject, stream: bytes, max_line: int) -> None:
        whole = _radio_events([stream] if stream else [], max_line)
        pieces = _radio_events(data.draw(chunked(stream)), max_line)
        assert pieces == whole, "events differ between whole and chunked input"
        for event in whole:
            assert isinstance(event, CommandReceived | SdsSubmitted | SdsSubmissionFailed), event
            if isinstance(event, SdsSubmissionFailed):
                tally.refused(Exception(event.reason))
                if event.cme_error is not None:
                    assert RadioPei.error(event.cme_error).startswith(b"+CME ERROR: ")
            elif isinstance(event, SdsSubmitted):
                assert len(event.payload) == (event.bits + 7) // 8
                tally("decoded")

    run()
    tally.expect("decoded", "refused")


# --------------------------------------------------------------------------- euccs-gw decode pei


def _json_events(chunks: list[bytes]) -> list[dict[str, object]]:
    decoder = PeiJsonDecoder()
    events: list[dict[str, object]] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def test_pei_json_decoder() -> None:
    tally = Tally()

    @fuzz_settings
    @given(st.data(), mutated(VECTORS, PEI_TOKENS))
    def run(data: st.DataObject, stream: bytes) -> None:
        whole = _json_events([stream])
        pieces = _json_events(data.draw(chunked(stream)))
        assert pieces == whole, "events differ between whole and chunked input"
        json.dumps(whole)  # the CLI prints them: must be JSON-serialisable
        for event in whole:
            if event["event"] == "decode_error":
                tally.refused(Exception(str(event["reason"])))
            else:
                tally("decoded")

    run()
    tally.expect("decoded", "refused")


# --------------------------------------------------------------------------- SDS-TL, LIP, text


@st.composite
def _sds_inputs(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """Seeds with mutated payload, length or service; or random ones."""
    if draw(st.integers(0, 4)) == 0:
        payload = draw(st.binary(max_size=260))
        service = draw(st.sampled_from([*AiService, 0, 14, 255]))
        return payload, draw(st.integers(-8, len(payload) * 8 + 8)), int(service)
    seed_payload, seed_bits, seed_service = draw(st.sampled_from(SDS_SEEDS))
    payload = draw(mutated([seed_payload], max_size=260, max_mutations=3))
    bits = draw(
        st.sampled_from([seed_bits, len(payload) * 8])
        | st.integers(max(0, seed_bits - 16), seed_bits + 16)
        | st.integers(0, 2100)
    )
    service = draw(st.sampled_from([seed_service, seed_service, *AiService]))
    return payload, bits, int(service)


def test_decode_sds() -> None:
    tally = Tally()

    @fuzz_settings
    @given(_sds_inputs())
    def run(args: tuple[bytes, int, int]) -> None:
        payload, bits, service = args
        try:
            content = decode_sds(payload, bits, service)
        except RemoteProtocolError as exc:
            assert isinstance(exc.reason_code, int), f"no delivery status: {exc}"
            tally.refused(exc)
        else:
            assert content is not None
            tally("decoded")

    run()
    tally.expect("decoded", "refused")


@st.composite
def _lip_inputs(draw: st.DrawFn) -> tuple[bytes, int]:
    seed_payload, _ = draw(st.sampled_from(LIP_SEEDS))
    payload = b"\x0a" + draw(mutated([seed_payload[1:]], max_size=64, max_mutations=4))
    bits = draw(st.integers(0, len(payload) * 8))  # decode_sds guarantees bits <= 8 * len
    return payload, bits


def test_decode_location() -> None:
    tally = Tally()

    @fuzz_settings
    @given(_lip_inputs())
    def run(args: tuple[bytes, int]) -> None:
        payload, bits = args
        try:
            report = decode_location(payload, bits)
        except RemoteProtocolError as exc:
            assert isinstance(exc.reason_code, int), f"no delivery status: {exc}"
            tally.refused(exc)
        else:
            assert isinstance(report, LocationReport)
            tally("decoded")

    run()
    tally.expect("decoded", "refused")


def test_decode_text() -> None:
    tally = Tally()

    @fuzz_settings
    @given(
        st.binary(max_size=200),
        st.integers(0, 127),
        st.none() | st.integers(0, 1700),
    )
    def run(data: bytes, scheme: int, bits: int | None) -> None:
        try:
            text = decode_text(data, scheme, bits)
        except RemoteProtocolError as exc:
            tally.refused(exc)
        else:
            assert isinstance(text, str)
            tally("decoded")

    run()
    tally.expect("decoded", "refused")
