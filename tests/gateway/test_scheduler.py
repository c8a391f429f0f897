from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.scheduler import (
    DEFAULT_MAX_WAIT,
    DEFAULT_WEIGHTS,
    AsyncScheduler,
    Entry,
    QueueFull,
    Scheduler,
)
from protocols.errors import DeliveryRefused
from protocols.schema import v1
from protocols.tetra import DeliveryStatus

E, P, H, R = (
    v1.PRIORITY_EMERGENCY,
    v1.PRIORITY_IMMINENT_PERIL,
    v1.PRIORITY_HIGH,
    v1.PRIORITY_ROUTINE,
)


def make(
    max_items: int = 10_000,
    max_bytes: int = 10_000_000,
    *,
    weights: Mapping[int, int] | None = None,
    max_wait: Mapping[int, float] | None = None,
) -> Scheduler[str]:
    return Scheduler(max_items=max_items, max_bytes=max_bytes, weights=weights, max_wait=max_wait)


def drain(s: Scheduler[str], now: float) -> list[str]:
    out = []
    while (entry := s.pop(now)) is not None:
        out.append(entry.item)
    return out


def snapshot(s: Scheduler[str]) -> tuple[int, int, dict[int, int], list[Entry[str]]]:
    return len(s), s.bytes, s.depths(), list(s)


# Strict urgency --------------------------------------------------------------------------------


def test_emergency_preempts_a_long_backlog() -> None:
    s = make()
    for i in range(1000):
        s.offer(f"x{i}", H if i % 3 else R, size=10, now=i * 0.001)
    s.offer("e", E, size=10, now=1.0)
    first = s.pop(1.0)
    assert first is not None
    assert (first.item, first.priority) == ("e", E)
    assert len(s) == 1000


def test_emergency_before_imminent_peril_before_the_rest() -> None:
    s = make()
    s.offer("h1", H, size=1, now=0.0)
    s.offer("r1", R, size=1, now=0.0)
    s.offer("p1", P, size=1, now=0.0)
    s.offer("p2", P, size=1, now=0.0)
    s.offer("e1", E, size=1, now=0.0)
    assert drain(s, 0.0)[:3] == ["e1", "p1", "p2"]


def test_aging_never_overtakes_urgent_classes() -> None:
    s = make()
    s.offer("old-routine", R, size=1, now=0.0)
    s.offer("old-high", H, size=1, now=0.5)
    s.offer("p", P, size=1, now=99.0)
    s.offer("e", E, size=1, now=100.0)
    # Both shared-class heads are far overdue, yet the urgent classes still go first.
    assert drain(s, 100.0) == ["e", "p", "old-routine", "old-high"]


def test_fifo_within_each_class_and_unknown_priority_is_routine() -> None:
    s = make(max_wait={H: math.inf, R: math.inf})
    for i in range(6):
        s.offer(f"r{i}", R, size=1, now=0.0)
    s.offer("odd", 77, size=1, now=0.0)
    s.offer("zero", v1.PRIORITY_UNSPECIFIED, size=1, now=0.0)
    assert s.depths() == {E: 0, P: 0, H: 0, R: 8}
    assert drain(s, 0.0) == [f"r{i}" for i in range(6)] + ["odd", "zero"]


# Weighted round-robin and aging ----------------------------------------------------------------


def test_weighted_round_robin_share_follows_weights_when_nothing_is_aged() -> None:
    s = make()
    for i in range(100):
        s.offer(f"h{i}", H, size=1, now=0.0)
        s.offer(f"r{i}", R, size=1, now=0.0)
    served = [s.pop(0.0) for _ in range(50)]
    classes = [e.priority for e in served if e is not None]
    assert classes[:5] == [H, H, R, H, H]
    assert Counter(classes) == {H: 40, R: 10}
    # FIFO within each class is kept while interleaving.
    routine = [e.item for e in served if e is not None and e.priority == R]
    assert routine == [f"r{i}" for i in range(10)]


