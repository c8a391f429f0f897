"""TETRA <-> MCData across the border: a German TETRA network and a Belgian MCX system.

Real PEI over TCP on the German side, real SIP over TCP on the Belgian side, two
gateways federated over the embedded bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.mcdata import McdataSystemSimulator
from adapters.tetra import TetraNetworkSimulator
from gateway.config import parse_config
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from gateway.federation import LocalFederationBus
from gateway.journal import JournalError
from gateway.node import Gateway, Observation
from gateway.runner import build_gateways
from protocols.mcdata import ContentType, DispositionRequest, NotificationType, Payload
from protocols.schema import SCHEMA_VERSION, v1
from protocols.tetra import SdsReport, StatusSds, TextSds
from tests.gateway.federation import eventually

AMB = "sip:amb-1@mcx.be"
USAR = "sip:usar-2@mcx.be"
RTW_AS_SEEN_IN_BELGIUM = "sip:de.bos.rtw-kehl-1@iwf.mcx.be"
ALIAS_OF_AMB = "7001001"  # in the German plan


@dataclass
class Crossing:
    de: Gateway
    be: Gateway
    sim_de: TetraNetworkSimulator
    mcx: McdataSystemSimulator


@pytest.fixture
async def crossing(tmp_path: Path) -> AsyncIterator[Crossing]:
    async with contextlib.AsyncExitStack() as stack:
        sim_de = await stack.enter_async_context(
            TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=["2001", "2002"])
        )
        mcx = await stack.enter_async_context(
            McdataSystemSimulator(users=[AMB, USAR], groups={"sip:xb-rhine@mcx.be": [AMB, USAR]})
        )
        configs = [
            parse_config(demo_config_text("DE", partners=["BE"], pei_port=sim_de.port)),
            parse_config(
                demo_config_text("BE", partners=["DE"], sip_peer_port=mcx.port).replace(
                    'iwf_domain = "', 'request_timeout = 1.0\niwf_domain = "', 1
                )  # SIP's 32 s are too long for a test
            ),
        ]
        de, be = build_gateways(configs, LocalFederationBus(), state_dir=tmp_path)
        await stack.enter_async_context(de.running())
        await stack.enter_async_context(be.running())
        await de.wait_ready(5)
        await be.wait_ready(5)
        mcx.gateway_port = be.mcdata["mcx-be"].listen_port
        yield Crossing(de, be, sim_de, mcx)


def reports(sim: TetraNetworkSimulator, issi: str) -> list[int]:
    return [
        c.delivery_status
        for _s, c in sim.reports.get(issi, [])
        if isinstance(c, SdsReport) and c.delivery_status != 0x21
    ]


async def test_tetra_text_reaches_an_mcdata_user_who_reads_it(crossing: Crossing) -> None:
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "Zweiter RTW unterwegs", report_request=3)
    await eventually(lambda: len(reports(crossing.sim_de, "2001")) == 2)
    [sds] = crossing.mcx.received[AMB]
    assert sds.sender == RTW_AS_SEEN_IN_BELGIUM  # its own identity, no text prefix
    assert sds.text == "Zweiter RTW unterwegs"
    assert sds.disposition_request == DispositionRequest.DELIVERY_AND_READ
    assert reports(crossing.sim_de, "2001") == [0x00, 0x02]  # received, then consumed


async def test_mcdata_text_reaches_a_tetra_radio_and_dispositions_come_back(
    crossing: Crossing,
) -> None:
    outcome = await crossing.mcx.send_sds(
        AMB,
        RTW_AS_SEEN_IN_BELGIUM,
        "Bonjour Kehl, B-FAST arrive",
        disposition=DispositionRequest.DELIVERY_AND_READ,
    )
    assert outcome.ok
    await eventually(lambda: len(crossing.mcx.notifications[AMB]) == 2)
    [(_src, text)] = crossing.sim_de.received["2001"]
    assert isinstance(text, TextSds)
    assert text.text == f"[{ALIAS_OF_AMB} be.astrid.amb-bfast-1] Bonjour Kehl, B-FAST arrive"
    kinds = [n.notification_type for n in crossing.mcx.notifications[AMB]]
    assert kinds == [NotificationType.DELIVERED, NotificationType.READ]
    assert all(n.message_id == outcome.message_id for n in crossing.mcx.notifications[AMB])
    assert crossing.mcx.notifications[AMB][0].sender == RTW_AS_SEEN_IN_BELGIUM


async def test_mcdata_emergency_alert_becomes_tetra_emergency_status(crossing: Crossing) -> None:
    outcome = await crossing.mcx.send_sds(
        USAR, RTW_AS_SEEN_IN_BELGIUM, alert=True, location=(48.5734, 7.7521)
    )
    assert outcome.ok
    await eventually(lambda: len(crossing.sim_de.received["2001"]) == 2)
    status, location = (c for _s, c in crossing.sim_de.received["2001"])
    assert status == StatusSds(status=0)
    assert getattr(location, "latitude", None) == pytest.approx(48.5734, abs=1e-4)


async def test_tetra_status_becomes_an_enhanced_status(crossing: Crossing) -> None:
    await crossing.sim_de.send_status("2002", ALIAS_OF_AMB, 0x8006)  # de-bos: on scene
    await eventually(lambda: bool(crossing.mcx.received[AMB]))
    [sds] = crossing.mcx.received[AMB]
    [payload] = sds.payloads
    assert payload.content_type == ContentType.ENHANCED_STATUS
    assert payload.data == b"\x00\x03"  # be-astrid: on-scene


async def test_unmappable_and_unknown_mcdata_input_gets_a_sip_refusal(crossing: Crossing) -> None:
    stranger = await crossing.mcx.send_sds(AMB, "sip:nobody@iwf.mcx.be", "hallo?")
    assert (stranger.ok, stranger.status) == (False, 404)
    unknown_status = await crossing.mcx.send_sds(
        AMB, RTW_AS_SEEN_IN_BELGIUM, enhanced_status=0x0999
    )
    assert (unknown_status.ok, unknown_status.status) == (False, 488)
    assert crossing.sim_de.received["2001"] == []
    assert crossing.be.counters["refused_0x45"] == 1


async def test_unreachable_mcdata_user_fails_back_to_the_tetra_sender(crossing: Crossing) -> None:
    crossing.mcx.set_reachable(AMB, False)
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "Hallo?", report_request=1)
    await eventually(lambda: bool(reports(crossing.sim_de, "2001")))
    assert reports(crossing.sim_de, "2001") == [0x5A]  # destination not reachable


async def test_notifications_that_overtake_the_200_ok_are_not_lost(crossing: Crossing) -> None:
    crossing.mcx.answer_delay = 0.3  # the recipient reads before our MESSAGE is answered
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "Zweiter RTW unterwegs", report_request=3)
    await eventually(lambda: len(reports(crossing.sim_de, "2001")) == 2)
    assert reports(crossing.sim_de, "2001") == [0x00, 0x02]  # received, then consumed
    assert crossing.be.counters["reports_early_or_unmatched"] >= 1


@pytest.mark.parametrize(
    ("origin", "text", "message_id"),
    [
        ("de.bos.rtw kehl 1", "hallo", bytes(range(16))),  # no SIP URI can carry that name
        ("de.bos.rtw-kehl-1", "x" * 70_000, bytes(range(16))),  # longer than SIP allows
        ("de.bos.rtw-kehl-1", "kurz", b"\x01" * 8),  # an identity that is no UUID
    ],
    ids=["bad-uri", "too-long", "short-id"],
)
async def test_a_partner_message_the_mcx_link_cannot_carry_fails_back_not_the_gateway(
    crossing: Crossing, origin: str, text: str, message_id: bytes
) -> None:
    be = crossing.be
    now = be._now_us()
    env = v1.Envelope(schema_version=SCHEMA_VERSION, message_id=message_id, created_at_us=now)
    env.origin.nation = "DE"
    env.origin.organisation = "bos"
    env.origin.unit = origin
    env.origin.system = v1.SYSTEM_TYPE_TETRA
    env.destination.unit.nation = "BE"
    env.destination.unit.unit = "be.astrid.amb-bfast-1"
    env.priority = v1.PRIORITY_ROUTINE
    env.expires_at_us = now + 60_000_000
    env.text.text = text
    await be._on_federation("DE", env.SerializeToString())
    if len(message_id) != 16:  # carried: the MCX identity is derived from it
        await eventually(lambda: bool(crossing.mcx.received[AMB]))
    else:
        await eventually(lambda: be.counters["delivery_failed"] == 1)
    assert be.task is not None and not be.task.done()  # the gateway runs on
    # and the next message goes through
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "danach", report_request=0)
    await eventually(lambda: any(s.text == "danach" for s in crossing.mcx.received[AMB]))


async def test_the_words_of_an_mcdata_emergency_reach_the_tetra_radio(crossing: Crossing) -> None:
    outcome = await crossing.mcx.send_sds(
        USAR,
        RTW_AS_SEEN_IN_BELGIUM,
        "Officer down, bridge 3",
        alert=True,
        location=(48.5734, 7.7521),
    )
    assert outcome.ok
    await eventually(lambda: len(crossing.sim_de.received["2001"]) == 3)
    status, location, words = (c for _s, c in crossing.sim_de.received["2001"])
    assert status == StatusSds(status=0)
    assert getattr(location, "latitude", None) == pytest.approx(48.5734, abs=1e-4)
    assert isinstance(words, TextSds)
    assert words.protocol_id == 0x89  # shown at once
    assert words.text.endswith("Officer down, bridge 3")


async def test_an_emergency_with_an_unreadable_location_still_goes(crossing: Crossing) -> None:
    bad = Payload(content_type=ContentType.LOCATION, data=b"somewhere near the bridge")
    outcome = await crossing.mcx.send_sds(
        USAR, RTW_AS_SEEN_IN_BELGIUM, "Hilfe", alert=True, payloads=[bad]
    )
    assert outcome.ok
    await eventually(lambda: len(crossing.sim_de.received["2001"]) == 2)
    status, words = (c for _s, c in crossing.sim_de.received["2001"])
    assert status == StatusSds(status=0)
    assert isinstance(words, TextSds)
    assert words.text.endswith("Hilfe")


async def test_a_partner_emergency_reaches_the_mcdata_user_with_its_words_and_place(
    crossing: Crossing,
) -> None:
    be = crossing.be
    now = be._now_us()
    env = v1.Envelope(schema_version=SCHEMA_VERSION, message_id=bytes(16), created_at_us=now)
    env.origin.nation = "DE"
    env.origin.unit = "de.bos.rtw-kehl-1"
    env.destination.unit.nation = "BE"
    env.destination.unit.unit = "be.astrid.amb-bfast-1"
    env.priority = v1.PRIORITY_EMERGENCY
    env.expires_at_us = now + 60_000_000
    env.emergency.active = True
    env.emergency.text = "Notfall am Rheinufer"
    env.emergency.location.latitude = 48.57
    env.emergency.location.longitude = 7.8
    await be._on_federation("DE", env.SerializeToString())
    await eventually(lambda: bool(crossing.mcx.received[AMB]))
    [sds] = crossing.mcx.received[AMB]
    assert sds.emergency
    kinds = {int(p.content_type): p.data for p in sds.payloads}
    assert kinds[ContentType.TEXT] == b"Notfall am Rheinufer"
    assert kinds[ContentType.LOCATION].startswith(b"geo:48.57")


async def test_a_message_the_mcx_system_never_answered_goes_again_not_failed(
    crossing: Crossing,
) -> None:
    crossing.mcx.set_silent(True)  # the MCX core takes it, then never answers
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "Antwort?", report_request=1)
    await eventually(lambda: crossing.be.counters["delivery_unanswered"] >= 1)
    crossing.mcx.set_silent(False)
    await eventually(lambda: bool(crossing.mcx.received[AMB]))
    await eventually(lambda: bool(reports(crossing.sim_de, "2001")))
    assert reports(crossing.sim_de, "2001") == [0x00]  # received, never a failure
    assert crossing.be.counters["delivery_failed"] == 0
    ids = {str(s.message_id) for s in crossing.mcx.received[AMB]}
    assert len(ids) == 1  # the same Message ID each time


async def test_a_notification_the_mcx_system_did_not_answer_is_sent_again(
    crossing: Crossing,
) -> None:
    outcome = await crossing.mcx.send_sds(
        AMB, RTW_AS_SEEN_IN_BELGIUM, "Bitte bestätigen", disposition=DispositionRequest.DELIVERY
    )
    assert outcome.ok
    crossing.mcx.set_silent(True)  # the radio's report comes back while the MCX is stuck
    await eventually(lambda: bool(crossing.sim_de.received["2001"]))
    await asyncio.sleep(1.5)  # the first attempt went unanswered
    assert crossing.mcx.notifications[AMB] == []
    crossing.mcx.set_silent(False)
    await eventually(lambda: bool(crossing.mcx.notifications[AMB]), seconds=10)
    [notification] = crossing.mcx.notifications[AMB]
    assert notification.notification_type == NotificationType.DELIVERED
    assert notification.message_id == outcome.message_id


_SECRET = "cannot open /var/lib/euccs/secret.db at 10.0.0.7"


async def test_a_crashed_mcdata_delivery_fails_back_without_the_crash_text(
    crossing: Crossing, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(_SECRET)

    monkeypatch.setattr(crossing.be.mcdata["mcx-be"], "send_sds", crash)
    seen: list[Observation] = []
    crossing.de.observers.append(seen.append)
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "kaputt", report_request=1)
    await eventually(lambda: bool(reports(crossing.sim_de, "2001")), seconds=5)
    failed = [o.fields["reason"] for o in seen if o.kind == "receipt" and o.fields.get("reason")]
    assert failed and "internal error" in failed[0]
    assert "secret" not in failed[0] and "10.0.0.7" not in failed[0]


async def test_custody_the_journal_refuses_is_not_explained_to_the_mcx_system(
    crossing: Crossing, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_commit(*_args: Any, **_kwargs: Any) -> Any:
        raise JournalError("/var/lib/euccs/be/journal.db: commit failed: disk I/O error")

    monkeypatch.setattr(crossing.be, "_commit", failing_commit)
    outcome = await crossing.mcx.send_sds(AMB, RTW_AS_SEEN_IN_BELGIUM, "hallo")
    assert not outcome.ok and outcome.status is not None and outcome.status >= 500
    assert "journal.db" not in outcome.reason and "/var/lib" not in outcome.reason
    assert "cannot take custody" in outcome.reason


async def test_an_mcx_refusal_goes_abroad_as_its_status_only(crossing: Crossing) -> None:
    seen: list[Observation] = []
    crossing.de.observers.append(seen.append)
    crossing.mcx.set_reachable(AMB, False)
    await crossing.sim_de.send_text("2001", ALIAS_OF_AMB, "Hallo?", report_request=1)
    await eventually(lambda: bool(reports(crossing.sim_de, "2001")))
    failed = [o.fields["reason"] for o in seen if o.kind == "receipt" and o.fields.get("reason")]
    assert failed and failed[0].startswith("MCX system answered 4")
    assert failed[0].removeprefix("MCX system answered ").isdigit()  # no phrase, no Warning
