"""The audit trail: one structured log line per message state change.

Lines go through structlog (JSON with :func:`gateway.logs.configure_logging`) with the event
``audit.message`` and ``logger="audit"``, carrying the message id, origin, destination,
priority, the new state and the hop (the gateway where the state was reached). Message text
is left out unless ``include_payload_in_audit`` is set (exercises): then a ``text`` key is
added for text messages. Alert acknowledgements are ``audit.alert_ack`` lines; inputs refused
before custody (no message id) are ``audit.refused`` lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from gateway.api.recorder import MessageRecord, StateChange

__all__ = ["AuditTrail"]


class AuditTrail:
    """Writes audit lines for one gateway.

    Args:
        gateway: Name of the gateway (``hop`` is where a state was reached: this gateway).
        include_payload: Add message text to the lines (exercises only).
    """

    def __init__(self, *, gateway: str, include_payload: bool = False) -> None:
        self.gateway = gateway
        self.include_payload = include_payload
        self.log = structlog.get_logger("audit").bind(logger="audit", gateway=gateway)

    def message(self, record: MessageRecord, change: StateChange) -> None:
        """One line for one state change of one message."""
        extra: dict[str, Any] = {
            k: v for k, v in change.detail.items() if k in ("partner", "reason", "confirmation")
        }
        if self.include_payload and record.text is not None:
            extra["text"] = record.text
        self.log.info(
            "audit.message",
            message_id=record.message_id.hex(),
            origin=record.origin,
            destination=record.destination,
            priority=record.priority,
            body=record.body,
            state=change.state,
            hop=change.gateway,
            direction=record.direction,
            **extra,
        )

    def acknowledged(self, alert_id: bytes, by: str, *, first: bool) -> None:
        """One line for an acknowledgement of an emergency alert by a control room."""
        self.log.info("audit.alert_ack", alert_id=alert_id.hex(), by=by, first=first)

    def refused(self, kind: str, fields: dict[str, Any]) -> None:
        """One line for a radio input refused or rejected before it got a message id."""
        self.log.info(
            "audit.refused",
            message_id=None,
            state=kind,
            hop=self.gateway,
            adapter=fields.get("adapter"),
            source=fields.get("source"),
            reason=fields.get("reason"),
        )