def test_weights_are_configurable() -> None:
    s = make(weights={H: 1, R: 1})
    for i in range(4):
        s.offer(f"h{i}", H, size=1, now=0.0)
        s.offer(f"r{i}", R, size=1, now=0.0)
    assert drain(s, 0.0) == ["h0", "r0", "h1", "r1", "h2", "r2", "h3", "r3"]
    s = make(weights={R: 3})
    for i in range(4):
        s.offer(f"h{i}", H, size=1, now=0.0)
        s.offer(f"r{i}", R, size=1, now=0.0)
    assert s.weights == {H: 4, R: 3}
    assert Counter(item[0] for item in drain(s, 0.0)[:7]) == {"h": 4, "r": 3}


def test_round_robin_restarts_after_a_class_runs_dry() -> None:
    s = make()
    s.offer("h0", H, size=1, now=0.0)
    s.offer("r0", R, size=1, now=0.0)
    assert drain(s, 0.0) == ["h0", "r0"]
    for i in range(3):
        s.offer(f"h{i + 1}", H, size=1, now=0.0)
        s.offer(f"r{i + 1}", R, size=1, now=0.0)
    assert drain(s, 0.0) == ["h1", "h2", "r1", "h3", "r2", "r3"]


def _simulate_sustained_high(max_wait: dict[int, float]) -> dict[str, float]:
    """10 HIGH + 20 ROUTINE at t=0, then per 0.1 s step: one HIGH arrives, one entry is served."""
    s = make(max_wait=max_wait)
    step = 0.1
    for i in range(10):
        s.offer(f"h-init{i}", H, size=1, now=0.0)
    for i in range(20):
        s.offer(f"r{i}", R, size=1, now=0.0)
    waits: dict[str, float] = {}
    for n in range(1, 400):
        now = n * step
        s.offer(f"h{n}", H, size=1, now=now)
        entry = s.pop(now)
        assert entry is not None
        if entry.priority == R:
            waits[entry.item] = now - entry.enqueued_at
    assert s.depths()[R] == 0
    return waits


def test_no_starvation_under_sustained_high_load() -> None:
    waits = _simulate_sustained_high(dict(DEFAULT_MAX_WAIT))
    assert len(waits) == 20
    # Round-robin serves one routine entry in five steps until the head turns overdue
    # at 5 s (10 served); aging then serves the 10 left, one per 0.1 s step.
    assert max(waits.values()) <= DEFAULT_MAX_WAIT[R] + 10 * 0.1 + 1e-9
    # Without aging the same load leaves the last routine entries waiting much longer.
    no_aging = _simulate_sustained_high({H: math.inf, R: math.inf})
    assert len(no_aging) == 20
    assert max(no_aging.values()) > max(waits.values()) + 2.0


def test_overdue_routine_beats_fresher_high_entries() -> None:
    s = make()
    s.offer("r-old", R, size=1, now=0.0)
    for i in range(10):
        s.offer(f"h{i}", H, size=1, now=4.0 + i * 0.01)
    # At 5.0 the routine head has waited exactly max_wait: not overdue yet, WRR picks HIGH.
    first = s.pop(5.0)
    assert first is not None
    assert first.item == "h0"
    # Just after, it is overdue and older than every HIGH entry: served next.
    second = s.pop(5.01)
    assert second is not None
    assert second.item == "r-old"


def test_overdue_entries_are_served_oldest_first() -> None:
    s = make()
    s.offer("h-older", H, size=1, now=0.0)
    s.offer("r", R, size=1, now=1.0)
    s.offer("h-newer", H, size=1, now=2.0)
    # At t=10 every head is overdue: oldest enqueued_at first, across classes.
    assert drain(s, 10.0) == ["h-older", "r", "h-newer"]


def test_overdue_high_is_served_before_routines_round_robin_turn() -> None:
    s = make(weights={H: 1, R: 10})
    s.offer("h", H, size=1, now=0.0)
    for i in range(3):
        s.offer(f"r{i}", R, size=1, now=0.0)
    # Fresh: ROUTINE's weight wins.
    fresh = make(weights={H: 1, R: 10})
    fresh.offer("h", H, size=1, now=0.0)
    fresh.offer("r0", R, size=1, now=0.0)
    assert [e.item for e in [fresh.pop(0.0)] if e is not None] == ["r0"]
    # HIGH overdue (2.0 s), ROUTINE not (5.0 s): HIGH first.
    assert drain(s, 3.0) == ["h", "r0", "r1", "r2"]


