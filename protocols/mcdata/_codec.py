"""Binary codecs of the TS 24.282 clause 15 SDS messages: pure ``decode_*`` / ``encode_*``.

Layouts (octets; IEIs and formats from protocols.md §5.2, Table 15.1.2.1-1):

* SDS SIGNALLING PAYLOAD: Message type (V 1), Date and time (V 5), Conversation ID
  (V 16), Message ID (V 16), then optional IEs: 0x21 InReplyTo message ID (TV 17),
  0x22 Application ID (TV 2), 0x8- SDS disposition request type (TV 1, half octet),
  0x7D Extended application ID, 0x7E User location, 0x51 Sender MCData user ID,
  0x53 Application metadata container (all TLV-E).
* DATA PAYLOAD: Message type (V 1), Number of payloads (V 1), then that many Payload IEs.
  **Inferred** (no source found): each Payload is TLV-E with IEI 0x78 whose value is
  the content type (1 octet) followed by the data.
* SDS NOTIFICATION: Message type (V 1), SDS disposition notification type (V 1), Date
  and time (V 5), Conversation ID (V 16), Message ID (V 16), then optional 0x22
  Application ID, 0x7D Extended application ID, 0x51 Sender MCData user ID. **Inferred**:
  the notification layout mirrors the signalling payload; no table was found.

Rule: decoders return a message or raise :class:`~protocols.errors.RemoteProtocolError`;
any other exception escaping them is a bug. Encoders raise
:class:`~protocols.errors.LocalProtocolError`. No I/O, no clock.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from typing import TypeVar

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.mcdata._ies import IeFormat, IeSpec, Reader, tlv_e, tv
from protocols.mcdata._messages import (
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
)

__all__ = [
    "decode_data_payload",
    "decode_notification",
    "decode_sds_message",
    "decode_signalling",
    "encode_data_payload",
    "encode_notification",
    "encode_sds_message",
    "encode_signalling",
    "peek_message_type",
]

IEI_IN_REPLY_TO = 0x21
IEI_APPLICATION_ID = 0x22
IEI_DISPOSITION = 0x8  # half-octet IEI (high nibble)
IEI_EXTENDED_APPLICATION_ID = 0x7D
IEI_USER_LOCATION = 0x7E
IEI_SENDER = 0x51
IEI_APPLICATION_METADATA = 0x53
#: Payload IE of the DATA PAYLOAD (**inferred**).
IEI_PAYLOAD = 0x78

_SIGNALLING_IES = {
    IEI_IN_REPLY_TO: IeSpec("InReplyTo message ID", IeFormat.TV, 16),
    IEI_APPLICATION_ID: IeSpec("Application ID", IeFormat.TV, 1),
    IEI_EXTENDED_APPLICATION_ID: IeSpec("Extended application ID", IeFormat.TLV_E),
    IEI_USER_LOCATION: IeSpec("User location", IeFormat.TLV_E),
    IEI_SENDER: IeSpec("Sender MCData user ID", IeFormat.TLV_E),
    IEI_APPLICATION_METADATA: IeSpec("Application metadata container", IeFormat.TLV_E),
}
_NOTIFICATION_IES = {
    iei: _SIGNALLING_IES[iei]
    for iei in (IEI_APPLICATION_ID, IEI_EXTENDED_APPLICATION_ID, IEI_SENDER)
}
_HALF_OCTET_IES = {IEI_DISPOSITION: "SDS disposition request type"}

_E = TypeVar("_E", bound=enum.IntEnum)
_T = TypeVar("_T")


def _code(kind: type[_E], value: int) -> _E | int:
    """Map a wire code onto ``kind``; unknown codes pass through as ``int``."""
    try:
        return kind(value)
    except ValueError:
        return value


def _build(message: str, factory: Callable[[], _T]) -> _T:
    """Construct a decoded message, turning validation failures into remote errors."""
    try:
        return factory()
    except LocalProtocolError as exc:
        raise RemoteProtocolError(f"{message}: {exc}") from exc


def _expect_type(reader: Reader, expected: MessageType) -> None:
    code = reader.byte("Message type")
    if code != expected:
        raise reader.error(f"message type 0x{code:02X} is not {expected.name}")


def _blob(values: dict[int, bytes], iei: int, reader: Reader) -> bytes | None:
    value = values.get(iei)
    if value is not None and not value:
        raise reader.error(f"{_SIGNALLING_IES[iei].name} IE is empty")
    return value


def _sender(values: dict[int, bytes], reader: Reader) -> McdataId | None:
    raw = _blob(values, IEI_SENDER, reader)
    if raw is None:
        return None
    try:
        return McdataId(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise reader.error(f"Sender MCData user ID is not UTF-8 ({exc.reason})") from exc


def _uuid(raw: bytes | None) -> uuid.UUID | None:
    return None if raw is None else uuid.UUID(bytes=raw)


def _octet(raw: bytes | None) -> int | None:
    return None if raw is None else raw[0]


def peek_message_type(message: bytes) -> MessageType | int:
    """Return the Message type of an encoded clause 15 message.

    Raises:
        RemoteProtocolError: The message is empty.
    """
    if not message:
        raise RemoteProtocolError("MCData message is empty: no Message type.")
    return _code(MessageType, message[0])


def decode_signalling(message: bytes) -> SdsSignalling:
    """Decode an SDS SIGNALLING PAYLOAD message.

    Raises:
        RemoteProtocolError: The message is malformed.
    """
    reader = Reader(message, "SDS SIGNALLING PAYLOAD")
    _expect_type(reader, MessageType.SDS_SIGNALLING_PAYLOAD)
    date_time = int.from_bytes(reader.take(5, "Date and time"), "big")
    conversation = uuid.UUID(bytes=reader.take(16, "Conversation ID"))
    message_id = uuid.UUID(bytes=reader.take(16, "Message ID"))
    values, halves = reader.optional_ies(_SIGNALLING_IES, _HALF_OCTET_IES)
    disposition = halves.get(IEI_DISPOSITION, DispositionRequest.NONE)
    return _build(
        reader.message,
        lambda: SdsSignalling(
            date_time=date_time,
            conversation_id=conversation,
            message_id=message_id,
            in_reply_to=_uuid(values.get(IEI_IN_REPLY_TO)),
            application_id=_octet(values.get(IEI_APPLICATION_ID)),
            disposition_request=_code(DispositionRequest, disposition),
            extended_application_id=_blob(values, IEI_EXTENDED_APPLICATION_ID, reader),
            user_location=_blob(values, IEI_USER_LOCATION, reader),
            sender=_sender(values, reader),
            application_metadata=_blob(values, IEI_APPLICATION_METADATA, reader),
        ),
    )


def encode_signalling(signalling: SdsSignalling) -> bytes:
    """Encode an SDS SIGNALLING PAYLOAD message (optional IEs in table order).

    Raises:
        LocalProtocolError: A value does not fit its IE.
    """
    s = signalling
    out = bytearray([MessageType.SDS_SIGNALLING_PAYLOAD])
    out += s.date_time.to_bytes(5, "big") + s.conversation_id.bytes + s.message_id.bytes
    if s.in_reply_to is not None:
        out += tv(IEI_IN_REPLY_TO, s.in_reply_to.bytes)
    if s.application_id is not None:
        out += tv(IEI_APPLICATION_ID, bytes([s.application_id]))
    if s.disposition_request != DispositionRequest.NONE:
        out.append(IEI_DISPOSITION << 4 | s.disposition_request)
    optional = (
        (IEI_EXTENDED_APPLICATION_ID, s.extended_application_id),
        (IEI_USER_LOCATION, s.user_location),
        (IEI_SENDER, None if s.sender is None else s.sender.encode("utf-8")),
        (IEI_APPLICATION_METADATA, s.application_metadata),
    )
    for iei, value in optional:
        if value is not None:
            out += tlv_e(iei, value, _SIGNALLING_IES[iei].name)
    return bytes(out)


def decode_data_payload(message: bytes) -> DataPayload:
    """Decode a DATA PAYLOAD message.

    Raises:
        RemoteProtocolError: The message is malformed (including bad UTF-8 in text payloads).
    """
    reader = Reader(message, "DATA PAYLOAD")
    _expect_type(reader, MessageType.DATA_PAYLOAD)
    count = reader.byte("Number of payloads")
    if count == 0:
        raise reader.error("Number of payloads is 0")
    payloads = [_decode_payload(reader, index) for index in range(count)]
    if reader.remaining:
        raise reader.error(f"{reader.remaining} octets after the last of {count} payloads")
    return _build(reader.message, lambda: DataPayload(payloads=tuple(payloads)))


def _decode_payload(reader: Reader, index: int) -> Payload:
    iei = reader.byte(f"Payload {index + 1} IEI")
    if iei != IEI_PAYLOAD:
        raise reader.error(f"Payload {index + 1} has IEI 0x{iei:02X}, expected 0x{IEI_PAYLOAD:02X}")
    length = reader.uint16(f"Payload {index + 1} length")
    if length == 0:
        raise reader.error(f"Payload {index + 1} has no content type")
    value = reader.take(length, f"Payload {index + 1}")
    content_type = _code(ContentType, value[0])
    return _build(
        f"{reader.message} payload {index + 1}",
        lambda: Payload(content_type=content_type, data=value[1:]),
    )


def encode_data_payload(data: DataPayload) -> bytes:
    """Encode a DATA PAYLOAD message.

    Raises:
        LocalProtocolError: A payload does not fit its IE.
    """
    out = bytearray([MessageType.DATA_PAYLOAD, len(data.payloads)])
    for payload in data.payloads:
        out += tlv_e(IEI_PAYLOAD, bytes([payload.content_type]) + payload.data, "Payload")
    return bytes(out)


def decode_notification(message: bytes) -> SdsNotification:
    """Decode an SDS NOTIFICATION message.

    Raises:
        RemoteProtocolError: The message is malformed.
    """
    reader = Reader(message, "SDS NOTIFICATION")
    _expect_type(reader, MessageType.SDS_NOTIFICATION)
    notification = _code(NotificationType, reader.byte("SDS disposition notification type"))
    date_time = int.from_bytes(reader.take(5, "Date and time"), "big")
    conversation = uuid.UUID(bytes=reader.take(16, "Conversation ID"))
    message_id = uuid.UUID(bytes=reader.take(16, "Message ID"))
    values, _ = reader.optional_ies(_NOTIFICATION_IES, {})
    return _build(
        reader.message,
        lambda: SdsNotification(
            notification=notification,
            date_time=date_time,
            conversation_id=conversation,
            message_id=message_id,
            application_id=_octet(values.get(IEI_APPLICATION_ID)),
            extended_application_id=_blob(values, IEI_EXTENDED_APPLICATION_ID, reader),
            sender=_sender(values, reader),
        ),
    )


def encode_notification(notification: SdsNotification) -> bytes:
    """Encode an SDS NOTIFICATION message.

    Raises:
        LocalProtocolError: A value does not fit its IE.
    """
    n = notification
    out = bytearray([MessageType.SDS_NOTIFICATION, n.notification])
    out += n.date_time.to_bytes(5, "big") + n.conversation_id.bytes + n.message_id.bytes
    if n.application_id is not None:
        out += tv(IEI_APPLICATION_ID, bytes([n.application_id]))
    if n.extended_application_id is not None:
        out += tlv_e(IEI_EXTENDED_APPLICATION_ID, n.extended_application_id, "Extended app ID")
    if n.sender is not None:
        out += tlv_e(IEI_SENDER, n.sender.encode("utf-8"), "Sender MCData user ID")
    return bytes(out)


def decode_sds_message(signalling: bytes, data: bytes | None) -> SdsMessage | SdsNotification:
    """Decode the binary bodies of one MCData SDS SIP MESSAGE.

    Args:
        signalling: The ``application/vnd.3gpp.mcdata-signalling`` body: an SDS
            SIGNALLING PAYLOAD or an SDS NOTIFICATION.
        data: The ``application/vnd.3gpp.mcdata-payload`` body (DATA PAYLOAD); required
            with a signalling payload, forbidden with a notification.

    Raises:
        RemoteProtocolError: A body is malformed, missing or unexpected.
    """
    kind = peek_message_type(signalling)
    if kind == MessageType.SDS_NOTIFICATION:
        if data is not None:
            raise RemoteProtocolError("SDS NOTIFICATION must not come with a DATA PAYLOAD.")
        return decode_notification(signalling)
    if kind != MessageType.SDS_SIGNALLING_PAYLOAD:
        raise RemoteProtocolError(f"Message type 0x{kind:02X} is not an SDS signalling message.")
    if data is None:
        raise RemoteProtocolError("SDS SIGNALLING PAYLOAD without its DATA PAYLOAD.")
    return SdsMessage(signalling=decode_signalling(signalling), data=decode_data_payload(data))


def encode_sds_message(message: SdsMessage | SdsNotification) -> tuple[bytes, bytes | None]:
    """Encode one SDS (or notification) into its signalling body and data body (or None).

    Raises:
        LocalProtocolError: A value does not fit its IE.
    """
    if isinstance(message, SdsNotification):
        return encode_notification(message), None
    return encode_signalling(message.signalling), encode_data_payload(message.data)
