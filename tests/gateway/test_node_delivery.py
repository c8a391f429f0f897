"""Delivery semantics of two running gateways: policy, rate limits, presence, replay, canaries."""

from __future__ import annotations

import asyncio
import base64
import functools
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from gateway.journal import Journal, JournalError
from gateway.node import Gateway, Held, Observation
from gateway.presence import Availability, PresenceRegistry, PresenceUpdate
from gateway.tracking import AwaitingReport, OriginRecord
from protocols.errors import LinkError
from protocols.schema import v1
from protocols.tetra import AiService, Identity, SdsReceived, SdsReport, StatusSds, TextSds
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

DE_RTW_UNIT = "de.bos.rtw-kehl-1"
FR_VSAV_UNIT = "fr.sdis67.vsav-strasbourg-1"

FR_POLICY = """
[policy]
[[policy.rules]]
name = "german units may reach the VSAV only"
nation = "DE"
units = ["fr.sdis67.vsav-*"]
"""


async def test_policy_refuses_unlisted_destination_with_its_reason(tmp_path: Path) -> None:
    async with federation(tmp_path, FR=FR_POLICY) as fed:
        allowed = await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "ok", report_request=1)
        refused = await fed.sim_de.send_text(DE_RTW, "9001002", "nicht erlaubt", report_request=1)
        await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == 2)
        by_reference = {r.message_reference: r.delivery_status for r in reports(fed.sim_de, DE_RTW)}
        assert by_reference == {allowed: 0x00, refused: 0x56}  # destination prohibited
        assert texts(fed.sim_fr, FR_FPT) == []
        assert fed.fr.counters["refused_by_policy"] == 1
        failed = next(o for o in fed.observed if o.kind == "receipt" and o.fields["reason"])
        assert "no rule allows" in failed.fields["reason"] or "german" in failed.fields["reason"]


async def test_a_pei_link_lost_during_a_send_sends_the_text_again_after_the_reconnect(
    tmp_path: Path,
) -> None:
    # The French radio accepts AT+CMGS, then the link dies before the final status: the
    # outcome is unknown, so the text must wait for the link and go again with the same
    # SDS-TL reference (the far radio would discard a repeat), never become FAILED.
    async with federation(tmp_path) as fed:
        fed.sim_fr.drop_after_next_cmgs()
        reference = await fed.sim_de.send_text(
            DE_RTW, ALIAS_OF_FR_VSAV, "über die Grenze", report_request=1
        )
        await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == 1, seconds=20)
        assert [t.text.split("] ", 1)[-1] for t in texts(fed.sim_fr, FR_VSAV)] == [
            "über die Grenze"
        ]
        [report] = reports(fed.sim_de, DE_RTW)
        assert (report.message_reference, report.delivery_status) == (reference, 0x00)
        assert fed.fr.counters["delivery_failed"] == 0
        assert fed.sim_fr.connection_count >= 2  # it was sent again on a new connection
        # (the gateway's liveness canaries to its own radio go through the radio too)
        first, again = [s for s in fed.sim_fr.submitted if s.destination == FR_VSAV][-2:]
        assert first.payload == again.payload


async def test_emergency_needs_permission(tmp_path: Path) -> None:
    async with federation(tmp_path, FR=FR_POLICY) as fed:
        await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)  # emergency, no permission
        await eventually(lambda: fed.de.counters["receipts_failed"] == 1)
        assert fed.sim_fr.received.get(FR_VSAV, []) == []
        assert fed.fr.counters["refused_by_policy"] == 1


FR_RATE = """
[rate_limits]
messages_per_second = 0.5
burst = 2
emergency_messages_per_second = 1
emergency_burst = 2
"""


async def test_partner_rate_limit_refuses_excess_but_not_emergency(tmp_path: Path) -> None:
    async with federation(tmp_path, FR=FR_RATE) as fed:
        for n in range(5):
            await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"flood {n}", report_request=1)
        await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)
        await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == 5)
        statuses = sorted(r.delivery_status for r in reports(fed.sim_de, DE_RTW))
        assert statuses == [0x00, 0x00, 0x40, 0x40, 0x40]  # burst of 2, then network overload
        await eventually(
            lambda: StatusSds(status=0) in [c for _s, c in fed.sim_fr.received[FR_VSAV]]
        )
        assert fed.fr.counters["rate_limited_DE"] == 3


async def test_partner_retransmission_is_delivered_once(fed: Federation) -> None:
    envelope = v1.Envelope(message_id=b"\x42" * 16, priority=v1.PRIORITY_ROUTINE)
    envelope.origin.nation = "FR"
    envelope.origin.unit = FR_VSAV_UNIT
    envelope.destination.unit.nation = "DE"
    envelope.destination.unit.unit = DE_RTW_UNIT
    envelope.text.text = "einmal bitte"
    for _ in range(3):
        await fed.fr.link.send("DE", envelope.SerializeToString())
    await eventually(lambda: fed.de.counters["duplicates"] == 2)
    await eventually(lambda: bool(texts(fed.sim_de, DE_RTW)))
    assert [t.text[-12:] for t in texts(fed.sim_de, DE_RTW)] == ["einmal bitte"]
    # Every copy was acknowledged, so the sender could stop sending.
    await eventually(lambda: fed.fr.counters["acks_unmatched"] == 3)


async def test_two_copies_of_a_receipt_taken_in_together_are_applied_once(
    fed: Federation,
) -> None:
    receipt = v1.Envelope(message_id=b"\x43" * 16, priority=v1.PRIORITY_ROUTINE)
    receipt.origin.nation = "FR"
    receipt.origin.unit = FR_VSAV_UNIT
    receipt.receipt.message_id = b"\x44" * 16  # a message DE no longer tracks
    receipt.receipt.state = v1.DELIVERY_STATE_DELIVERED
    payload = receipt.SerializeToString()
    # The link hands the envelopes of one batch over together.
    await asyncio.gather(*(fed.de._on_federation("FR", payload) for _ in range(2)))
    assert fed.de.counters["receipts_unmatched"] == 1
    assert fed.de.counters["duplicates"] == 1
    await fed.de._on_federation("FR", payload)  # a later copy: seen in the journal
    assert fed.de.counters["receipts_unmatched"] == 1
    assert fed.de.counters["duplicates"] == 2


def _envelope_from_fr(
    message_id: bytes, unit: str = DE_RTW_UNIT, priority: int = v1.PRIORITY_ROUTINE
) -> v1.Envelope:
    """An envelope of the French VSAV to a German unit, without a body."""
    envelope = v1.Envelope(message_id=message_id, priority=priority)  # type: ignore[arg-type]
    envelope.origin.nation = "FR"
    envelope.origin.unit = FR_VSAV_UNIT
    envelope.destination.unit.nation = "DE"
    envelope.destination.unit.unit = unit
    return envelope


def _from_fr(
    text: str, message_id: bytes, unit: str = DE_RTW_UNIT, priority: int = v1.PRIORITY_ROUTINE
) -> bytes:
    envelope = _envelope_from_fr(message_id, unit, priority)
    envelope.text.text = text
    return envelope.SerializeToString()


@dataclass
class _Sends:
    """What a gateway gave its federation link to send (see :func:`_watch_sends`)."""

    sent: list[v1.Envelope] = field(default_factory=list)
    now: int = 0
    most: int = 0  # sends in progress at once, at most

    def acks(self) -> list[v1.Envelope]:
        return [e for e in self.sent if e.receipt.state == v1.DELIVERY_STATE_ACCEPTED]


def _watch_sends(gateway: Gateway, delay: float = 0.0) -> _Sends:
    """Record what ``gateway`` sends; each send first waits ``delay`` (a linger, a PUBACK)."""
    sends = _Sends()
    send = gateway.link.send

    async def watched(nation: str, payload: bytes) -> None:
        sends.sent.append(v1.Envelope.FromString(payload))
        sends.now += 1
        sends.most = max(sends.most, sends.now)
        try:
            await asyncio.sleep(delay)
        finally:
            sends.now -= 1
        await send(nation, payload)

    gateway.link.send = watched  # type: ignore[method-assign]
    return sends


async def test_a_batch_taken_in_together_keeps_its_order_past_refusals_and_duplicates(
    fed: Federation,
) -> None:
    batch = [
        _from_fr("eins", b"\x51" * 16),
        _from_fr("niemand", b"\x52" * 16, unit="de.bos.nobody"),  # refused: unknown unit
        _from_fr("zwei", b"\x53" * 16),
        _from_fr("eins", b"\x51" * 16),  # a copy of the first, in the same batch
        *(_from_fr(f"nummer {n}", bytes([0x60 + n]) * 16) for n in range(20)),
    ]
    # The MQTT link hands the envelopes of one batch over together.
    await asyncio.gather(*(fed.de._on_federation("FR", payload) for payload in batch))
    expected = ["eins", "zwei", *(f"nummer {n}" for n in range(20))]
    await eventually(lambda: len(texts(fed.sim_de, DE_RTW)) >= len(expected))
    delivered = [t.text.rsplit(": ", 1)[-1] for t in texts(fed.sim_de, DE_RTW)]
    assert [d[-len(e) :] for d, e in zip(delivered, expected, strict=True)] == expected
    assert fed.de.counters["duplicates"] == 1
    assert fed.de.counters["accepted_from_partner"] == len(expected)


async def test_custody_whose_handler_is_cancelled_after_the_commit_is_still_delivered(
    fed: Federation,
) -> None:
    # A link restart cancels what it was taking in; what reached the journal must not
    # wait there for the next restart of the gateway.
    journal = fed.de.journal
    assert journal is not None
    busy = journal.submit_nowait(lambda _j: time.sleep(0.3))  # a slow commit in progress
    handler = asyncio.create_task(fed.de._on_federation("FR", _from_fr("trotzdem", b"\x71" * 16)))
    await asyncio.sleep(0.05)  # the handler waits for the next commit
    assert not busy.done() and not handler.done()
    handler.cancel()
    await asyncio.gather(handler, return_exceptions=True)
    assert handler.cancelled()
    await eventually(lambda: bool(texts(fed.sim_de, DE_RTW)))
    assert [t.text[-8:] for t in texts(fed.sim_de, DE_RTW)] == ["trotzdem"]