# Bounds and shedding ---------------------------------------------------------------------------


def test_bounded_in_messages_sheds_the_newest_of_the_lowest_class() -> None:
    s = make(max_items=3)
    assert s.offer("r1", R, size=1, now=0.0) == []
    assert s.offer("r2", R, size=1, now=0.0) == []
    assert s.offer("h1", H, size=1, now=0.0) == []
    evicted = s.offer("e1", E, size=1, now=0.0)
    assert [(x.item, x.priority) for x in evicted] == [("r2", R)]
    assert [x.item for x in s] == ["e1", "h1", "r1"]
    assert len(s) == 3


def test_bounded_in_bytes_evicts_as_many_as_needed_moving_up_classes() -> None:
    s = make(max_bytes=100)
    s.offer("r1", R, size=20, now=0.0)
    s.offer("r2", R, size=20, now=0.0)
    s.offer("h1", H, size=30, now=0.0)
    s.offer("h2", H, size=30, now=0.0)
    assert s.bytes == 100
    # 75 bytes must be freed: r2, r1 (40), then h2 (30) is not enough, h1 too.
    evicted = s.offer("p", P, size=75, now=0.0)
    assert [x.item for x in evicted] == ["r2", "r1", "h2", "h1"]
    assert s.bytes == 75
    assert [x.item for x in s] == ["p"]


def test_offer_evicts_only_what_is_needed() -> None:
    s = make(max_bytes=100)
    s.offer("r1", R, size=10, now=0.0)
    s.offer("r2", R, size=60, now=0.0)
    s.offer("r3", R, size=30, now=0.0)
    evicted = s.offer("h", H, size=40, now=0.0)
    assert [x.item for x in evicted] == ["r3", "r2"]
    assert [x.item for x in s] == ["h", "r1"]
    assert s.bytes == 50


def test_same_class_is_never_evicted_and_refusal_says_queue_full() -> None:
    s = make(max_items=2)
    s.offer("r1", R, size=1, now=0.0)
    s.offer("r2", R, size=1, now=0.0)
    with pytest.raises(QueueFull) as info:
        s.offer("r3", R, size=1, now=0.0)
    assert isinstance(info.value, DeliveryRefused)
    assert info.value.reason_code == DeliveryStatus.DESTINATION_QUEUE_FULL
    assert info.value.reason_code == 0x4C
    assert [x.item for x in s] == ["r1", "r2"]


def test_emergency_is_never_evicted() -> None:
    s = make(max_items=2)
    s.offer("e1", E, size=1, now=0.0)
    s.offer("e2", E, size=1, now=0.0)
    before = snapshot(s)
    with pytest.raises(QueueFull):
        s.offer("e3", E, size=1, now=0.0)
    with pytest.raises(QueueFull):
        s.offer("r", R, size=1, now=0.0)
    assert snapshot(s) == before
    assert drain(s, 0.0) == ["e1", "e2"]


def test_refusal_is_atomic() -> None:
    s = make(max_bytes=100)
    s.offer("r", R, size=10, now=0.0)
    s.offer("p", P, size=80, now=0.0)
    before = snapshot(s)
    # Needs 40 bytes; only r (10) is below HIGH: refuse, and r must still be there.
    with pytest.raises(QueueFull):
        s.offer("h", H, size=50, now=0.0)
    assert snapshot(s) == before
    # The refused offer consumed no sequence number.
    s.offer("next", R, size=1, now=0.0)
    assert [x.seq for x in s] == [1, 0, 2]


def test_oversized_entry_is_refused() -> None:
    s = make(max_bytes=100)
    s.offer("r", R, size=10, now=0.0)
    with pytest.raises(QueueFull, match="larger than max_bytes=100") as info:
        s.offer("big", E, size=101, now=0.0)
    assert info.value.reason_code == DeliveryStatus.DESTINATION_QUEUE_FULL
    assert [x.item for x in s] == ["r"]
    # Exactly max_bytes fits (after evicting r).
    assert [x.item for x in s.offer("full", E, size=100, now=0.0)] == ["r"]


