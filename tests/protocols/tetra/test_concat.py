from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError
from protocols.tetra import (
    ConcatInfo,
    IncompleteMessage,
    Reassembler,
    SdsTimestamp,
    TextSds,
    decode_sds,
    encode_sds,
    split_text,
)


def part(seq: int, total: int, text: str, ref: int = 9, mr: int | None = None) -> TextSds:
    return TextSds(
        protocol_id=0x8A,
        text=text,
        message_reference=ref + seq - 1 if mr is None else mr,
        concat=ConcatInfo(reference=ref, total=total, sequence=seq),
    )


def test_single_part_when_it_fits() -> None:
    parts = split_text(
        "hello", destination_max_bits=1184, message_reference_start=7, immediate=True
    )
    assert parts == [TextSds(protocol_id=0x89, text="hello", immediate=True, message_reference=7)]


def test_split_parts_fit_and_references() -> None:
    stamp = SdsTimestamp(timeframe=1, month=1, day=2, hour=3, minute=4)
    parts = split_text(
        "x" * 400,
        destination_max_bits=1184,
        message_reference_start=254,
        timestamp=stamp,
        delivery_report_request=1,
    )
    assert [p.message_reference for p in parts] == [254, 255, 0]
    assert {p.concat.reference for p in parts if p.concat} == {254}
    for p in parts:
        assert encode_sds(p)[1] <= 1184
        assert decode_sds(*encode_sds(p)) == p


def test_split_refusals() -> None:
    with pytest.raises(LocalProtocolError):
        split_text("x", destination_max_bits=1184, message_reference_start=256)
    with pytest.raises(LocalProtocolError):
        split_text("x", destination_max_bits=0, message_reference_start=0)
    with pytest.raises(LocalProtocolError, match="too few"):
        split_text("x" * 100, destination_max_bits=85, message_reference_start=0)
    with pytest.raises(LocalProtocolError, match="255"):
        split_text("x" * 3000, destination_max_bits=96, message_reference_start=0)
    with pytest.raises(LocalProtocolError, match="coding scheme 1"):
        split_text("€", destination_max_bits=1184, message_reference_start=0, coding_scheme=1)


@given(st.text(max_size=600), st.integers(112, 2047), st.integers(0, 255), st.randoms())
def test_split_then_reassemble(text: str, max_bits: int, start: int, rnd: random.Random) -> None:
    parts = split_text(text, destination_max_bits=max_bits, message_reference_start=start)
    received = [decode_sds(*encode_sds(p)) for p in parts]
    rnd.shuffle(received)
    reassembler = Reassembler(timeout=30.0)
    results = [reassembler.add("1", "2", p, 0.0) for p in received]  # type: ignore[arg-type]
    done = [r for r in results if r is not None]
    assert len(done) == 1
    assert done[0].text == text and done[0].message_reference == start
    assert done[0].concat is None and reassembler.pending_count == 0


def test_reassembly_keys_duplicates_and_interleaving() -> None:
    r = Reassembler(timeout=10.0)
    assert r.add("1", "2", part(1, 2, "ab"), 0.0) is None
    assert r.add("1", "2", part(1, 2, "XX"), 0.1) is None  # duplicate ignored
    assert r.add("3", "2", part(2, 2, "zz"), 0.2) is None  # other sender
    out = r.add("1", "2", part(2, 2, "cd"), 0.3)
    assert out is not None and out.text == "abcd" and out.message_reference == 9
    assert r.pending_count == 1
    single = TextSds(protocol_id=0x82, text="s", message_reference=1)
    assert r.add("1", "2", single, 0.0) is single
    one = r.add("1", "2", part(1, 1, "only"), 0.0)
    assert one is not None and one.concat is None


def test_timer_expiry() -> None:
    r = Reassembler(timeout=10.0)
    assert r.get_timer() is None
    r.add("1", "2", part(2, 3, "b"), 5.0)
    assert r.get_timer() == 15.0
    assert r.handle_timer(14.9) == []
    (gone,) = r.handle_timer(15.0)
    assert isinstance(gone, IncompleteMessage)
    assert (gone.source, gone.message_reference, gone.received, gone.reason_code) == (
        "1",
        10,
        (2,),
        0x5D,
    )
    assert r.get_timer() is None


def test_bounded_and_flush() -> None:
    r = Reassembler(timeout=10.0, max_pending=2)
    for ref, now in ((1, 0.0), (2, 1.0), (3, 2.0)):
        r.add("1", "2", part(1, 2, "a", ref=ref), now)
    assert r.pending_count == 2
    assert r.get_timer() == 2.0
    (evicted,) = r.handle_timer(2.0)
    assert evicted.reference == 1 and "too many" in evicted.reason
    assert {g.reference for g in r.flush()} == {2, 3}
    assert r.flush() == []
    with pytest.raises(LocalProtocolError):
        Reassembler(timeout=0)
