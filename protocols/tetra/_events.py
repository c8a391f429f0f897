"""Events and commands of the TETRA PEI stack (sans-IO): what the codecs return and take.

Two layers:

* **SDS content** (what the type-4 user data, or a 16-bit status, means):
  :class:`TextSds`, :class:`SdsReport`, :class:`SdsAck`, :class:`LocationReport`,
  :class:`StatusSds`, :class:`ShortReport`, :class:`OtherSds`. Produced by
  ``decode_sds`` and consumed by ``encode_sds``; they carry no addressing.
* **PEI stream** (ETSI EN 300 392-5 AT framing): the terminal side
  (``PeiConnection``) yields :class:`SdsReceived`, :class:`SdsRejected`,
  :class:`SendResult`, :class:`CommandCompleted`, :class:`SendCapability`,
  :class:`UnsolicitedResult`; the radio side (``RadioPei``, for the simulator)
  yields :class:`CommandReceived` and :class:`SdsSubmitted`.

This module must not do I/O and must not read the clock. All events are frozen,
keyword-only dataclasses validated in ``__post_init__``: constructing an event
with an impossible value raises :class:`~protocols.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NewType

from protocols.errors import LocalProtocolError

__all__ = [
    "MAX_TYPE4_BITS",
    "AiService",
    "CommandCompleted",
    "CommandReceived",
    "ConcatInfo",
    "DeliveryStatus",
    "Identity",
    "LocationReport",
    "OtherSds",
    "PeiCommand",
    "QuerySendCapability",
    "RawCommand",
    "SdsAck",
    "SdsContent",
    "SdsReceived",
    "SdsRejected",
    "SdsReport",
    "SdsSubmissionFailed",
    "SdsSubmitted",
    "SdsTimestamp",
    "SelectSdsService",
    "SendCapability",
    "SendResult",
    "SendSds",
    "SetServiceProfile",
    "ShortReport",
    "StatusSds",
    "StorageForward",
    "TextSds",
    "UnsolicitedResult",
]

#: An identity exactly as the radio prints it: ISSI/GSSI (up to 8 digits) or a TSI
#: (MCC, MNC, SSI; usually 17 digits). Decimal digits only.
Identity = NewType("Identity", str)

#: EN 300 392-2 14.8.52: user-defined data 4 is at most 2047 bits including the PID.
MAX_TYPE4_BITS = 2047


class AiService(enum.IntEnum):
    """PEI <AI service> values used for SDS (EN 300 392-5 6.17.3)."""

    #: SDS type 1, 16 bits.
    SDS_TYPE_1 = 9
    #: SDS type 2, 32 bits.
    SDS_TYPE_2 = 10
    #: SDS type 3, 64 bits.
    SDS_TYPE_3 = 11
    #: SDS type 4, 0..2047 bits, starts with a protocol identifier.
    SDS_TYPE_4 = 12
    #: Pre-coded status, 16 bits.
    STATUS = 13


class DeliveryStatus(enum.IntEnum):
    """SDS-TL delivery status (EN 300 392-2 table 29.16); unknown codes stay plain ``int``."""

    #: Receipt acknowledged by destination.
    RECEIVED = 0x00
    #: Receipt report acknowledgement.
    RECEIPT_REPORT_ACK = 0x01
    #: Consumed by destination.
    CONSUMED = 0x02
    #: Consumed report acknowledgement.
    CONSUMED_REPORT_ACK = 0x03
    #: Message forwarded to external network.
    FORWARDED_EXTERNAL = 0x04
    #: Sent to group, acknowledgements prevented.
    SENT_TO_GROUP = 0x05
    #: Concatenation part receipt acknowledged.
    CONCATENATION_PART_ACK = 0x06
    #: Congestion, message stored by the SwMI.
    CONGESTION = 0x20
    #: Message stored by the SwMI.
    STORED = 0x21
    #: Destination not reachable, message stored.
    NOT_REACHABLE_STORED = 0x22
    #: Network overload.
    NETWORK_OVERLOAD = 0x40
    #: Service permanently not available on the BS.
    SERVICE_PERMANENTLY_UNAVAILABLE = 0x41
    #: Service temporarily not available on the BS.
    SERVICE_TEMPORARILY_UNAVAILABLE = 0x42
    #: Source is not authorized for SDS.
    SOURCE_NOT_AUTHORIZED = 0x43
    #: Destination is not authorized for SDS.
    DESTINATION_NOT_AUTHORIZED = 0x44
    #: Unknown destination, gateway or service centre address.
    UNKNOWN_DESTINATION = 0x45
    #: Unknown forward address.
    UNKNOWN_FORWARD_ADDRESS = 0x46
    #: Group address with individual service.
    GROUP_ADDRESS_WITH_INDIVIDUAL_SERVICE = 0x47
    #: Validity period expired, message not received by far end.
    VALIDITY_EXPIRED_NOT_RECEIVED = 0x48
    #: Validity period expired, message not consumed by far end.
    VALIDITY_EXPIRED_NOT_CONSUMED = 0x49
    #: Delivery failed.
    DELIVERY_FAILED = 0x4A
    #: Destination not registered on the system.
    DESTINATION_NOT_REGISTERED = 0x4B
    #: Destination queue full.
    DESTINATION_QUEUE_FULL = 0x4C
    #: Message too long.
    MESSAGE_TOO_LONG = 0x4D
    #: Destination does not support SDS-TL data transfer service.
    DESTINATION_NO_SDS_TL = 0x4E
    #: Destination host not connected.
    DESTINATION_HOST_NOT_CONNECTED = 0x4F
    #: Protocol not supported.
    PROTOCOL_NOT_SUPPORTED = 0x50
    #: Data coding scheme not supported.
    CODING_SCHEME_NOT_SUPPORTED = 0x51
    #: Destination memory full, message discarded.
    DESTINATION_MEMORY_FULL_DISCARDED = 0x52
    #: Destination not accepting SDS messages.
    DESTINATION_NOT_ACCEPTING = 0x53
    #: Concatenated message too long.
    CONCATENATED_TOO_LONG = 0x54
    #: Destination address administratively prohibited.
    DESTINATION_PROHIBITED = 0x56
    #: Cannot route to external network.
    CANNOT_ROUTE_EXTERNAL = 0x57
    #: Unknown external subscriber number.
    UNKNOWN_EXTERNAL_NUMBER = 0x58
    #: Negative report acknowledgement.
    NEGATIVE_REPORT_ACK = 0x59
    #: Destination not reachable, message delivery failed.
    DESTINATION_NOT_REACHABLE = 0x5A
    #: Text distribution error.
    TEXT_DISTRIBUTION_ERROR = 0x5B
    #: Corrupt information element.
    CORRUPT_INFORMATION_ELEMENT = 0x5C
    #: Not all concatenation parts received.
    CONCATENATION_INCOMPLETE = 0x5D
    #: Destination engaged in another service (SwMI).
    DESTINATION_ENGAGED_SWMI = 0x5E
    #: Destination engaged in another service (destination).
    DESTINATION_ENGAGED = 0x5F


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LocalProtocolError(f"{name}={value!r} is outside {low}..{high}.")


def _check_identity(name: str, value: str) -> None:
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 24):
        raise LocalProtocolError(f"{name}={value!r} is not a TETRA identity (1-24 digits).")


# --------------------------------------------------------------------------- SDS content


@dataclass(frozen=True, kw_only=True)
class SdsTimestamp:
    """SDS-TL timestamp (EN 300 392-2 29.5.4.4): no year, no seconds.

    ``timeframe``: 0 application dependent, 1 UTC, 2 local time, 3 local daylight saving.
    """

    timeframe: int
    month: int
    day: int
    hour: int
    minute: int

    def __post_init__(self) -> None:
        _check_int("timeframe", self.timeframe, 0, 3)
        _check_int("month", self.month, 0, 15)
        _check_int("day", self.day, 0, 31)
        _check_int("hour", self.hour, 0, 31)
        _check_int("minute", self.minute, 0, 63)


@dataclass(frozen=True, kw_only=True)
class StorageForward:
    """SDS-TL storage/forward control (EN 300 392-2 29.4.3.x, tables 29.18 and 29.25).

    ``validity_period`` is the 5-bit code (0 none, 31 infinite); ``forward_address_type``
    0 SNA, 1 SSI, 2 TSI, 3 external subscriber number, 7 none; ``forward_address`` is
    the address as decimal digits (None for type 7).
    """

    validity_period: int
    forward_address_type: int = 7
    forward_address: str | None = None

    def __post_init__(self) -> None:
        _check_int("validity_period", self.validity_period, 0, 31)
        _check_int("forward_address_type", self.forward_address_type, 0, 7)
        if self.forward_address is not None:
            _check_identity("forward_address", self.forward_address)


@dataclass(frozen=True, kw_only=True)
class ConcatInfo:
    """One part of a concatenated text (PID 0x8A user data header, or PID 0x8C)."""

    reference: int
    total: int
    sequence: int

    def __post_init__(self) -> None:
        _check_int("reference", self.reference, 0, 0xFFFF)
        _check_int("total", self.total, 1, 255)
        _check_int("sequence", self.sequence, 1, 255)


@dataclass(frozen=True, kw_only=True)
class TextSds:
    """A text message: simple (PID 0x02/0x09) or SDS-TL SDS-TRANSFER (0x82/0x89/0x8A).

    ``message_reference`` is None exactly when the PID has no SDS-TL header.
    ``concat`` is set on a single part of a concatenated message; a reassembled
    message has ``concat=None`` and the first part's message reference.
    """

    protocol_id: int
    text: str
    coding_scheme: int = 1
    immediate: bool = False
    message_reference: int | None = None
    delivery_report_request: int = 0
    short_form_report: bool = False
    storage_forward: StorageForward | None = None
    timestamp: SdsTimestamp | None = None
    concat: ConcatInfo | None = None

    def __post_init__(self) -> None:
        _check_int("protocol_id", self.protocol_id, 0, 255)
        _check_int("coding_scheme", self.coding_scheme, 0, 127)
        _check_int("delivery_report_request", self.delivery_report_request, 0, 3)
        if self.message_reference is not None:
            _check_int("message_reference", self.message_reference, 0, 255)
        if self.protocol_id >= 0x80 and self.message_reference is None:
            raise LocalProtocolError(
                f"PID 0x{self.protocol_id:02X} uses SDS-TL and needs a message_reference."
            )


@dataclass(frozen=True, kw_only=True)
class SdsReport:
    """SDS-TL SDS-REPORT (message type 1)."""

    protocol_id: int
    delivery_status: int
    message_reference: int
    ack_required: bool = False
    storage_forward: StorageForward | None = None
    user_data: bytes = b""

    def __post_init__(self) -> None:
        _check_int("protocol_id", self.protocol_id, 0x80, 0xFF)
        _check_int("delivery_status", self.delivery_status, 0, 255)
        _check_int("message_reference", self.message_reference, 0, 255)


@dataclass(frozen=True, kw_only=True)
class SdsAck:
    """SDS-TL SDS-ACK (message type 2)."""

    protocol_id: int
    delivery_status: int
    message_reference: int

    def __post_init__(self) -> None:
        _check_int("protocol_id", self.protocol_id, 0x80, 0xFF)
        _check_int("delivery_status", self.delivery_status, 0, 255)
        _check_int("message_reference", self.message_reference, 0, 255)


@dataclass(frozen=True, kw_only=True)
class LocationReport:
    """LIP short or long location report (PID 0x0A, TS 100 392-18-1).

    Latitude/longitude are None for the all-zero "no fix" sentinel. ``velocity_kmh``
    and ``direction_deg`` are None when not known. ``time_elapsed`` is the 2-bit code
    of a short report (None when the report carries no time elapsed).
    ``reason`` is the reason for sending (table 6.94), or None when the report carries
    user-defined data instead (then ``user_data`` holds it).
    """

    latitude: float | None
    longitude: float | None
    position_error: int = 7
    velocity_kmh: float | None = None
    direction_deg: float | None = None
    reason: int | None = 0
    user_data: int | None = None
    time_elapsed: int | None = None
    long_report: bool = False
    altitude_m: float | None = None
    acknowledgement_request: bool = False

    def __post_init__(self) -> None:
        if (self.latitude is None) != (self.longitude is None):
            raise LocalProtocolError("latitude and longitude must both be set or both be None.")
        if self.latitude is not None and not -90.0 <= self.latitude <= 90.0:
            raise LocalProtocolError(f"latitude={self.latitude!r} is outside -90..90.")
        if self.longitude is not None and not -180.0 <= self.longitude <= 180.0:
            raise LocalProtocolError(f"longitude={self.longitude!r} is outside -180..180.")
        _check_int("position_error", self.position_error, 0, 7)
        if self.reason is not None:
            _check_int("reason", self.reason, 0, 255)
        if self.user_data is not None:
            _check_int("user_data", self.user_data, 0, 255)
        if self.time_elapsed is not None:
            _check_int("time_elapsed", self.time_elapsed, 0, 3)


@dataclass(frozen=True, kw_only=True)
class StatusSds:
    """Pre-coded status (AI service 13, EN 300 392-2 14.8.34); 0 = emergency."""

    status: int

    def __post_init__(self) -> None:
        _check_int("status", self.status, 0, 0xFFFF)


@dataclass(frozen=True, kw_only=True)
class ShortReport:
    """SDS-SHORT-REPORT carried as a status value 0x7C00-0x7FFF (EN 300 392-2 29.4.3.10).

    ``report_type``: 0 protocol or coding not supported, 1 destination memory full,
    2 message received, 3 message consumed.
    """

    report_type: int
    message_reference: int

    def __post_init__(self) -> None:
        _check_int("report_type", self.report_type, 0, 3)
        _check_int("message_reference", self.message_reference, 0, 255)


@dataclass(frozen=True, kw_only=True)
class OtherSds:
    """Any other SDS payload, kept as bytes (``bits`` is the exact length)."""

    protocol_id: int | None
    payload: bytes
    bits: int

    def __post_init__(self) -> None:
        if self.protocol_id is not None:
            _check_int("protocol_id", self.protocol_id, 0, 255)
        _check_int("bits", self.bits, 0, MAX_TYPE4_BITS)


SdsContent = TextSds | SdsReport | SdsAck | LocationReport | StatusSds | ShortReport | OtherSds


# --------------------------------------------------------------------------- PEI, terminal side


@dataclass(frozen=True, kw_only=True)
class SdsReceived:
    """A ``+CTSDSR`` record with its user data, decoded (EN 300 392-5 6.13.x)."""

    source: Identity
    destination: Identity
    ai_service: int
    content: SdsContent
    source_type: int = 0
    destination_type: int = 0
    end_to_end_encryption: bool = False

    def __post_init__(self) -> None:
        _check_identity("source", self.source)
        _check_identity("destination", self.destination)


@dataclass(frozen=True, kw_only=True)
class SdsRejected:
    """A ``+CTSDSR`` record that could not be decoded.

    Whatever could be read is kept so that the caller can log it and, where the
    sender and message reference are known, answer with a negative SDS-REPORT
    carrying ``reason_code`` (a :class:`DeliveryStatus`). ``message_reference`` is
    set only for an SDS-TRANSFER: a corrupt SDS-REPORT, SDS-ACK or PDU of a
    reserved message type is never answered with a report.
    """

    reason: str
    reason_code: int = DeliveryStatus.CORRUPT_INFORMATION_ELEMENT
    source: Identity | None = None
    destination: Identity | None = None
    protocol_id: int | None = None
    message_reference: int | None = None
    raw: str = ""


@dataclass(frozen=True, kw_only=True)
class SendResult:
    """``+CMGS: <SDS instance>[,<SDS status>[,<message reference>]]``.

    Without status it is the set result of an ``AT+CMGS`` (accepted by the radio);
    with status it is the unsolicited outcome (4 = sent OK, 5 = send failed).
    """

    sds_instance: int
    sds_status: int | None = None
    message_reference: int | None = None


@dataclass(frozen=True, kw_only=True)
class CommandCompleted:
    """The final result code of the outstanding command: ``OK``, ``ERROR`` or ``+CME ERROR``.

    ``command`` is the command line it answers (e.g. ``"AT+CMGS=1001,104"``), or ""
    if no command was outstanding; ``cme_error`` is the PEI error code, if given.
    """

    command: str
    ok: bool
    cme_error: int | None = None


@dataclass(frozen=True, kw_only=True)
class SendCapability:
    """Answer to ``AT+CMGS=?``: the largest SDS type-4 PDU the radio accepts, in bits."""

    max_pdu_bits: int


@dataclass(frozen=True, kw_only=True)
class UnsolicitedResult:
    """Any other result line (``+CTICN: ...``, ``+CREG: ...``, information text)."""

    name: str
    value: str


# --------------------------------------------------------------------------- PEI, radio side


@dataclass(frozen=True, kw_only=True)
class CommandReceived:
    """An AT command line received by the radio side, e.g. name ``"+CTSP"``, args ``"1,3,130"``.

    ``query`` is True for ``AT+X?``; ``test`` for ``AT+X=?``; a bare ``AT`` has name "".
    """

    name: str
    args: str = ""
    query: bool = False
    test: bool = False


@dataclass(frozen=True, kw_only=True)
class SdsSubmitted:
    """``AT+CMGS=<dest>,<bits>`` followed by the hex user data and Ctrl-Z."""

    destination: Identity
    bits: int
    payload: bytes


@dataclass(frozen=True, kw_only=True)
class SdsSubmissionFailed:
    """An ``AT+CMGS`` submission the radio side must refuse with ``+CME ERROR: <cme_error>``.

    32 = user data decoding failed (bad hex, length mismatch, too long);
    35 = syntax error in the ``AT+CMGS=<dest>,<bits>`` line (then there is no data mode).
    """

    reason: str
    cme_error: int = 32
    destination: Identity | None = None
    bits: int | None = None


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, kw_only=True)
class SetServiceProfile:
    """``AT+CTSP=<profile>,<layer1>[,<layer2>]`` (EN 300 392-5 6.14.x)."""

    profile: int
    layer1: int
    layer2: int | None = None


@dataclass(frozen=True, kw_only=True)
class SelectSdsService:
    """``AT+CTSDS=<AI service>,<called party identity type>[,<area>,<priority>,<e2ee>]``."""

    ai_service: int = AiService.SDS_TYPE_4
    identity_type: int = 0
    area: int = 0
    access_priority: int = 0
    end_to_end_encryption: int = 0


@dataclass(frozen=True, kw_only=True)
class QuerySendCapability:
    """``AT+CMGS=?``: ask the radio for its maximum SDS PDU size."""


@dataclass(frozen=True, kw_only=True)
class SendSds:
    """``AT+CMGS=<destination>,<bits>`` then the user data in hex and Ctrl-Z."""

    destination: Identity
    payload: bytes
    bits: int = field(default=-1)

    def __post_init__(self) -> None:
        _check_identity("destination", self.destination)
        if self.bits == -1:
            object.__setattr__(self, "bits", len(self.payload) * 8)
        _check_int("bits", self.bits, 1, MAX_TYPE4_BITS)
        if (self.bits + 7) // 8 != len(self.payload):
            raise LocalProtocolError(
                f"bits={self.bits} does not fit a payload of {len(self.payload)} bytes."
            )


@dataclass(frozen=True, kw_only=True)
class RawCommand:
    """Any other command line, sent as is (``"AT"``, ``"AT+CNUMF?"``). Must start with AT."""

    line: str

    def __post_init__(self) -> None:
        if not self.line[:2].upper() == "AT" or any(c in self.line for c in "\r\n\x1a"):
            raise LocalProtocolError(f"{self.line!r} is not a single AT command line.")


PeiCommand = SetServiceProfile | SelectSdsService | QuerySendCapability | SendSds | RawCommand