def test_negative_size_is_a_programming_error() -> None:
    s = make()
    with pytest.raises(ValueError, match="size=-1"):
        s.offer("x", R, size=-1, now=0.0)
    with pytest.raises(ValueError, match="size=-1"):
        s.force("x", R, size=-1, now=0.0)
    assert len(s) == 0


# force / pinned --------------------------------------------------------------------------------


def test_force_ignores_bounds_and_forced_entries_are_never_evicted() -> None:
    s = make(max_items=2, max_bytes=1000)
    s.offer("r1", R, size=1, now=0.0)
    s.offer("r2", R, size=1, now=0.0)
    s.force("receipt", R, size=2000, now=0.0)
    assert len(s) == 3
    assert s.bytes == 2002
    assert [x.pinned for x in s] == [False, False, True]
    # Over both bounds: an emergency needs 2 entries and 1002 bytes; only r1, r2 can go.
    with pytest.raises(QueueFull):
        s.offer("e-big", E, size=1, now=0.0)
    s.remove(lambda e: e.item == "receipt")
    s.force("receipt2", R, size=5, now=0.0)
    evicted = s.offer("e", E, size=1, now=0.0)
    assert [x.item for x in evicted] == ["r2", "r1"]
    assert [x.item for x in s] == ["e", "receipt2"]
    # Only the pinned receipt is below EMERGENCY now: refused, receipt kept.
    with pytest.raises(QueueFull):
        s.offer("e2", E, size=1, now=0.0)
    assert [x.item for x in s] == ["e", "receipt2"]


def test_force_unknown_priority_is_routine() -> None:
    s = make()
    s.force("receipt", 42, size=1, now=0.0)
    assert s.depths()[R] == 1
    entry = s.pop(0.0)
    assert entry is not None
    assert (entry.priority, entry.pinned) == (R, True)


# Expiry ----------------------------------------------------------------------------------------


def test_expire_finds_expired_entries_anywhere() -> None:
    s = make()
    s.offer("keep-head", R, size=1, now=0.0, expires_at=100.0)
    s.offer("dies-middle", R, size=1, now=0.0, expires_at=5.0)
    s.offer("keep-tail", R, size=1, now=0.0)
    s.offer("dies-high", H, size=2, now=0.0, expires_at=3.0)
    s.offer("e", E, size=1, now=0.0, expires_at=50.0)
    assert s.next_expiry() == 3.0
    assert s.expire(2.9) == []
    expired = s.expire(5.0)
    assert [x.item for x in expired] == ["dies-high", "dies-middle"]
    assert len(s) == 3
    assert s.bytes == 3
    assert s.next_expiry() == 50.0
    assert [x.item for x in s] == ["e", "keep-head", "keep-tail"]
    assert drain(s, 5.0) == ["e", "keep-head", "keep-tail"]
    assert s.next_expiry() is None


def test_expiry_is_inclusive_of_the_deadline() -> None:
    s = make()
    s.offer("x", R, size=1, now=0.0, expires_at=1.0)
    assert s.pop(1.0) is None
    assert [x.item for x in s.expire(1.0)] == ["x"]


def test_pop_never_returns_an_expired_entry_but_keeps_it_for_expire() -> None:
    s = make()
    s.offer("stale", E, size=1, now=0.0, expires_at=1.0)
    s.offer("fresh", R, size=1, now=0.0)
    entry = s.pop(2.0)
    assert entry is not None
    assert entry.item == "fresh"
    assert len(s) == 0
    # The set-aside entry is still owed a report: next_expiry is already due.
    assert s.next_expiry() == 1.0
    assert [x.item for x in s.expire(2.0)] == ["stale"]
    assert s.next_expiry() is None
    assert s.expire(3.0) == []


