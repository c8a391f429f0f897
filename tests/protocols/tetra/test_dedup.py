"""SDS-TL duplicate detection of received SDS-TRANSFERs (sans-IO, time as an argument)."""

from __future__ import annotations

import pytest

from protocols.errors import LocalProtocolError
from protocols.tetra import (
    ConcatInfo,
    DeliveryStatus,
    DuplicateFilter,
    OtherSds,
    Reassembler,
    Retransmission,
    SdsAck,
    SdsContent,
    SdsReport,
    StatusSds,
    TextSds,
    decode_sds,
    encode_sds,
    split_text,
    transfer_fields,
)


def transfer(text: str = "Lage ruhig", mr: int = 5, report: int = 1, pid: int = 0x82) -> TextSds:
    return TextSds(protocol_id=pid, text=text, message_reference=mr, delivery_report_request=report)


def test_retransmission_is_recognised_and_answered_received() -> None:
    seen = DuplicateFilter(window=60.0)
    original = transfer()
    assert seen.check("2001", original, 0.0) is None
    seen.remember("2001", original, 0.0)
    assert seen.check("2001", original, 30.0) == Retransmission(
        protocol_id=0x82, message_reference=5, report_status=DeliveryStatus.RECEIVED
    )
    quiet = transfer(mr=6, report=0)
    seen.remember("2001", quiet, 1.0)
    duplicate = seen.check("2001", quiet, 2.0)
    assert duplicate is not None and duplicate.report_status is None  # no report asked


def test_key_is_source_pid_and_reference_and_content_must_match() -> None:
    seen = DuplicateFilter(window=60.0)
    seen.remember("2001", transfer(), 0.0)
    assert seen.check("2002", transfer(), 1.0) is None  # another sender
    assert seen.check("2001", transfer(pid=0x89), 1.0) is None  # another PID
    assert seen.check("2001", transfer(mr=6), 1.0) is None  # another reference
    # The same reference reused for a new message (a restarted radio) is not silenced.
    assert seen.check("2001", transfer(text="Neue Lage"), 1.0) is None
    seen.remember("2001", transfer(text="Neue Lage"), 1.0)
    assert seen.check("2001", transfer(text="Neue Lage"), 2.0) is not None
    assert seen.check("2001", transfer(), 2.0) is None


def test_only_transfers_are_remembered() -> None:
    seen = DuplicateFilter()
    others: list[SdsContent] = [
        SdsReport(protocol_id=0x82, delivery_status=0, message_reference=5),
        SdsAck(protocol_id=0x82, delivery_status=1, message_reference=5),
        StatusSds(status=0x8001),
        TextSds(protocol_id=0x02, text="simple text, no SDS-TL"),
    ]
    for content in others:
        seen.remember("2001", content, 0.0)
        assert seen.check("2001", content, 0.0) is None
    assert len(seen) == 0


def test_transfer_fields_of_other_sds_tl_transfers() -> None:
    # PID 0x83 (location with SDS-TL): SDS-TRANSFER, consumed report asked, MR 0x21.
    location = OtherSds(protocol_id=0x83, payload=bytes.fromhex("83082100AB"), bits=40)
    assert transfer_fields(location) == (0x83, 0x21, 2)
    custom = OtherSds(protocol_id=0xC3, payload=bytes.fromhex("C38021"), bits=24)  # type 8
    assert transfer_fields(custom) is None
    assert transfer_fields(transfer(mr=7, report=3)) == (0x82, 7, 3)
    seen = DuplicateFilter()
    seen.remember("2001", location, 0.0)
    again = seen.check("2001", location, 1.0)
    assert again is not None and again.message_reference == 0x21


def test_forgotten_after_window() -> None:
    seen = DuplicateFilter(window=10.0)
    seen.remember("2001", transfer(mr=1), 0.0)
    seen.remember("2001", transfer(mr=2), 5.0)
    assert seen.check("2001", transfer(mr=1), 9.9) is not None
    assert seen.check("2001", transfer(mr=1), 10.0) is None
    assert len(seen) == 1
    assert seen.check("2001", transfer(mr=2), 14.9) is not None
    assert seen.check("2001", transfer(mr=2), 15.0) is None
    assert len(seen) == 0


