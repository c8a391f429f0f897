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
    assert held.hold("FR", b"k4", b"k3", b"p4", now=1.0)  # behind k3, in turn
    assert held.hold("FR", b"k2", b"k1", b"p2-again", now=2.0)  # a copy: kept as it was
    assert b"k2" in held and len(held) == 3
    assert [w.payload for w in held.release(b"k1")] == [b"p2", b"p3", b"p4"]
    assert len(held) == 0 and held.release(b"k1") == []


def test_a_copy_restarts_the_wait_and_may_name_another_predecessor() -> None:
    held = HeldBack(hold_seconds=10.0)
    assert held.hold("FR", b"f", b"p", b"payload", now=0.0)
    assert held.hold("FR", b"f", b"p", b"payload", now=8.0)  # the sender still waits for p
    assert held.due(12.0) == []
    assert held.hold("FR", b"f", b"o", b"payload", now=9.0)  # p is gone at the sender: o
    assert held.release(b"p") == []
    [waiting] = held.release(b"o")
    assert (waiting.arrived, waiting.until) == (0.0, 19.0)


def test_a_message_taken_in_from_another_copy_leaves_no_hold() -> None:
    held = HeldBack()
    held.hold("FR", b"f", b"p", b"x", now=0.0)
    held.discard(b"f")
    held.discard(b"f")
    assert len(held) == 0 and held.release(b"p") == [] and held.due(1e9) == []


def test_the_hold_is_bounded_in_all_per_partner_and_in_bytes() -> None:
    held = HeldBack(max_held=3, max_per_partner=2, max_bytes=10)
    assert held.hold("FR", b"a", b"x", b"1234", now=0.0)
    assert held.hold("FR", b"b", b"x", b"1234", now=0.0)
    assert not held.hold("FR", b"c", b"x", b"1", now=0.0)  # France has its share
    assert not held.hold("IT", b"d", b"x", b"123", now=0.0)  # 11 bytes
    assert held.hold("IT", b"d", b"x", b"12", now=0.0)
    assert not held.hold("BE", b"e", b"x", b"", now=0.0)  # 3 in all
    held.release(b"x")
    assert held.hold("BE", b"e", b"x", b"1234567890", now=0.0)


def test_the_hold_gives_up_after_its_time_but_keeps_a_held_chain_in_order() -> None:
    held = HeldBack(hold_seconds=10.0)
    assert held.hold("FR", b"f2", b"f1", b"p2", now=0.0)  # f2 came before f1 ...
    assert held.hold("FR", b"f1", b"p", b"p1", now=1.0)  # ... which waits for p
    assert held.due(10.5) == []  # f2 waits for f1, held itself
    [f1] = held.due(11.0)
    assert f1.key == b"f1"
    assert [w.key for w in held.release(b"f1")] == [b"f2"]


def test_a_circle_of_predecessors_is_broken_after_two_holds() -> None:
    held = HeldBack(hold_seconds=10.0)
    held.hold("FR", b"a", b"b", b"pa", now=0.0)
    held.hold("FR", b"b", b"a", b"pb", now=0.0)
    assert held.due(15.0) == []
    assert sorted(w.key for w in held.due(20.0)) == [b"a", b"b"]
    assert len(held) == 0


def test_a_message_put_back_keeps_its_arrival() -> None:
    held = HeldBack(hold_seconds=10.0, max_held=1)
    held.hold("FR", b"f", b"p", b"x", now=0.0)
    [waiting] = held.release(b"p")
    assert held.put_back(waiting, now=5.0)
    [again] = held.release(b"p")
    assert (again.arrived, again.until) == (0.0, 15.0)
    held.hold("FR", b"g", b"q", b"y", now=6.0)
    assert not held.put_back(again, now=7.0)  # full


def test_copies_restart_the_wait_up_to_three_holds_from_the_first() -> None:
    held = HeldBack(hold_seconds=10.0)
    for now in range(0, 40, 5):
        held.hold("FR", b"f", b"p", b"x", now=float(now))
        if now < 30:
            assert held.follows_of(b"f") == b"p" and held.due(float(now)) == []
    [late] = held.due(30.0)
    assert (late.key, held.follows_of(b"f")) == (b"f", None)
