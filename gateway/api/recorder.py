"""The control-room API's view of one gateway, built from its observations.

:class:`Recorder` is a gateway observer (``gateway.observers``). From each
:class:`~gateway.node.Observation` it

* keeps a bounded in-memory log of recent messages and their state changes
  (:class:`MessageLog`), with hop traces where the gateway saw them;
* keeps the emergency alerts the control room must see and their acknowledgements
  (:class:`AlertBook`), merged with the gateway's :class:`~gateway.presence.EmergencyLedger`;
* publishes events to the live stream (:class:`EventHub`);
* writes the audit trail (:class:`~gateway.api.audit.AuditTrail`);
* updates the counters and latency histograms of ``/metrics``.

Observers run synchronously inside the gateway's tasks: nothing here blocks or awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.api.audit import AuditTrail
from gateway.api.metrics import LabelledHistograms
from protocols.schema import v1

if TYPE_CHECKING:
    from gateway.node import Gateway, Observation

__all__ = [
    "AlertBook",
    "AlertRecord",
    "EventHub",
    "MessageLog",
    "MessageRecord",
    "Recorder",
    "StateChange",
    "iso",
    "priority_name",
]

#: State changes kept per message (a message retransmitted forever must not grow without end).
_MAX_STATES = 64
#: Alerts kept (outstanding and recently acknowledged).
_MAX_ALERTS = 1000
#: Events buffered per stream subscriber before it is dropped as too slow.
_SUBSCRIBER_BUFFER = 1000
_RECEIPT_STATES = {
    "DELIVERY_STATE_ACCEPTED": "accepted",
    "DELIVERY_STATE_FORWARDED": "forwarded",
    "DELIVERY_STATE_DELIVERED": "delivered",
    "DELIVERY_STATE_READ": "read",
    "DELIVERY_STATE_FAILED": "failed",
}

#: Gateway names per nation that get hop latency series of their own (instances of one
#: gateway share a name; a country runs a few gateways at most).
HOP_GATEWAYS_PER_NATION = 8


def is_printable_name(name: str) -> bool:
    """A short printable name, fit for a metric label."""
    return 0 < len(name) <= 64 and name.isprintable()


#: What the event stream says about an adapter's link state (``LinkState`` values); the
#: adapter's own reason stays in the log (``adapter.link``).
_ADAPTER_LINK_REASONS = {
    "transient_disconnect": "the adapter's link is down; reconnecting",
    "bad_credentials": "the adapter's credentials or permissions were refused",
    "unknown_error": "the adapter's session failed; reconnecting",
    "stopped": "the adapter was stopped",
}


def iso(seconds: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds (``2025-01-31T12:00:00.123Z``)."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def priority_name(value: str | int) -> str:
    """``PRIORITY_IMMINENT_PERIL`` or 4 -> ``imminent_peril`` / ``emergency``."""
    if isinstance(value, int):
        try:
            value = v1.Priority.Name(value)  # type: ignore[arg-type]
        except ValueError:
            return str(value)
    return value.removeprefix("PRIORITY_").lower()


#: Put in a stream's queue by :meth:`EventHub.recheck`: check the client again, send nothing.
RECHECK: dict[str, Any] = {"type": "_recheck"}


@dataclass(frozen=True, kw_only=True)
class StateChange:
    """One state a message reached, where and when."""

    state: str
    at: float
    gateway: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {"state": self.state, "at": iso(self.at), "gateway": self.gateway, **self.detail}


@dataclass(slots=True)
class Hop:
    """One gateway a message went through (times in Unix seconds, formatted on output)."""

    gateway: str
    nation: str
    received_at: float | None
    forwarded_at: float | None

    def as_json(self) -> dict[str, Any]:
        """JSON form for the API (ISO 8601 times)."""
        return {
            "gateway": self.gateway,
            "nation": self.nation,
            "received_at": iso(self.received_at),
            "forwarded_at": iso(self.forwarded_at),
        }


@dataclass(kw_only=True)
class MessageRecord:
    """What this gateway knows about one message.

    ``direction`` is ``outbound`` (accepted here from a radio or a control room) or
    ``inbound`` (received from a partner gateway); ``unknown`` if only a receipt was seen.
    """

    message_id: bytes
    first_seen: float
    direction: str = "unknown"
    origin: str | None = None
    destination: str | None = None
    destination_kind: str | None = None
    priority: str | None = None
    body: str | None = None
    summary: str | None = None
    created_at: float | None = None
    source: str | None = None
    states: list[StateChange] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    #: Message text, kept only when the audit trail includes payloads.
    text: str | None = None
    delivered_counted: bool = False

    @property
    def state(self) -> str | None:
        """The latest state."""
        return self.states[-1].state if self.states else None

    def summary_json(self) -> dict[str, Any]:
        """JSON form in the message log."""
        return {
            "message_id": self.message_id.hex(),
            "time": iso(self.first_seen),
            "direction": self.direction,
            "origin": self.origin,
            "destination": self.destination,
            "priority": self.priority,
            "summary": self.summary,
            "state": self.state,
            "states": [s.as_json() for s in self.states],
        }

    def detail_json(self) -> dict[str, Any]:
        """JSON form of one message: the log entry plus its hop trace."""
        return {**self.summary_json(), "body": self.body, "trace": [h.as_json() for h in self.hops]}


class MessageLog:
    """Recent messages, newest last; the oldest are dropped beyond ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._records: OrderedDict[bytes, MessageRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, message_id: bytes) -> MessageRecord | None:
        """The record of ``message_id``, if still in the log."""
        return self._records.get(message_id)

    def record(self, message_id: bytes, now: float) -> MessageRecord:
        """The record of ``message_id``, created if new."""
        found = self._records.get(message_id)
        if found is None:
            found = self._records[message_id] = MessageRecord(message_id=message_id, first_seen=now)
            while len(self._records) > self.size:
                self._records.popitem(last=False)
        return found

    def recent(self, limit: int) -> list[MessageRecord]:
        """Up to ``limit`` most recent messages, newest first."""
        return list(itertools.islice(reversed(self._records.values()), limit))


