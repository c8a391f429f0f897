"""Two national gateways end to end: real PEI over TCP to simulated TETRA networks."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.demo_configs import demo_config_text
from gateway.federation import LocalFederationBus
from gateway.journal import Journal, NewEntry
from gateway.node import Gateway, Held, _new_id
from gateway.presence import PresenceFull
from gateway.scheduler import Entry
from protocols.schema import v1
from protocols.tetra import LocationReport, StatusSds, TextSds
from tests.gateway.federation import (
    ALIAS_OF_DE_RTW,
    ALIAS_OF_FR_VSAV,
    DE_HLF,
    DE_RTW,
    FR_FPT,
    FR_VSAV,
    Federation,
    eventually,
    federation,
    reports,
    texts,
)


async def test_text_crosses_the_border_and_the_sender_gets_its_report(fed: Federation) -> None:
    mr = await fed.sim_de.send_text(
        DE_RTW, ALIAS_OF_FR_VSAV, "Zweiter RTW benötigt", report_request=1
    )
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)))
    [delivered] = texts(fed.sim_fr, FR_VSAV)
    assert delivered.text == f"[{ALIAS_OF_DE_RTW} de.bos.rtw-kehl-1] Zweiter RTW benötigt"
    [report] = reports(fed.sim_de, DE_RTW)
    assert (report.delivery_status, report.message_reference) == (0x00, mr)
    # Custody first: "message stored" (0x21) once the journal has it, then the final report.
    statuses = [r.delivery_status for r in reports(fed.sim_de, DE_RTW, stored=True)]
    assert statuses == [0x21, 0x00]
    assert fed.de.counters["receipts_delivered"] == 1
    kinds = [o.kind for o in fed.observed]
    assert kinds.index("accepted") < kinds.index("forwarded") < kinds.index("receipt")
    assert kinds.index("forwarded") < kinds.index("custody")  # the partner acknowledged it
    receipt = next(o for o in fed.observed if o.kind == "receipt")
    assert receipt.fields["confirmation"] == "CONFIRMATION_UNIT"


async def test_read_receipt_gives_received_then_consumed(fed: Federation) -> None:
    mr = await fed.sim_fr.send_text(FR_FPT, "8002002", "Bien reçu", report_request=3)
    await eventually(lambda: len(reports(fed.sim_fr, FR_FPT)) == 2)
    statuses = [(r.delivery_status, r.message_reference) for r in reports(fed.sim_fr, FR_FPT)]
    assert statuses == [(0x00, mr), (0x02, mr)]
    assert texts(fed.sim_de, DE_HLF)[0].text.endswith("Bien reçu")


async def test_status_is_translated_between_codebooks(fed: Federation) -> None:
    await fed.sim_de.send_status(DE_RTW, ALIAS_OF_FR_VSAV, 0x8006)  # de-bos: on scene
    await eventually(lambda: bool(fed.sim_fr.received.get(FR_VSAV)))
    [(_source, content)] = fed.sim_fr.received[FR_VSAV]
    assert content == StatusSds(status=0x8104)  # fr-sdis67: sur les lieux
    await eventually(lambda: fed.de.counters["receipts_delivered"] == 1)


async def test_status_missing_from_far_codebook_is_refused_with_a_reason(fed: Federation) -> None:
    await fed.sim_de.send_status(DE_RTW, ALIAS_OF_FR_VSAV, 0x8002)  # not in fr-sdis67
    await eventually(lambda: fed.de.counters["receipts_failed"] == 1)
    failed = next(o for o in fed.observed if o.kind == "receipt")
    assert "no value in codebook 'fr-sdis67'" in failed.fields["reason"]
    assert fed.sim_fr.received.get(FR_VSAV, []) == []


async def test_unknown_destination_gets_negative_report(fed: Federation) -> None:
    mr = await fed.sim_de.send_text(DE_RTW, "9009999", "hallo?", report_request=1)
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)))
    [report] = reports(fed.sim_de, DE_RTW)
    assert (report.delivery_status, report.message_reference) == (0x45, mr)
    assert fed.de.counters["refused_0x45"] == 1
    assert fed.de.counters["link_transient_disconnect"] == 0  # the refusal did not stall the PEI


async def test_refusals_do_not_stall_the_radio_link(fed: Federation) -> None:
    start = time.monotonic()
    for _ in range(3):
        await fed.sim_de.send_text(DE_RTW, "9009999", "wrong number", report_request=1)
    await fed.sim_de.send_text(DE_HLF, ALIAS_OF_FR_VSAV, "still flowing", report_request=1)
    await eventually(
        lambda: len(reports(fed.sim_de, DE_RTW)) == 3 and bool(reports(fed.sim_de, DE_HLF))
    )
    assert time.monotonic() - start < 3.0
    assert fed.de.counters["link_transient_disconnect"] == 0
    assert texts(fed.sim_fr, FR_VSAV)[0].text.endswith("still flowing")


async def _still_alive(fed: Federation) -> bool:
    await fed.sim_fr.send_text(FR_FPT, "8002002", "ping", report_request=0)
    await eventually(lambda: any(t.text.endswith("ping") for t in texts(fed.sim_de, DE_HLF)))
    return True


async def test_partner_location_out_of_range_is_refused_not_fatal(fed: Federation) -> None:
    env = v1.Envelope(message_id=b"\x02" * 16, priority=v1.PRIORITY_ROUTINE)
    env.origin.nation = "FR"
    env.origin.unit = "fr.sdis67.vsav-strasbourg-1"
    env.destination.unit.nation = "DE"
    env.destination.unit.unit = "de.bos.rtw-kehl-1"
    env.location.location.latitude = math.nan
    env.location.location.longitude = 7.0
    await fed.fr.link.send("DE", env.SerializeToString())
    await eventually(lambda: fed.de.counters["refused_from_partner"] == 1)
    assert await _still_alive(fed)


async def test_receipt_with_unknown_enum_values_is_not_fatal(fed: Federation) -> None:
    fed.bus.cut("FR")
    await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "x", report_request=1)
    await eventually(lambda: bool(fed.de.tracker.origins))
    receipt = v1.Envelope(message_id=b"\x03" * 16)
    receipt.origin.nation = "FR"
    receipt.receipt.message_id = next(iter(fed.de.tracker.origins))
    receipt.receipt.state = v1.DELIVERY_STATE_DELIVERED
    receipt.receipt.confirmation = 7  # type: ignore[assignment]  # from a newer schema
    fed.bus.cut("FR", down=False)
    await fed.fr.link.send("DE", receipt.SerializeToString())
    await eventually(lambda: fed.de.counters["receipts_delivered"] >= 1)
    assert await _still_alive(fed)
    # not confirmed by the unit: the radio is told "forwarded", not "received"
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)))
    assert reports(fed.sim_de, DE_RTW)[0].delivery_status == 0x04


async def test_unlisted_radio_may_not_send_across(fed: Federation) -> None:
    mr = await fed.sim_de.send_text("2999", ALIAS_OF_FR_VSAV, "wer bin ich", report_request=1)
    await eventually(lambda: bool(reports(fed.sim_de, "2999")))
    assert (reports(fed.sim_de, "2999")[0].delivery_status, mr) == (0x43, mr)
    assert texts(fed.sim_fr, FR_VSAV) == []


async def test_unreachable_far_radio_fails_back_to_the_sender(fed: Federation) -> None:
    fed.sim_fr.set_reachable(FR_VSAV, False)
    mr = await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "bist du da", report_request=1)
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)))
    [report] = reports(fed.sim_de, DE_RTW)
    assert report.message_reference == mr
    assert report.delivery_status >= 0x40
    assert fed.de.counters["receipts_failed"] == 1


async def test_emergency_location_becomes_status_zero_and_lip(fed: Federation) -> None:
    await fed.sim_de.send_location(DE_RTW, ALIAS_OF_FR_VSAV, 48.5734, 7.7521, reason=2)
    await eventually(lambda: len(fed.sim_fr.received.get(FR_VSAV, [])) == 2)
    first, second = (c for _s, c in fed.sim_fr.received[FR_VSAV])
    assert first == StatusSds(status=0)
    assert isinstance(second, LocationReport)
    assert second.reason == 2
    assert second.latitude == pytest.approx(48.5734, abs=1e-4)
    accepted = next(o for o in fed.observed if o.kind == "accepted")
    assert accepted.fields["priority"] == "PRIORITY_EMERGENCY"


async def test_outage_backlog_drains_emergency_first(fed: Federation) -> None:
    fed.bus.cut("FR")
    for n in range(5):
        await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"routine {n}", report_request=0)
    await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)
    await eventually(lambda: fed.de.counters["accepted"] == 6)
    await asyncio.sleep(0.2)
    assert fed.sim_fr.received.get(FR_VSAV, []) == []
    fed.bus.cut("FR", down=False)
    await eventually(lambda: len(fed.sim_fr.received.get(FR_VSAV, [])) == 6, seconds=10)
    contents = [c for _s, c in fed.sim_fr.received[FR_VSAV]]
    assert contents[0] == StatusSds(status=0)
    assert [c.text[-9:] for c in contents[1:] if isinstance(c, TextSds)] == [
        f"routine {n}" for n in range(5)
    ]
    await eventually(lambda: fed.de.counters["receipts_delivered"] == 6)


async def test_malformed_and_misattributed_partner_envelopes_are_refused(fed: Federation) -> None:
    link = fed.bus.attach("BE")
    await link.send("DE", b"\xff\xff\xff")
    fake = v1.Envelope(message_id=b"\x01" * 16)
    fake.origin.nation = "FR"  # but sent by BE
    fake.text.text = "spoofed"
    await link.send("DE", fake.SerializeToString())
    await eventually(lambda: fed.de.counters["federation_misattributed"] == 1)
    assert fed.de.counters["federation_malformed"] == 1
    assert texts(fed.sim_de, DE_RTW) == []


async def test_long_text_is_split_for_the_far_radio(fed: Federation) -> None:
    long_text = "Lagemeldung: " + "Hochwasser am Rheinufer, Evakuierung läuft. " * 8
    await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, long_text[:200], report_request=1)
    await eventually(lambda: bool(texts(fed.sim_fr, FR_VSAV)))
    assert texts(fed.sim_fr, FR_VSAV)[0].text.endswith(long_text[:200])
    await eventually(lambda: fed.de.counters["receipts_delivered"] == 1)


async def test_a_restart_keeps_the_backlog_beyond_the_bound_in_the_journal(tmp_path: Path) -> None:
    """Resuming a large backlog fills each queue to its bound; the rest is read back later."""
    config = parse_config(
        demo_config_text("DE", partner="FR", pei_port=9, delivery="queue_max_messages = 4")
    )
    journal = Journal(tmp_path / "de.sqlite3")
    ids = journal.add(
        [
            NewEntry(
                message_id=bytes([n]) * 16,
                queue="egress:FR",
                priority=v1.PRIORITY_EMERGENCY if n == 9 else v1.PRIORITY_ROUTINE,
                envelope=v1.Envelope(
                    message_id=bytes([n]) * 16,
                    priority=v1.PRIORITY_EMERGENCY if n == 9 else v1.PRIORITY_ROUTINE,
                ).SerializeToString(),
            )
            for n in range(10)
        ]
    )
    journal.close()
    gateway = Gateway(config, LocalFederationBus().attach("DE"), journal=tmp_path / "de.sqlite3")
    opened = gateway._open_journal()
    try:
        queue = gateway.queues["egress:FR"]
        # The emergency and the three oldest routine copies; six wait in the journal.
        assert len(queue) == 4 and gateway.spilled("egress:FR") == 6
        order = [e.item.entry_id for e in await _drain(gateway, "egress:FR", 10)]
        assert order == [ids[9], *ids[:9]]
        assert gateway.spilled("egress:FR") == 0
    finally:
        await asyncio.to_thread(opened.close)


async def _drain(gateway: Gateway, name: str, count: int) -> list[Entry[Held]]:
    """Take ``count`` entries from a queue as its loop would, reading spilled ones back."""
    queue = gateway.queues[name]
    taken: list[Entry[Held]] = []
    async with asyncio.timeout(10):
        while len(taken) < count:
            entry = queue.pop(time.monotonic())
            if entry is None:
                gateway._unspill_soon(name)
                await asyncio.sleep(0.01)
                continue
            taken.append(entry)
    return taken


def _routine(number: int, *, receipt: bool = False) -> v1.Envelope:
    envelope = v1.Envelope(message_id=bytes([number]) * 16, priority=v1.PRIORITY_ROUTINE)
    if receipt:
        envelope.receipt.message_id = b"\xee" * 16
        envelope.receipt.state = v1.DELIVERY_STATE_DELIVERED
    return envelope


async def test_copies_journaled_while_a_queue_spills_are_read_back_once_in_order(
    tmp_path: Path,
) -> None:
    """A receipt (or any copy) journaled while the queue spills waits its turn in the journal.

    Kept in memory instead, it would be read back a second time, and a spilled message
    behind it would be left in the journal.
    """
    config = parse_config(
        demo_config_text("DE", partner="FR", pei_port=9, delivery="queue_max_messages = 2")
    )
    gateway = Gateway(config, LocalFederationBus().attach("DE"), journal=tmp_path / "de.sqlite3")
    opened = gateway._open_journal()
    try:
        queue = gateway.queues["egress:FR"]
        for number, receipt in ((1, False), (2, False), (3, False), (4, True), (5, False)):
            held = Held(
                envelope=_routine(number, receipt=receipt), entry_id=None, queue="egress:FR"
            )
            assert await gateway._commit(add=[held])
        assert len(queue) == 2 and gateway.spilled("egress:FR") == 3
        sent = [e.item.envelope.message_id[:1] for e in await _drain(gateway, "egress:FR", 5)]
        assert sent == [bytes([n]) for n in (1, 2, 3, 4, 5)]
        await asyncio.sleep(0.05)
        gateway._unspill_soon("egress:FR")
        await asyncio.sleep(0.05)
        assert len(queue) == 0 and gateway._spilled == {}
    finally:
        await asyncio.to_thread(opened.close)


def test_message_ids_are_random_version_4_uuids() -> None:
    ids = [_new_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for raw in ids:
        parsed = uuid.UUID(bytes=raw)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def _partner_presence(unit: str, *, groups: tuple[str, ...] = ()) -> bytes:
    env = v1.Envelope(message_id=uuid.uuid4().bytes)
    env.origin.nation = "FR"
    env.presence.unit.nation = "FR"
    env.presence.unit.unit = unit
    env.presence.availability = v1.AVAILABILITY_OFFLINE
    env.presence.served_by = "gw-fr-forged"
    env.presence.epoch = 2**64 - 1  # the highest version: nothing could ever replace it
    env.presence.seq = 2**64 - 1
    env.presence.groups.extend(groups)
    return env.SerializeToString()


async def test_a_partner_speaks_for_its_own_units_only(fed: Federation) -> None:
    await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "hier", report_request=0)
    await eventually(lambda: fed.de.presence.availability("de.bos.rtw-kehl-1").name == "ONLINE")
    for unit in ("de.bos.rtw-kehl-1", "it.vvf.aps-1", "fr", "fr." + "x" * 200):
        await fed.fr.link.send("DE", _partner_presence(unit))
    await eventually(lambda: fed.de.counters["presence_refused"] == 4)
    assert fed.de.presence.availability("de.bos.rtw-kehl-1").name == "ONLINE"
    assert "it.vvf.aps-1" not in fed.de.presence
    # Its own unit is taken, groups with names no configuration could hold are dropped.
    await fed.fr.link.send(
        "DE", _partner_presence("fr.sdis67.vsav-9", groups=("rhein", "Bad Group!", "y" * 300))
    )
    await eventually(lambda: fed.de.counters["presence_applied"] == 1)
    held = fed.de.presence.get("fr.sdis67.vsav-9")
    assert held is not None
    assert held.groups == frozenset({"rhein"})
    assert fed.de.counters["presence_groups_dropped"] == 1


async def test_a_full_presence_registry_does_not_hold_up_our_radios_traffic(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: object, **_kw: object) -> None:
        raise PresenceFull("presence registry is full (1 units)")

    monkeypatch.setattr(fed.de.presence, "heard", full)
    await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)  # an emergency
    await eventually(lambda: bool(fed.sim_fr.received.get(FR_VSAV)))
    assert fed.sim_fr.received[FR_VSAV][0][1] == StatusSds(status=0)
    assert fed.de.counters["presence_full"] >= 1


async def test_a_partner_message_without_an_identity_is_refused(fed: Federation) -> None:
    env = v1.Envelope()  # no message_id
    env.origin.nation = "FR"
    env.destination.unit.nation = "DE"
    env.destination.unit.unit = "de.bos.rtw-kehl-1"
    env.text.text = "ohne Kennung"
    await fed.fr.link.send("DE", env.SerializeToString())
    await eventually(lambda: fed.de.counters["federation_malformed"] == 1)
    env.message_id = uuid.uuid4().bytes
    env.text.text = "mit Kennung"
    await fed.fr.link.send("DE", env.SerializeToString())
    await eventually(lambda: bool(texts(fed.sim_de, DE_RTW)))
    assert [t.text[-11:] for t in texts(fed.sim_de, DE_RTW)] == ["mit Kennung"]


async def test_one_partner_cannot_forge_receipts_or_pre_empt_identities_of_another(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, de_partners=("FR", "BE")) as fed:
        be = fed.bus.attach("BE")
        fed.bus.cut("FR")
        await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "an FR", report_request=1)
        await eventually(lambda: bool(fed.de.tracker.origins))
        [sent] = fed.de.tracker.origins
        forged = v1.Envelope(message_id=uuid.uuid4().bytes)
        forged.origin.nation = "BE"
        forged.receipt.message_id = sent
        forged.receipt.state = v1.DELIVERY_STATE_FAILED
        await be.send("DE", forged.SerializeToString())
        await eventually(lambda: fed.de.counters["receipts_misattributed"] == 1)
        assert reports(fed.sim_de, DE_RTW) == []
        # BE sends a message under the identity FR's next message will have: both arrive.
        message_id = uuid.uuid4().bytes
        for nation, link in (("BE", be), ("FR", fed.fr.link)):
            if nation == "FR":
                fed.bus.cut("FR", down=False)
            env = v1.Envelope(message_id=message_id)
            env.origin.nation = nation
            env.destination.unit.nation = "DE"
            env.destination.unit.unit = "de.bos.rtw-kehl-1"
            env.text.text = f"von {nation}"
            await link.send("DE", env.SerializeToString())
        await eventually(lambda: len(texts(fed.sim_de, DE_RTW)) == 2)
        assert sorted(t.text[-6:] for t in texts(fed.sim_de, DE_RTW)) == ["von BE", "von FR"]
        # FR's real receipt still reaches the radio.
        await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)))
        assert reports(fed.sim_de, DE_RTW)[0].delivery_status < 0x40


async def test_a_partner_presence_naming_an_unprintable_gateway_is_refused(
    fed: Federation,
) -> None:
    env = v1.Envelope()
    env.ParseFromString(_partner_presence("fr.sdis67.vsav-9"))
    env.presence.served_by = "gw-fr\x00"  # PostgreSQL could not even store it
    await fed.fr.link.send("DE", env.SerializeToString())
    await eventually(lambda: fed.de.counters["presence_refused"] == 1)
    assert "fr.sdis67.vsav-9" not in fed.de.presence
    assert fed.de._storable("k", {"origin": "a\x00b"}, 0.0) is None
    assert fed.de.counters["state_not_saved"] == 1


async def test_receipt_states_from_a_newer_schema_share_one_counter(fed: Federation) -> None:
    for state in range(100, 130):  # values a partner controls
        receipt = v1.Envelope(message_id=uuid.uuid4().bytes)
        receipt.origin.nation = "FR"
        receipt.receipt.message_id = uuid.uuid4().bytes
        receipt.receipt.state = state  # type: ignore[assignment]
        await fed.fr.link.send("DE", receipt.SerializeToString())
    await eventually(lambda: fed.de.counters["receipts_unknown"] == 30)
    assert not any(key.startswith("receipts_1") for key in fed.de.counters)


async def test_a_journaled_copy_that_can_no_longer_go_fails_back_to_its_sender(
    tmp_path: Path,
) -> None:
    """After a configuration change (a unit removed) a copy would otherwise stay for good."""
    config = parse_config(demo_config_text("DE", partner="FR", pei_port=9))
    envelope = v1.Envelope(message_id=b"\x4e" * 16, priority=v1.PRIORITY_ROUTINE)
    envelope.origin.nation = "FR"
    envelope.origin.unit = "fr.sdis67.vsav-strasbourg-1"
    envelope.destination.unit.nation = "DE"
    envelope.destination.unit.unit = "de.bos.removed-since"  # no longer configured
    envelope.text.text = "noch da?"
    journal = Journal(tmp_path / "de.sqlite3")
    journal.add(
        [
            NewEntry(
                message_id=envelope.message_id,
                queue="local:tetra-de",
                priority=v1.PRIORITY_ROUTINE,
                envelope=envelope.SerializeToString(),
                meta={"issi": "2009"},
            )
        ]
    )
    journal.close()
    gateway = Gateway(config, LocalFederationBus().attach("DE"), journal=tmp_path / "de.sqlite3")
    async with gateway.running():
        await eventually(lambda: gateway.counters["resume_unplannable"] == 1)
        await eventually(lambda: gateway.counters["receipts_sent_failed"] == 1)
    recovered = Journal(tmp_path / "de.sqlite3").recover()
    assert [e.queue for e in recovered.entries] == ["egress:FR"]  # only the receipt is left
    receipt = v1.Envelope.FromString(recovered.entries[0].envelope).receipt
    assert (receipt.message_id, receipt.state) == (envelope.message_id, v1.DELIVERY_STATE_FAILED)
    assert "cannot be delivered any more" in receipt.reason