async def test_an_emergency_whose_handler_is_cancelled_after_the_commit_is_still_an_alert(
    fed: Federation,
) -> None:
    alert = _envelope_from_fr(b"\x72" * 16, priority=v1.PRIORITY_EMERGENCY)
    alert.emergency.active = True
    journal = fed.de.journal
    assert journal is not None
    # A slow commit in the urgent lane, where the emergency's custody goes after it.
    busy = journal.submit_nowait(lambda _j: time.sleep(0.3), urgent=True)
    handler = asyncio.create_task(fed.de._on_federation("FR", alert.SerializeToString()))
    await asyncio.sleep(0.05)
    assert not handler.done()
    handler.cancel()  # a link restart
    await asyncio.gather(handler, return_exceptions=True)
    assert handler.cancelled()
    await busy
    await eventually(lambda: fed.de.counters["acks_sent"] >= 1)
    assert b"\x72" * 16 in fed.de.alerts  # replayed to units coming back into reach
    assert fed.de.counters["accepted_from_partner"] == 1


async def test_copies_received_again_are_acknowledged_alone_and_at_once(
    fed: Federation,
) -> None:
    batch = [_from_fr(f"nochmal {n}", bytes([0xC0, n]) * 8) for n in range(100)]
    refused = _from_fr("niemand", b"\xc1" * 16, unit="de.bos.nobody")
    await asyncio.gather(*(fed.de._on_federation("FR", p) for p in [*batch, refused]))
    await eventually(lambda: fed.de.counters["acks_sent"] >= 101)
    sends = _watch_sends(fed.de, delay=0.05)
    await asyncio.gather(*(fed.de._on_federation("FR", p) for p in [*batch, refused]))
    await eventually(lambda: fed.de.counters["acks_sent"] >= 202, 10.0)
    # One at a time they would take 101 x 50 ms, past a partner's ack timeout.
    assert sends.most > 50
    acks = sends.acks()
    assert len(acks) == 101
    assert all(not a.receipt.also_accepted for a in acks)
    assert b"\xc1" * 16 in {a.receipt.message_id for a in acks}


async def test_a_batch_larger_than_a_commit_group_is_acknowledged_in_full(
    fed: Federation,
) -> None:
    _watch_sends(fed.de, delay=0.05)  # acks wait for a linger and a broker round trip
    batch = [_from_fr(f"viele {n}", n.to_bytes(2, "big") * 8) for n in range(300)]
    await asyncio.gather(*(fed.de._on_federation("FR", payload) for payload in batch))
    await eventually(lambda: fed.de.counters["acks_sent"] >= 300, 10.0)
    assert fed.de.counters["acks_not_sent"] == 0


async def test_a_batch_taken_in_together_is_acknowledged_in_one_envelope(
    fed: Federation,
) -> None:
    sends = _watch_sends(fed.de)
    batch = [_from_fr(f"zusammen {n}", bytes([0xA0 + n]) * 16) for n in range(20)]
    urgent = _from_fr("mayday", b"\xbf" * 16, priority=v1.PRIORITY_EMERGENCY)
    await asyncio.gather(*(fed.de._on_federation("FR", p) for p in [*batch, urgent]))
    # France never sent these: its gateway finds no copy to release for any of them.
    await eventually(lambda: fed.fr.counters["acks_unmatched"] == 21)
    acks = sends.acks()
    assert len(acks) == 2  # the routine messages' together, the emergency's apart
    routine, emergency = sorted(acks, key=lambda e: e.priority)
    acknowledged = [routine.receipt.message_id, *routine.receipt.also_accepted]
    assert acknowledged == [bytes([0xA0 + n]) * 16 for n in range(20)]
    assert emergency.priority == v1.PRIORITY_EMERGENCY
    assert (emergency.receipt.message_id, list(emergency.receipt.also_accepted)) == (
        b"\xbf" * 16,
        [],
    )
    assert fed.de.counters["acks_sent"] == 21
    # Copies sent again (their sender may not know also_accepted) are acknowledged alone.
    sends.sent.clear()
    await asyncio.gather(*(fed.de._on_federation("FR", p) for p in batch[:3]))
    await eventually(lambda: fed.fr.counters["acks_unmatched"] == 24)
    again = sends.acks()
    assert [(e.receipt.message_id, len(e.receipt.also_accepted)) for e in again] == [
        (bytes([0xA0 + n]) * 16, 0) for n in range(3)
    ]


def _receipts(sends: _Sends) -> list[v1.Envelope]:
    """The end-to-end receipts (not custody acknowledgements) among what was sent."""
    return [
        e
        for e in sends.sent
        if e.HasField("receipt") and e.receipt.state != v1.DELIVERY_STATE_ACCEPTED
    ]


async def test_receipts_due_together_share_an_envelope_and_each_is_applied(
    fed: Federation,
) -> None:
    sends = _watch_sends(fed.de)
    delivered = [_envelope_from_fr(n.to_bytes(2, "big") * 8) for n in range(600)]
    failed = _envelope_from_fr(b"\x5f" * 16)
    await asyncio.gather(
        *(
            fed.de._send_receipt(
                e, v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_UNIT, remove=[]
            )
            for e in delivered
        ),
        fed.de._send_receipt(
            failed, v1.DELIVERY_STATE_FAILED, tetra_status=0x41, reason="gone", remove=[]
        ),
    )
    # France never sent these: its gateway applies each and finds no message of its own.
    await eventually(lambda: fed.fr.counters["receipts_unmatched"] == 601)
    assert fed.fr.counters["receipts_delivered"] == 600
    assert fed.fr.counters["receipts_failed"] == 1
    receipts = sorted(_receipts(sends), key=lambda e: len(e.receipt.also_about))
    assert [len(e.receipt.also_about) for e in receipts] == [0, 87, 511]  # 512 at most
    lone, *together = receipts
    assert (lone.receipt.message_id, lone.receipt.reason) == (failed.message_id, "gone")
    about = [i for e in reversed(together) for i in (e.receipt.message_id, *e.receipt.also_about)]
    assert about == [e.message_id for e in delivered]  # in the order they were due
    assert {e.receipt.confirmation for e in together} == {v1.CONFIRMATION_UNIT}
    assert fed.de.counters["receipts_sent_delivered"] == 600
    assert not fed.de._receipts_due


async def test_a_partner_that_does_not_announce_batched_receipts_gets_one_each(
    fed: Federation,
) -> None:
    sends = _watch_sends(fed.de)

    def announces_nothing(nation: str, feature: str) -> bool:
        return False

    fed.de.link.supports = announces_nothing  # type: ignore[method-assign]
    about = [_envelope_from_fr(bytes([0x70 + n]) * 16) for n in range(3)]
    await asyncio.gather(
        *(fed.de._send_receipt(e, v1.DELIVERY_STATE_DELIVERED, remove=[]) for e in about)
    )
    await eventually(lambda: fed.fr.counters["receipts_unmatched"] == 3)
    assert [(e.receipt.message_id, list(e.receipt.also_about)) for e in _receipts(sends)] == [
        (e.message_id, []) for e in about
    ]


async def test_a_batched_receipt_releases_every_copy_and_ends_every_origin_record(
    fed: Federation,
) -> None:
    sends = _watch_sends(fed.fr)
    journal_receipts = fed.fr._journal_receipts

    def together(key: tuple[str, int]) -> None:
        if len(fed.fr._receipts_due[key]) < 8:  # all eight delivered before the first goes
            asyncio.get_running_loop().call_later(0.01, together, key)
        else:
            journal_receipts(key)

    fed.fr._journal_receipts = together  # type: ignore[method-assign]
    for n in range(8):
        await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"zusammen {n}", report_request=0)
    await eventually(lambda: fed.de.counters["receipts_delivered"] == 8)
    [receipt] = _receipts(sends)
    about = [receipt.receipt.message_id, *receipt.receipt.also_about]
    assert len(set(about)) == 8
    assert not set(about) & set(fed.de.tracker.origins)
    de_journal, fr_journal = fed.de.journal, fed.fr.journal
    assert de_journal is not None and fr_journal is not None
    for message_id in about:  # every origin record ended in the journal too
        assert await de_journal.submit(functools.partial(_origin_of, message_id)) is None
    # France released every delivered copy, and the receipt once Germany acknowledged it.
    await eventually(lambda: fed.fr.counters["acked"] == 1 and not fed.fr.in_flight("DE"))
    assert await fr_journal.submit(lambda j: j.count()) == 0


def _origin_of(message_id: bytes, journal: Any) -> Any:
    return journal.get_origin(message_id)


async def test_a_read_receipt_never_overtakes_the_delivered_one(fed: Federation) -> None:
    sends = _watch_sends(fed.de)
    message = _envelope_from_fr(b"\x61" * 16)
    others = [_envelope_from_fr(bytes([0x62, n]) * 8) for n in range(100)]

    async def delivered_then_read() -> None:  # as _settle does for a CONSUMED report
        await fed.de._send_receipt(message, v1.DELIVERY_STATE_DELIVERED, remove=[])
        await fed.de._send_receipt(message, v1.DELIVERY_STATE_READ, remove=[])

    async def delivered_later(envelope: v1.Envelope, delay: float) -> None:
        await asyncio.sleep(delay)
        await fed.de._send_receipt(envelope, v1.DELIVERY_STATE_DELIVERED, remove=[])

    await asyncio.gather(
        delivered_then_read(),
        *(delivered_later(e, n * 0.0005) for n, e in enumerate(others)),
    )
    await eventually(lambda: fed.fr.counters["receipts_unmatched"] == 102)
    about_message = [
        e.receipt.state
        for e in _receipts(sends)
        if message.message_id in (e.receipt.message_id, *e.receipt.also_about)
    ]
    assert about_message == [v1.DELIVERY_STATE_DELIVERED, v1.DELIVERY_STATE_READ]


async def test_a_receipt_handed_over_is_journaled_even_if_its_caller_is_cancelled(
    fed: Federation,
) -> None:
    about = _envelope_from_fr(b"\x63" * 16)
    caller = asyncio.create_task(
        fed.de._send_receipt(about, v1.DELIVERY_STATE_DELIVERED, remove=[])
    )
    await asyncio.sleep(0)  # handed over: waiting for the others due in this pass
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    assert caller.cancelled()
    await eventually(lambda: fed.fr.counters["receipts_unmatched"] == 1)
    assert not fed.de._receipts_due


