import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.queues import AsyncPriorityQueue, PriorityQueue, QueueFull
from protocols.schema import v1

E, P, H, R = (
    v1.PRIORITY_EMERGENCY,
    v1.PRIORITY_IMMINENT_PERIL,
    v1.PRIORITY_HIGH,
    v1.PRIORITY_ROUTINE,
)


def test_emergency_first_fifo_within_class() -> None:
    q: PriorityQueue[str] = PriorityQueue(max_items=10)
    for item, prio in [("r1", R), ("h1", H), ("r2", R), ("e1", E), ("p1", P), ("e2", E)]:
        assert q.offer(item, prio) is None
    order = []
    while (queued := q.pop()) is not None:
        order.append(queued.item)
    assert order == ["e1", "e2", "p1", "h1", "r1", "r2"]
    assert len(q) == 0


def test_full_queue_sheds_newest_lowest_class() -> None:
    q: PriorityQueue[str] = PriorityQueue(max_items=3)
    q.offer("r1", R)
    q.offer("r2", R)
    q.offer("h1", H)
    evicted = q.offer("e1", E)
    assert evicted is not None
    assert (evicted.item, evicted.priority) == ("r2", R)
    assert q.depths()[E] == 1
    assert [x.item for x in q] == ["e1", "h1", "r1"]


def test_routine_refused_when_full_of_equal_or_higher() -> None:
    q: PriorityQueue[str] = PriorityQueue(max_items=2)
    q.offer("r1", R)
    q.offer("r2", R)
    with pytest.raises(QueueFull) as info:
        q.offer("r3", R)
    assert info.value.reason_code == 0x4C


def test_emergency_never_evicted() -> None:
    q: PriorityQueue[str] = PriorityQueue(max_items=2)
    q.offer("e1", E)
    q.offer("e2", E)
    with pytest.raises(QueueFull):
        q.offer("e3", E)
    assert [x.item for x in q] == ["e1", "e2"]


def test_unknown_priority_is_routine_and_push_front() -> None:
    q: PriorityQueue[str] = PriorityQueue(max_items=5)
    q.offer("x", 0)
    q.push_front("y", R)
    q.push_front("z", 99)
    assert [x.item for x in q] == ["z", "y", "x"]
    with pytest.raises(ValueError, match="max_items"):
        PriorityQueue(max_items=0)


@given(
    st.lists(st.tuples(st.integers(0, 1000), st.sampled_from([E, P, H, R])), max_size=60),
    st.integers(1, 20),
)
def test_pop_order_is_priority_then_fifo_and_nothing_is_lost(
    items: list[tuple[int, int]], bound: int
) -> None:
    q: PriorityQueue[tuple[int, int]] = PriorityQueue(max_items=bound)
    kept: list[tuple[int, int]] = []
    refused = evicted = 0
    for seq, (value, prio) in enumerate(items):
        try:
            out = q.offer((seq, value), prio)
        except QueueFull:
            refused += 1
            continue
        kept.append((seq, prio))
        if out is not None:
            evicted += 1
            kept = [k for k in kept if k[0] != out.item[0]]
            assert out.priority < prio
            assert out.priority != E
        assert len(q) <= bound
    popped = []
    while (queued := q.pop()) is not None:
        popped.append((queued.item[0], queued.priority))
    assert len(popped) + refused + evicted == len(items)
    assert sorted(popped) == sorted(kept)
    keys = [(-prio, seq) for seq, prio in popped]
    assert keys == sorted(keys)


async def test_async_get_waits_for_an_item() -> None:
    q: AsyncPriorityQueue[str] = AsyncPriorityQueue(max_items=4)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.offer("r", R)
    q.push_front("e", E)
    got = await asyncio.wait_for(getter, 1)
    assert got.item == "e"
    assert (await q.get()).item == "r"


def test_force_ignores_the_bound_and_keeps_order() -> None:
    q: PriorityQueue[str] = PriorityQueue(max_items=1)
    q.offer("r1", R)
    q.force("receipt", R)
    q.force("odd", 77)
    assert [x.item for x in q] == ["r1", "receipt", "odd"]
