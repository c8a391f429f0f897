"""Sans-IO TETRA stack: PEI (EN 300 392-5), SDS-TL (EN 300 392-2 cl. 29), LIP, status.

Pure codecs: no I/O, no asyncio, no clock (time is an argument). The asyncio
adapter feeds :class:`PeiConnection` with the serial bytes and writes what
``send`` returns; the radio simulator does the same with :class:`RadioPei`.
"""

from protocols.tetra._concat import IncompleteMessage, Reassembler, split_text
from protocols.tetra._dedup import DuplicateFilter, Retransmission, transfer_fields
from protocols.tetra._events import (
    MAX_TYPE4_BITS,
    AiService,
    CommandCompleted,
    CommandReceived,
    ConcatInfo,
    DeliveryStatus,
    Identity,
    LocationReport,
    OtherSds,
    PeiCommand,
    QuerySendCapability,
    RawCommand,
    SdsAck,
    SdsContent,
    SdsReceived,
    SdsRejected,
    SdsReport,
    SdsSubmissionFailed,
    SdsSubmitted,
    SdsTimestamp,
    SelectSdsService,
    SendCapability,
    SendResult,
    SendSds,
    SetServiceProfile,
    ShortReport,
    StatusSds,
    StorageForward,
    TextSds,
    UnsolicitedResult,
)
from protocols.tetra._jsonl import JsonEvent, PeiJsonDecoder
from protocols.tetra._lip import decode_location, encode_location
from protocols.tetra._pei import NEED_DATA, PeiConnection, PeiEvent, PeiSentinel
from protocols.tetra._radio import RadioEvent, RadioPei
from protocols.tetra._sds import decode_sds, encode_sds, validity_period_seconds
from protocols.tetra._text import CODING_NAMES, choose_coding_scheme, decode_text, encode_text

__all__ = [
    "CODING_NAMES",
    "MAX_TYPE4_BITS",
    "NEED_DATA",
    "AiService",
    "CommandCompleted",
    "CommandReceived",
    "ConcatInfo",
    "DeliveryStatus",
    "DuplicateFilter",
    "Identity",
    "IncompleteMessage",
    "JsonEvent",
    "LocationReport",
    "OtherSds",
    "PeiCommand",
    "PeiConnection",
    "PeiEvent",
    "PeiJsonDecoder",
    "PeiSentinel",
    "QuerySendCapability",
    "RadioEvent",
    "RadioPei",
    "RawCommand",
    "Reassembler",
    "Retransmission",
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
    "choose_coding_scheme",
    "decode_location",
    "decode_sds",
    "decode_text",
    "encode_location",
    "encode_sds",
    "encode_text",
    "split_text",
    "transfer_fields",
    "validity_period_seconds",
]