async def test_receipts_the_journal_refused_are_retried_and_errors_reach_the_caller(
    fed: Federation,
) -> None:
    submit = fed.de._submit_commit
    #: What fails next: the submission itself, or the commit it returns.
    failures: list[tuple[str, Exception]] = []

    def failing(**kwargs: Any) -> asyncio.Future[list[int] | None]:
        if not failures:
            return submit(**kwargs)
        where, failure = failures.pop(0)
        if where == "submission":
            raise failure
        failed: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
        failed.set_exception(failure)
        return failed

    fed.de._submit_commit = failing  # type: ignore[method-assign]
    # Refused: retried (as _commit_surely does) until the journal takes it.
    for n, where in enumerate(["submission", "commit"]):
        failures.append((where, JournalError("disk full")))
        await fed.de._send_receipt(
            _envelope_from_fr(bytes([0x64, n]) * 8), v1.DELIVERY_STATE_DELIVERED, remove=[]
        )
        await eventually(lambda n=n: fed.fr.counters["receipts_unmatched"] == n + 1)  # type: ignore[misc]
        assert not failures
    # Any other failure is the caller's, as with a commit of its own: never a silent hang.
    failures.append(("commit", RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        await fed.de._send_receipt(
            _envelope_from_fr(b"\x65" * 16), v1.DELIVERY_STATE_DELIVERED, remove=[]
        )
    assert not fed.de._receipts_due


def _origin_record(message_id: bytes) -> OriginRecord:
    return OriginRecord(
        message_id=message_id,
        adapter="tetra-de",
        source_issi="1001",
        protocol_id=None,
        message_reference=None,
        report_request=0,
        priority=v1.PRIORITY_ROUTINE,
    )


def _receipt_from_fr(message_id: bytes, about: list[bytes]) -> bytes:
    envelope = v1.Envelope(message_id=message_id, priority=v1.PRIORITY_ROUTINE)
    envelope.origin.nation = "FR"
    envelope.origin.unit = FR_VSAV_UNIT
    envelope.receipt.message_id = about[0]
    envelope.receipt.also_about.extend(about[1:])
    envelope.receipt.state = v1.DELIVERY_STATE_DELIVERED
    return envelope.SerializeToString()


async def test_a_batched_receipt_reads_back_origin_records_kept_in_the_journal_only(
    fed: Federation,
) -> None:
    about = [bytes([0x66, n]) * 8 for n in range(5)]
    for message_id in about:  # spilled, or evicted from a full tracker: in the journal only
        await fed.de._commit(origin=_origin_record(message_id))
    reads = 0
    read = fed.de._read_surely

    async def counted(op: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read(op)

    fed.de._read_surely = counted  # type: ignore[method-assign]
    await fed.de._on_federation("FR", _receipt_from_fr(b"\x67" * 16, about))
    assert reads == 1  # one journal read for all of them
    assert fed.de.counters["origins_from_journal"] == 5
    assert fed.de.counters["receipts_unmatched"] == 0
    assert not set(about) & set(fed.de.tracker.origins)
    journal = fed.de.journal
    assert journal is not None
    for message_id in about:
        assert await journal.submit(functools.partial(_origin_of, message_id)) is None


async def test_two_receipts_about_one_message_taken_in_together_apply_once(
    fed: Federation,
) -> None:
    message_id = b"\x68" * 16
    await fed.de._commit(origin=_origin_record(message_id))  # in the journal only
    # E.g. two copies of a group message, delivered by two partners' gateways.
    await asyncio.gather(
        fed.de._on_federation("FR", _receipt_from_fr(b"\x69" * 16, [message_id])),
        fed.de._on_federation("FR", _receipt_from_fr(b"\x6a" * 16, [message_id])),
    )
    assert fed.de.counters["origins_from_journal"] == 1
    assert fed.de.counters["receipts_unmatched"] == 1
    assert message_id not in fed.de.tracker.origins
    assert not fed.de.tracker._ended  # nothing left to remember once no read is in progress


async def test_a_record_ended_while_its_drop_is_retried_is_not_applied_again(
    fed: Federation,
) -> None:
    message_id = b"\x90" * 16
    record = _origin_record(message_id)
    fed.de.tracker.add_origin(record)
    await fed.de._commit(origin=record)
    submit = fed.de._submit_commit
    failed = asyncio.Event()

    def failing_once(**kwargs: Any) -> asyncio.Future[list[int] | None]:
        if kwargs.get("drop_origins") and not failed.is_set():
            failed.set()  # e.g. a lost database connection: this commit fails, and is retried
            future: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
            future.set_exception(JournalError("connection lost"))
            return future
        return submit(**kwargs)

    fed.de._submit_commit = failing_once  # type: ignore[method-assign]
    first = asyncio.create_task(
        fed.de._on_federation("FR", _receipt_from_fr(b"\x91" * 16, [message_id]))
    )
    await failed.wait()
    # Another receipt about it (another envelope, or another partner of a group message)
    # reads the row its drop has not removed yet.
    await fed.de._on_federation("FR", _receipt_from_fr(b"\x92" * 16, [message_id]))
    await first
    assert fed.de.counters["receipts_unmatched"] == 1
    assert fed.de.counters["origins_from_journal"] == 0
    journal = fed.de.journal
    assert journal is not None
    assert await journal.submit(functools.partial(_origin_of, message_id)) is None
    assert not fed.de.tracker._ended


async def test_a_receipt_applies_to_records_evicted_while_others_are_read_back(
    fed: Federation,
) -> None:
    fed.de.tracker.max_entries = 2
    in_memory = b"\x70" * 16
    spilled = [b"\x71" * 16, b"\x72" * 16]
    for message_id in spilled:
        await fed.de._commit(origin=_origin_record(message_id))  # in the journal only
    await fed.de._commit(origin=_origin_record(in_memory))
    fed.de.tracker.add_origin(_origin_record(in_memory))
    # Reading the two back evicts the one in memory from the full tracker.
    await fed.de._on_federation("FR", _receipt_from_fr(b"\x73" * 16, [in_memory, *spilled]))
    assert fed.de.counters["receipts_unmatched"] == 0
    assert fed.de.counters["receipts_delivered"] == 3
    journal = fed.de.journal
    assert journal is not None
    for message_id in [in_memory, *spilled]:
        assert await journal.submit(functools.partial(_origin_of, message_id)) is None


async def test_receipts_of_a_partner_apply_in_the_order_they_came(fed: Federation) -> None:
    spilled, read_wanted = b"\x74" * 16, b"\x75" * 16
    await fed.de._commit(origin=_origin_record(spilled))  # in the journal only: read back
    record = _origin_record(read_wanted)
    record.report_request = 2  # DELIVERED is not final: READ is awaited
    fed.de.tracker.add_origin(record)
    await fed.de._commit(origin=record)
    seen_before = _receipt_from_fr(b"\x7f" * 16, [b"\x6e" * 16])
    await fed.de._on_federation("FR", seen_before)
    delivered = _receipt_from_fr(b"\x76" * 16, [spilled, read_wanted])
    read = v1.Envelope.FromString(_receipt_from_fr(b"\x77" * 16, [read_wanted]))
    read.receipt.state = v1.DELIVERY_STATE_READ
    # One batch: the READ must wait for the DELIVERED, which waits for a journal read,
    # even past a copy in between that was seen before (the partner missed our ack).
    await asyncio.gather(
        fed.de._on_federation("FR", delivered),
        fed.de._on_federation("FR", seen_before),
        fed.de._on_federation("FR", read.SerializeToString()),
    )
    assert record.states == [v1.DELIVERY_STATE_DELIVERED, v1.DELIVERY_STATE_READ]
    assert fed.de.counters["receipts_unmatched"] == 1  # seen_before's first time: not ours
    assert fed.de.counters["duplicates"] == 1
    assert not fed.de._receipt_turns


async def test_a_read_reported_with_its_delivered_in_one_pass_comes_after_it(
    fed: Federation,
) -> None:
    sends = _watch_sends(fed.de)
    x, y = _envelope_from_fr(b"\x78" * 16), _envelope_from_fr(b"\x79" * 16)
    # As _settle does when a radio's RECEIVED and CONSUMED reports are read together.
    await asyncio.gather(
        fed.de._send_receipt(y, v1.DELIVERY_STATE_READ, remove=[]),
        fed.de._send_receipt(x, v1.DELIVERY_STATE_DELIVERED, remove=[]),
        fed.de._send_receipt(x, v1.DELIVERY_STATE_READ, remove=[]),
    )
    await eventually(lambda: fed.fr.counters["receipts_unmatched"] == 3)
    about_x = [
        e.receipt.state
        for e in _receipts(sends)
        if x.message_id in (e.receipt.message_id, *e.receipt.also_about)
    ]
    assert about_x == [v1.DELIVERY_STATE_DELIVERED, v1.DELIVERY_STATE_READ]


async def test_receipts_to_a_partner_cut_off_go_one_per_envelope(fed: Federation) -> None:
    sends = _watch_sends(fed.de)
    fed.bus.cut("FR")
    about = [_envelope_from_fr(bytes([0x7A + n]) * 16) for n in range(3)]
    await asyncio.gather(
        *(fed.de._send_receipt(e, v1.DELIVERY_STATE_DELIVERED, remove=[]) for e in about)
    )
    fed.bus.cut("FR", down=False)  # it may come back as another version
    await eventually(lambda: fed.fr.counters["receipts_unmatched"] == 3)
    assert all(not e.receipt.also_about for e in _receipts(sends))


async def test_a_receipt_retry_gives_up_when_the_journal_closes(fed: Federation) -> None:
    submit = fed.de._submit_commit

    def refusing(**kwargs: Any) -> asyncio.Future[list[int] | None]:
        if fed.de.journal is None:
            return submit(**kwargs)  # raises: the journal is not open
        future: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
        future.set_exception(JournalError("disk full"))
        return future

    fed.de._submit_commit = refusing  # type: ignore[method-assign]
    errors = fed.de.counters["journal_errors"]
    caller = asyncio.create_task(
        fed.de._send_receipt(
            _envelope_from_fr(b"\x7d" * 16), v1.DELIVERY_STATE_DELIVERED, remove=[]
        )
    )
    await eventually(lambda: fed.de.counters["journal_errors"] > errors)  # retrying
    journal, fed.de.journal = fed.de.journal, None  # the gateway stops meanwhile
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5.0)
        await eventually(lambda: not any("receipts" in t.get_name() for t in fed.de._background))
    finally:
        fed.de.journal = journal


async def test_receipts_not_journaled_at_a_stop_wake_their_callers(fed: Federation) -> None:
    journal, fed.de.journal = fed.de.journal, None  # closed: the gateway is stopping
    background = set(fed.de._background)
    try:
        with pytest.raises(asyncio.CancelledError):
            await fed.de._send_receipt(
                _envelope_from_fr(b"\x7e" * 16), v1.DELIVERY_STATE_DELIVERED, remove=[]
            )
        assert fed.de._background == background  # no retry that would hold the stop up
    finally:
        fed.de.journal = journal


async def test_an_emergency_reaches_its_radio_line_while_routine_work_for_it_is_held(
    fed: Federation,
) -> None:
    held, release = asyncio.Event(), asyncio.Event()
    stage = fed.de._stage_references

    async def slow_stage(adapter_name: str, batch: list[Held]) -> None:
        held.set()
        await release.wait()  # e.g. a slow journal commit of the batch's references
        await stage(adapter_name, batch)

    fed.de._stage_references = slow_stage  # type: ignore[method-assign]
    routine = [_from_fr(f"routine {n}", bytes([0x80 + n]) * 16) for n in range(3)]
    await asyncio.gather(*(fed.de._on_federation("FR", payload) for payload in routine))
    await asyncio.wait_for(held.wait(), 5)
    mayday = _from_fr("mayday", b"\x90" * 16, priority=v1.PRIORITY_EMERGENCY)
    await fed.de._on_federation("FR", mayday)
    await eventually(lambda: bool(texts(fed.sim_de, DE_RTW)))
    assert [t.text[-6:] for t in texts(fed.sim_de, DE_RTW)] == ["mayday"]
    release.set()
    await eventually(lambda: len(texts(fed.sim_de, DE_RTW)) == 4)
    assert [t.text[-9:] for t in texts(fed.sim_de, DE_RTW)[1:]] == [
        f"routine {n}" for n in range(3)
    ]


FAST_PRESENCE = """
[presence]
lease = 0.6
offline_after = 0.6
coalesce_interval = 0.05
"""


async def test_presence_is_federated_and_goes_stale_then_offline(tmp_path: Path) -> None:
    async with federation(tmp_path, DE=FAST_PRESENCE) as fed:
        assert fed.de.presence.availability(DE_RTW_UNIT) is Availability.UNKNOWN
        await fed.sim_de.send_status(DE_RTW, ALIAS_OF_FR_VSAV, 0x8006)
        await eventually(lambda: fed.fr.presence.availability(DE_RTW_UNIT) is Availability.ONLINE)
        record = fed.fr.presence.get(DE_RTW_UNIT)
        assert record is not None
        assert record.nation == "DE"
        await eventually(lambda: fed.fr.presence.availability(DE_RTW_UNIT) is Availability.STALE)
        await eventually(
            lambda: fed.fr.presence.availability(DE_RTW_UNIT) is Availability.OFFLINE, seconds=5
        )
        # Germany's own registry says so too (each side moves on its own housekeeping tick,
        # so France may see the lease end a tick before Germany does).
        await eventually(lambda: fed.de.presence.availability(DE_RTW_UNIT) is Availability.OFFLINE)


async def test_emergency_is_replayed_to_a_unit_back_in_coverage(tmp_path: Path) -> None:
    async with federation(tmp_path, FR=FAST_PRESENCE) as fed:
        fed.sim_fr.set_reachable(FR_VSAV, False)
        await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)  # emergency
        await eventually(lambda: fed.de.counters["receipts_failed"] == 1)
        assert fed.sim_fr.received[FR_VSAV] == []
        fed.sim_fr.set_reachable(FR_VSAV, True)
        # The unit shows a sign of life (any SDS): it is back, the alert goes again.
        await fed.sim_fr.send_status(FR_VSAV, "8002001", 0x8101)
        await eventually(
            lambda: [c for _s, c in fed.sim_fr.received[FR_VSAV]] == [StatusSds(status=0)]
        )
        assert fed.fr.counters["alerts_replayed"] == 1
        assert any(o.kind == "alert_replay" for o in fed.observed)


async def test_presence_and_an_outstanding_emergency_survive_a_restart(tmp_path: Path) -> None:
    fr_fpt_unit = "fr.sdis67.fpt-strasbourg-2"
    async with federation(tmp_path) as fed:
        fed.sim_fr.set_reachable(FR_VSAV, False)
        await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)  # emergency
        await eventually(lambda: fed.de.counters["receipts_failed"] == 1)
        await fed.sim_fr.send_status(FR_FPT, "8002001", 0x8101)
        await eventually(lambda: fed.fr.presence.availability(fr_fpt_unit) is Availability.ONLINE)
        await eventually(lambda: fed.de.presence.availability(fr_fpt_unit) is Availability.ONLINE)
        # Saved: the unit heard, and the outstanding alert.
        since = fed.fr.monotonic(), fed.de.monotonic()
        await eventually(lambda: fed.fr.state_saved_through >= since[0])
        await eventually(lambda: fed.de.state_saved_through >= since[1])
        heard_at = fed.fr.wall_time(fed.fr.presence.get(fr_fpt_unit).last_heard)  # type: ignore[arg-type, union-attr]
    async with federation(tmp_path) as fed:
        # Both gateways resume presence: the unit is still ONLINE, not UNKNOWN.
        for gateway in (fed.fr, fed.de):
            restored = gateway.presence.get(fr_fpt_unit)
            assert restored is not None
            assert restored.availability is Availability.ONLINE
        restored = fed.fr.presence.get(fr_fpt_unit)
        assert restored is not None and restored.last_heard is not None
        assert abs(fed.fr.wall_time(restored.last_heard) - heard_at) < 0.5
        assert len(fed.fr.alerts) == 1
        # The unit that missed the emergency comes back: it is replayed to it.
        await fed.sim_fr.send_status(FR_VSAV, "8002001", 0x8101)
        await eventually(
            lambda: [c for _s, c in fed.sim_fr.received[FR_VSAV]] == [StatusSds(status=0)]
        )
        assert fed.fr.counters["alerts_replayed"] == 1
        assert fed.fr.counters["state_not_restored"] == 0