@dataclass(kw_only=True)
class AlertRecord:
    """An emergency alert shown to the control room."""

    alert_id: bytes
    raised_at: float
    expires_at: float
    direction: str
    origin: str | None
    target: dict[str, str]
    location: dict[str, float] | None
    gateway: str
    acknowledgements: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON form for the API."""
        first = self.acknowledgements[0] if self.acknowledgements else None
        return {
            "alert_id": self.alert_id.hex(),
            "message_id": self.alert_id.hex(),
            "raised_at": iso(self.raised_at),
            "expires_at": iso(self.expires_at),
            "direction": self.direction,
            "origin": self.origin,
            "target": dict(self.target),
            "location": dict(self.location) if self.location else None,
            "gateway": self.gateway,
            "acknowledged": first is not None,
            "acknowledged_by": first["by"] if first else None,
            "acknowledged_at": iso(first["at"]) if first else None,
        }


class AlertBook:
    """Emergency alerts seen by this gateway, bounded, with who acknowledged them."""

    def __init__(self, max_alerts: int = _MAX_ALERTS) -> None:
        self.max_alerts = max_alerts
        self._alerts: OrderedDict[bytes, AlertRecord] = OrderedDict()

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._alerts

    def get(self, alert_id: bytes) -> AlertRecord | None:
        """The alert ``alert_id``, if known."""
        return self._alerts.get(alert_id)

    def add(self, alert: AlertRecord) -> bool:
        """Record an alert; False if it was known already."""
        if alert.alert_id in self._alerts:
            return False
        self._alerts[alert.alert_id] = alert
        while len(self._alerts) > self.max_alerts:
            self._alerts.popitem(last=False)
        return True

    def cancel_from(self, origin: str, *, direction: str) -> list[AlertRecord]:
        """Forget the ``direction`` alerts raised by ``origin`` (it cancelled its emergency)."""
        gone = [a for a in self._alerts.values() if a.origin == origin and a.direction == direction]
        for alert in gone:
            del self._alerts[alert.alert_id]
        return gone

    def outstanding(self, now: float) -> list[AlertRecord]:
        """Alerts not yet expired, newest first (expired ones are forgotten)."""
        for alert_id in [a.alert_id for a in self._alerts.values() if a.expires_at <= now]:
            del self._alerts[alert_id]
        return sorted(self._alerts.values(), key=lambda a: a.raised_at, reverse=True)


class EventHub:
    """Fan-out of live events to stream subscribers; a subscriber that falls behind is cut."""

    def __init__(self, buffer: int = _SUBSCRIBER_BUFFER) -> None:
        self.buffer = buffer
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._ids = itertools.count(1)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue of events for one subscriber; None in it means the stream must end."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.buffer + 1)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` (a JSON object with a ``type``) to every subscriber."""
        event = {"id": next(self._ids), **event}
        for queue in list(self._subscribers):
            if queue.qsize() >= self.buffer:
                self.dropped += 1
                self._subscribers.discard(queue)
                queue.put_nowait(None)
                continue
            queue.put_nowait(event)

    def recheck(self) -> None:
        """Have every stream check its client's certificate again (the trust bundle changed)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(RECHECK)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()


class Recorder:
    """Observer of one gateway feeding the API: message log, alerts, events, audit, metrics.

    Args:
        gateway: The gateway (the recorder reads its clock, directory and ledger).
        log_size: Messages kept in the log.
        include_payload: Keep message text and write it to the audit trail.
    """

    def __init__(self, gateway: Gateway, *, log_size: int, include_payload: bool = False) -> None:
        self.gateway = gateway
        self.clock: Callable[[], float] = gateway.clock
        self.include_payload = include_payload
        self.messages = MessageLog(log_size)
        self.alerts = AlertBook()
        self.events = EventHub()
        self.audit = AuditTrail(gateway=gateway.name, include_payload=include_payload)
        #: (source, priority) -> messages taken in; source is adapter:<name>, link:<NATION>, api.
        self.messages_in: Counter[tuple[str, str]] = Counter()
        #: (destination, priority) -> messages handed on: link:<NATION> or adapter:<name>.
        self.messages_out: Counter[tuple[str, str]] = Counter()
        self.end_to_end = LabelledHistograms()
        self.hop_latency = LabelledHistograms()
        #: Per nation: the gateway names its hops were labelled with (at most
        #: ``HOP_GATEWAYS_PER_NATION``; a partner writes its own hops, see _hop_label).
        self._hop_gateways: dict[str, set[str]] = {}
        #: reason -> API requests refused (validation, authentication, size, ...).
        self.api_rejections: Counter[str] = Counter()
        #: reason -> TLS handshakes that failed on the API listener.
        self.tls_failures: Counter[str] = Counter()
        #: (role, country) -> requests by verified identities (who uses the API).
        self.started = self.clock()

    # ------------------------------------------------------------------ attach

    def attach(self) -> None:
        """Start observing the gateway."""
        if self.observe not in self.gateway.observers:
            self.gateway.observers.append(self.observe)

    def detach(self) -> None:
        """Stop observing and end every event stream."""
        with contextlib.suppress(ValueError):
            self.gateway.observers.remove(self.observe)
        self.events.close()

    # ------------------------------------------------------------------ observing

    def observe(self, obs: Observation) -> None:
        """Handle one observation (never raises into the gateway)."""
        try:
            self._observe(obs)
        except Exception:  # an API bug must never break message handling
            self.gateway.log.exception("api.observer_failed", kind=obs.kind)

    def _observe(self, obs: Observation) -> None:
        now = self.clock()
        fields = obs.fields
        match obs.kind:
            case "accepted" if obs.message_id is not None:
                self._accepted(obs.message_id, fields, now)
            case "received" if obs.message_id is not None:
                self._received(obs.message_id, fields, now)
            case "forwarded" if obs.message_id is not None:
                record = self.messages.record(obs.message_id, now)
                partner = str(fields.get("partner", ""))
                self.messages_out[(f"link:{partner}", priority_name(str(fields["priority"])))] += 1
                if record.direction == "outbound" and not record.hops:
                    received = record.created_at or record.first_seen
                    record.hops.append(Hop(self.gateway.name, self.gateway.nation, received, now))
                    self.hop_latency.observe(
                        now - received, gateway=self.gateway.name, stage="queue"
                    )
                self._change(record, "forwarded", now, partner=partner)
            case "delivered" | "delivery_failed" if obs.message_id is not None:
                self._delivered_here(obs.message_id, fields, now)
            case "receipt" if obs.message_id is not None:
                self._receipt(obs.message_id, fields, now)
            case "refused_from_partner" if obs.message_id is not None:
                record = self.messages.record(obs.message_id, now)
                if record.direction == "unknown":
                    record.direction = "inbound"
                detail = {"partner": fields.get("partner"), "reason": fields.get("reason")}
                self._change(record, "refused", now, **detail)
            case "alert_replay" if obs.message_id is not None:
                record = self.messages.record(obs.message_id, now)
                self._change(record, "replayed", now, unit=fields.get("unit"))
            case "refused" | "rejected":
                self.audit.refused(obs.kind, fields)
            case "presence":
                self.events.publish(
                    {
                        "type": "presence",
                        "unit": fields.get("unit"),
                        "availability": str(fields.get("availability", "")).lower(),
                        "previous": (
                            str(fields["previous"]).lower() if "previous" in fields else None
                        ),
                        "gateway": fields.get("gateway", self.gateway.name),
                        "at": iso(now),
                    }
                )
            case "link":
                state = str(fields.get("state", "")).lower()
                self.events.publish(
                    {
                        "type": "link",
                        "path": f"adapter:{fields.get('adapter')}",
                        "kind": "adapter",
                        "state": state,
                        # Not the adapter's own reason: it holds exception texts with peer
                        # addresses, device paths and TLS errors (logged as adapter.link).
                        "reason": _ADAPTER_LINK_REASONS.get(state),
                        "at": iso(now),
                    }
                )
            case "liveness":
                self.events.publish(
                    {
                        "type": "link",
                        "path": fields.get("path"),
                        "kind": "canary",
                        "state": fields.get("state"),
                        "reason": fields.get("reason"),
                        "at": iso(now),
                    }
                )
            case _:
                pass

    def _describe(self, record: MessageRecord, fields: dict[str, Any], now: float) -> None:
        record.origin = fields.get("origin")
        record.destination = fields.get("destination")
        record.priority = priority_name(str(fields.get("priority", "")))
        record.body = fields.get("body")
        record.summary = fields.get("summary")
        envelope = fields.get("envelope")
        if isinstance(envelope, v1.Envelope):
            record.destination_kind = envelope.destination.WhichOneof("target")
            if record.destination_kind == "group":
                record.destination = envelope.destination.group.group
            record.created_at = (
                envelope.created_at_us / 1_000_000 if envelope.created_at_us else now
            )
            if self.include_payload and envelope.WhichOneof("body") == "text":
                record.text = envelope.text.text

    def _accepted(self, message_id: bytes, fields: dict[str, Any], now: float) -> None:
        record = self.messages.record(message_id, now)
        record.direction = "outbound"
        self._describe(record, fields, now)
        adapter = fields.get("adapter")
        record.source = f"adapter:{adapter}" if adapter else "api"
        self.messages_in[(record.source, record.priority or "")] += 1
        self._change(record, "accepted", now)
        envelope = fields.get("envelope")
        if isinstance(envelope, v1.Envelope) and envelope.WhichOneof("body") == "emergency":
            self._alert_from(envelope, "outbound", now)

    def _received(self, message_id: bytes, fields: dict[str, Any], now: float) -> None:
        record = self.messages.record(message_id, now)
        record.direction = "inbound"
        self._describe(record, fields, now)
        partner = str(fields.get("partner", ""))
        record.source = f"link:{partner}"
        self.messages_in[(record.source, record.priority or "")] += 1
        envelope = fields.get("envelope")
        if isinstance(envelope, v1.Envelope):
            self._trace(record, envelope, partner)
            if envelope.WhichOneof("body") == "emergency":
                if envelope.emergency.active:
                    self._alert_from(envelope, "inbound", now)
                else:
                    for alert in self.alerts.cancel_from(envelope.origin.unit, direction="inbound"):
                        self.events.publish(
                            {"type": "alert_cancelled", "alert_id": alert.alert_id.hex()}
                        )
        self._change(record, "received", now, partner=partner)

    def _trace(self, record: MessageRecord, envelope: v1.Envelope, partner: str) -> None:
        hops = list(envelope.trace)
        record.hops = [
            Hop(
                hop.gateway,
                hop.nation,
                hop.received_at_us / 1e6 if hop.received_at_us else None,
                hop.forwarded_at_us / 1e6 if hop.forwarded_at_us else None,
            )
            for hop in hops
        ]
        if not hops:
            return
        labels = [self._hop_label(hop, partner) for hop in hops[:-1]]
        labels.append(self.gateway.name)  # the last hop is ours: we wrote it
        for (previous, hop), label in zip(itertools.pairwise(hops), labels[1:], strict=True):
            if previous.forwarded_at_us and hop.received_at_us:
                self.hop_latency.observe(
                    (hop.received_at_us - previous.forwarded_at_us) / 1e6,
                    gateway=label,
                    stage="link",
                )
        for hop, label in zip(hops, labels, strict=True):
            if hop.received_at_us and hop.forwarded_at_us:
                self.hop_latency.observe(
                    (hop.forwarded_at_us - hop.received_at_us) / 1e6,
                    gateway=label,
                    stage="queue",
                )

    def _hop_label(self, hop: v1.Hop, partner: str) -> str:
        """The ``gateway`` label of a hop a partner wrote: ``<NATION>:<name>`` or a catch-all.

        A partner writes the trace it sends, so its names must neither crowd the bounded
        series out nor pass for ours: only hops of the partner's own nation get series of
        their own, for its first :data:`HOP_GATEWAYS_PER_NATION` gateway names, and always
        with the nation in front (``<NATION>:other`` beyond). Any other hop it wrote is
        ``other``.
        """
        if hop.nation != partner or not partner:
            return "other"
        names = self._hop_gateways.setdefault(partner, set())
        if hop.gateway in names:
            return f"{partner}:{hop.gateway}"
        if len(names) < HOP_GATEWAYS_PER_NATION and is_printable_name(hop.gateway):
            names.add(hop.gateway)
            return f"{partner}:{hop.gateway}"
        return f"{partner}:other"

    def _delivered_here(self, message_id: bytes, fields: dict[str, Any], now: float) -> None:
        """A message was delivered to (or failed at) one of our systems."""
        record = self.messages.record(message_id, now)
        if record.direction == "unknown":
            record.direction = "inbound"
        state = _RECEIPT_STATES.get(str(fields.get("state")), "failed")
        detail = {
            k: fields[k] for k in ("confirmation", "reason") if fields.get(k) not in (None, "")
        }
        if state == "delivered" and not record.delivered_counted:
            record.delivered_counted = True
            self.messages_out[(self._adapter_of(record), record.priority or "")] += 1
            if record.created_at is not None:
                self.end_to_end.observe(
                    now - record.created_at,
                    priority=record.priority or "",
                    measured_at="destination",
                )
        self._change(record, state, now, **detail)

    def _adapter_of(self, record: MessageRecord) -> str:
        directory = self.gateway.directory
        if record.destination_kind == "group" and record.destination:
            targets = directory.group_targets(record.destination)
            if targets:
                return f"adapter:{targets[0].adapter}"
        elif record.destination:
            target = directory.unit_target(record.destination)
            if target is not None:
                return f"adapter:{target.adapter}"
        return "adapter:unknown"

    def _receipt(self, message_id: bytes, fields: dict[str, Any], now: float) -> None:
        """A receipt from a partner about a message accepted here."""
        record = self.messages.record(message_id, now)
        if record.direction == "unknown":
            record.direction = "outbound"
        state = _RECEIPT_STATES.get(str(fields.get("state")), str(fields.get("state")).lower())
        detail = {
            k: fields[k] for k in ("confirmation", "reason") if fields.get(k) not in (None, "")
        }
        if state == "delivered" and not record.delivered_counted:
            record.delivered_counted = True
            start = record.created_at or record.first_seen
            self.end_to_end.observe(
                now - start, priority=record.priority or "", measured_at="origin"
            )
        self._change(record, state, now, **detail)

    def _change(self, record: MessageRecord, state: str, now: float, **detail: Any) -> None:
        clean = {k: v for k, v in detail.items() if v is not None}
        change = StateChange(state=state, at=now, gateway=self.gateway.name, detail=clean)
        record.states.append(change)
        if len(record.states) > _MAX_STATES:
            del record.states[1]  # keep the first state (acceptance) and the latest ones
        self.audit.message(record, change)
        if not self.events:
            return  # nobody is listening: build no event
        self.events.publish(
            {
                "type": "message",
                "message_id": record.message_id.hex(),
                "direction": record.direction,
                "origin": record.origin,
                "destination": record.destination,
                "priority": record.priority,
                "summary": record.summary,
                **change.as_json(),
            }
        )

    # ------------------------------------------------------------------ alerts

    def _alert_from(self, envelope: v1.Envelope, direction: str, now: float) -> None:
        which = envelope.destination.WhichOneof("target")
        if which == "group":
            target = {"group": envelope.destination.group.group}
        else:
            target = {"unit": envelope.destination.unit.unit}
        location = None
        if envelope.emergency.HasField("location"):
            loc = envelope.emergency.location
            location = {"lat": loc.latitude, "lon": loc.longitude}
        expires = envelope.expires_at_us / 1e6 if envelope.expires_at_us else now + 3600.0
        alert = AlertRecord(
            alert_id=envelope.message_id,
            raised_at=envelope.created_at_us / 1e6 if envelope.created_at_us else now,
            expires_at=expires,
            direction=direction,
            origin=envelope.origin.unit or None,
            target=target,
            location=location,
            gateway=self.gateway.name,
        )
        if self.alerts.add(alert):
            self.events.publish({"type": "alert", **alert.as_json()})

    def sync_ledger(self) -> None:
        """Add partners' outstanding alerts from the gateway's ledger not seen live."""
        now = self.clock()
        ledger = self.gateway.alerts
        for record in list(self.messages.recent(len(self.messages))):
            if record.message_id in ledger and record.message_id not in self.alerts:
                outstanding = ledger.get(record.message_id)
                if outstanding is not None and isinstance(outstanding.payload_ref, bytes):
                    envelope = v1.Envelope()
                    envelope.ParseFromString(outstanding.payload_ref)
                    self._alert_from(envelope, "inbound", now)

    def acknowledge(self, alert_id: bytes, by: str) -> AlertRecord | None:
        """Record that ``by`` acknowledged ``alert_id``; None if the alert is unknown.

        Idempotent: a repeated acknowledgement (by anyone) keeps the first one and is
        recorded as a further acknowledgement only if it comes from someone else.
        """
        self.sync_ledger()
        alert = self.alerts.get(alert_id)
        if alert is None:
            return None
        now = self.clock()
        if not any(a["by"] == by for a in alert.acknowledgements):
            first = not alert.acknowledgements
            alert.acknowledgements.append({"by": by, "at": now})
            self.audit.acknowledged(alert_id, by, first=first)
            self.events.publish(
                {"type": "alert_ack", "alert_id": alert_id.hex(), "by": by, "at": iso(now)}
            )
        return alert
