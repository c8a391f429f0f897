"""SDS user data codec: status, type-4 SDS and SDS-TL PDUs (EN 300 392-2 clauses 14 and 29).

:func:`decode_sds` turns the user data of one ``+CTSDSR`` record into an SDS content
event; :func:`encode_sds` does the reverse. Rule 1: no I/O, no clock, no state.
Rule 2: :func:`decode_sds` returns an event or raises
:class:`~protocols.errors.RemoteProtocolError` (with an SDS-TL delivery status as
``reason_code``); :func:`encode_sds` raises
:class:`~protocols.errors.LocalProtocolError` for what cannot be sent.

PID 0x8C (concatenated SDS with SDS-TL, 29.5.14) layout chosen here, following
the ftl/tetra-pei reading documented in protocols.md 2.7: after the SDS-TRANSFER
header and the storage/forward fields come a control octet (PDU type 3 bits = 000,
reference extension flag 1 bit, reference 4 bits), an extension octet when the
flag is set (reference = 4 bits << 8 | extension), total parts (8), sequence (8);
part 1 then carries the embedded protocol identifier, which must be a text PID
(0x02, 0x09, 0x82, 0x89). Every part then carries its text header (timestamp used,
coding scheme, timestamp) and text. Other embedded PIDs are refused with 0x50.
"""

from __future__ import annotations

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra._bits import BitReader, BitWriter
from protocols.tetra._events import (
    MAX_TYPE4_BITS,
    AiService,
    ConcatInfo,
    DeliveryStatus,
    LocationReport,
    OtherSds,
    SdsAck,
    SdsContent,
    SdsReport,
    SdsTimestamp,
    ShortReport,
    StatusSds,
    StorageForward,
    TextSds,
)
from protocols.tetra._lip import LIP_PID, decode_location, encode_location, is_location_report
from protocols.tetra._text import decode_text, encode_text

__all__ = [
    "IMMEDIATE_PIDS",
    "SDS_TL_TEXT_PIDS",
    "SIMPLE_TEXT_PIDS",
    "decode_sds",
    "encode_sds",
    "validity_period_seconds",
]

#: Simple text messaging without SDS-TL (table 29.21).
SIMPLE_TEXT_PIDS = frozenset({0x02, 0x09})
#: Text messaging with SDS-TL (0x82, immediate 0x89, user data header 0x8A, concatenated 0x8C).
SDS_TL_TEXT_PIDS = frozenset({0x82, 0x89, 0x8A, 0x8C})
#: PIDs meaning "display immediately".
IMMEDIATE_PIDS = frozenset({0x09, 0x89})
_UDH_PID, _CONCAT_PID = 0x8A, 0x8C
_TRANSFER, _REPORT, _ACK = 0, 1, 2
# 29.4.3.10 / 14.8.34: SDS-SHORT-REPORT is the status range 0x7C00-0x7FFF (id 011111).
_SHORT_REPORT_ID = 0b011111
# 29.4.3.5 forward address type (table 29.18).
_SNA, _SSI, _TSI, _EXTERNAL, _NO_ADDRESS = 0, 1, 2, 3, 7
_STATUS_BITS: dict[int, int] = {
    AiService.SDS_TYPE_1: 16,
    AiService.SDS_TYPE_2: 32,
    AiService.SDS_TYPE_3: 64,
}
_CORRUPT = DeliveryStatus.CORRUPT_INFORMATION_ELEMENT


def _corrupt(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, reason_code=_CORRUPT)


def validity_period_seconds(code: int) -> float | None:
    """Return the validity period of 5-bit ``code`` in seconds (table 29.25).

    0 means no validity (0.0 s: deliver now or never); 31 means infinite (None).
    """
    if not 0 <= code <= 31:
        raise LocalProtocolError(f"validity period code {code} is outside 0..31.")
    if code == 31:
        return None
    steps = (
        (6, 0, 10),  # 1..6: n x 10 s
        (10, 5, 60),  # 7..10: (n - 5) min
        (16, 10, 600),  # 11..16: (n - 10) x 10 min
        (21, 15, 3600),  # 17..21: (n - 15) h
        (24, 20, 6 * 3600),  # 22..24: (n - 20) x 6 h
        (30, 24, 48 * 3600),  # 25..30: (n - 24) x 48 h
    )
    for last, offset, unit in steps:
        if code <= last:
            return float((code - offset) * unit)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- decode