async def test_what_changed_since_the_last_save_is_saved_on_the_way_out(tmp_path: Path) -> None:
    fr_fpt_unit = "fr.sdis67.fpt-strasbourg-2"
    async with federation(tmp_path) as fed:
        await fed.sim_fr.send_status(FR_VSAV, "8002001", 0x8101)
        await eventually(lambda: fed.fr.presence.availability(FR_VSAV_UNIT) is Availability.ONLINE)
        since = fed.fr.monotonic()
        await eventually(lambda: fed.fr.state_saved_through >= since)
        # Within a second of that save: the next one is not due before the stop.
        await fed.sim_fr.send_status(FR_FPT, "8002001", 0x8101)
        await eventually(lambda: fed.fr.presence.availability(fr_fpt_unit) is Availability.ONLINE)
    async with federation(tmp_path) as fed:
        assert fed.fr.presence.availability(fr_fpt_unit) is Availability.ONLINE


def _remote_rows(count: int, saved_at: float) -> list[tuple[str, dict[str, object] | None]]:
    """Saved forms of ``count`` German units ONLINE, as France's registry would keep them."""
    registry = PresenceRegistry(gateway="gw-fr-strasbourg", nation="FR", epoch=1)
    for n in range(count):
        registry.apply_remote(
            PresenceUpdate(
                unit=f"de.bos.unit-{n}",
                nation="DE",
                gateway="gw-de-kehl",
                epoch=1,
                seq=1,
                availability=Availability.ONLINE,
                valid_for=300.0,
            ),
            0.0,
        )
    rows = registry.unsaved(0.0)
    for _unit, state in rows:
        assert state is not None
        state["saved_at"] = saved_at
    return rows


async def test_saved_state_that_cannot_be_restored_is_logged_counted_and_dropped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gw-fr-strasbourg.journal.sqlite3"
    journal = Journal(path)
    bad = {"unit": FR_VSAV_UNIT, "availability": "SOMEWHERE", "saved_at": 0.0}
    gone = {"gateway": "gw-fr-strasbourg", "saved_at": 0.0}  # no longer configured
    garbage = base64.b64encode(b"\xff\xff not an envelope").decode()
    not_replayable: dict[str, object] = {
        "group": None,
        "unit": FR_VSAV_UNIT,
        "origin": None,
        "raised_ago": 0.0,
        "expires_in": 60.0,
        "envelope": garbage,
        "delivered_to": [],
        "saved_at": time.time(),
    }
    journal.run_batch(
        [
            lambda j: j.put_state("presence", [(FR_VSAV_UNIT, bad), ("fr.gone", gone)]),
            lambda j: j.put_state("presence", [("de.list", [1, 2])]),  # type: ignore[list-item]
            lambda j: j.put_state("alert", [("zz", {"saved_at": 0.0}), ("ab", {"group": 1})]),
            lambda j: j.put_state("alert", [("cd", not_replayable)]),
            # Ten partner units that cannot all fit next to our own (max_units = 8).
            lambda j: j.put_state("presence", _remote_rows(10, time.time())),
        ]
    )
    journal.close()
    with sqlite3.connect(path) as db:  # rows no writer of ours would produce
        db.execute("INSERT INTO state VALUES ('presence', 'de.torn', '{\"unit\": ')")
        db.execute("INSERT INTO state VALUES ('alert', 'ef', '{\"expires_in\": NaN}')")
    async with federation(tmp_path, FR="[presence]\nmax_units = 8\n") as fed:
        # 4 bad presence rows, 4 bad alerts, 6 partner units that did not fit: counted,
        # logged, and the gateway runs.
        assert fed.fr.counters["state_not_restored"] == 4 + 4 + 6
        assert fed.fr.presence.availability(FR_VSAV_UNIT) is Availability.UNKNOWN
        assert len(fed.fr.presence) == 8  # our 4 configured units first, then 4 of theirs
        assert len(fed.fr.alerts) == 0
        since = fed.fr.monotonic()
        await eventually(lambda: fed.fr.state_saved_through >= since)
    left = Journal(path).recover().state
    assert set(left.get("alert", {})) == set()
    # Of the ten partner units, only the four that were restored are kept (Germany's own
    # announcements of its units may be there too).
    assert len([u for u in left["presence"] if u.startswith("de.bos.unit-")]) == 4


FAST_CANARIES = """
[liveness]
canary_interval = 0.1
canary_timeout = 0.5
"""