def test_offer_of_an_already_expired_entry_evicts_nothing() -> None:
    s = make(max_items=1)
    s.offer("r", R, size=1, now=0.0)
    assert s.offer("dead-e", E, size=1, now=5.0, expires_at=4.0) == []
    s.force("dead-receipt", R, size=1, now=5.0, expires_at=5.0)
    assert [x.item for x in s] == ["r"]
    assert s.next_expiry() == 4.0
    assert [x.item for x in s.expire(5.0)] == ["dead-e", "dead-receipt"]


def test_many_expirations_and_removals_keep_structures_consistent() -> None:
    s = make()
    for i in range(300):
        s.offer(f"r{i}", R, size=1, now=0.0, expires_at=1.0 if i % 3 else None)
    expired = s.expire(1.0)
    assert len(expired) == 200
    assert len(s) == 100
    removed = s.remove(lambda e: int(e.item[1:]) % 2 == 0)
    assert len(removed) == 50
    assert s.depths()[R] == 50
    assert s.bytes == 50
    assert drain(s, 1.0) == [f"r{i}" for i in range(300) if i % 3 == 0 and i % 2 == 1]
    assert s.next_expiry() is None


def test_next_expiry_stays_exact_after_many_removals() -> None:
    s = make()
    for i in range(100):
        s.offer(f"r{i}", R, size=1, now=0.0, expires_at=10.0 + i)
    removed = s.remove(lambda e: int(e.item[1:]) < 80)
    assert len(removed) == 80
    assert s.next_expiry() == 90.0
    popped = [s.pop(0.0) for _ in range(15)]
    assert all(e is not None for e in popped)
    assert s.next_expiry() == 105.0
    assert [x.item for x in s.expire(200.0)] == [f"r{i}" for i in range(95, 100)]
    assert s.next_expiry() is None


# push_front ------------------------------------------------------------------------------------


def test_holds_tells_whether_an_entry_is_queued() -> None:
    s = make()
    s.offer("r1", R, size=1, now=0.0)
    entry = s.pop(0.0)
    assert entry is not None and not s.holds(entry)
    s.push_front(entry)
    assert s.holds(entry)


def test_push_front_returns_entry_to_head_keeping_seq_and_enqueue_time() -> None:
    s = make(max_items=2)
    s.offer("r1", R, size=1, now=0.0)
    s.offer("r2", R, size=1, now=1.0)
    first = s.pop(1.0)
    assert first is not None
    s.offer("r3", R, size=1, now=2.0)
    s.push_front(first)  # bypasses max_items=2
    assert len(s) == 3
    assert [x.item for x in s] == ["r1", "r2", "r3"]
    again = s.pop(2.0)
    assert again == first
    assert (again.seq, again.enqueued_at) == (0, 0.0)


@given(st.permutations(range(6)), st.integers(min_value=0, max_value=3))
def test_entries_put_back_in_any_order_keep_their_admission_order(
    order: list[int], later: int
) -> None:
    """Concurrent sends fail in any order: put back, they go out in their first order."""
    s = make()
    for i in range(6):
        s.offer(f"r{i}", R, size=1, now=0.0)
    taken = [s.pop(0.0) for _ in range(6)]
    for i in range(later):  # admitted while the others were out
        s.offer(f"late{i}", R, size=1, now=1.0)
    for index in order:
        entry = taken[index]
        assert entry is not None
        s.push_front(entry)
    assert drain(s, 1.0) == [f"r{i}" for i in range(6)] + [f"late{i}" for i in range(later)]


def test_pushed_back_entry_keeps_aging_from_its_first_enqueue() -> None:
    s = make()
    s.offer("r", R, size=1, now=0.0)
    taken = s.pop(0.0)
    assert taken is not None
    for i in range(5):
        s.offer(f"h{i}", H, size=1, now=5.5)
    s.push_front(taken)
    assert s.oldest_wait(6.0) == {H: 0.5, R: 6.0}
    # Overdue (6.0 > 5.0) so it beats the fresher HIGH entries immediately.
    nxt = s.pop(6.0)
    assert nxt is not None
    assert nxt.item == "r"


