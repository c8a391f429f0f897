"""MCData SDS <-> envelope mapping (pure): identities, bodies, priorities, dispositions."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import GatewayConfig, parse_config
from gateway.identity import Directory, LocalTarget
from gateway.interworking_mcdata import (
    McdataSds,
    envelope_from_mcdata,
    iwf_id,
    notification_for,
    payloads_not_carried,
    plan_mcdata_delivery,
    receipt_state_for,
)
from protocols.errors import DeliveryRefused
from protocols.mcdata import ContentType, DispositionRequest, NotificationType, Payload
from protocols.schema import v1

CONFIG = """
[gateway]
name = "gw-be-brussels"
nation = "BE"

[federation]
partners = ["DE", "FR"]

[[adapters]]
name = "mcx-be"
type = "mcdata"
organisation = "astrid"
listen = "127.0.0.1:5070"
peer = "127.0.0.1:5080"
iwf_domain = "iwf.mcx.be"
codebook = "be-astrid"

[[units]]
unit = "be.astrid.amb-1"
adapter = "mcx-be"
mcdata_id = "sip:amb-1@mcx.be"

[[aliases]]
unit = "fr.sdis67.vsav-strasbourg-1"
nation = "FR"
adapter = "mcx-be"
mcdata_id = "sip:vsav-1@fr.mcx.be"

[[groups]]
group = "xb.kehl-strasbourg"
adapter = "mcx-be"
mcdata_group = "sip:xb-rhine@mcx.be"
nations = ["DE", "FR", "BE"]

