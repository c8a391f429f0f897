"""Link health shared by every adapter: the state enum, its event, and reconnect backoff.

What this module does: name the states a link to an external system can be in
(borrowing mautrix's ``BridgeStateEvent`` vocabulary), define the frozen event an
adapter emits when its link changes state, and compute reconnect delays with
exponential backoff and full jitter.

What it must not do: I/O, sleeping or reading the clock. The backoff helpers are
pure: the caller supplies the random source and does the waiting.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = ["Backoff", "LinkState", "LinkStateChanged", "full_jitter_delay"]


class LinkState(enum.Enum):
    """Health of an adapter's link to its external system."""

    #: Opening the transport or running the initialisation sequence.
    CONNECTING = "connecting"
    #: Initialised and answering keepalives; messages can be sent.
    CONNECTED = "connected"
    #: The link failed and a reconnect is scheduled (backoff running).
    TRANSIENT_DISCONNECT = "transient_disconnect"
    #: The peer or the operating system refused our credentials or permissions.
    BAD_CREDENTIALS = "bad_credentials"
    #: An unexpected error ended the session; a reconnect is still scheduled.
    UNKNOWN_ERROR = "unknown_error"
    #: The adapter was stopped on purpose and will not reconnect.
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class LinkStateChanged:
    """An adapter's link entered ``state``.

    Attributes:
        adapter: Configured name of the adapter that emits the event.
        state: The new state.
        reason: Short human-readable cause (empty for routine transitions).
        at: Wall-clock time of the change, seconds since the Unix epoch.
    """

    adapter: str
    state: LinkState
    reason: str
    at: float

    def __post_init__(self) -> None:
        if not isinstance(self.state, LinkState):
            raise TypeError(f"state={self.state!r} is not a LinkState.")
        if not self.adapter:
            raise ValueError("adapter must be a non-empty name.")


def full_jitter_delay(
    attempt: int, *, base: float, cap: float, random: Callable[[], float]
) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based), "full jitter" style.

    The ceiling doubles with every attempt, starting at ``base`` and never exceeding
    ``cap``; the delay is drawn uniformly from ``[0, ceiling)``. Full jitter spreads
    the reconnects of many gateways that lost the same radio network at once.

    Args:
        attempt: Number of failed attempts so far (0 for the first retry).
        base: Ceiling of the first delay, in seconds (> 0).
        cap: Largest ceiling, in seconds (>= base).
        random: Source of uniform floats in ``[0, 1)``, e.g. ``random.Random().random``.

    Returns:
        The delay in seconds.

    Raises:
        ValueError: If an argument is out of range.
    """
    if attempt < 0:
        raise ValueError(f"attempt={attempt} must not be negative.")
    if not 0 < base <= cap or math.isinf(cap):
        raise ValueError(f"base={base} and cap={cap} must satisfy 0 < base <= cap < inf.")
    exponent = min(attempt, 64)
    ceiling = min(cap, base * 2.0**exponent)
    draw = random()
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"random()={draw!r} is outside [0, 1).")
    return draw * ceiling


@dataclass(kw_only=True)
class Backoff:
    """Counts failed attempts and turns them into full-jitter delays.

    Attributes:
        base: Ceiling of the first delay, in seconds.
        cap: Largest ceiling, in seconds.
        random: Source of uniform floats in ``[0, 1)``.
        attempt: Failed attempts since the last :meth:`reset`.
    """

    base: float
    cap: float
    random: Callable[[], float]
    attempt: int = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count this failure.

        Returns:
            The delay in seconds.
        """
        delay = full_jitter_delay(self.attempt, base=self.base, cap=self.cap, random=self.random)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures after a successful connection."""
        self.attempt = 0


class RunsInBackground:
    """``async with`` starts an adapter's ``run()`` as a task; leaving it stops the task.

    The adapter sets ``_run_task`` (the task, or None) and ``_log`` (a bound logger).
    """

    _run_task: asyncio.Task[None] | None
    _log: Any

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop the task started by ``async with`` and wait for it to finish."""
        task, self._run_task = self._run_task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            self._log.error("adapter_run_failed", exc_info=task.exception())
