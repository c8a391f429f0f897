"""McdataAdapter against the simulated MCX system over loopback TCP: SDS both ways."""

from __future__ import annotations

import uuid

import pytest

from adapters import LinkState
from adapters.mcdata import (
    McdataAdapter,
    McdataGroup,
    McdataSystemSimulator,
    McdataUser,
)
from protocols.mcdata import (
    ContentType,
    DispositionRequest,
    McdataId,
    NotificationType,
    Payload,
    RequestType,
    unix_from_date_time,
)

from .conftest import ALICE, BOB, CAROL, FIRE, LMR_1, LMR_2, LMR_GROUP, Recorder, wait_sim

pytestmark = pytest.mark.interop


# ---------------------------------------------------------------- MCX -> gateway


async def test_one_to_one_sds_from_mcx_reaches_the_sink(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    outcome = await sim.send_sds(ALICE, LMR_1, "Grüße über die Grenze")
    assert outcome.ok and outcome.status == 200
    [sds] = recorder.sds()
    assert sds.sender == ALICE
    assert sds.target == McdataUser(McdataId(LMR_1))
    assert sds.text == "Grüße über die Grenze"
    assert sds.message_id == outcome.message_id
    assert sds.conversation_id == outcome.conversation_id
    assert sds.call_id == outcome.call_id
    assert sds.info.request_type == RequestType.ONE_TO_ONE_SDS
    assert not (sds.emergency or sds.alert or sds.imminent_peril)
    assert sds.disposition_request == DispositionRequest.NONE
    assert adapter.counters["sds_in"] == 1


async def test_group_sds_from_mcx_names_the_group(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    outcome = await sim.send_sds(ALICE, LMR_GROUP, "an alle", group=True)
    assert outcome.ok
    [sds] = recorder.sds()
    assert sds.target == McdataGroup(McdataId(LMR_GROUP))
    assert sds.info.request_type == RequestType.GROUP_SDS


async def test_reply_carries_conversation_and_in_reply_to(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    first = await adapter.send_sds(LMR_1, McdataUser(McdataId(ALICE)), [Payload.from_text("?")])
    assert first.ok
    reply = await sim.send_sds(
        ALICE,
        LMR_1,
        "!",
        conversation_id=first.conversation_id,
        in_reply_to=first.message_id,
    )
    assert reply.ok
    [sds] = recorder.sds()
    assert sds.conversation_id == first.conversation_id
    assert sds.in_reply_to == first.message_id


async def test_emergency_alert_flags_from_mcx(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    await sim.send_sds(ALICE, LMR_1, "MAYDAY", emergency=True, alert=True, location=(50.1, 6.2))
    await sim.send_sds(BOB, LMR_1, "careful", imminent_peril=True)
    alarm, peril = recorder.sds()
    assert alarm.emergency and alarm.alert and not alarm.imminent_peril
    assert peril.imminent_peril and not peril.emergency
    assert [p.content_type for p in alarm.payloads] == [ContentType.TEXT, ContentType.LOCATION]
    assert alarm.payloads[1].data == b"geo:50.100000,6.200000"


async def test_enhanced_status_and_location_from_mcx(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    await sim.send_sds(ALICE, LMR_GROUP, enhanced_status=0x8003, group=True)
    await sim.send_sds(ALICE, LMR_1, location=(-33.5, 151.25), user_location=b"\x01\x02")
    status, where = recorder.sds()
    [payload] = status.payloads
    assert payload.content_type == ContentType.ENHANCED_STATUS and payload.data == b"\x80\x03"
    assert status.text is None
    assert where.payloads[0].content_type == ContentType.LOCATION
    assert where.payloads[0].data == b"geo:-33.500000,151.250000"
    assert where.signalling.user_location == b"\x01\x02"


async def test_disposition_from_mcx_is_answered_by_the_gateway(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    outcome = await sim.send_sds(ALICE, LMR_2, "bitte bestätigen", disposition=3)
    [sds] = recorder.sds()
    assert sds.disposition_request == DispositionRequest.DELIVERY_AND_READ
    for kind in (NotificationType.DELIVERED, NotificationType.READ):
        sent = await adapter.send_notification(
            LMR_2,
            sds.sender,
            kind,
            conversation_id=sds.conversation_id,
            message_id=sds.message_id,
            now=1_800_000_000,
        )
        assert sent.ok and sent.message_id == outcome.message_id
    await wait_sim(sim, lambda: len(sim.notifications[ALICE]) == 2)
    delivered, read = sim.notifications[ALICE]
    assert [delivered.notification_type, read.notification_type] == [
        NotificationType.DELIVERED,
        NotificationType.READ,
    ]
    assert delivered.sender == LMR_2 and delivered.recipient == ALICE
    assert read.message_id == outcome.message_id
    assert read.conversation_id == outcome.conversation_id
    assert unix_from_date_time(read.notification.date_time) == 1_800_000_000
    assert adapter.counters["notifications_out"] == 2


# ---------------------------------------------------------------- gateway -> MCX


async def test_one_to_one_sds_to_mcx_user(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    message_id = uuid.uuid4()
    outcome = await adapter.send_sds(
        LMR_1,
        McdataUser(McdataId(BOB)),
        [Payload.from_text("Lage ruhig")],
        message_id=message_id,
        now=1_750_000_000,
    )
    assert outcome.ok and outcome.status == 200 and outcome.reason == ""
    assert outcome.message_id == message_id
    [sds] = sim.received[BOB]
    assert sds.sender == LMR_1 and sds.text == "Lage ruhig"
    assert sds.message_id == message_id
    assert unix_from_date_time(sds.signalling.date_time) == 1_750_000_000
    assert sds.signalling.sender == LMR_1
    assert sim.received[ALICE] == []
    assert adapter.counters["sds_out"] == 1


async def test_group_sds_to_mcx_group_reaches_every_member(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    outcome = await adapter.send_sds(
        LMR_1, McdataGroup(McdataId(FIRE)), [Payload.from_text("Abmarsch")]
    )
    assert outcome.ok
    assert [s.text for s in sim.received[ALICE]] == ["Abmarsch"]
    assert [s.target for s in sim.received[BOB]] == [McdataGroup(McdataId(FIRE))]
    assert sim.received[CAROL] == []


async def test_emergency_alert_and_payloads_to_mcx(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    payloads = [
        Payload(content_type=ContentType.LOCATION, data=b"geo:48.000000,7.000000"),
        Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x00\x05"),
    ]
    outcome = await adapter.send_sds(
        LMR_1,
        McdataGroup(McdataId(FIRE)),
        payloads,
        emergency=True,
        alert=True,
        imminent_peril=True,
        user_location=b"\x10\x20\x30",
    )
    assert outcome.ok
    [sds] = sim.received[ALICE]
    assert sds.emergency and sds.alert and sds.imminent_peril
    assert sds.payloads == tuple(payloads)
    assert sds.signalling.user_location == b"\x10\x20\x30"


@pytest.mark.parametrize(
    ("request_", "reads", "expected"),
    [
        (DispositionRequest.DELIVERY, True, [NotificationType.DELIVERED]),
        (DispositionRequest.READ, True, [NotificationType.READ]),
        (DispositionRequest.DELIVERY_AND_READ, True, [NotificationType.DELIVERED_AND_READ]),
        (DispositionRequest.DELIVERY_AND_READ, False, [NotificationType.DELIVERED]),
    ],
)
async def test_dispositions_from_mcx_reach_the_sink(
    adapter: McdataAdapter,
    sim: McdataSystemSimulator,
    recorder: Recorder,
    request_: DispositionRequest,
    reads: bool,
    expected: list[NotificationType],
) -> None:
    sim.set_reads(BOB, reads)
    outcome = await adapter.send_sds(
        LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")], disposition_request=request_
    )
    assert outcome.ok
    await recorder.wait_for(lambda: len(recorder.notifications()) == len(expected))
    [notification] = recorder.notifications()
    assert notification.notification_type == expected[0]
    assert notification.sender == BOB and notification.recipient == LMR_1
    assert notification.message_id == outcome.message_id
    assert notification.conversation_id == outcome.conversation_id
    assert adapter.counters["notifications_in"] == 1


async def test_unreachable_user_answers_480(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    sim.set_reachable(BOB, False)
    outcome = await adapter.send_sds(
        LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")], disposition_request=1
    )
    assert not outcome.ok and outcome.status == 480
    assert "Temporarily Unavailable" in outcome.reason
    assert sim.received[BOB] == []
    assert adapter.counters["send_failed"] == 1
    sim.set_reachable(BOB, True)
    assert (await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("y")])).ok


async def test_unreachable_user_gets_undelivered_notification(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    sim.set_reachable(BOB, False, reject=False)
    outcome = await adapter.send_sds(
        LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")], disposition_request=3
    )
    assert outcome.ok
    await recorder.wait_for(lambda: len(recorder.notifications()) == 1)
    [notification] = recorder.notifications()
    assert notification.notification_type == NotificationType.UNDELIVERED
    assert notification.message_id == outcome.message_id
    assert sim.received[BOB] == []


async def test_group_sds_with_one_member_off(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    sim.set_reachable(ALICE, False)
    outcome = await adapter.send_sds(
        LMR_1, McdataGroup(McdataId(FIRE)), [Payload.from_text("x")], disposition_request=1
    )
    assert outcome.ok
    await recorder.wait_for(lambda: len(recorder.notifications()) == 2)
    kinds = {(n.sender, n.notification_type) for n in recorder.notifications()}
    assert kinds == {(ALICE, NotificationType.UNDELIVERED), (BOB, NotificationType.DELIVERED)}
    assert sim.received[ALICE] == [] and len(sim.received[BOB]) == 1


async def test_unknown_target_answers_404(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    outcome = await adapter.send_sds(
        LMR_1, McdataUser(McdataId("sip:nobody@mcx.fr.example.eu")), [Payload.from_text("x")]
    )
    assert outcome.status == 404 and not outcome.ok


@pytest.mark.parametrize(("status", "phrase"), [(486, "Busy Here"), (503, "Service Unavailable")])
async def test_injected_sip_error_is_a_failed_outcome(
    adapter: McdataAdapter, sim: McdataSystemSimulator, status: int, phrase: str
) -> None:
    sim.fail_next(status)
    outcome = await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")])
    assert not outcome.ok and outcome.status == status and phrase in outcome.reason
    assert sim.received[BOB] == []
    assert (await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("y")])).ok


async def test_state_is_connected_and_inbound_connection_is_served(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    assert adapter.state is LinkState.CONNECTED
    assert recorder.states()[:2] == [LinkState.CONNECTING, LinkState.CONNECTED]
    await sim.send_sds(ALICE, LMR_1, "x")
    assert adapter.inbound_connections == 1
