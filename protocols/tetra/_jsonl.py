"""PEI capture -> JSON Lines events, the contract of ``euccs-gw decode pei``.

The vocabulary (``sds_text``, ``sds_status``, ``sds_location``, ``sds_report``,
``sds_ack``, ``sds_short_report``, ``sds_data``, ``send_result``,
``decode_error``) is fixed by ``shared/conformance/README.md``. Rule 1: no I/O:
the CLI reads stdin and prints. Rule 2: never raises on input; every malformed
record is a ``decode_error``. PID 0x8A/0x8C parts are reassembled without timeout;
parts still missing at :meth:`PeiJsonDecoder.close` become ``decode_error``.
"""

from __future__ import annotations

from protocols.tetra._concat import IncompleteMessage, Reassembler
from protocols.tetra._events import (
    LocationReport,
    OtherSds,
    SdsAck,
    SdsContent,
    SdsReceived,
    SdsRejected,
    SdsReport,
    SdsTimestamp,
    SendResult,
    ShortReport,
    StatusSds,
    TextSds,
)
from protocols.tetra._pei import NEED_DATA, PeiConnection, PeiEvent

__all__ = ["JsonEvent", "PeiJsonDecoder"]

JsonEvent = dict[str, object]


def _timestamp(stamp: SdsTimestamp | None) -> JsonEvent | None:
    if stamp is None:
        return None
    return {
        "timeframe": stamp.timeframe,
        "month": stamp.month,
        "day": stamp.day,
        "hour": stamp.hour,
        "minute": stamp.minute,
    }


def _text(text: TextSds) -> JsonEvent:
    return {
        "event": "sds_text",
        "protocol_id": text.protocol_id,
        "text": text.text,
        "coding_scheme": text.coding_scheme,
        "immediate": text.immediate,
        "message_reference": text.message_reference,
        "delivery_report_request": text.delivery_report_request,
        "timestamp": _timestamp(text.timestamp),
    }


def _location(report: LocationReport) -> JsonEvent:
    return {
        "event": "sds_location",
        "latitude": report.latitude,
        "longitude": report.longitude,
        "position_error": report.position_error,
        "velocity_kmh": report.velocity_kmh,
        "direction_deg": report.direction_deg,
        "reason": report.reason,
        "user_data": report.user_data,
        "time_elapsed": report.time_elapsed,
        "long_report": report.long_report,
        "altitude_m": report.altitude_m,
    }


def _content(content: SdsContent) -> JsonEvent:
    if isinstance(content, TextSds):
        return _text(content)
    if isinstance(content, LocationReport):
        return _location(content)
    if isinstance(content, StatusSds):
        return {"event": "sds_status", "status": content.status}
    if isinstance(content, ShortReport):
        return {
            "event": "sds_short_report",
            "report_type": content.report_type,
            "message_reference": content.message_reference,
        }
    if isinstance(content, SdsReport):
        return {
            "event": "sds_report",
            "protocol_id": content.protocol_id,
            "delivery_status": content.delivery_status,
            "message_reference": content.message_reference,
            "ack_required": content.ack_required,
        }
    if isinstance(content, SdsAck):
        return {
            "event": "sds_ack",
            "protocol_id": content.protocol_id,
            "delivery_status": content.delivery_status,
            "message_reference": content.message_reference,
        }
    assert isinstance(content, OtherSds)
    return {
        "event": "sds_data",
        "protocol_id": content.protocol_id,
        "payload_hex": content.payload.hex().upper(),
        "bits": content.bits,
    }


def _error(rejected: SdsRejected | IncompleteMessage) -> JsonEvent:
    return {
        "event": "decode_error",
        "reason": rejected.reason,
        "reason_code": rejected.reason_code,
        "source": rejected.source,
        "destination": rejected.destination,
    }


class PeiJsonDecoder:
    """Decode a PEI byte stream into the conformance JSON event dictionaries."""

    def __init__(self) -> None:
        self._pei = PeiConnection()
        self._reassembler = Reassembler(timeout=float("inf"), max_pending=1024)

    def feed(self, data: bytes) -> list[JsonEvent]:
        """Feed a chunk of the stream; return the events it completed."""
        if not data:
            return []
        self._pei.receive_data(data)
        return self._drain()

    def close(self) -> list[JsonEvent]:
        """End the stream; return the last events (incomplete messages as errors)."""
        self._pei.receive_data(b"")
        events = self._drain()
        events.extend(_error(gone) for gone in self._reassembler.flush())
        return events

    def _drain(self) -> list[JsonEvent]:
        events: list[JsonEvent] = []
        while (event := self._pei.next_event()) is not NEED_DATA:
            converted = self._convert(event)
            if converted is not None:
                events.append(converted)
        events.extend(_error(gone) for gone in self._reassembler.handle_timer(0.0))
        return events

    def _convert(self, event: PeiEvent) -> JsonEvent | None:
        if isinstance(event, SdsReceived):
            content: SdsContent | None = event.content
            if isinstance(content, TextSds):
                content = self._reassembler.add(event.source, event.destination, content, 0.0)
            if content is None:
                return None
            return {
                **_content(content),
                "source": event.source,
                "destination": event.destination,
            }
        if isinstance(event, SdsRejected):
            return _error(event)
        if isinstance(event, SendResult):
            return {
                "event": "send_result",
                "sds_instance": event.sds_instance,
                "sds_status": event.sds_status,
                "message_reference": event.message_reference,
            }
        return None