def test_push_front_rejects_queued_or_foreign_entries() -> None:
    s = make()
    s.offer("r", R, size=1, now=0.0)
    queued = next(iter(s))
    with pytest.raises(ValueError, match="still queued"):
        s.push_front(queued)
    other = make()
    for i in range(3):
        other.offer(f"o{i}", R, size=1, now=0.0)
    foreign = list(other)[2]
    with pytest.raises(ValueError, match="not issued"):
        s.push_front(foreign)
    with pytest.raises(ValueError, match="unknown priority"):
        s.push_front(Entry(item="x", priority=9, size=1, enqueued_at=0.0, expires_at=None, seq=0))
    assert len(s) == 1


def test_pushed_back_expired_entry_is_found_by_expire() -> None:
    s = make()
    s.offer("x", H, size=1, now=0.0, expires_at=3.0)
    taken = s.pop(1.0)
    assert taken is not None
    assert s.next_expiry() is None
    s.push_front(taken)
    assert s.next_expiry() == 3.0
    assert [x.item for x in s.expire(3.0)] == ["x"]
    assert len(s) == 0


# Introspection and configuration ---------------------------------------------------------------


def test_introspection() -> None:
    s = make()
    s.offer("r", R, size=3, now=1.0)
    s.offer("h", H, size=4, now=2.0)
    s.offer("e", E, size=5, now=3.0)
    assert len(s) == 3
    assert s.bytes == 12
    assert s.depths() == {E: 1, P: 0, H: 1, R: 1}
    assert s.oldest_wait(4.0) == {E: 1.0, H: 2.0, R: 3.0}
    assert [x.item for x in s] == ["e", "h", "r"]
    assert s.weights == DEFAULT_WEIGHTS
    assert s.max_wait == DEFAULT_MAX_WAIT


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_items": 0}, "max_items"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"weights": {E: 1}}, "weights"),
        ({"weights": {H: 0}}, "weights"),
        ({"max_wait": {P: 1.0}}, "max_wait"),
        ({"max_wait": {R: -1.0}}, "max_wait"),
        ({"max_wait": {R: math.nan}}, "max_wait"),
    ],
)
def test_invalid_configuration_is_rejected(kwargs: dict[str, object], match: str) -> None:
    params: dict[str, object] = {"max_items": 5, "max_bytes": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        Scheduler(**params)  # type: ignore[arg-type]


# Properties ------------------------------------------------------------------------------------

CLASSES = st.sampled_from([E, P, H, R, 0])


@given(
    st.lists(
        st.tuples(CLASSES, st.integers(0, 40), st.booleans()),
        max_size=80,
    ),
    st.integers(1, 12),
    st.integers(40, 200),
)
def test_strict_classes_always_precede_shared_ones(
    offers: list[tuple[int, int, bool]], max_items: int, max_bytes: int
) -> None:
    s = make(max_items=max_items, max_bytes=max_bytes)
    accepted = 0
    gone = 0
    for i, (prio, size, forced) in enumerate(offers):
        if forced:
            s.force(f"{i}", prio, size=size, now=i * 0.1)
            accepted += 1
            continue
        try:
            evicted = s.offer(f"{i}", prio, size=size, now=i * 0.1)
        except QueueFull:
            continue
        accepted += 1
        gone += len(evicted)
        assert len(s) <= max_items
        assert s.bytes <= max_bytes
    now = len(offers) * 0.1
    served = []
    while (entry := s.pop(now)) is not None:
        served.append(entry)
    assert len(served) == accepted - gone
    ranks = [2 if e.priority == E else 1 if e.priority == P else 0 for e in served]
    assert ranks == sorted(ranks, reverse=True)
    for cls in (E, P, H, R):
        seqs = [e.seq for e in served if e.priority == cls]
        assert seqs == sorted(seqs)


class SchedulerMachine(RuleBasedStateMachine):
    """Random operations; every admitted entry must leave exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.counter = 0
        self.s: Scheduler[int] = Scheduler(max_items=1, max_bytes=1)
        self.open: set[int] = set()
        self.held: list[Entry[int]] = []
        self.departures: Counter[int] = Counter()

    @initialize(max_items=st.integers(1, 10), max_bytes=st.integers(10, 120))
    def setup(self, max_items: int, max_bytes: int) -> None:
        self.s = Scheduler(max_items=max_items, max_bytes=max_bytes, max_wait={H: 0.5, R: 1.5})

    def _leave(self, entries: list[Entry[int]]) -> None:
        for entry in entries:
            assert entry.item in self.open
            self.open.remove(entry.item)
            self.departures[entry.item] += 1

    @rule(
        prio=CLASSES,
        size=st.integers(0, 40),
        ttl=st.none() | st.floats(-0.5, 3.0, allow_nan=False),
    )
    def offer(self, prio: int, size: int, ttl: float | None) -> None:
        item = self.counter
        self.counter += 1
        cls = prio if prio in (E, P, H, R) else R
        before = (len(self.s), self.s.bytes, list(self.s))
        expires = None if ttl is None else self.now + ttl
        try:
            evicted = self.s.offer(item, prio, size=size, now=self.now, expires_at=expires)
        except QueueFull:
            assert (len(self.s), self.s.bytes, list(self.s)) == before
            return
        self.open.add(item)
        for victim in evicted:
            assert victim.priority < cls
            assert victim.priority != E
            assert not victim.pinned
        self._leave(evicted)
        if expires is None or expires > self.now:
            # Queued: both bounds hold afterwards, pinned entries included.
            assert len(self.s) <= self.s.max_items
            assert self.s.bytes <= self.s.max_bytes
        else:
            # Already expired: set aside for expire(), queue untouched.
            assert evicted == []
            assert (len(self.s), self.s.bytes, list(self.s)) == before

    @rule(prio=CLASSES, size=st.integers(0, 10))
    def force(self, prio: int, size: int) -> None:
        item = self.counter
        self.counter += 1
        self.s.force(item, prio, size=size, now=self.now)
        self.open.add(item)

    @rule(keep=st.booleans())
    def pop(self, keep: bool) -> None:
        before = list(self.s)
        entry = self.s.pop(self.now)
        if entry is None:
            assert all(e.is_expired(self.now) for e in before)
            return
        assert not entry.is_expired(self.now)
        live = [e for e in before if not e.is_expired(self.now)]
        if entry.priority in (H, R):
            assert not [e for e in live if e.priority in (E, P)]
        elif entry.priority == P:
            assert not [e for e in live if e.priority == E]
        # FIFO: the first live entry of its class.
        assert next(e for e in live if e.priority == entry.priority) == entry
        self._leave([entry])
        if keep:
            self.held.append(entry)

    @precondition(lambda self: bool(self.held))
    @rule(index=st.integers(0, 100))
    def push_front(self, index: int) -> None:
        entry = self.held.pop(index % len(self.held))
        self.s.push_front(entry)
        self.open.add(entry.item)
        self.departures[entry.item] -= 1

    @rule()
    def expire(self) -> None:
        expired = self.s.expire(self.now)
        assert all(e.is_expired(self.now) for e in expired)
        self._leave(expired)
        assert not [e for e in self.s if e.is_expired(self.now)]
        nxt = self.s.next_expiry()
        assert nxt is None or nxt > self.now

    @rule(modulus=st.integers(2, 5))
    def remove(self, modulus: int) -> None:
        removed = self.s.remove(lambda e: e.item % modulus == 0)
        assert all(e.item % modulus == 0 for e in removed)
        self._leave(removed)

    @rule(dt=st.floats(0.0, 2.0, allow_nan=False))
    def tick(self, dt: float) -> None:
        self.now += dt

    @invariant()
    def accounting_is_consistent(self) -> None:
        entries = list(self.s)
        assert len(self.s) == len(entries) == sum(self.s.depths().values())
        assert self.s.bytes == sum(e.size for e in entries)
        assert {e.item for e in entries} <= self.open
        assert len({e.seq for e in entries}) == len(entries)

    def teardown(self) -> None:
        self._leave(self.s.expire(self.now))
        while (entry := self.s.pop(self.now)) is not None:
            self._leave([entry])
        self._leave(self.s.expire(self.now))
        assert self.open == set()
        assert len(self.s) == 0
        assert self.s.bytes == 0
        assert self.s.next_expiry() is None
        assert all(count == 1 for count in self.departures.values())


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# Async wrapper ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_async_get_waits_and_wakes_on_offer() -> None:
    clock = FakeClock()
    s: AsyncScheduler[str] = AsyncScheduler(max_items=4, max_bytes=100)
    getter = asyncio.create_task(s.get(clock))
    await asyncio.sleep(0)
    assert not getter.done()
    clock.now = 1.0
    s.offer("r", R, size=1, now=clock.now)
    s.offer("e", E, size=1, now=clock.now)
    got = await asyncio.wait_for(getter, 1)
    assert got.item == "e"
    assert (await s.get(clock)).item == "r"


async def test_async_get_wakes_on_force_and_push_front() -> None:
    clock = FakeClock()
    s: AsyncScheduler[str] = AsyncScheduler(max_items=1, max_bytes=100)
    getter = asyncio.create_task(s.get(clock))
    await asyncio.sleep(0)
    assert not getter.done()
    s.force("receipt", R, size=1, now=0.0)
    got = await asyncio.wait_for(getter, 1)
    assert got.pinned
    getter = asyncio.create_task(s.get(clock))
    await asyncio.sleep(0)
    assert not getter.done()
    s.push_front(got)
    assert await asyncio.wait_for(getter, 1) == got


async def test_async_get_skips_expired_entries_and_keeps_waiting() -> None:
    clock = FakeClock()
    s: AsyncScheduler[str] = AsyncScheduler(max_items=4, max_bytes=100)
    s.offer("stale", R, size=1, now=0.0, expires_at=1.0)
    clock.now = 2.0
    getter = asyncio.create_task(s.get(clock))
    await asyncio.sleep(0)
    assert not getter.done()
    s.offer("fresh", R, size=1, now=clock.now)
    assert (await asyncio.wait_for(getter, 1)).item == "fresh"
    assert [x.item for x in s.expire(clock.now)] == ["stale"]


async def test_wait_nonempty() -> None:
    s: AsyncScheduler[str] = AsyncScheduler(max_items=4, max_bytes=100)
    waiter = asyncio.create_task(s.wait_nonempty())
    await asyncio.sleep(0)
    assert not waiter.done()
    s.offer("r", R, size=1, now=0.0)
    await asyncio.wait_for(waiter, 1)
    assert len(s) == 1
    # Returns at once when something is already queued, without consuming it.
    await asyncio.wait_for(s.wait_nonempty(), 1)
    assert len(s) == 1


def test_urgent_and_other_entries_can_be_taken_apart() -> None:
    s: Scheduler[str] = Scheduler(max_items=10, max_bytes=100)
    for item, cls in (("r1", R), ("e1", E), ("h1", H), ("p1", P), ("e2", E), ("r2", R)):
        s.offer(item, cls, size=1, now=0.0)
    assert s.pop(0.0, urgent=False).item == "h1"  # type: ignore[union-attr]
    assert [s.pop(0.0, urgent=True).item for _ in range(3)] == ["e1", "e2", "p1"]  # type: ignore[union-attr]
    assert s.pop(0.0, urgent=True) is None
    assert [s.pop(0.0, urgent=False).item for _ in range(2)] == ["r1", "r2"]  # type: ignore[union-attr]
    assert s.pop(0.0, urgent=False) is None and len(s) == 0


async def test_an_urgent_getter_waits_through_routine_offers_and_the_other_getter_takes_them() -> (
    None
):
    clock = FakeClock()
    s: AsyncScheduler[str] = AsyncScheduler(max_items=4, max_bytes=100)
    urgent = asyncio.create_task(s.get(clock, urgent=True))
    other = asyncio.create_task(s.get(clock, urgent=False))
    await asyncio.sleep(0)
    s.offer("r", R, size=1, now=clock.now)
    assert (await asyncio.wait_for(other, 1)).item == "r"
    await asyncio.sleep(0)
    assert not urgent.done()
    s.offer("e", E, size=1, now=clock.now)
    assert (await asyncio.wait_for(urgent, 1)).item == "e"
