"""Decoded forms of the TS 24.282 clause 15 SDS messages (frozen, keyword-only dataclasses).

* :class:`SdsSignalling`: SDS SIGNALLING PAYLOAD (Table 15.1.2.1-1).
* :class:`DataPayload` with :class:`Payload` items: DATA PAYLOAD.
* :class:`SdsNotification`: SDS NOTIFICATION (disposition notification).
* :class:`SdsMessage`: a signalling payload with its data payload, i.e. one standalone SDS.

This module does no I/O and never reads the clock: ``date_time`` is an argument.
Constructing a message with an impossible value raises
:class:`~protocols.errors.LocalProtocolError`; the decoders turn that into
:class:`~protocols.errors.RemoteProtocolError`.

Code points marked **inferred** below were not found in a source (protocols.md §5/§8);
they are our best reading of TS 24.282 and are kept in one place so they can be fixed.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import NewType

from protocols.errors import LocalProtocolError

__all__ = [
    "DATE_TIME_MAX",
    "NTP_UNIX_OFFSET",
    "ContentType",
    "DataPayload",
    "DispositionRequest",
    "McdataId",
    "MessageType",
    "NotificationType",
    "Payload",
    "SdsMessage",
    "SdsNotification",
    "SdsSignalling",
    "date_time_from_unix",
    "unix_from_date_time",
]

#: An MCData user or group identity (a URI such as ``sip:alice@mcx.example.eu``).
McdataId = NewType("McdataId", str)

#: Date and time is a 5-octet value (TS 24.282 15.2.8): at most 2**40 - 1.
DATE_TIME_MAX = (1 << 40) - 1

#: Seconds from 1900-01-01 to 1970-01-01 UTC. **Inferred**: we read the 5-octet Date and
#: time as seconds since 1900-01-01 00:00 UTC (NTP era, widened to 40 bits); protocols.md §8
#: lists this coding as not found. Only the two helpers below depend on it.
NTP_UNIX_OFFSET = 2_208_988_800

_MAX_TLVE = 0xFFFF


def date_time_from_unix(unix_seconds: int) -> int:
    """Return the Date and time IE value for a UNIX time (seconds); see NTP_UNIX_OFFSET.

    Raises:
        LocalProtocolError: The time does not fit the 5-octet field.
    """
    value = unix_seconds + NTP_UNIX_OFFSET
    if not 0 <= value <= DATE_TIME_MAX:
        raise LocalProtocolError(f"UNIX time {unix_seconds} does not fit Date and time.")
    return value


def unix_from_date_time(value: int) -> int:
    """Return the UNIX time (seconds, may be negative) of a Date and time IE value."""
    return value - NTP_UNIX_OFFSET


class MessageType(enum.IntEnum):
    """Message type IE (TS 24.282 15.2.2); unknown codes stay plain ``int``."""

    #: SDS SIGNALLING PAYLOAD (``00000001``, protocols.md §5.2 via ethanxdd/MCDataIWF).
    SDS_SIGNALLING_PAYLOAD = 0x01
    #: FD SIGNALLING PAYLOAD (**inferred**; not decoded here).
    FD_SIGNALLING_PAYLOAD = 0x02
    #: DATA PAYLOAD (``00000011``, protocols.md §5.2 via ethanxdd/MCDataIWF).
    DATA_PAYLOAD = 0x03
    #: SDS NOTIFICATION (**inferred**).
    SDS_NOTIFICATION = 0x05


class DispositionRequest(enum.IntEnum):
    """SDS disposition request type (TS 24.282 15.2.3, half-octet value).

    ``NONE`` is our name for "no IE": the encoder omits the IE (value 0 is
    **inferred** to mean no disposition). Other values 4-15 pass through as ``int``.
    """

    #: No disposition requested.
    NONE = 0
    #: Delivery notification requested.
    DELIVERY = 1
    #: Read notification requested.
    READ = 2
    #: Delivery and read notifications requested.
    DELIVERY_AND_READ = 3


class NotificationType(enum.IntEnum):
    """SDS disposition notification type (TS 24.282 15.2.5; code points **inferred**)."""

    #: The message could not be delivered (failure indication).
    UNDELIVERED = 1
    #: The message was delivered to the MCData client.
    DELIVERED = 2
    #: The message was read (rendered to the user).
    READ = 3
    #: The message was delivered and read (one combined notification).
    DELIVERED_AND_READ = 4


class ContentType(enum.IntEnum):
    """Payload content type (TS 24.282 15.2.13); unknown codes stay plain ``int``."""

    #: UTF-8 text (ethanxdd/MCDataIWF).
    TEXT = 1
    #: Opaque binary data (ethanxdd/MCDataIWF).
    BINARY = 2
    #: UTF-8 hyperlinks (ethanxdd/MCDataIWF).
    HYPERLINKS = 3
    #: UTF-8 file URL (ethanxdd/MCDataIWF).
    FILEURL = 4
    #: Location (**inferred** code point; data kept as bytes).
    LOCATION = 5
    #: Enhanced status operational value (**inferred** code point; data kept as bytes).
    ENHANCED_STATUS = 6


#: Content types whose data must be UTF-8.
UTF8_CONTENT = frozenset({ContentType.TEXT, ContentType.HYPERLINKS, ContentType.FILEURL})


def _check_octet(value: int, name: str, maximum: int = 0xFF) -> None:
    if not 0 <= value <= maximum:
        raise LocalProtocolError(f"{name}={value} is outside 0..{maximum}.")


def _check_uuid(value: uuid.UUID, name: str) -> None:
    if not isinstance(value, uuid.UUID):
        raise LocalProtocolError(f"{name}={value!r} is not a UUID.")


def _check_blob(value: bytes | None, name: str) -> None:
    if value is not None and not 1 <= len(value) <= _MAX_TLVE:
        raise LocalProtocolError(f"{name} must be 1..{_MAX_TLVE} octets, not {len(value)}.")


def _check_id(value: str | None, name: str) -> None:
    if value is None:
        return
    if not value or value != value.strip() or "\x00" in value:
        raise LocalProtocolError(f"{name}={value!r} is not a valid MCData ID.")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{name}={value!r} is not encodable as UTF-8.") from exc
    _check_blob(encoded, name)


@dataclass(frozen=True, kw_only=True)
class SdsSignalling:
    """SDS SIGNALLING PAYLOAD (TS 24.282 Table 15.1.2.1-1).

    Attributes:
        date_time: Date and time IE value (5 octets; see :func:`date_time_from_unix`).
        conversation_id: Conversation ID (UUID, 16 octets).
        message_id: Message ID (UUID, 16 octets).
        in_reply_to: InReplyTo message ID (IEI 0x21, TV 17).
        application_id: Application ID (IEI 0x22, TV 2, one octet value).
        disposition_request: SDS disposition request type (IEI 0x8-, half octet).
        extended_application_id: Extended application ID (IEI 0x7D, TLV-E), raw octets.
        user_location: User location (IEI 0x7E, TLV-E), raw octets.
        sender: Sender MCData user ID (IEI 0x51, TLV-E), UTF-8.
        application_metadata: Application metadata container (IEI 0x53, TLV-E), raw.
    """

    date_time: int
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    in_reply_to: uuid.UUID | None = None
    application_id: int | None = None
    disposition_request: DispositionRequest | int = DispositionRequest.NONE
    extended_application_id: bytes | None = None
    user_location: bytes | None = None
    sender: McdataId | None = None
    application_metadata: bytes | None = None

    def __post_init__(self) -> None:
        _check_octet(self.date_time, "date_time", DATE_TIME_MAX)
        _check_uuid(self.conversation_id, "conversation_id")
        _check_uuid(self.message_id, "message_id")
        if self.in_reply_to is not None:
            _check_uuid(self.in_reply_to, "in_reply_to")
        if self.application_id is not None:
            _check_octet(self.application_id, "application_id")
        _check_octet(self.disposition_request, "disposition_request", 0x0F)
        _check_blob(self.extended_application_id, "extended_application_id")
        _check_blob(self.user_location, "user_location")
        _check_id(self.sender, "sender")
        _check_blob(self.application_metadata, "application_metadata")


@dataclass(frozen=True, kw_only=True)
class Payload:
    """One payload of a DATA PAYLOAD: content type and data.

    Text-like content types (TEXT, HYPERLINKS, FILEURL) must hold UTF-8 data.
    """

    content_type: ContentType | int
    data: bytes

    def __post_init__(self) -> None:
        _check_octet(self.content_type, "content_type")
        if len(self.data) > _MAX_TLVE - 1:
            raise LocalProtocolError(f"Payload data of {len(self.data)} octets is too long.")
        if self.content_type in UTF8_CONTENT:
            try:
                self.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LocalProtocolError(
                    f"{ContentType(self.content_type).name} payload is not UTF-8: {exc}."
                ) from exc

    @classmethod
    def from_text(cls, text: str, content_type: ContentType = ContentType.TEXT) -> Payload:
        """Return a payload carrying ``text`` encoded as UTF-8."""
        return cls(content_type=content_type, data=text.encode("utf-8"))

    @property
    def text(self) -> str | None:
        """The data as text for text-like content types, else None."""
        if self.content_type in UTF8_CONTENT:
            return self.data.decode("utf-8")
        return None


@dataclass(frozen=True, kw_only=True)
class DataPayload:
    """DATA PAYLOAD: one to 255 payloads."""

    payloads: tuple[Payload, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.payloads) <= 0xFF:
            raise LocalProtocolError(
                f"DATA PAYLOAD needs 1..255 payloads, not {len(self.payloads)}."
            )


@dataclass(frozen=True, kw_only=True)
class SdsNotification:
    """SDS NOTIFICATION: a disposition notification about an earlier SDS.

    Attributes:
        notification: Disposition notification type (unknown codes stay ``int``).
        date_time: Date and time IE value of the notification.
        conversation_id: Conversation ID of the SDS being notified about.
        message_id: Message ID of the SDS being notified about (the reference).
        application_id: Application ID (IEI 0x22, TV 2).
        extended_application_id: Extended application ID (IEI 0x7D, TLV-E).
        sender: Sender MCData user ID (IEI 0x51, TLV-E; **inferred** to be allowed here).
    """

    notification: NotificationType | int
    date_time: int
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    application_id: int | None = None
    extended_application_id: bytes | None = None
    sender: McdataId | None = None

    def __post_init__(self) -> None:
        _check_octet(self.notification, "notification")
        _check_octet(self.date_time, "date_time", DATE_TIME_MAX)
        _check_uuid(self.conversation_id, "conversation_id")
        _check_uuid(self.message_id, "message_id")
        if self.application_id is not None:
            _check_octet(self.application_id, "application_id")
        _check_blob(self.extended_application_id, "extended_application_id")
        _check_id(self.sender, "sender")


@dataclass(frozen=True, kw_only=True)
class SdsMessage:
    """One standalone SDS: the SDS SIGNALLING PAYLOAD and its DATA PAYLOAD."""

    signalling: SdsSignalling
    data: DataPayload
