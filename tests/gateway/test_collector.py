"""The garbage collector of a running gateway: frozen start-up, full collections on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

import pytest

from gateway.collector import full_collections, tuned_collector


class _Node:
    """A container that can be part of a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _old_cycle(collected: asyncio.Event) -> weakref.ref[_Node]:
    """A reference cycle in the oldest generation, no longer referenced; its weak ref.

    ``collected`` is set when the cycle is collected.
    """
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gc.collect(1)  # survivors of a generation-1 collection move to the oldest generation
    gc.collect(1)
    return weakref.ref(a, lambda _ref: collected.set())


async def test_start_up_is_frozen_and_only_the_timer_runs_full_collections() -> None:
    before = gc.get_threshold()
    with tuned_collector():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 1_000_000
        collected = asyncio.Event()
        dead = _old_cycle(collected)
        for _ in range(50):  # young collections go on and never reach an old cycle
            gc.collect(1)
        assert dead() is not None
        full = gc.get_stats()[2]["collections"]
        await _collections_until(collected)
        assert dead() is None
        assert gc.get_stats()[2]["collections"] > full
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_full_collections_go_on_after_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    enough = asyncio.Event()

    def collect(generation: int = 2) -> int:
        calls.append(generation)
        if len(calls) == 1:
            raise RuntimeError("a finaliser failed")
        if len(calls) == 3:
            enough.set()
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    await _collections_until(enough)
    assert calls[:3] == [2, 2, 2]


async def _collections_until(done: asyncio.Event) -> None:
    """Run full collections every 10 ms until ``done`` is set (at most 5 s)."""
    timer = asyncio.create_task(full_collections(interval=0.01))
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