def decode_sds(payload: bytes, bits: int, ai_service: int = AiService.SDS_TYPE_4) -> SdsContent:
    """Decode SDS user data as received in a ``+CTSDSR`` record.

    Args:
        payload: The user data octets; bits beyond ``bits`` are ignored.
        bits: The authoritative length from the PEI header.
        ai_service: PEI AI service (EN 300 392-5 6.17.3): 9-11 SDS types 1-3,
            12 SDS type 4, 13 status.

    Raises:
        RemoteProtocolError: The user data is malformed or uses an unsupported feature.
    """
    if not 0 <= bits <= MAX_TYPE4_BITS:
        raise _corrupt(f"SDS length {bits} bits is outside 0..{MAX_TYPE4_BITS}.")
    if len(payload) * 8 < bits:
        raise _corrupt(f"SDS user data has {len(payload) * 8} bits, header says {bits}.")
    payload = _trim(payload, bits)
    try:
        return _decode_by_service(payload, bits, ai_service)
    except LocalProtocolError as exc:  # an event refused a decoded value
        raise _corrupt(str(exc)) from exc


def _trim(payload: bytes, bits: int) -> bytes:
    # Pad bits of the last octet are kept: fields never read past ``bits``, and
    # 7-bit text (GSM packing, LSB first) needs the whole last octet.
    return payload[: (bits + 7) // 8]


def _decode_by_service(payload: bytes, bits: int, ai_service: int) -> SdsContent:
    if ai_service == AiService.STATUS:
        if bits != 16:
            raise _corrupt(f"A status is 16 bits, not {bits}.")
        return _decode_status(int.from_bytes(payload, "big"))
    expected = _STATUS_BITS.get(ai_service)
    if expected is not None:
        if bits != expected:
            raise _corrupt(f"SDS type {ai_service - 8} is {expected} bits, not {bits}.")
        return OtherSds(protocol_id=None, payload=payload, bits=bits)
    if ai_service != AiService.SDS_TYPE_4:
        raise RemoteProtocolError(
            f"AI service {ai_service} does not carry SDS.",
            reason_code=DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
        )
    if bits < 8:
        raise _corrupt(f"SDS type 4 needs a protocol identifier, got {bits} bits.")
    return _decode_type4(payload, bits)


def _decode_status(value: int) -> StatusSds | ShortReport:
    # 29.4.3.10 SDS-SHORT-REPORT: PDU id (6) = 011111 | report type (2) | MR (8).
    if value >> 10 == _SHORT_REPORT_ID:
        return ShortReport(report_type=(value >> 8) & 0x3, message_reference=value & 0xFF)
    return StatusSds(status=value)


def _decode_type4(payload: bytes, bits: int) -> SdsContent:
    pid = payload[0]
    if pid in SIMPLE_TEXT_PIDS:
        # 29.5.2 simple text messaging: PID | timestamp used (1) | coding (7) | [ts] | text.
        reader = BitReader(payload, bits, 8)
        return _decode_text_body(reader, pid)
    if pid == LIP_PID and is_location_report(payload, bits):
        return decode_location(payload, bits)
    if pid < 0x80:
        return OtherSds(protocol_id=pid, payload=payload, bits=bits)
    return _decode_sds_tl(payload, bits)


def _decode_sds_tl(payload: bytes, bits: int) -> SdsContent:
    pid = payload[0]
    reader = BitReader(payload, bits, 8)
    message_type = reader.read(4, "message type")
    if message_type == _REPORT:
        return _decode_report(reader, pid)
    if message_type == _ACK:
        # 29.4.2.2 SDS-ACK: type (4) | reserved (4) | delivery status (8) | MR (8).
        reader.read(4, "reserved")
        status = reader.read(8, "delivery status")
        return SdsAck(
            protocol_id=pid,
            delivery_status=status,
            message_reference=reader.read(8, "message reference"),
        )
    if message_type == _TRANSFER and pid in SDS_TL_TEXT_PIDS:
        return _decode_transfer(reader, pid)
    if message_type == _TRANSFER or message_type >= 8:  # 8..15: defined by application
        return OtherSds(protocol_id=pid, payload=payload, bits=bits)
    raise _corrupt(f"SDS-TL message type {message_type} is reserved.")


def _decode_report(reader: BitReader, pid: int) -> SdsReport:
    # 29.4.2.3 SDS-REPORT: type (4) | ack required (1) | reserved (2) | SF control (1) |
    # delivery status (8) | message reference (8) | [SF info] | [user data].
    ack = bool(reader.read(1, "acknowledgement required"))
    reader.read(2, "reserved")
    sf_control = reader.read(1, "storage/forward control")
    status = reader.read(8, "delivery status")
    reference = reader.read(8, "message reference")
    storage = _decode_storage_forward(reader) if sf_control else None
    user_data, _ = reader.rest()
    return SdsReport(
        protocol_id=pid,
        delivery_status=status,
        message_reference=reference,
        ack_required=ack,
        storage_forward=storage,
        user_data=user_data,
    )


def _decode_storage_forward(reader: BitReader) -> StorageForward:
    # 29.4.3.x: validity period (5, table 29.25) | forward address type (3, table 29.18) | address.
    validity = reader.read(5, "validity period")
    kind = reader.read(3, "forward address type")
    address: str | None
    if kind == _SNA:
        address = str(reader.read(8, "forward address SNA"))
    elif kind == _SSI:
        address = str(reader.read(24, "forward address SSI"))
    elif kind == _TSI:
        mcc = reader.read(10, "forward address MCC")
        mnc = reader.read(14, "forward address MNC")
        address = f"{mcc:04d}{mnc:05d}{reader.read(24, 'forward address SSI'):08d}"
    elif kind == _EXTERNAL:
        address = _decode_external_number(reader)
    elif kind == _NO_ADDRESS:
        address = None
    else:
        raise _corrupt(f"Forward address type {kind} is reserved.")
    return StorageForward(
        validity_period=validity, forward_address_type=kind, forward_address=address
    )


def _decode_external_number(reader: BitReader) -> str:
    # External subscriber number: digit count (8) then BCD digits (4 each), padded to octets.
    count = reader.read(8, "external number length")
    if count == 0:
        raise _corrupt("External subscriber number has no digits.")
    digits = [reader.read(4, "external number digit") for _ in range(count + count % 2)]
    if any(d > 9 for d in digits[:count]):
        raise _corrupt("External subscriber number holds a non-decimal digit.")
    return "".join(str(d) for d in digits[:count])


def _decode_timestamp(reader: BitReader) -> SdsTimestamp:
    # 29.5.4.4 timestamp: timeframe (2) | reserved (2) | month (4) | day (5) | hour (5) |
    # minute (6).
    timeframe = reader.read(2, "timeframe type")
    reader.read(2, "reserved")
    return SdsTimestamp(
        timeframe=timeframe,
        month=reader.read(4, "month"),
        day=reader.read(5, "day"),
        hour=reader.read(5, "hour"),
        minute=reader.read(6, "minute"),
    )


def _decode_transfer(reader: BitReader, pid: int) -> TextSds:
    # 29.4.2.4 SDS-TRANSFER: type (4) | delivery report request (2) |
    # service selection / short form report (1) | SF control (1) | MR (8) | [SF info] | user data.
    report_request = reader.read(2, "delivery report request")
    standard_only = reader.read(1, "service selection/short form report")
    sf_control = reader.read(1, "storage/forward control")
    reference = reader.read(8, "message reference")
    storage = _decode_storage_forward(reader) if sf_control else None
    concat = _decode_concat_sds_header(reader) if pid == _CONCAT_PID else None
    return _decode_text_body(
        reader,
        pid,
        message_reference=reference,
        delivery_report_request=report_request,
        short_form_report=not standard_only,  # table 29.22: 0 = use short form report
        storage_forward=storage,
        concat=concat,
    )


def _decode_concat_sds_header(reader: BitReader) -> ConcatInfo:
    reader.read(3, "concatenation PDU type")
    extended = reader.read(1, "reference extension flag")
    reference = reader.read(4, "concatenation reference")
    if extended:
        reference = (reference << 8) | reader.read(8, "concatenation reference extension")
    total = reader.read(8, "total parts")
    sequence = reader.read(8, "sequence number")
    if not 1 <= sequence <= total:
        raise _corrupt(f"Concatenation part {sequence} of {total} is impossible.")
    if sequence == 1:
        embedded = reader.read(8, "embedded protocol identifier")
        if embedded not in SIMPLE_TEXT_PIDS | {0x82, 0x89}:
            raise RemoteProtocolError(
                f"Concatenated SDS embeds PID 0x{embedded:02X}; only text is supported.",
                reason_code=DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
            )
    return ConcatInfo(reference=reference, total=total, sequence=sequence)


def _decode_udh(reader: BitReader) -> ConcatInfo | None:
    # GSM-style user data header (PID 0x8A): length (8) then IEs; IEI 0x00 = 8-bit
    # reference (IEL 3), IEI 0x08 = 16-bit reference (IEL 4); other IEs are skipped.
    length = reader.read(8, "user data header length")
    end = reader.pos + 8 * length
    concat = None
    while reader.pos < end:
        iei = reader.read(8, "UDH IEI")
        iel = reader.read(8, "UDH IEL")
        if reader.pos + 8 * iel > end:
            raise _corrupt("User data header element overruns the header.")
        if iei in (0x00, 0x08) and iel == (3 if iei == 0x00 else 4):
            reference = reader.read(8 * (iel - 2), "UDH reference")
            total = reader.read(8, "UDH total parts")
            sequence = reader.read(8, "UDH sequence number")
            if not 1 <= sequence <= total:
                raise _corrupt(f"Concatenation part {sequence} of {total} is impossible.")
            concat = ConcatInfo(reference=reference, total=total, sequence=sequence)
        else:
            reader.read(8 * iel, "UDH element")
    return concat


def _decode_text_body(reader: BitReader, pid: int, **fields: object) -> TextSds:
    # 29.5.4 text user data: timestamp used (1) | text coding scheme (7) | [timestamp (24)].
    timestamp_used = reader.read(1, "timestamp used")
    coding = reader.read(7, "text coding scheme")
    timestamp = _decode_timestamp(reader) if timestamp_used else None
    concat = fields.pop("concat", None)
    if pid == _UDH_PID:
        concat = _decode_udh(reader)
    data, count = reader.rest_octets()
    return TextSds(
        protocol_id=pid,
        text=decode_text(data, coding, count),
        coding_scheme=coding,
        immediate=pid in IMMEDIATE_PIDS,
        timestamp=timestamp,
        concat=concat,  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- encode


def encode_sds(content: SdsContent) -> tuple[bytes, int]:
    """Encode SDS content; return the user data and its length in bits.

    Status and SDS-SHORT-REPORT give 16 bits (AI service 13); everything else is
    SDS type-4 user data starting with its protocol identifier.

    Raises:
        LocalProtocolError: The content cannot be encoded (or exceeds 2047 bits).
    """
    if isinstance(content, StatusSds):
        if content.status >> 10 == _SHORT_REPORT_ID:
            raise LocalProtocolError(
                f"Status 0x{content.status:04X} is in the SDS-SHORT-REPORT range 0x7C00-0x7FFF."
            )
        return content.status.to_bytes(2, "big"), 16
    if isinstance(content, ShortReport):
        value = (_SHORT_REPORT_ID << 10) | (content.report_type << 8) | content.message_reference
        return value.to_bytes(2, "big"), 16
    if isinstance(content, LocationReport):
        return encode_location(content)
    if isinstance(content, OtherSds):
        if (content.bits + 7) // 8 != len(content.payload):
            raise LocalProtocolError(
                f"bits={content.bits} does not fit {len(content.payload)} bytes."
            )
        return content.payload, content.bits
    writer = BitWriter()
    writer.write(content.protocol_id, 8)
    if isinstance(content, SdsReport):
        _encode_report(writer, content)
    elif isinstance(content, SdsAck):
        writer.write(_ACK, 4)
        writer.write(0, 4)
        writer.write(content.delivery_status, 8)
        writer.write(content.message_reference, 8)
    slack = _encode_text(writer, content) if isinstance(content, TextSds) else 0
    data, bits = writer.to_bytes()
    bits -= slack
    if bits > MAX_TYPE4_BITS:
        raise LocalProtocolError(
            f"SDS of {bits} bits exceeds {MAX_TYPE4_BITS} bits.",
            reason_code=DeliveryStatus.MESSAGE_TOO_LONG,
        )
    return data, bits


def _encode_report(writer: BitWriter, report: SdsReport) -> None:
    writer.write(_REPORT, 4)
    writer.write(int(report.ack_required), 1)
    writer.write(0, 2)
    writer.write(int(report.storage_forward is not None), 1)
    writer.write(report.delivery_status, 8)
    writer.write(report.message_reference, 8)
    if report.storage_forward is not None:
        _encode_storage_forward(writer, report.storage_forward)
    writer.write_bytes(report.user_data)


def _encode_storage_forward(writer: BitWriter, storage: StorageForward) -> None:
    kind, address = storage.forward_address_type, storage.forward_address
    writer.write(storage.validity_period, 5)
    writer.write(kind, 3)
    if kind == _NO_ADDRESS:
        if address is not None:
            raise LocalProtocolError("Forward address type 7 (none) cannot carry an address.")
        return
    if kind not in (_SNA, _SSI, _TSI, _EXTERNAL):
        raise LocalProtocolError(f"Forward address type {kind} is reserved.")
    if address is None:
        raise LocalProtocolError(f"Forward address type {kind} needs a forward_address.")
    if kind == _SNA:
        writer.write(int(address), 8, "forward address SNA")
    elif kind == _SSI:
        writer.write(int(address), 24, "forward address SSI")
    elif kind == _TSI:
        if len(address) != 17:
            raise LocalProtocolError(f"TSI {address!r} must be 17 digits (MCC 4, MNC 5, SSI 8).")
        writer.write(int(address[:4]), 10, "MCC")
        writer.write(int(address[4:9]), 14, "MNC")
        writer.write(int(address[9:]), 24, "SSI")
    else:
        writer.write(len(address), 8, "external number length")
        for digit in address + "0" * (len(address) % 2):
            writer.write(int(digit), 4)


def _check_text_fields(text: TextSds) -> None:
    pid = text.protocol_id
    if pid not in SIMPLE_TEXT_PIDS | SDS_TL_TEXT_PIDS:
        raise LocalProtocolError(f"PID 0x{pid:02X} is not a text protocol identifier.")
    if text.immediate != (pid in IMMEDIATE_PIDS):
        raise LocalProtocolError(f"immediate={text.immediate} contradicts PID 0x{pid:02X}.")
    if pid in SIMPLE_TEXT_PIDS and (
        text.message_reference is not None
        or text.delivery_report_request
        or text.storage_forward is not None
        or text.concat is not None
        or text.short_form_report
    ):
        raise LocalProtocolError(f"Simple text PID 0x{pid:02X} has no SDS-TL header fields.")
    if pid == _CONCAT_PID and text.concat is None:
        raise LocalProtocolError("PID 0x8C needs concatenation information.")
    if text.concat is not None and pid not in (_UDH_PID, _CONCAT_PID):
        raise LocalProtocolError(f"PID 0x{pid:02X} cannot carry a concatenation part.")


def _encode_text(writer: BitWriter, text: TextSds) -> int:
    """Append a text PDU; return how many pad bits end its last octet (7-bit text)."""
    _check_text_fields(text)
    if text.message_reference is not None:  # every SDS-TL PID (TextSds enforces it)
        writer.write(_TRANSFER, 4)
        writer.write(text.delivery_report_request, 2)
        writer.write(int(not text.short_form_report), 1)
        writer.write(int(text.storage_forward is not None), 1)
        writer.write(text.message_reference, 8)
        if text.storage_forward is not None:
            _encode_storage_forward(writer, text.storage_forward)
    if text.protocol_id == _CONCAT_PID:
        _encode_concat_sds_header(writer, text)
    writer.write(int(text.timestamp is not None), 1)
    writer.write(text.coding_scheme, 7)
    if text.timestamp is not None:
        stamp = text.timestamp
        writer.write(stamp.timeframe, 2)
        writer.write(0, 2)
        writer.write(stamp.month, 4)
        writer.write(stamp.day, 5)
        writer.write(stamp.hour, 5)
        writer.write(stamp.minute, 6)
    if text.protocol_id == _UDH_PID:
        _encode_udh(writer, text.concat)
    data, bits = encode_text(text.text, text.coding_scheme)
    writer.write_bytes(data)  # whole octets: GSM 7-bit packing fills them LSB first
    return len(data) * 8 - bits


def _encode_udh(writer: BitWriter, concat: ConcatInfo | None) -> None:
    if concat is None:
        writer.write(0, 8)  # empty user data header
        return
    wide = concat.reference > 0xFF
    writer.write(6 if wide else 5, 8)
    writer.write(0x08 if wide else 0x00, 8)
    writer.write(4 if wide else 3, 8)
    writer.write(concat.reference, 16 if wide else 8)
    writer.write(concat.total, 8)
    writer.write(concat.sequence, 8)


def _encode_concat_sds_header(writer: BitWriter, text: TextSds) -> None:
    concat = text.concat
    assert concat is not None  # checked by _check_text_fields
    if concat.reference > 0xFFF:
        raise LocalProtocolError(f"PID 0x8C reference {concat.reference} exceeds 12 bits.")
    if concat.sequence > concat.total:
        raise LocalProtocolError(f"Part {concat.sequence} of {concat.total} is impossible.")
    writer.write(0, 3)
    extended = concat.reference > 0xF
    writer.write(int(extended), 1)
    writer.write(concat.reference >> 8 if extended else concat.reference, 4)
    if extended:
        writer.write(concat.reference & 0xFF, 8)
    writer.write(concat.total, 8)
    writer.write(concat.sequence, 8)
    if concat.sequence == 1:
        writer.write(0x82, 8)  # embedded PID: text messaging