async def test_canaries_find_a_path_that_is_up_but_not_delivering(tmp_path: Path) -> None:
    async with federation(tmp_path, DE=FAST_CANARIES, FR=FAST_CANARIES) as fed:

        def state(gateway: str, path: str) -> str:
            g = fed.de if gateway == "DE" else fed.fr
            return g.liveness[path].state.value

        await eventually(lambda: state("DE", "federation:FR") == "healthy")
        await eventually(lambda: state("FR", "adapter:tetra-fr") == "healthy")
        fed.sim_fr.set_black_hole(True)  # the radio still answers; nothing gets through
        await eventually(lambda: state("FR", "adapter:tetra-fr") == "degraded", seconds=5)
        assert state("DE", "federation:FR") == "healthy"
        fed.bus.cut("FR")
        await eventually(lambda: state("DE", "federation:FR") == "degraded", seconds=5)
        fed.sim_fr.set_black_hole(False)
        fed.bus.cut("FR", down=False)
        await eventually(lambda: state("FR", "adapter:tetra-fr") == "healthy", seconds=5)
        await eventually(lambda: state("DE", "federation:FR") == "healthy", seconds=5)
        degraded = [
            o for o in fed.observed if o.kind == "liveness" and o.fields["state"] == "degraded"
        ]
        # The cut was both ways: each gateway saw its link to the other degrade.
        assert {o.fields["path"] for o in degraded} == {
            "adapter:tetra-fr",
            "federation:FR",
            "federation:DE",
        }


async def test_group_text_reaches_the_partner_group_and_reports_sent_to_group(
    fed: Federation,
) -> None:
    mr = await fed.sim_de.send_text(DE_RTW, "3001", "An alle: Brücke gesperrt", report_request=1)
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)))
    for member in ("1003", "1004"):
        [text] = texts(fed.sim_fr, member)
        assert text.text.endswith("An alle: Brücke gesperrt")
        assert text.delivery_report_request == 0  # nobody acknowledges a group call
    [report] = reports(fed.sim_de, DE_RTW)
    assert (report.delivery_status, report.message_reference) == (0x05, mr)
    assert fed.de.presence.get(DE_RTW_UNIT) is not None
    assert "xb.kehl-strasbourg" in fed.de.presence.get(DE_RTW_UNIT).groups  # type: ignore[union-attr]


async def test_full_queue_sheds_routine_with_a_negative_report_never_the_emergency(
    tmp_path: Path,
) -> None:
    shedding = "queue_max_messages = 3\nspill = false"
    async with federation(tmp_path, delivery={"DE": shedding}) as fed:
        fed.bus.cut("FR")
        references = [
            await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"routine {n}", report_request=1)
            for n in range(3)
        ]
        await eventually(lambda: fed.de.counters["accepted"] == 3)
        await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)  # emergency: evicts the newest
        await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == 1)
        [shed] = reports(fed.sim_de, DE_RTW)
        assert (shed.delivery_status, shed.message_reference) == (0x4C, references[2])
        assert fed.de.counters["shed"] == 1
        fed.bus.cut("FR", down=False)
        await eventually(lambda: len(fed.sim_fr.received[FR_VSAV]) == 3)
        assert fed.de.counters["shed"] == 1  # canaries and presence never displace messages
        contents = [c for _s, c in fed.sim_fr.received[FR_VSAV]]
        assert contents[0] == StatusSds(status=0)
        assert [c.text[-9:] for c in contents[1:] if isinstance(c, TextSds)] == [
            "routine 0",
            "routine 1",
        ]


async def test_message_expiring_in_an_outage_fails_back_to_its_radio(tmp_path: Path) -> None:
    expiry = "expiry_seconds = { routine = 1 }"
    async with federation(tmp_path, delivery={"DE": expiry}) as fed:
        fed.bus.cut("FR")
        mr = await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "zu spät", report_request=1)
        await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)), seconds=5)
        [report] = reports(fed.sim_de, DE_RTW)
        assert (report.delivery_status, report.message_reference) == (0x48, mr)
        assert fed.de.counters["expired"] == 1
        fed.bus.cut("FR", down=False)
        await eventually(lambda: fed.de.liveness["federation:FR"].state.value != "degraded")
        assert fed.sim_fr.received[FR_VSAV] == []


async def test_acknowledgement_goes_out_while_the_send_window_is_full(tmp_path: Path) -> None:
    """A full window to a partner holds back our messages, never our acknowledgements.

    Queued behind messages that wait for the partner's acknowledgements, ours would make
    both gateways wait for each other until the ack timeout (20 s here) under load.
    """
    small = "window = 1\nack_timeout = 20.0"
    async with federation(tmp_path, delivery={"DE": small, "FR": small}) as fed:
        # The German window to France is full: one message awaits France's acknowledgement.
        fed.de._inflight["FR"][b"\xff" * 16] = SimpleNamespace(  # type: ignore[assignment]
            deadline=math.inf, entry=None, nation="FR"
        )
        for text in ("bonjour", "encore", "merci"):
            await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, text, report_request=0)
        await eventually(lambda: fed.fr.counters["acked"] >= 3, seconds=5)
        assert fed.fr.in_flight("DE") == 0  # France's copies were released at once
        assert fed.de.counters["acks_sent"] >= 3
        assert fed.fr.counters["retransmissions"] == 0


async def test_acknowledgements_held_back_under_a_flood_are_recovered_by_retransmission(
    tmp_path: Path,
) -> None:
    """Acks in progress are bounded; one not sent costs a retransmission, never a message."""
    quick = "ack_timeout = 1.0"
    async with federation(tmp_path, delivery={"DE": quick, "FR": quick}) as fed:
        fed.de._acks_sending["FR"] = 10**6  # as if a flood had every slot busy
        await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, "une fois", report_request=0)
        await eventually(lambda: fed.de.counters["acks_not_sent"] >= 1, seconds=5)
        assert fed.fr.in_flight("DE") == 1  # France keeps its copy: no acknowledgement came
        fed.de._acks_sending["FR"] = 0  # the flood is over
        await eventually(lambda: fed.fr.in_flight("DE") == 0, seconds=10)
        assert fed.fr.counters["retransmissions"] >= 1
        got = [c.text[-8:] for _s, c in fed.sim_de.received[DE_RTW] if isinstance(c, TextSds)]
        assert got == ["une fois"]  # delivered once, the retransmission recognised


async def test_a_partner_restart_resends_what_it_had_not_acknowledged_at_once(
    tmp_path: Path,
) -> None:
    """Unacknowledged copies go again as soon as the partner shows a new epoch, in order.

    They may have died with the partner's previous process; waiting for the ack timeout
    (30 s here) would put them behind newer messages.
    """
    slow = "ack_timeout = 20.0"
    async with federation(tmp_path, delivery={"DE": slow, "FR": slow}) as fed:
        fed.de._acks_sending["FR"] = 10**6  # Germany takes custody but cannot acknowledge
        for text in ("un", "deux"):
            await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, text, report_request=0)
        await eventually(lambda: fed.de.counters["acks_not_sent"] >= 2, seconds=5)
        assert fed.fr.in_flight("DE") == 2
        fed.de._acks_sending["FR"] = 0
        fed.fr._partner_restarted("DE")  # what the MQTT link reports on a new epoch
        assert fed.fr.in_flight("DE") == 0  # back in the queue, ahead of anything newer
        await eventually(lambda: fed.fr.counters["acked"] >= 2 and fed.fr.in_flight("DE") == 0)
        assert fed.de.counters["duplicates"] >= 2
        assert fed.fr.counters["resent_after_partner_restart"] == 1
        assert fed.fr.counters["retransmissions"] == 0

        def got() -> list[str]:
            received = fed.sim_de.received[DE_RTW]
            return [c.text.split("] ")[-1] for _s, c in received if isinstance(c, TextSds)]

        await eventually(lambda: len(got()) >= 2)
        assert got() == ["un", "deux"]  # the copies were recognised: delivered once each


async def test_a_full_queue_spills_to_the_journal_and_drains_in_order(tmp_path: Path) -> None:
    """Beyond its bound a queue keeps copies in the journal only; nothing is refused."""
    async with federation(tmp_path, delivery={"DE": "queue_max_messages = 4"}) as fed:
        fed.bus.cut("FR")
        for n in range(12):
            await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"routine {n:02d}")
        await eventually(lambda: fed.de.counters["accepted"] == 12)
        queue = fed.de.queues["egress:FR"]
        assert len(queue) <= 4 and fed.de.spilled("egress:FR") == 12 - len(queue)
        await fed.sim_de.send_status(DE_HLF, ALIAS_OF_FR_VSAV, 0)  # urgent: never spilled
        await eventually(lambda: fed.de.counters["accepted"] == 13)
        assert fed.de.spilled("egress:FR") == 12 - 4
        assert reports(fed.sim_de, DE_RTW) == []  # nothing refused, nothing shed
        assert fed.de.counters["shed"] == 0
        fed.bus.cut("FR", down=False)
        await eventually(lambda: len(fed.sim_fr.received[FR_VSAV]) == 13, seconds=10)
        contents = [c for _s, c in fed.sim_fr.received[FR_VSAV]]
        assert contents[0] == StatusSds(status=0)  # the emergency first
        assert [c.text[-10:] for c in contents[1:] if isinstance(c, TextSds)] == [
            f"routine {n:02d}" for n in range(12)
        ]
        assert fed.de.spilled("egress:FR") == 0 and "egress:FR" not in fed.de._spilled
        assert fed.de.counters["unspilled"] == fed.de.counters["spilled"] == 8
        # Spilled messages kept no origin record in memory: their receipts find it in the
        # journal, and every radio gets its delivery report.
        await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == 12, seconds=10)
        assert {r.delivery_status for r in reports(fed.sim_de, DE_RTW)} == {0x00}
        assert fed.de.counters["origins_from_journal"] == 8


OUTAGE_CONTROL = """
[liveness]
canary_interval = 0.05
[presence]
lease = 0.5
offline_after = 0.5
coalesce_interval = 0
"""


async def test_control_traffic_never_piles_up_in_front_of_messages_during_an_outage(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, DE=OUTAGE_CONTROL) as fed:
        fed.bus.cut("FR")
        queue = fed.de.queues["egress:FR"]
        for n in range(3):  # real texts, and presence updates of their senders
            await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"lage {n}", report_request=0)
        await eventually(lambda: fed.de.counters["accepted"] == 3)
        # 50 canary intervals; the senders go STALE, then OFFLINE (one lease each), and
        # what was announced of that is older than a lease by then.
        await asyncio.sleep(3.0)
        assert fed.de.counters["expired_control"] >= 1  # presence updates went stale
        assert queue.depths()[v1.PRIORITY_HIGH] == 0  # no canary was queued
        assert len(queue) == 3  # the texts, nothing else
        assert fed.de.counters["expired"] == 0
        fed.bus.cut("FR", down=False)
        await eventually(lambda: len(texts(fed.sim_fr, FR_VSAV)) == 3, seconds=10)


