"""Order per origin unit and destination: what a message follows, and holding back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ordering import Chains, HeldBack

PAIR = ("de.bos.rtw-kehl-1", b"\x0a\x02fr", 2)
OTHER = ("de.bos.rtw-kehl-1", b"\x0a\x02xx", 2)


def test_a_message_follows_the_latest_one_before_it_still_in_flight() -> None:
    chains = Chains()
    flying: dict[bytes, int] = {}
    assert chains.follow(PAIR, 1, b"m1", flying.get) == b""
    flying[b"m1"] = 1
    assert chains.follow(PAIR, 2, b"m2", flying.get) == b"m1"
    flying[b"m2"] = 2
    assert chains.follow(PAIR, 3, b"m3", flying.get) == b"m2"
    flying[b"m3"] = 3
    assert chains.follow(OTHER, 4, b"o1", flying.get) == b""  # another destination
    del flying[b"m2"]  # acknowledged
    assert chains.follow(PAIR, 5, b"m5", flying.get) == b"m3"
    del flying[b"m3"], flying[b"m1"]
    assert chains.follow(PAIR, 6, b"m6", flying.get) == b""


def test_a_message_sent_again_follows_only_what_came_before_it() -> None:
    chains = Chains()
    flying: dict[bytes, int] = {}
    for order, message in enumerate((b"m1", b"m2", b"m3"), start=1):
        chains.follow(PAIR, order, message, flying.get)
        flying[message] = order
    # m2's send failed: it is back in the queue (not in flight) and goes again, keeping
    # its place; it must not follow m3, which came after it.
    del flying[b"m2"]
    assert chains.follow(PAIR, 2, b"m2", flying.get) == b"m1"
    flying[b"m2"] = 2
    del flying[b"m1"]
    assert chains.follow(PAIR, 3, b"m3", flying.get) == b"m2"


def test_a_sweep_forgets_pairs_with_nothing_in_flight() -> None:
    chains = Chains()
    flying = {b"m1": 1, b"o1": 2}
    chains.follow(PAIR, 1, b"m1", flying.get)
    chains.follow(OTHER, 2, b"o1", flying.get)
    del flying[b"m1"]
    chains.sweep(flying.get)
    assert len(chains) == 1
    # A message that left the flight and came back with another place is not its old self.
    chains.sweep({b"o1": 7}.get)
    assert len(chains) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["send", "ack", "fail"]), st.integers(0, 5))))
def test_what_a_message_follows_is_in_flight_and_earlier_in_its_queue(
    steps: list[tuple[str, int]],
) -> None:
    """Whatever sends, acknowledgements and failures: never a cycle, never a stale link."""
    chains = Chains()
    flying: dict[bytes, int] = {}
    for action, n in steps:
        message, order = f"m{n}".encode(), n
        if action == "send":
            before = dict(flying)
            follows = chains.follow(PAIR, order, message, before.get)
            flying[message] = order
            if follows:
                assert follows in before and before[follows] < order
                assert follows == max(
                    (m for m, o in before.items() if o < order and m != message),
                    key=before.__getitem__,
                )
            else:
                assert not any(o < order for m, o in before.items() if m != message)
        else:
            flying.pop(message, None)


def test_held_messages_are_released_behind_the_one_they_follow_in_order() -> None:
    held = HeldBack(max_held=3, hold_seconds=10.0)
    assert held.hold("FR", b"k2", b"k1", b"p2", now=0.0)
    assert held.hold("FR", b"k3", b"k1", b"p3", now=1.0)
    assert not held.hold("FR", b"k2", b"k1", b"p2-again", now=2.0)  # a copy: kept as it was
    assert b"k2" in held and len(held) == 2
    assert [w.payload for w in held.release(b"k1")] == [b"p2", b"p3"]
    assert len(held) == 0 and held.release(b"k1") == []


def test_the_hold_is_bounded_and_gives_up_after_its_time() -> None:
    held = HeldBack(max_held=2, hold_seconds=10.0)
    assert held.hold("FR", b"a", b"x", b"pa", now=0.0)
    assert held.hold("FR", b"b", b"x", b"pb", now=5.0)
    assert not held.hold("FR", b"c", b"y", b"pc", now=5.0)  # full
    assert held.due(9.9) == []
    [late] = held.due(10.0)
    assert (late.sender, late.key, late.payload) == ("FR", b"a", b"pa")
    assert b"a" not in held
    assert [w.key for w in held.release(b"x")] == [b"b"]
    assert held.due(100.0) == []
