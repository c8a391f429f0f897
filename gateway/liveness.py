"""Liveness beyond keepalives: end-to-end canaries per federation link and per adapter.

A keepalive proves that a socket is open; it does not prove that messages get
through. Each path (``federation:FR``, ``adapter:tetra-de``) periodically sends
a canary through the same queues and systems as real traffic and expects it
back: from the partner gateway as an echo, from a national system as a
loopback through the network. :class:`CanaryTracker` decides, with time as an
argument, when the next canary is due and what state the path is in:

``UNKNOWN``
    No canary has come back yet since start (or since the path was reset).
``HEALTHY``
    A canary came back within ``timeout`` of being sent.
``DEGRADED``
    A canary has been outstanding for longer than ``timeout``: the path is
    connected (or claims to be) but does not deliver. It becomes HEALTHY again
    as soon as any canary comes back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["CanaryTracker", "PathState", "StateChange"]


class PathState(enum.Enum):
    """What the canaries say about one path."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"


@dataclass(frozen=True, kw_only=True)
class StateChange:
    """A path changed state."""

    path: str
    previous: PathState
    state: PathState
    reason: str


@dataclass(kw_only=True)
class CanaryTracker:
    """Canary bookkeeping of one path.

    Attributes:
        path: Name of the path (for logs and metrics).
        interval: Seconds between canaries.
        timeout: Seconds after which an unanswered canary degrades the path.
    """

    path: str
    interval: float
    timeout: float
    state: PathState = PathState.UNKNOWN
    #: Round-trip time of the last canary that came back, in seconds.
    last_rtt: float | None = None
    sent: int = 0
    returned: int = 0
    _next_due: float | None = None
    _outstanding: dict[int, float] = field(default_factory=dict)
    _sequence: int = 0

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(f"{self.path}: interval and timeout must be positive")

    def due(self, now: float) -> bool:
        """Return True if a canary should be sent at ``now``."""
        return self._next_due is None or now >= self._next_due

    def send(self, now: float) -> int:
        """Record a canary sent at ``now``; return its sequence number."""
        self._sequence += 1
        self._outstanding[self._sequence] = now
        self._next_due = now + self.interval
        self.sent += 1
        # Bounded: only canaries that can still decide the state are kept.
        horizon = now - 2 * self.timeout
        for sequence in [s for s, t in self._outstanding.items() if t < horizon]:
            del self._outstanding[sequence]
        return self._sequence

    def returned_canary(self, sequence: int, now: float) -> StateChange | None:
        """A canary came back; return the state change it causes, if any."""
        sent_at = self._outstanding.pop(sequence, None)
        if sent_at is None:
            return None  # unknown, repeated or given up long ago
        self.returned += 1
        self.last_rtt = now - sent_at
        # Older canaries still outstanding were lost or overtaken: this one proves delivery.
        for older in [s for s in self._outstanding if s < sequence]:
            del self._outstanding[older]
        return self._move(PathState.HEALTHY, f"canary back after {self.last_rtt * 1000:.0f} ms")

    def check(self, now: float) -> StateChange | None:
        """Return the change to DEGRADED if a canary is overdue at ``now``."""
        overdue = [t for t in self._outstanding.values() if now - t > self.timeout]
        if not overdue:
            return None
        waited = now - min(overdue)
        return self._move(PathState.DEGRADED, f"no canary back for {waited:.1f} s")

    def reset(self) -> StateChange | None:
        """Forget outstanding canaries (the path went down and is known to be down)."""
        self._outstanding.clear()
        self._next_due = None
        return self._move(PathState.UNKNOWN, "path reset")

    def _move(self, state: PathState, reason: str) -> StateChange | None:
        if state is self.state:
            return None
        change = StateChange(path=self.path, previous=self.state, state=state, reason=reason)
        self.state = state
        return change
