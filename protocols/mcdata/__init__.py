"""Sans-IO MCData SDS codecs (3GPP TS 24.282 clause 15 and Annex D.1).

Pure functions from bytes to frozen dataclasses and back: the binary SDS SIGNALLING
PAYLOAD, DATA PAYLOAD and SDS NOTIFICATION messages, and the mcdatainfo XML body.
No I/O, no asyncio, no clock (date and time is always an argument). Decoders return a
message or raise :class:`~protocols.errors.RemoteProtocolError`; encoders raise
:class:`~protocols.errors.LocalProtocolError`. SIP framing lives in :mod:`protocols.sip`.
"""

from protocols.mcdata._codec import (
    decode_data_payload,
    decode_notification,
    decode_sds_message,
    decode_signalling,
    encode_data_payload,
    encode_notification,
    encode_sds_message,
    encode_signalling,
    peek_message_type,
)
from protocols.mcdata._info import (
    MCDATA_INFO_NAMESPACE,
    McdataInfo,
    RequestType,
    decode_mcdata_info,
    encode_mcdata_info,
)
from protocols.mcdata._messages import (
    DATE_TIME_MAX,
    NTP_UNIX_OFFSET,
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
    unix_from_date_time,
)

#: MIME type of the mcdatainfo XML body (TS 24.282 Annex E).
MIME_MCDATA_INFO = "application/vnd.3gpp.mcdata-info+xml"
#: MIME type of the binary signalling body (SDS SIGNALLING PAYLOAD / SDS NOTIFICATION).
MIME_MCDATA_SIGNALLING = "application/vnd.3gpp.mcdata-signalling"
#: MIME type of the binary DATA PAYLOAD body.
MIME_MCDATA_PAYLOAD = "application/vnd.3gpp.mcdata-payload"

__all__ = [
    "DATE_TIME_MAX",
    "MCDATA_INFO_NAMESPACE",
    "MIME_MCDATA_INFO",
    "MIME_MCDATA_PAYLOAD",
    "MIME_MCDATA_SIGNALLING",
    "NTP_UNIX_OFFSET",
    "ContentType",
    "DataPayload",
    "DispositionRequest",
    "McdataId",
    "McdataInfo",
    "MessageType",
    "NotificationType",
    "Payload",
    "RequestType",
    "SdsMessage",
    "SdsNotification",
    "SdsSignalling",
    "date_time_from_unix",
    "decode_data_payload",
    "decode_mcdata_info",
    "decode_notification",
    "decode_sds_message",
    "decode_signalling",
    "encode_data_payload",
    "encode_mcdata_info",
    "encode_notification",
    "encode_sds_message",
    "encode_signalling",
    "peek_message_type",
    "unix_from_date_time",
]