async def test_a_copy_the_partner_acknowledged_before_the_send_failed_is_not_sent_again(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path, delivery={"DE": "expiry_seconds = { routine = 1.5 }"}) as fed:
        real_send = fed.de.link.send
        tripped = False

        async def send(nation: str, payload: bytes) -> None:
            nonlocal tripped
            await real_send(nation, payload)
            if v1.Envelope.FromString(payload).WhichOneof("body") == "text" and not tripped:
                tripped = True
                # The partner's acknowledgement overtakes the broker's PUBACK, which the
                # dropped connection then loses.
                await eventually(lambda: fed.de.counters["acked"] >= 1)
                fed.bus.cut("FR")
                raise LinkError("PUBACK lost: the connection dropped")

        fed.de.link.send = send  # type: ignore[method-assign]
        await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "hallo", report_request=1)
        await eventually(lambda: tripped)
        await eventually(lambda: bool(texts(fed.sim_fr, FR_VSAV)))
        await asyncio.sleep(2.5)  # past the copy's validity
        assert fed.de.counters["expired"] == 0  # released, not queued again to expire
        assert all(r.delivery_status < 0x40 for r in reports(fed.sim_de, DE_RTW))


def _following(text: str, message_id: bytes, after: bytes) -> bytes:
    envelope = v1.Envelope.FromString(_from_fr(text, message_id))
    envelope.after = after
    return envelope.SerializeToString()


def _texts_to_rtw(fed: Federation) -> list[str]:
    return [t.text.rsplit(": ", 1)[-1].split("] ")[-1] for t in texts(fed.sim_de, DE_RTW)]


async def test_a_message_that_overtook_the_one_it_follows_waits_for_it(fed: Federation) -> None:
    sends = _watch_sends(fed.de)
    first, second = b"\x71" * 16, b"\x72" * 16
    await fed.de._on_federation("FR", _following("zweite", second, after=first))
    await asyncio.sleep(0.3)
    assert _texts_to_rtw(fed) == []
    assert fed.de.counters["held_for_order"] == 1
    assert not any(second in (a.receipt.message_id, *a.receipt.also_accepted) for a in sends.acks())
    await fed.de._on_federation("FR", _from_fr("erste", first))
    await eventually(lambda: len(_texts_to_rtw(fed)) == 2)
    assert _texts_to_rtw(fed) == ["erste", "zweite"]
    await eventually(lambda: fed.de.counters["accepted_from_partner"] == 2)
    acked = {m for a in sends.acks() for m in (a.receipt.message_id, *a.receipt.also_accepted)}
    assert acked == {first, second}
    assert len(fed.de._held_back) == 0


async def test_a_message_whose_predecessor_is_already_in_custody_goes_at_once(
    fed: Federation,
) -> None:
    first, second = b"\x73" * 16, b"\x74" * 16
    # The link hands a batch over together: the second is checked in the same commit order.
    await asyncio.gather(
        fed.de._on_federation("FR", _from_fr("eins", first)),
        fed.de._on_federation("FR", _following("zwei", second, after=first)),
    )
    await eventually(lambda: len(_texts_to_rtw(fed)) == 2)
    assert _texts_to_rtw(fed) == ["eins", "zwei"]
    assert fed.de.counters["held_for_order"] == 0
    # A copy received again, whose predecessor went long ago, is a plain duplicate.
    await fed.de._on_federation("FR", _following("zwei", second, after=first))
    assert fed.de.counters["duplicates"] == 1


async def test_a_message_whose_predecessor_never_comes_is_taken_in_after_the_hold(
    fed: Federation,
) -> None:
    fed.de._held_back.hold_seconds = 0.5
    lost, later = b"\x75" * 16, b"\x76" * 16
    await fed.de._on_federation("FR", _following("danach", later, after=lost))
    await fed.de._on_federation("FR", _following("danach", later, after=lost))  # sent again
    assert len(fed.de._held_back) == 1
    await eventually(lambda: _texts_to_rtw(fed) == ["danach"], seconds=5)
    assert fed.de.counters["order_given_up"] == 1
    assert fed.de.counters["accepted_from_partner"] == 1


async def test_a_full_hold_leaves_the_message_unacknowledged_with_its_sender(
    fed: Federation,
) -> None:
    fed.de._held_back.max_held = 0
    sends = _watch_sends(fed.de)
    await fed.de._on_federation("FR", _following("voll", b"\x77" * 16, after=b"\x78" * 16))
    await asyncio.sleep(0.2)
    assert fed.de.counters["order_hold_full"] == 1
    assert sends.acks() == [] and _texts_to_rtw(fed) == []


async def test_messages_in_flight_to_one_destination_name_the_one_they_follow(
    tmp_path: Path,
) -> None:
    slow = "ack_timeout = 20.0"
    async with federation(tmp_path, delivery={"DE": slow, "FR": slow}) as fed:
        fed.de._acks_sending["FR"] = 10**6  # Germany takes custody but cannot acknowledge
        sends = _watch_sends(fed.fr)
        for text in ("un", "deux"):
            await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, text, report_request=0)
        await fed.sim_fr.send_text(FR_VSAV, "8002002", "ailleurs", report_request=0)
        await fed.sim_fr.send_status(FR_VSAV, ALIAS_OF_DE_RTW, 0)  # an emergency
        await eventually(lambda: len([e for e in sends.sent if e.HasField("text")]) >= 3)
        await eventually(lambda: any(e.HasField("emergency") for e in sends.sent))
        sent = {e.text.text.rsplit("] ", 1)[-1]: e for e in sends.sent if e.HasField("text")}
        un, deux, ailleurs = sent["un"], sent["deux"], sent["ailleurs"]
        emergency = next(e for e in sends.sent if e.HasField("emergency"))
        assert un.after == b""
        assert deux.after == un.message_id
        assert ailleurs.after == b""  # another destination
        assert emergency.after == b""  # an emergency follows nothing


async def test_a_copy_lost_on_the_way_is_not_overtaken_by_the_next(tmp_path: Path) -> None:
    async with federation(tmp_path) as fed:
        real_send = fed.fr.link.send
        lost = False

        async def send(nation: str, payload: bytes) -> None:
            nonlocal lost
            envelope = v1.Envelope.FromString(payload)
            if envelope.text.text.endswith("un") and not lost:
                lost = True
                await asyncio.sleep(0.3)  # the next goes out meanwhile, and gets through
                raise LinkError("publish failed: the connection dropped")
            await real_send(nation, payload)

        fed.fr.link.send = send  # type: ignore[method-assign]
        for text in ("un", "deux"):
            await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, text, report_request=0)
        await eventually(lambda: len(_texts_to_rtw(fed)) >= 2, seconds=10)
        assert lost
        assert _texts_to_rtw(fed) == ["un", "deux"]
        assert fed.de.counters["held_for_order"] == 1


async def _late_texts_fail_back(fed: Federation, count: int, *, accepted: int) -> None:
    """Send ``count`` texts that will expire; each radio gets 0x48 for its own."""
    sent = [
        await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"spät {n}", report_request=1)
        for n in range(count)
    ]
    await eventually(lambda: fed.de.counters["accepted"] == accepted)
    await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == count, seconds=10)
    assert {(r.message_reference, r.delivery_status) for r in reports(fed.sim_de, DE_RTW)} == {
        (mr, 0x48) for mr in sent
    }


