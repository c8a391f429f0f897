"""Link state and backoff helpers shared by adapters."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import adapters
from adapters import Backoff, LinkState, LinkStateChanged, full_jitter_delay


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=1000.0),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_full_jitter_delay_stays_below_ceiling(
    attempt: int, base: float, extra: float, draw: float
) -> None:
    cap = base + extra
    delay = full_jitter_delay(attempt, base=base, cap=cap, random=lambda: draw)
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 64))


def test_full_jitter_ceiling_doubles_then_caps() -> None:
    almost_one = 0.999999
    delays = [full_jitter_delay(n, base=1.0, cap=10.0, random=lambda: almost_one) for n in range(6)]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0], rel=1e-5)


def test_full_jitter_uses_the_random_source() -> None:
    assert full_jitter_delay(3, base=1.0, cap=100.0, random=lambda: 0.5) == 4.0
    assert full_jitter_delay(3, base=1.0, cap=100.0, random=lambda: 0.0) == 0.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "draw"),
    [(-1, 1.0, 2.0, 0.5), (0, 0.0, 1.0, 0.5), (0, 2.0, 1.0, 0.5), (0, 1.0, 2.0, 1.0)],
)
def test_full_jitter_rejects_bad_arguments(
    attempt: int, base: float, cap: float, draw: float
) -> None:
    with pytest.raises(ValueError, match="="):
        full_jitter_delay(attempt, base=base, cap=cap, random=lambda: draw)


def test_backoff_counts_attempts_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=4.0, random=random.Random(3).random)
    delays = [backoff.next_delay() for _ in range(5)]
    assert backoff.attempt == 5
    assert all(0.0 <= d <= c for d, c in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0], strict=True))
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 0.5


def test_link_state_changed_is_frozen_and_validated() -> None:
    event = LinkStateChanged(adapter="a", state=LinkState.CONNECTED, reason="", at=1.0)
    with pytest.raises(AttributeError):
        event.state = LinkState.STOPPED  # type: ignore[misc]
    with pytest.raises(TypeError):
        LinkStateChanged(adapter="a", state="connected", reason="", at=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="adapter"):
        LinkStateChanged(adapter="", state=LinkState.CONNECTED, reason="", at=1.0)


def test_link_states_match_bridge_vocabulary() -> None:
    assert {state.name for state in LinkState} == {
        "CONNECTING",
        "CONNECTED",
        "TRANSIENT_DISCONNECT",
        "BAD_CREDENTIALS",
        "UNKNOWN_ERROR",
        "STOPPED",
    }


@pytest.mark.parametrize("module_name", ["adapters", "adapters.tetra"])
def test_all_is_complete(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("adapters")
    }
    assert public <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
    assert adapters.__all__