def test_bounded_in_memory() -> None:
    seen = DuplicateFilter(window=3600.0, max_entries=3)
    for mr in range(5):
        seen.remember("2001", transfer(mr=mr), float(mr))
    assert len(seen) == 3
    assert [seen.check("2001", transfer(mr=mr), 5.0) is not None for mr in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    with pytest.raises(LocalProtocolError):
        DuplicateFilter(window=0)
    with pytest.raises(LocalProtocolError):
        DuplicateFilter(max_entries=0)


def test_answered_like_the_original_report() -> None:
    seen = DuplicateFilter()
    seen.remember("2001", transfer(), 0.0)
    seen.note_report("2001", 0x82, 5, DeliveryStatus.STORED)
    again = seen.check("2001", transfer(), 1.0)
    assert again is not None and again.report_status == DeliveryStatus.STORED
    seen.note_report("2001", 0x82, 5, DeliveryStatus.SOURCE_NOT_AUTHORIZED)
    again = seen.check("2001", transfer(), 2.0)
    assert again is not None and again.report_status == DeliveryStatus.SOURCE_NOT_AUTHORIZED
    seen.note_report("2002", 0x82, 9, DeliveryStatus.RECEIVED)  # nothing remembered: ignored
    assert len(seen) == 1


def test_retransmitted_part_after_completion_starts_no_new_partial() -> None:
    # The adapter's flow: check, reassemble, remember the parts once the text is whole.
    parts = split_text("x" * 120, destination_max_bits=400, message_reference_start=0x40)
    assert len(parts) > 1
    received = [decode_sds(*encode_sds(p)) for p in parts]
    reassembler = Reassembler(60.0)
    seen = DuplicateFilter(window=300.0)
    handed_on: list[TextSds] = []

    def receive(part: object, now: float) -> Retransmission | None:
        assert isinstance(part, TextSds)
        again = seen.check("2001", part, now)
        if again is not None:
            return again
        whole = reassembler.add_part("2001", "1000", part, now)
        if whole is not None:
            for piece in whole:
                seen.remember("2001", piece, now)
            handed_on.append(Reassembler.join(whole))
        return None

    for index, part in enumerate(received):
        assert receive(part, float(index)) is None
    assert [t.text for t in handed_on] == ["x" * 120]
    # Part 2 again (the sender missed its report), after the text was complete.
    again = receive(received[1], 30.0)
    assert again is not None and again.message_reference == 0x41
    assert reassembler.pending_count == 0 and reassembler.get_timer() is None
    # The whole text again: every part recognised, nothing handed on twice.
    assert all(receive(part, 40.0) is not None for part in received)
    assert len(handed_on) == 1 and reassembler.pending_count == 0


def test_parts_of_an_incomplete_text_are_not_remembered() -> None:
    reassembler = Reassembler(10.0)
    first = TextSds(
        protocol_id=0x8A,
        text="a",
        message_reference=1,
        concat=ConcatInfo(reference=1, total=2, sequence=1),
    )
    assert reassembler.add_part("2001", "1000", first, 0.0) is None
    assert len(reassembler.handle_timer(10.0)) == 1
    # Given up: part 1 was never handed on, so its retransmission can complete the text.
    assert reassembler.add_part("2001", "1000", first, 20.0) is None
    second = TextSds(
        protocol_id=0x8A,
        text="b",
        message_reference=2,
        concat=ConcatInfo(reference=1, total=2, sequence=2),
    )
    whole = reassembler.add_part("2001", "1000", second, 21.0)
    assert whole == (first, second)
    assert Reassembler.join(whole) == TextSds(protocol_id=0x8A, text="ab", message_reference=1)
    single = transfer()
    assert reassembler.add_part("2001", "1000", single, 0.0) == (single,)
    assert Reassembler.join((single,)) is single