async def test_spilled_messages_that_expire_in_an_outage_fail_back_during_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short-lived copies kept in the journal behind long-lived ones in memory.

    The queue is full of HIGH texts that live an hour, so nothing is read back until the
    link returns: the spilled routine texts must fail back from the journal itself.
    """
    monkeypatch.setattr("gateway.node._SPILL_EXPIRY_INTERVAL", 0.25)
    delivery = "queue_max_messages = 4\nexpiry_seconds = { routine = 1, high = 3600 }"
    async with federation(tmp_path, delivery={"DE": delivery}) as fed:
        fed.bus.cut("FR")
        for n in range(4):
            await fed.sim_de.send_text(
                DE_HLF, ALIAS_OF_FR_VSAV, f"dringend {n}", report_request=0, immediate=True
            )
        # Every radio learns of its expired text while France is still cut off.
        await _late_texts_fail_back(fed, 6, accepted=10)
        assert fed.de.counters["expired_spilled"] >= 5  # one may sit in the probing send
        assert fed.de.spilled("egress:FR") == 0
        assert fed.de.journal is not None
        assert await fed.de.journal.submit(lambda j: j.count()) == 4  # the HIGH texts
        fed.bus.cut("FR", down=False)
        await eventually(lambda: len(texts(fed.sim_fr, FR_VSAV)) == 4, seconds=10)
        assert all("dringend" in t.text for t in texts(fed.sim_fr, FR_VSAV))


async def test_copies_expiring_together_are_failed_back_in_one_commit(tmp_path: Path) -> None:
    expiry = "expiry_seconds = { routine = 1 }"
    async with federation(tmp_path, delivery={"DE": expiry}) as fed:
        fed.bus.cut("FR")
        for n in range(20):
            await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"weg {n}", report_request=1)
        await eventually(lambda: fed.de.counters["accepted"] == 20)
        releases: list[dict[str, Any]] = []
        submit = fed.de._submit_commit

        def counted(**change: Any) -> Any:
            if change.get("remove") or change.get("drop_origins"):
                releases.append(change)
            return submit(**change)

        fed.de._submit_commit = counted  # type: ignore[method-assign]
        await eventually(lambda: len(reports(fed.sim_de, DE_RTW)) == 20, seconds=5)
        assert {r.delivery_status for r in reports(fed.sim_de, DE_RTW)} == {0x48}
        # One commit releases the copies and ends their origin records (not two per copy).
        assert len(releases) <= 5  # a few housekeeping passes, each one commit
        assert all(len(c.get("remove", ())) == len(c.get("drop_origins", ())) for c in releases)
        assert sum(len(c.get("remove", ())) for c in releases) == 20
        assert sum(len(c.get("drop_origins", ())) for c in releases) == 20


async def test_a_stop_right_after_an_expiry_leaves_no_radio_without_its_report(
    tmp_path: Path,
) -> None:
    """The copy and its origin record leave the journal together, the radio's 0x48 after.

    The gateway stops for good right after the commit that releases the expired copy
    (every later commit hangs). What the journal holds then is what a restart finds:
    an origin record without its copy would wait for a receipt nothing can bring, and its
    radio would never hear that its text failed.
    """
    expiry = "expiry_seconds = { routine = 1 }"
    async with federation(tmp_path, delivery={"DE": expiry}) as fed:
        fed.bus.cut("FR")
        mr = await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "zu spät", report_request=1)
        await eventually(lambda: fed.de.counters["accepted"] == 1)
        [message_id] = list(fed.de.tracker.origins)
        submit = fed.de._submit_commit
        released: list[dict[str, Any]] = []

        def dying(**change: Any) -> Any:
            if released:  # the process is gone: nothing is written any more
                return asyncio.get_running_loop().create_future()
            if change.get("remove"):
                released.append(change)
            return submit(**change)

        fed.de._submit_commit = dying  # type: ignore[method-assign]
        await eventually(lambda: bool(released), seconds=5)
        await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)), seconds=5)
        [report] = reports(fed.sim_de, DE_RTW)
        assert (report.delivery_status, report.message_reference) == (0x48, mr)
        assert fed.de.journal is not None
        rows = await fed.de.journal.submit(lambda j: (j.get_origin(message_id), j.count()))
        assert rows == (None, 0)
        fed.de._submit_commit = submit  # type: ignore[method-assign]


def _acked(sends: _Sends) -> set[bytes]:
    return {m for a in sends.acks() for m in (a.receipt.message_id, *a.receipt.also_accepted)}


async def test_giving_up_keeps_the_order_of_a_held_chain(fed: Federation) -> None:
    """P lost for good; F1 (after P) and F2 (after F1) both held, F2 held first.

    Giving up on P must not let F2 overtake F1, which is right there in the hold.
    """
    fed.de._held_back.hold_seconds = 0.5
    p, f1, f2 = b"\x81" * 16, b"\x82" * 16, b"\x83" * 16
    await fed.de._on_federation("FR", _following("f2", f2, after=f1))  # F1's first copy lost
    await asyncio.sleep(0.2)
    await fed.de._on_federation("FR", _following("f1", f1, after=p))  # F1 sent again
    await eventually(lambda: len(_texts_to_rtw(fed)) == 2, seconds=5)
    assert _texts_to_rtw(fed) == ["f1", "f2"]


async def test_a_copy_of_a_message_already_in_custody_is_acknowledged_at_once(
    fed: Federation,
) -> None:
    """After a give-up, the partner's next copy (ack lost) is a duplicate: ack it, don't hold it."""
    fed.de._held_back.hold_seconds = 0.5
    p, f = b"\x84" * 16, b"\x85" * 16
    await fed.de._on_federation("FR", _following("f", f, after=p))
    await eventually(lambda: fed.de.counters["accepted_from_partner"] == 1, seconds=5)
    sends = _watch_sends(fed.de)
    await fed.de._on_federation("FR", _following("f", f, after=p))  # our ack was lost
    await asyncio.sleep(0.2)
    assert fed.de.counters["held_for_order"] == 1  # not held a second time
    assert f in _acked(sends)  # acknowledged as a duplicate at once


async def test_a_message_taken_in_from_a_newer_copy_leaves_no_stale_hold(fed: Federation) -> None:
    """F held behind P; P expired at the sender, so F's next copy names nothing and is taken.

    The held first copy must go with it: no later 'order_given_up' warning, no slot used.
    """
    fed.de._held_back.hold_seconds = 0.5
    p, f = b"\x86" * 16, b"\x87" * 16
    await fed.de._on_federation("FR", _following("f", f, after=p))
    await fed.de._on_federation("FR", _from_fr("f", f))  # sent again, P no longer in flight
    await eventually(lambda: fed.de.counters["accepted_from_partner"] == 1)
    assert len(fed.de._held_back) == 0
    await asyncio.sleep(1.0)
    assert fed.de.counters["order_given_up"] == 0


async def test_an_emergency_is_never_held_back(fed: Federation) -> None:
    """The sender never names a predecessor for urgent messages; the receiver must not obey one."""
    em = _envelope_from_fr(b"\x88" * 16, priority=v1.PRIORITY_EMERGENCY)
    em.text.text = "urgent"
    em.after = b"\x89" * 16
    await fed.de._on_federation("FR", em.SerializeToString())
    await asyncio.sleep(0.3)
    assert fed.de.counters["held_for_order"] == 0


async def test_holding_does_not_lengthen_a_messages_validity(fed: Federation) -> None:
    """A message with 0.3 s of validity left, held 1 s, has expired: it must not be delivered."""
    fed.de._held_back.hold_seconds = 1.0
    now_us = int(time.time() * 1e6)
    envelope = _envelope_from_fr(b"\x8a" * 16)
    envelope.text.text = "stale"
    envelope.created_at_us = now_us
    envelope.expires_at_us = now_us + 300_000
    envelope.trace.add(gateway="fr", nation="FR", received_at_us=now_us, forwarded_at_us=now_us)
    envelope.after = b"\x8b" * 16
    await fed.de._on_federation("FR", envelope.SerializeToString())
    await asyncio.sleep(2.0)
    assert _texts_to_rtw(fed) == []


DE_RATE = """
[rate_limits]
messages_per_second = 0.01
burst = 2
"""


async def test_a_held_message_is_not_charged_twice_by_the_rate_limit(tmp_path: Path) -> None:
    """Two messages within the partner's burst of 2: both go, whatever order they came in."""
    async with federation(tmp_path, DE=DE_RATE) as fed:
        p, f = b"\x8c" * 16, b"\x8d" * 16
        await fed.de._on_federation("FR", _following("f", f, after=p))  # overtook P
        await fed.de._on_federation("FR", _from_fr("p", p))
        await asyncio.sleep(0.5)
        assert fed.de.counters["refused_from_partner"] == 0
        assert _texts_to_rtw(fed) == ["p", "f"]


async def test_a_chain_of_held_messages_is_taken_in_together_in_its_order(fed: Federation) -> None:
    """A chain of held messages is taken in together, in a few commits, in its order."""
    n = 200
    ids = [bytes([0x90, i]) * 8 for i in range(n + 1)]
    for i in range(1, n + 1):
        await fed.de._on_federation("FR", _following(f"m{i}", ids[i], after=ids[i - 1]))
    assert len(fed.de._held_back) == n
    assert fed.de.journal is not None
    commits = fed.de.journal.commits
    await fed.de._on_federation("FR", _from_fr("m0", ids[0]))
    await eventually(lambda: fed.de.counters["accepted_from_partner"] == n + 1, seconds=60)
    assert fed.de.journal.commits - commits < 20  # not one per link of the chain
    await eventually(lambda: len(_texts_to_rtw(fed)) == n + 1, seconds=60)
    assert _texts_to_rtw(fed) == [f"m{i}" for i in range(n + 1)]


async def test_each_copy_sent_again_restarts_the_wait_for_a_predecessor_lost_again(
    tmp_path: Path,
) -> None:
    """FR's first three copies of "un" are lost: it arrives after DE's hold (0.8 s) ran out.

    Every copy of "deux" FR sends again meanwhile (ack timeout 0.5 s) shows "un" is still
    on its way, so DE keeps waiting for it.
    """
    async with federation(tmp_path, delivery={"FR": "ack_timeout = 0.5"}) as fed:
        fed.de._held_back.hold_seconds = 0.8
        real_send = fed.fr.link.send
        lost = 0

        async def send(nation: str, payload: bytes) -> None:
            nonlocal lost
            envelope = v1.Envelope.FromString(payload)
            if envelope.text.text.endswith("un") and lost < 3:
                lost += 1
                return  # published, then lost on the way
            await real_send(nation, payload)

        fed.fr.link.send = send  # type: ignore[method-assign]
        for text in ("un", "deux"):
            await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, text, report_request=0)
        await eventually(lambda: len(_texts_to_rtw(fed)) >= 2, seconds=10)
        assert lost == 3
        assert _texts_to_rtw(fed) == ["un", "deux"]
        assert fed.de.counters["order_given_up"] == 0


async def test_a_delivery_that_crashes_fails_back_without_the_crash_text(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("cannot open /var/lib/euccs/secret.db at 10.0.0.7")

    monkeypatch.setattr(fed.fr.adapters["tetra-fr"], "send_prepared", crash)
    await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "kaputt", report_request=1)
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)), seconds=5)
    assert reports(fed.sim_de, DE_RTW)[0].delivery_status >= 0x40
    failed = next(o for o in fed.observed if o.kind == "receipt" and o.fields.get("reason"))
    assert "internal error" in failed.fields["reason"]
    assert "secret" not in failed.fields["reason"] and "10.0.0.7" not in failed.fields["reason"]


