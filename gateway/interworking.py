"""Interworking TETRA SDS <-> common Envelope: pure mapping, no I/O, time as an argument.

Inbound, :func:`envelope_from_tetra` turns a decoded ``+CTSDSR`` record into an
:class:`~protocols.schema.v1.Envelope` or raises :class:`DeliveryRefused` whose
``reason_code`` is the SDS-TL delivery status a negative report must carry.
Outbound, :func:`plan_tetra_delivery` turns an envelope into a
:class:`TetraDelivery` (what to send to which ISSI) or refuses it.

Mapping (``docs/schema.md`` has the full table):

* text PID 0x02/0x82 -> ``TextMessage``; 0x09/0x89 -> ``TextMessage(immediate=True)``
  at priority high; delivery report request 1/2/3 -> ``ReportRequest``.
* status 0 -> ``EmergencyAlert`` at priority emergency; other statuses through the
  organisation's codebook -> ``StatusMessage`` with a federation status code.
* LIP with reason 2 (emergency condition detected) -> ``EmergencyAlert`` with its
  location; other LIP reports -> ``LocationReport``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.codebooks import Codebook
from gateway.config import AdapterConfig, DeliveryConfig
from gateway.identity import Directory, LocalTarget
from protocols.errors import DeliveryRefused
from protocols.schema import SCHEMA_VERSION, v1
from protocols.tetra import (
    DeliveryStatus,
    LocationReport,
    OtherSds,
    SdsAck,
    SdsReceived,
    SdsReport,
    ShortReport,
    StatusSds,
    TextSds,
    validity_period_seconds,
)

__all__ = [
    "PRIORITY_NAMES",
    "TetraDelivery",
    "envelope_from_tetra",
    "plan_tetra_delivery",
]

#: Config key of each priority class.
PRIORITY_NAMES: dict[int, str] = {
    v1.PRIORITY_EMERGENCY: "emergency",
    v1.PRIORITY_IMMINENT_PERIL: "imminent_peril",
    v1.PRIORITY_HIGH: "high",
    v1.PRIORITY_ROUTINE: "routine",
}

#: LIP reason for sending 2: emergency condition detected (TS 100 392-18-1 table 6.94).
LIP_REASON_EMERGENCY = 2
#: Most characters of an emergency's words sent after its status: one SDS, never split.
EMERGENCY_TEXT_CHARS = 100

#: Pre-coded status 0: emergency (EN 300 392-2 14.8.34).
STATUS_EMERGENCY = 0


@dataclass(frozen=True, kw_only=True)
class TetraDelivery:
    """What to send on the TETRA side for one envelope.

    Exactly one of ``text``, ``status`` and ``location`` is set. ``follow_up`` is a
    location and ``follow_text`` the alert's words (an immediate-display text), sent
    after an emergency status (best effort; the receipt is about the status).
    """

    target: LocalTarget
    text: str | None = None
    immediate: bool = False
    status: int | None = None
    location: LocationReport | None = None
    follow_up: LocationReport | None = None
    follow_text: str | None = None
    report_request: int = 0


def _refuse(code: int, why: str) -> DeliveryRefused:
    return DeliveryRefused(why, reason_code=code, reply_hint=why)


def _origin(
    event: SdsReceived, adapter: AdapterConfig, directory: Directory, allow: bool
) -> v1.Party:
    unit = directory.local_unit(adapter.name, event.source)
    if unit is not None:
        name = unit.unit
    elif allow:
        name = f"{directory.nation.lower()}.{adapter.organisation}.issi-{event.source}"
    else:
        raise _refuse(
            DeliveryStatus.SOURCE_NOT_AUTHORIZED,
            f"ISSI {event.source} on adapter {adapter.name!r} is not a listed unit; "
            "it may not send across the border",
        )
    return v1.Party(
        nation=directory.nation,
        organisation=adapter.organisation,
        unit=name,
        system=v1.SYSTEM_TYPE_TETRA,
        native_id=event.source,
    )


def _destination(
    event: SdsReceived, adapter: AdapterConfig, directory: Directory
) -> v1.Destination:
    alias = directory.alias(adapter.name, event.destination)
    if alias is not None:
        return v1.Destination(unit=v1.Party(nation=alias.nation, unit=alias.unit))
    group = directory.group_by_gssi(adapter.name, event.destination)
    if group is not None:
        return v1.Destination(group=v1.GroupRef(group=group.group))
    raise _refuse(
        DeliveryStatus.UNKNOWN_DESTINATION,
        f"ISSI {event.destination} on adapter {adapter.name!r} is neither an alias of a "
        "partner unit nor a cross-border group",
    )


def _location(report: LocationReport, now_us: int) -> v1.Location | None:
    if report.latitude is None or report.longitude is None:
        return None
    location = v1.Location(latitude=report.latitude, longitude=report.longitude, fix_time_us=now_us)
    if report.velocity_kmh is not None:
        location.speed_kmh = report.velocity_kmh
    if report.direction_deg is not None and report.velocity_kmh is not None:
        location.heading_deg = report.direction_deg
    if report.altitude_m is not None:
        location.altitude_m = report.altitude_m
    error_m = _POSITION_ERROR_M.get(report.position_error)
    if error_m is not None:
        location.horizontal_error_m = error_m
    return location


#: LIP position error code -> upper bound in metres (TS 100 392-18-1 table 6.51).
_POSITION_ERROR_M = {0: 2.0, 1: 20.0, 2: 200.0, 3: 2000.0, 4: 20000.0, 5: 200000.0}


def _fill_body(envelope: v1.Envelope, event: SdsReceived, codebook: Codebook, now_us: int) -> int:
    """Set the envelope body from the SDS content; return the priority class."""
    content = event.content
    match content:
        case TextSds():
            envelope.text.text = content.text
            envelope.text.immediate = content.immediate
            envelope.report_request = content.delivery_report_request  # type: ignore[assignment]
            if content.message_reference is not None:
                envelope.origin_reference = content.message_reference
            return v1.PRIORITY_HIGH if content.immediate else v1.PRIORITY_ROUTINE
        case StatusSds() if content.status == STATUS_EMERGENCY:
            envelope.emergency.active = True
            return v1.PRIORITY_EMERGENCY
        case StatusSds():
            meaning = codebook.by_value(content.status)
            if meaning is None:
                raise _refuse(
                    DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
                    f"status 0x{content.status:04X} is not in codebook {codebook.name!r}",
                )
            envelope.status.code = meaning.code
            envelope.status.tetra_value = content.status
            envelope.status.codebook = codebook.name
            envelope.status.label = meaning.label
            return v1.PRIORITY_ROUTINE
        case LocationReport():
            location = _location(content, now_us)
            if content.reason == LIP_REASON_EMERGENCY:
                envelope.emergency.active = True
                if location is not None:
                    envelope.emergency.location.CopyFrom(location)
                return v1.PRIORITY_EMERGENCY
            envelope.location.lip_reason = content.reason if content.reason is not None else 0
            if location is not None:
                envelope.location.location.CopyFrom(location)
            return v1.PRIORITY_ROUTINE
        case SdsReport() | SdsAck() | ShortReport() | OtherSds():
            pid = getattr(content, "protocol_id", None)
            raise _refuse(
                DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
                f"{type(content).__name__} (PID {pid}) is not carried across the border",
            )


def envelope_from_tetra(
    event: SdsReceived,
    *,
    adapter: AdapterConfig,
    directory: Directory,
    codebook: Codebook,
    delivery: DeliveryConfig,
    message_id: bytes,
    now_us: int,
) -> v1.Envelope:
    """Map one received SDS to an envelope, or raise :class:`DeliveryRefused`."""
    envelope = v1.Envelope(
        schema_version=SCHEMA_VERSION,
        message_id=message_id,
        created_at_us=now_us,
    )
    envelope.origin.CopyFrom(_origin(event, adapter, directory, delivery.allow_unlisted_units))
    envelope.destination.CopyFrom(_destination(event, adapter, directory))
    priority = _fill_body(envelope, event, codebook, now_us)
    envelope.priority = priority  # type: ignore[assignment]
    lifetime = delivery.expiry_seconds[PRIORITY_NAMES[priority]]
    content = event.content
    if isinstance(content, TextSds) and content.storage_forward is not None:
        validity = validity_period_seconds(content.storage_forward.validity_period)
        if validity is not None:
            lifetime = min(lifetime, validity)
    envelope.expires_at_us = now_us + int(lifetime * 1_000_000)
    return envelope


def _sender_prefix(envelope: v1.Envelope, adapter: AdapterConfig, directory: Directory) -> str:
    if not adapter.sender_prefix:
        return ""
    alias = directory.alias_for(adapter.name, envelope.origin.unit)
    if alias is not None:
        return f"[{alias.issi} {envelope.origin.unit}] "
    return f"[{envelope.origin.unit}] "


def _targets(envelope: v1.Envelope, directory: Directory) -> list[LocalTarget]:
    which = envelope.destination.WhichOneof("target")
    if which == "unit":
        target = directory.unit_target(envelope.destination.unit.unit)
        if target is None:
            raise _refuse(
                DeliveryStatus.UNKNOWN_DESTINATION,
                f"no unit {envelope.destination.unit.unit!r} at this gateway",
            )
        return [target]
    if which == "group":
        targets = directory.group_targets(envelope.destination.group.group)
        if not targets:
            raise _refuse(
                DeliveryStatus.UNKNOWN_DESTINATION,
                f"this gateway carries no group {envelope.destination.group.group!r}",
            )
        return targets
    raise _refuse(DeliveryStatus.UNKNOWN_DESTINATION, f"destination {which!r} is not supported")


def _lip(location: v1.Location, reason: int) -> LocationReport:
    return LocationReport(
        latitude=location.latitude,
        longitude=location.longitude,
        position_error=_error_code(location),
        velocity_kmh=location.speed_kmh if location.HasField("speed_kmh") else None,
        direction_deg=location.heading_deg if location.HasField("heading_deg") else None,
        reason=reason,
        time_elapsed=0,
    )


def _error_code(location: v1.Location) -> int:
    if not location.HasField("horizontal_error_m"):
        return 7
    for code, bound in sorted(_POSITION_ERROR_M.items()):
        if location.horizontal_error_m <= bound:
            return code
    return 6


def plan_tetra_delivery(
    envelope: v1.Envelope,
    *,
    adapters: dict[str, AdapterConfig],
    directory: Directory,
    codebooks: dict[str, Codebook],
) -> list[TetraDelivery]:
    """Decide what to send to which local ISSI(s) for an envelope, or refuse it."""
    deliveries = []
    for target in _targets(envelope, directory):
        adapter = adapters[target.adapter]
        deliveries.append(
            _plan_one(envelope, target, adapter, directory, codebooks[adapter.codebook])
        )
    return deliveries


def _plan_one(
    envelope: v1.Envelope,
    target: LocalTarget,
    adapter: AdapterConfig,
    directory: Directory,
    codebook: Codebook,
) -> TetraDelivery:
    body = envelope.WhichOneof("body")
    if body == "text":
        return TetraDelivery(
            target=target,
            text=_sender_prefix(envelope, adapter, directory) + envelope.text.text,
            immediate=envelope.text.immediate,
            report_request=int(envelope.report_request),
        )
    if body == "status":
        meaning = codebook.by_code(envelope.status.code)
        if meaning is None:
            raise _refuse(
                DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
                f"status {envelope.status.code!r} has no value in codebook {codebook.name!r}",
            )
        return TetraDelivery(target=target, status=meaning.tetra_value)
    if body == "emergency":
        follow_up = None
        if envelope.emergency.HasField("location"):
            follow_up = _lip(envelope.emergency.location, LIP_REASON_EMERGENCY)
        words = envelope.emergency.text.strip()
        follow_text = None
        if words:
            prefix = _sender_prefix(envelope, adapter, directory)
            follow_text = (prefix + words)[:EMERGENCY_TEXT_CHARS]
        return TetraDelivery(
            target=target, status=STATUS_EMERGENCY, follow_up=follow_up, follow_text=follow_text
        )
    if body == "location" and envelope.location.HasField("location"):
        return TetraDelivery(
            target=target, location=_lip(envelope.location.location, envelope.location.lip_reason)
        )
    raise _refuse(
        DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
        f"a {body or 'empty'} body cannot go to a TETRA radio",
    )