[codebooks.be-astrid]
"0x0003" = { code = "on-scene", label = "Ter plaatse" }
"""

AMB = "sip:amb-1@mcx.be"
DE_RTW = "de.bos.rtw-kehl-1"


@pytest.fixture(scope="module")
def config() -> GatewayConfig:
    return parse_config(CONFIG)


def sds(config: GatewayConfig, **changes: object) -> McdataSds:
    fields: dict[str, object] = {
        "sender": AMB,
        "target": iwf_id(DE_RTW, config.adapter("mcx-be")),
        "is_group": False,
        "message_id": uuid.UUID(int=1).bytes,
        "conversation_id": uuid.UUID(int=2).bytes,
        "in_reply_to": None,
        "disposition": DispositionRequest.DELIVERY_AND_READ,
        "payloads": (Payload.from_text("Hallo Kehl"),),
    }
    fields.update(changes)
    return McdataSds(**fields)  # type: ignore[arg-type]


def to_envelope(config: GatewayConfig, message: McdataSds) -> v1.Envelope:
    return envelope_from_mcdata(
        message,
        adapter=config.adapter("mcx-be"),
        directory=Directory(config),
        codebook=config.codebooks["be-astrid"],
        delivery=config.delivery,
        now_us=1_000_000,
    )


def test_text_to_a_partner_unit_keeps_ids_and_disposition(config: GatewayConfig) -> None:
    envelope = to_envelope(config, sds(config))
    assert envelope.message_id == uuid.UUID(int=1).bytes
    assert envelope.conversation_id == uuid.UUID(int=2).bytes
    assert (envelope.origin.unit, envelope.origin.system) == ("be.astrid.amb-1", 2)
    assert envelope.origin.native_id == AMB
    assert (envelope.destination.unit.nation, envelope.destination.unit.unit) == ("DE", DE_RTW)
    assert envelope.text.text == "Hallo Kehl"
    assert envelope.report_request == v1.REPORT_REQUEST_DELIVERED_AND_READ
    assert envelope.priority == v1.PRIORITY_ROUTINE
    assert envelope.expires_at_us == 1_000_000 + 600 * 1_000_000


def test_listed_alias_and_group_targets(config: GatewayConfig) -> None:
    aliased = to_envelope(config, sds(config, target="sip:vsav-1@fr.mcx.be"))
    assert aliased.destination.unit.unit == "fr.sdis67.vsav-strasbourg-1"
    group = to_envelope(config, sds(config, target="sip:xb-rhine@mcx.be", is_group=True))
    assert group.destination.group.group == "xb.kehl-strasbourg"


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"sender": "sip:stranger@mcx.be"}, 0x43, "not a listed unit"),
        ({"target": "sip:nobody@elsewhere.be"}, 0x45, "not a partner unit"),
        ({"target": "sip:be.astrid.amb-1@iwf.mcx.be"}, 0x45, "not a partner unit"),
        ({"target": "sip:nogroup@mcx.be", "is_group": True}, 0x45, "not a cross-border group"),
        ({"payloads": (Payload(content_type=ContentType.BINARY, data=b"\x00"),)}, 0x50, "[2]"),
        ({"payloads": ()}, 0x50, "none"),
        (
            {"payloads": (Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x01"),)},
            0x5C,
            "1 octets",
        ),
        (
            {"payloads": (Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x00\x09"),)},
            0x50,
            "enhanced status 9",
        ),
        ({"payloads": (Payload(content_type=ContentType.LOCATION, data=b"here"),)}, 0x5C, "geo"),
        (
            {"payloads": (Payload(content_type=ContentType.LOCATION, data=b"geo:91,0"),)},
            0x5C,
            "out of range",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused_with_a_reason(
    config: GatewayConfig, changes: dict[str, object], code: int, words: str
) -> None:
    with pytest.raises(DeliveryRefused, match=words) as refused:
        to_envelope(config, sds(config, **changes))
    assert refused.value.reason_code == code


def test_emergency_alert_with_location_and_imminent_peril(config: GatewayConfig) -> None:
    where = Payload(content_type=ContentType.LOCATION, data=b"geo:48.5734,7.7521;u=10")
    envelope = to_envelope(config, sds(config, payloads=(where,), emergency=True))
    assert envelope.priority == v1.PRIORITY_EMERGENCY
    assert envelope.emergency.active
    assert envelope.emergency.location.latitude == pytest.approx(48.5734)
    peril = to_envelope(config, sds(config, imminent_peril=True))
    assert peril.priority == v1.PRIORITY_IMMINENT_PERIL


def test_enhanced_status_and_location_bodies(config: GatewayConfig) -> None:
    status = Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x00\x03")
    envelope = to_envelope(config, sds(config, payloads=(status,)))
    assert (envelope.status.code, envelope.status.label) == ("on-scene", "Ter plaatse")
    where = Payload(content_type=ContentType.LOCATION, data=b"geo:-33.9,151.2")
    located = to_envelope(config, sds(config, payloads=(where,)))
    assert located.location.location.longitude == pytest.approx(151.2)


def _partner_envelope(body: str) -> v1.Envelope:
    envelope = v1.Envelope(message_id=uuid.UUID(int=7).bytes, priority=v1.PRIORITY_ROUTINE)
    envelope.origin.nation = "DE"
    envelope.origin.unit = DE_RTW
    envelope.destination.unit.nation = "BE"
    envelope.destination.unit.unit = "be.astrid.amb-1"
    envelope.report_request = v1.REPORT_REQUEST_DELIVERED
    if body == "text":
        envelope.text.text = "Brücke gesperrt"
    elif body == "status":
        envelope.status.code = "on-scene"
    elif body == "location":
        envelope.location.location.latitude = 48.5
        envelope.location.location.longitude = 7.8
    elif body == "emergency":
        envelope.emergency.active = True
        envelope.priority = v1.PRIORITY_EMERGENCY
    elif body == "presence":
        envelope.presence.served_by = "x"
    return envelope


def plan(config: GatewayConfig, envelope: v1.Envelope, *, group: bool = False) -> object:
    target = LocalTarget(adapter="mcx-be", issi="sip:amb-1@mcx.be", is_group=group)
    return plan_mcdata_delivery(
        envelope,
        target,
        adapter=config.adapter("mcx-be"),
        directory=Directory(config),
        codebook=config.codebooks["be-astrid"],
    )


def test_partner_messages_become_mcdata_payloads(config: GatewayConfig) -> None:
    text = plan(config, _partner_envelope("text"))
    assert text.sender == f"sip:{DE_RTW}@iwf.mcx.be"  # type: ignore[attr-defined]
    assert text.payloads == (Payload.from_text("Brücke gesperrt"),)  # type: ignore[attr-defined]
    assert text.disposition == DispositionRequest.DELIVERY  # type: ignore[attr-defined]
    assert text.message_id == uuid.UUID(int=7).bytes  # type: ignore[attr-defined]
    status = plan(config, _partner_envelope("status"))
    assert status.payloads[0].data == b"\x00\x03"  # type: ignore[attr-defined]
    where = plan(config, _partner_envelope("location"))
    assert where.payloads[0].data == b"geo:48.500000,7.800000"  # type: ignore[attr-defined]
    alert = plan(config, _partner_envelope("emergency"))
    assert alert.emergency  # type: ignore[attr-defined]
    group = plan(config, _partner_envelope("text"), group=True)
    assert group.disposition == DispositionRequest.NONE  # type: ignore[attr-defined]


def test_partner_bodies_mcdata_cannot_carry_are_refused(config: GatewayConfig) -> None:
    with pytest.raises(DeliveryRefused, match="presence body"):
        plan(config, _partner_envelope("presence"))
    unknown = _partner_envelope("status")
    unknown.status.code = "en-route"
    with pytest.raises(DeliveryRefused, match="no value in codebook"):
        plan(config, unknown)


def test_notifications_and_receipts_correspond() -> None:
    assert receipt_state_for(NotificationType.DELIVERED_AND_READ) == [
        v1.DELIVERY_STATE_DELIVERED,
        v1.DELIVERY_STATE_READ,
    ]
    assert receipt_state_for(NotificationType.UNDELIVERED) == [v1.DELIVERY_STATE_FAILED]
    assert receipt_state_for(99) == []
    delivered = v1.DeliveryReceipt(
        state=v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_UNIT
    )
    accepted_by_network = v1.DeliveryReceipt(
        state=v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_END_SYSTEM
    )
    read = v1.DeliveryReceipt(state=v1.DELIVERY_STATE_READ)
    failed = v1.DeliveryReceipt(state=v1.DELIVERY_STATE_FAILED)
    assert notification_for(delivered, 1) == NotificationType.DELIVERED
    assert notification_for(delivered, 2) is None
    assert notification_for(accepted_by_network, 1) is None  # no unit confirmed it
    assert notification_for(read, 3) == NotificationType.READ
    assert notification_for(read, 1) is None
    assert notification_for(failed, 1) == NotificationType.UNDELIVERED
    assert notification_for(failed, 0) is None  # nothing was asked for


@given(text=st.text(min_size=1, max_size=300).filter(lambda t: "\x00" not in t))
def test_text_survives_mcdata_to_envelope_to_mcdata(text: str) -> None:
    config = parse_config(CONFIG)
    envelope = to_envelope(config, sds(config, payloads=(Payload.from_text(text),)))
    envelope.origin.unit = DE_RTW  # as if it had come back from Germany
    back = plan(config, envelope)
    assert back.payloads == (Payload.from_text(text),)  # type: ignore[attr-defined]
    assert back.message_id == uuid.UUID(int=1).bytes  # type: ignore[attr-defined]


def test_payloads_the_envelope_cannot_carry_are_named() -> None:
    config = parse_config(CONFIG)
    text = Payload.from_text("Lage")
    where = Payload(content_type=ContentType.LOCATION, data=b"geo:48.5,7.7")
    status = Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x00\x03")
    assert payloads_not_carried(sds(config, payloads=(text,))) == []
    assert payloads_not_carried(sds(config, payloads=(text, where, text))) == [
        ContentType.LOCATION,
        ContentType.TEXT,
    ]
    assert payloads_not_carried(sds(config, payloads=(where, status))) == [ContentType.LOCATION]
    emergency = sds(config, payloads=(where, text, status), emergency=True)
    assert payloads_not_carried(emergency) == [ContentType.ENHANCED_STATUS]
    envelope = to_envelope(config, emergency)
    assert envelope.emergency.text == "Lage"
    assert envelope.emergency.location.latitude == 48.5