async def test_a_delivery_pushed_out_of_a_full_report_table_still_gets_its_receipt(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The German radios never report; the table of deliveries awaiting reports holds one."""
    monkeypatch.setattr(fed.sim_de.radios, "reports_for", lambda _content: [])
    fed.de.tracker.max_entries = 1
    for text in ("erste", "zweite"):
        await fed.sim_fr.send_text(FR_VSAV, ALIAS_OF_DE_RTW, text, report_request=1)
        await eventually(lambda: fed.de.tracker.awaiting_count == 1, seconds=5)
    # The first delivery's report can no longer be matched: its origin hears of it now,
    # not after the report timeout (30 s), and its copy leaves the journal.
    await eventually(lambda: fed.de.counters["reports_evicted"] == 1, seconds=5)
    await eventually(lambda: fed.de.counters["receipts_sent_delivered"] == 1, seconds=5)
    assert fed.de.counters["report_timeouts"] == 0
    journal = fed.de.journal
    assert journal is not None
    # The first copy left with its receipt; the receipt leaves when France acknowledges it.
    async with asyncio.timeout(5):
        while (rows := await journal.submit(lambda j: j.count())) != 1:  # noqa: ASYNC110 - polls the journal
            await asyncio.sleep(0.05)
    assert rows == 1  # the second one's copy, still waiting for its report


async def test_a_report_being_settled_gets_no_second_receipt_from_an_eviction(
    fed: Federation,
) -> None:
    """The unit reports failure; in the same pass a new delivery needs room in the table."""
    fed.de.tracker.max_entries = 1

    def awaiting(message_id: bytes, reference: int) -> AwaitingReport:
        return AwaitingReport(
            message_id=message_id,
            origin_nation="FR",
            origin_unit=FR_VSAV_UNIT,
            priority=v1.PRIORITY_ROUTINE,
            adapter="tetra-de",
            issi=DE_RTW,
            references={reference},
            want_read=False,
            deadline=fed.de.monotonic() + 30.0,
        )

    fed.de.tracker.add_awaiting(awaiting(b"\x01" * 16, 7))
    failed = SdsReport(protocol_id=0x82, delivery_status=0x4A, message_reference=7)
    report = SdsReceived(
        source=Identity(DE_RTW),
        destination=Identity("9000000"),
        ai_service=AiService.SDS_TYPE_4,
        content=failed,
    )
    await fed.de._on_unit_report("tetra-de", report)  # its receipt is journaled later
    fed.de.tracker.add_awaiting(awaiting(b"\x02" * 16, 8))
    fed.de._timer_wakeup.set()
    await eventually(lambda: fed.de.counters["receipts_sent_failed"] == 1)
    await asyncio.sleep(0.3)  # what an eviction would send, it has sent by now
    assert fed.de.counters["receipts_sent_delivered"] == 0
    # The report settled the first delivery when it was read: nothing was left to evict.
    assert (fed.de.counters["reports_evicted"], fed.de.tracker.awaiting_count) == (0, 1)


async def test_work_started_while_the_gateway_stops_is_stopped_with_it(tmp_path: Path) -> None:
    """A commit that turns durable during the stop may start work (a report): it is not left."""
    late: list[asyncio.Task[None]] = []

    async def started_during_the_stop() -> None:
        await asyncio.sleep(3600)

    async def running_at_the_stop(gateway: Gateway) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            gateway._spawn(started_during_the_stop(), "late")
            late.extend(t for t in gateway._background if "late" in t.get_name())

    async with federation(tmp_path) as fed:
        fed.de._spawn(running_at_the_stop(fed.de), "busy")
        await asyncio.sleep(0)
    assert len(late) == 1
    assert late[0].cancelled()


async def test_a_partner_away_costs_one_warning_a_minute_not_one_per_probe(
    tmp_path: Path,
) -> None:
    async with federation(tmp_path) as fed:
        fed.bus.cut("FR")
        with structlog.testing.capture_logs() as logs:
            for n in range(3):
                await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"weg {n}", report_request=0)
            await eventually(lambda: fed.de.counters["federation_retry_FR"] >= 5, seconds=10)
            fed.bus.cut("FR", down=False)
            await eventually(lambda: fed.sim_fr.received[FR_VSAV] != [], seconds=10)
        german = [e for e in logs if e.get("gateway") == fed.de.name]
        failed = [e for e in german if e["event"] == "federation.send_failed"]
        assert len(failed) == 1 and failed[0]["failures_since"] == 0
        assert fed.de.counters["federation_retry_FR"] >= 5  # every one counted all the same
        assert [e["partner"] for e in german if e["event"] == "federation.send_recovered"] == ["FR"]


async def test_a_radio_refusal_goes_abroad_without_the_radio_identity(fed: Federation) -> None:
    fed.sim_fr.fail_next_cmgs(cme=31)
    await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, "abgelehnt", report_request=1)
    await eventually(lambda: bool(reports(fed.sim_de, DE_RTW)), seconds=5)
    assert reports(fed.sim_de, DE_RTW)[0].delivery_status >= 0x40
    failed = next(o for o in fed.observed if o.kind == "receipt" and o.fields.get("reason"))
    assert "+CME ERROR: 31" in failed.fields["reason"]  # what went wrong, for the operator
    assert FR_VSAV not in failed.fields["reason"]  # but not which French radio it was


@pytest.mark.parametrize("with_receipt", [False, True], ids=["texts", "receipt-first"])
async def test_a_receipt_in_a_spill_does_not_stop_spilled_copies_expiring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_receipt: bool
) -> None:
    """A receipt lives for hours: one spilled ahead of the texts must not keep them in custody."""
    monkeypatch.setattr("gateway.node._SPILL_EXPIRY_INTERVAL", 0.25)
    delivery = "queue_max_messages = 4\nexpiry_seconds = { routine = 1, high = 3600 }"
    async with federation(tmp_path, delivery={"DE": delivery}) as fed:
        fed.bus.cut("FR")
        for n in range(6):  # 4 queued (and one maybe in the probing send), the rest spilled
            await fed.sim_de.send_text(
                DE_HLF, ALIAS_OF_FR_VSAV, f"dringend {n}", report_request=0, immediate=True
            )
        await eventually(lambda: fed.de.counters["accepted"] == 6)
        await eventually(lambda: "egress:FR" in fed.de._spilled)
        spilled = fed.de.counters["spilled"]
        if with_receipt:
            # A French text that came before the cut is delivered now: its receipt spills.
            await fed.de._on_federation("FR", _from_fr("bonjour", b"\x99" * 16))
            await eventually(lambda: fed.de.counters["spilled"] == spilled + 1, seconds=15)
        await _late_texts_fail_back(fed, 3, accepted=9)


def test_a_receipt_outlives_the_partners_default_duplicate_windows(fed: Federation) -> None:
    receipt = fed.de._receipt_envelope(
        v1.Envelope.FromString(_from_fr("x", b"\x97" * 16)), v1.DELIVERY_STATE_DELIVERED
    )
    lifetime = (receipt.expires_at_us - receipt.created_at_us) / 1e6
    assert lifetime >= 24 * 3600 >= fed.fr.config.delivery.dedup_window


async def test_a_receipt_for_a_partner_that_stays_away_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """France forgets its message after its duplicate window: our receipt stops waiting then.

    A receipt lives a day, or our own duplicate window if longer (each country sets its
    own); here the day is taken out so that the window of 2 s decides.
    """
    monkeypatch.setattr("gateway.node._RECEIPT_MIN_LIFETIME", 0.0)
    short = (
        "expiry_seconds = { emergency = 1, imminent_peril = 1, high = 1, routine = 1 }\n"
        "dedup_window = 2.0"
    )
    async with federation(tmp_path, delivery={"DE": short}) as fed:
        fed.bus.cut("FR")
        await fed.de._on_federation("FR", _from_fr("bonjour", b"\x98" * 16))
        await eventually(lambda: bool(fed.sim_de.received[DE_RTW]), seconds=5)
        await eventually(lambda: fed.de.counters["receipts_expired"] == 1, seconds=10)
        assert fed.de.journal is not None
        assert await fed.de.journal.submit(lambda j: j.count()) == 0
        fed.bus.cut("FR", down=False)
        await eventually(lambda: fed.de.liveness["federation:FR"].state.value != "degraded")
        assert fed.fr.counters["receipts_delivered"] == 0  # nothing left to send


async def test_a_journal_that_cannot_be_read_holds_up_no_housekeeping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search for expired spilled copies runs beside the housekeeping passes."""
    monkeypatch.setattr("gateway.node._SPILL_EXPIRY_INTERVAL", 0.25)
    async with federation(tmp_path, delivery={"DE": "queue_max_messages = 4"}) as fed:
        fed.bus.cut("FR")
        for n in range(8):
            await fed.sim_de.send_text(DE_RTW, ALIAS_OF_FR_VSAV, f"r {n}", report_request=0)
        await eventually(lambda: "egress:FR" in fed.de._spilled)
        journal = fed.de.journal
        assert journal is not None
        real_submit = journal.submit

        async def failing(op: Any, **kwargs: Any) -> Any:
            if isinstance(op, functools.partial) and op.func.__name__ == "_entries_after":
                raise JournalError("I/O error")
            return await real_submit(op, **kwargs)

        journal.submit = failing  # type: ignore[method-assign]
        ticks = 0
        real_tick = fed.de._presence_tick

        def tick(now: float) -> None:
            nonlocal ticks
            ticks += 1
            real_tick(now)

        fed.de._presence_tick = tick  # type: ignore[method-assign]
        await asyncio.sleep(3.0)
        assert ticks >= 8, ticks  # a pass every 0.25 s


async def test_a_held_message_whose_copy_names_another_predecessor_goes_in_behind_it(
    fed: Federation,
) -> None:
    """M held behind P; P is gone at FR, so FR's next copy of M names Q: M goes in behind Q."""
    p, q, m = b"\xa1" * 16, b"\xa2" * 16, b"\xa3" * 16
    await fed.de._on_federation("FR", _following("m", m, after=p))
    await fed.de._on_federation("FR", _following("m", m, after=q))  # sent again
    await fed.de._on_federation("FR", _from_fr("q", q))
    await eventually(lambda: _texts_to_rtw(fed) == ["q", "m"], seconds=5)


async def test_a_held_message_whose_copy_names_one_in_custody_goes_in_at_once(
    fed: Federation,
) -> None:
    """M held behind P; FR's next copy names Q, which DE has already taken in."""
    p, q, m = b"\xc1" * 16, b"\xc2" * 16, b"\xc3" * 16
    await fed.de._on_federation("FR", _from_fr("q", q))
    await eventually(lambda: _texts_to_rtw(fed) == ["q"])
    await fed.de._on_federation("FR", _following("m", m, after=p))
    await fed.de._on_federation("FR", _following("m", m, after=q))  # sent again
    await eventually(lambda: _texts_to_rtw(fed) == ["q", "m"], seconds=5)


async def test_a_predecessor_that_never_gets_in_holds_its_follower_three_holds_at_most(
    fed: Federation,
) -> None:
    """FR keeps sending P, which never gets in here: each copy of M may not keep it for good."""
    fed.de._held_back.hold_seconds = 0.5
    p, m = b"\xb1" * 16, b"\xb2" * 16
    for _ in range(10):  # FR's ack timeout, compressed
        await fed.de._on_federation("FR", _following("m", m, after=p))
        await asyncio.sleep(0.3)
    assert _texts_to_rtw(fed) == ["m"]  # taken in after 3 holds, whatever copies came
    assert fed.de.counters["order_given_up"] == 1


async def test_a_partners_receipt_reason_is_shown_bounded_and_printable(fed: Federation) -> None:
    records: list[Observation] = []
    fed.de.observers.append(records.append)
    message_id = b"\x5d" * 16
    fed.de.tracker.add_origin(_origin_record(message_id))
    receipt = v1.Envelope(message_id=b"\x5e" * 16, priority=v1.PRIORITY_ROUTINE)
    receipt.origin.nation = "FR"
    receipt.origin.unit = FR_VSAV_UNIT
    receipt.receipt.message_id = message_id
    receipt.receipt.state = v1.DELIVERY_STATE_FAILED
    receipt.receipt.reason = "\x1b[2Jrefus\u202e" + "x" * 10_000
    await fed.de._on_federation("FR", receipt.SerializeToString())
    [shown] = [o.fields["reason"] for o in records if o.kind == "receipt"]
    assert len(shown) == 200 and shown.endswith("…")
    assert shown.startswith(" [2Jrefus ") and shown.isprintable()
