"""Interworking between MCData standalone SDS (3GPP TS 24.282) and the common envelope.

Towards a national MCX system the gateway is the interworking function of 3GPP
TS 23.283: a peer MCData server behind which partner units appear as MCData
users of their own, ``sip:<federation id>@<iwf domain>`` (or an alias listed in
the configuration), and cross-border groups as MCData groups. So, unlike on a
TETRA radio, a partner's message reaches an MCData user under its true sender,
without a text prefix.

Mapping (both directions):

============================  ==========================================
MCData                        envelope
============================  ==========================================
TEXT payload (UTF-8)          ``text``
ENHANCED STATUS payload       ``status`` through the adapter's codebook
LOCATION payload              ``location`` (``geo:`` URI, RFC 5870)
emergency / alert indicator   ``emergency``, priority EMERGENCY
imminent peril indicator      priority IMMINENT_PERIL
disposition request           ``report_request`` (delivery 1, read 2, both 3)
message ID, conversation ID   ``message_id``, ``conversation_id``, ``in_reply_to``
disposition notification      ``DeliveryReceipt`` DELIVERED / READ / FAILED
============================  ==========================================

The enhanced-status and location payload encodings are not given by the
documents this project could consult (see ``docs/protocols.md`` §8): an enhanced
status is two octets, big endian, and a location a ``geo:lat,lon`` URI; both are
chosen here and isolated in this module.

Pure: no I/O, no clock (``now_us`` is an argument).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass, field

from gateway.codebooks import Codebook
from gateway.config import AdapterConfig, DeliveryConfig
from gateway.identity import Directory, LocalTarget
from gateway.interworking import PRIORITY_NAMES
from protocols.errors import DeliveryRefused, LocalProtocolError
from protocols.mcdata import (
    ContentType,
    DispositionRequest,
    NotificationType,
    Payload,
)
from protocols.schema import SCHEMA_VERSION, v1
from protocols.tetra import DeliveryStatus

__all__ = [
    "McdataDelivery",
    "McdataSds",
    "envelope_from_mcdata",
    "iwf_id",
    "notification_for",
    "payloads_not_carried",
    "plan_mcdata_delivery",
    "receipt_state_for",
]

_GEO = re.compile(r"^geo:(-?[0-9]+(?:\.[0-9]+)?),(-?[0-9]+(?:\.[0-9]+)?)(?:[,;].*)?$")


@dataclass(frozen=True, kw_only=True)
class McdataSds:
    """One standalone SDS as received from the MCX system (what the adapter decoded)."""

    sender: str
    target: str
    is_group: bool
    message_id: bytes
    conversation_id: bytes
    in_reply_to: bytes | None
    disposition: int
    payloads: tuple[Payload, ...]
    emergency: bool = False
    imminent_peril: bool = False


@dataclass(frozen=True, kw_only=True)
class McdataDelivery:
    """What to send to the MCX system for one envelope."""

    target: LocalTarget
    sender: str
    payloads: tuple[Payload, ...]
    message_id: bytes
    conversation_id: bytes
    in_reply_to: bytes | None = None
    disposition: DispositionRequest = DispositionRequest.NONE
    emergency: bool = False
    imminent_peril: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


def _refuse(code: int, why: str) -> DeliveryRefused:
    return DeliveryRefused(why, reason_code=code, reply_hint=why)


def iwf_id(unit: str, adapter: AdapterConfig) -> str:
    """The MCData ID under which a partner unit appears in the MCX system."""
    return f"sip:{unit}@{adapter.iwf_domain}"


def _partner_unit(mcdata_id: str, adapter: AdapterConfig, directory: Directory) -> str | None:
    alias = directory.alias(adapter.name, mcdata_id)
    if alias is not None:
        return alias.unit
    suffix = f"@{adapter.iwf_domain}"
    if mcdata_id.startswith("sip:") and mcdata_id.endswith(suffix):
        unit = mcdata_id[len("sip:") : -len(suffix)]
        if unit[:2] != directory.nation.lower() and re.match(r"^[a-z]{2}\.", unit):
            return unit
    return None


def envelope_from_mcdata(
    sds: McdataSds,
    *,
    adapter: AdapterConfig,
    directory: Directory,
    codebook: Codebook,
    delivery: DeliveryConfig,
    now_us: int,
) -> v1.Envelope:
    """Map one SDS from the MCX system to an envelope, or raise :class:`DeliveryRefused`.

    The MCData message ID becomes the envelope's message ID, so a disposition
    notification and a receipt name the same message.
    """
    unit = directory.local_unit(adapter.name, sds.sender)
    if unit is None:
        raise _refuse(
            DeliveryStatus.SOURCE_NOT_AUTHORIZED,
            f"MCData user {sds.sender} on adapter {adapter.name!r} is not a listed unit; "
            "it may not send across the border",
        )
    envelope = v1.Envelope(
        schema_version=SCHEMA_VERSION, message_id=sds.message_id, created_at_us=now_us
    )
    envelope.origin.nation = directory.nation
    envelope.origin.organisation = adapter.organisation
    envelope.origin.unit = unit.unit
    envelope.origin.system = v1.SYSTEM_TYPE_MCDATA
    envelope.origin.native_id = sds.sender
    if sds.is_group:
        group = directory.group_by_gssi(adapter.name, sds.target)
        if group is None:
            raise _refuse(
                DeliveryStatus.UNKNOWN_DESTINATION,
                f"MCData group {sds.target} is not a cross-border group",
            )
        envelope.destination.group.group = group.group
    else:
        partner = _partner_unit(sds.target, adapter, directory)
        if partner is None:
            raise _refuse(
                DeliveryStatus.UNKNOWN_DESTINATION,
                f"MCData ID {sds.target} is not a partner unit behind this gateway",
            )
        envelope.destination.unit.nation = partner[:2].upper()
        envelope.destination.unit.unit = partner
    envelope.conversation_id = sds.conversation_id
    if sds.in_reply_to:
        envelope.in_reply_to = sds.in_reply_to
    envelope.report_request = _report_request(sds.disposition)  # type: ignore[assignment]
    priority = _fill_body(envelope, sds, codebook, now_us)
    envelope.priority = priority  # type: ignore[assignment]
    lifetime = delivery.expiry_seconds[PRIORITY_NAMES[priority]]
    envelope.expires_at_us = now_us + int(lifetime * 1_000_000)
    return envelope


def _report_request(disposition: int) -> int:
    table: dict[int, int] = {
        DispositionRequest.DELIVERY: v1.REPORT_REQUEST_DELIVERED,
        DispositionRequest.READ: v1.REPORT_REQUEST_READ,
        DispositionRequest.DELIVERY_AND_READ: v1.REPORT_REQUEST_DELIVERED_AND_READ,
    }
    return table.get(disposition, v1.REPORT_REQUEST_NONE)


def payloads_not_carried(sds: McdataSds) -> list[int]:
    """Content types of ``sds``'s payloads the envelope does not carry (one body each).

    An emergency carries its first TEXT and first LOCATION; any other SDS its first TEXT,
    else its first ENHANCED_STATUS, else its first LOCATION. The caller logs and counts
    the rest: nothing of a message is dropped without a trace.
    """
    kinds = [int(p.content_type) for p in sds.payloads]
    if sds.emergency:
        kept = [ContentType.TEXT, ContentType.LOCATION]
    else:
        first = next(
            (
                k
                for k in (ContentType.TEXT, ContentType.ENHANCED_STATUS, ContentType.LOCATION)
                if k in kinds
            ),
            None,
        )
        kept = [first] if first is not None else []
    dropped = list(kinds)
    for kind in kept:
        if kind in dropped:
            dropped.remove(kind)
    return dropped


def _fill_body(envelope: v1.Envelope, sds: McdataSds, codebook: Codebook, now_us: int) -> int:
    by_type: dict[int, Payload] = {}
    for payload in sds.payloads:
        by_type.setdefault(int(payload.content_type), payload)
    if sds.emergency:
        # An emergency is never refused for what comes with it: a location that cannot be
        # read is left out (the words and the alert itself still go).
        envelope.emergency.active = True
        with contextlib.suppress(DeliveryRefused):
            location = _location(by_type.get(ContentType.LOCATION), now_us)
            if location is not None:
                envelope.emergency.location.CopyFrom(location)
        if ContentType.TEXT in by_type:
            envelope.emergency.text = by_type[ContentType.TEXT].data.decode("utf-8", "replace")
        return v1.PRIORITY_EMERGENCY
    location = _location(by_type.get(ContentType.LOCATION), now_us)
    priority = v1.PRIORITY_IMMINENT_PERIL if sds.imminent_peril else v1.PRIORITY_ROUTINE
    if ContentType.TEXT in by_type:
        envelope.text.text = by_type[ContentType.TEXT].data.decode("utf-8")
        return priority
    if ContentType.ENHANCED_STATUS in by_type:
        data = by_type[ContentType.ENHANCED_STATUS].data
        if len(data) != 2:
            raise _refuse(
                DeliveryStatus.CORRUPT_INFORMATION_ELEMENT,
                f"an enhanced status of {len(data)} octets (expected 2)",
            )
        value = int.from_bytes(data, "big")
        meaning = codebook.by_value(value)
        if meaning is None:
            raise _refuse(
                DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
                f"enhanced status {value} is not in codebook {codebook.name!r}",
            )
        envelope.status.code = meaning.code
        envelope.status.tetra_value = value
        envelope.status.codebook = codebook.name
        envelope.status.label = meaning.label
        return priority
    if location is not None:
        envelope.location.location.CopyFrom(location)
        return priority
    kinds = sorted(int(p.content_type) for p in sds.payloads) or "none"
    raise _refuse(
        DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
        f"MCData payload content types {kinds} are not carried across the border",
    )


def _location(payload: Payload | None, now_us: int) -> v1.Location | None:
    if payload is None:
        return None
    match = _GEO.match(payload.data.decode("utf-8", "replace"))
    if match is None:
        raise _refuse(
            DeliveryStatus.CORRUPT_INFORMATION_ELEMENT,
            "a location payload that is not a geo: URI",
        )
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise _refuse(DeliveryStatus.CORRUPT_INFORMATION_ELEMENT, "a location out of range")
    return v1.Location(latitude=lat, longitude=lon, fix_time_us=now_us)


def _text_payload(text: str) -> Payload:
    try:
        return Payload.from_text(text)
    except LocalProtocolError as exc:  # e.g. longer than a payload can be
        raise _refuse(DeliveryStatus.MESSAGE_TOO_LONG, str(exc)) from None


def _geo(location: v1.Location) -> Payload:
    return Payload(
        content_type=ContentType.LOCATION,
        data=f"geo:{location.latitude:.6f},{location.longitude:.6f}".encode(),
    )


def plan_mcdata_delivery(
    envelope: v1.Envelope,
    target: LocalTarget,
    *,
    adapter: AdapterConfig,
    directory: Directory,
    codebook: Codebook,
) -> McdataDelivery:
    """What the MCX system must receive for ``envelope`` at ``target``.

    Raises:
        DeliveryRefused: the body cannot be expressed in MCData (its reason says why).
    """
    alias = directory.alias_for(adapter.name, envelope.origin.unit)
    sender = alias.issi if alias is not None else iwf_id(envelope.origin.unit, adapter)
    body = envelope.WhichOneof("body")
    payloads: tuple[Payload, ...]
    emergency = False
    if body == "text":
        payloads = (_text_payload(envelope.text.text),)
    elif body == "status":
        meaning = codebook.by_code(envelope.status.code)
        if meaning is None:
            raise _refuse(
                DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
                f"status {envelope.status.code!r} has no value in codebook {codebook.name!r}",
            )
        payloads = (
            Payload(
                content_type=ContentType.ENHANCED_STATUS,
                data=meaning.tetra_value.to_bytes(2, "big"),
            ),
        )
    elif body == "location" and envelope.location.HasField("location"):
        payloads = (_geo(envelope.location.location),)
    elif body == "emergency":
        emergency = True
        words = envelope.emergency.text or "EMERGENCY"
        payloads = (_text_payload(words),)
        if envelope.emergency.HasField("location"):
            payloads += (_geo(envelope.emergency.location),)
    else:
        raise _refuse(
            DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
            f"a {body or 'empty'} body cannot go to an MCData user",
        )
    disposition = DispositionRequest.NONE
    if not target.is_group:
        disposition = {
            v1.REPORT_REQUEST_DELIVERED: DispositionRequest.DELIVERY,
            v1.REPORT_REQUEST_READ: DispositionRequest.READ,
            v1.REPORT_REQUEST_DELIVERED_AND_READ: DispositionRequest.DELIVERY_AND_READ,
        }.get(envelope.report_request, DispositionRequest.NONE)
    return McdataDelivery(
        target=target,
        sender=sender,
        payloads=payloads,
        message_id=envelope.message_id,
        conversation_id=envelope.conversation_id
        or uuid.uuid5(uuid.NAMESPACE_OID, envelope.message_id.hex()).bytes,
        in_reply_to=envelope.in_reply_to or None,
        disposition=disposition,
        emergency=emergency,
        imminent_peril=envelope.priority == v1.PRIORITY_IMMINENT_PERIL,
    )


def receipt_state_for(notification: int) -> list[int]:
    """Receipt states a disposition notification stands for, in order."""
    table: dict[int, list[int]] = {
        NotificationType.DELIVERED: [v1.DELIVERY_STATE_DELIVERED],
        NotificationType.READ: [v1.DELIVERY_STATE_READ],
        NotificationType.DELIVERED_AND_READ: [v1.DELIVERY_STATE_DELIVERED, v1.DELIVERY_STATE_READ],
        NotificationType.UNDELIVERED: [v1.DELIVERY_STATE_FAILED],
    }
    return table.get(notification, [])


def notification_for(receipt: v1.DeliveryReceipt, report_request: int) -> NotificationType | None:
    """The disposition notification owed to an MCData sender for a receipt, if any.

    Only what the sender asked for (TS 24.282: notifications answer a disposition
    request), and DELIVERED only when the unit itself confirmed it: a far network that
    merely accepted the message (a TETRA status, a group, a report that never came) is
    no delivery to the user, and the sender must not be told otherwise.
    """
    if report_request == 0:
        return None
    if receipt.state == v1.DELIVERY_STATE_FAILED:
        return NotificationType.UNDELIVERED
    if (
        receipt.state == v1.DELIVERY_STATE_DELIVERED
        and report_request in (1, 3)
        and receipt.confirmation == v1.CONFIRMATION_UNIT
    ):
        return NotificationType.DELIVERED
    if receipt.state == v1.DELIVERY_STATE_READ and report_request in (2, 3):
        return NotificationType.READ
    return None
