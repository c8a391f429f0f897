"""Ramp shapes of the exercise load tests (``EUCCS_SHAPE``, see ``docs/loadtesting.md``).

Peak users come from ``EUCCS_PEAK_USERS`` (default 100); ``EUCCS_TIME_SCALE`` (default 1)
stretches or compresses every stage (0.1: a 25-minute day in 2.5 minutes). A shape only
shapes the load: the outage of :class:`LinkOutage` is caused by the operator.
"""

from __future__ import annotations

import logging
import os
import time
from typing import ClassVar

from locust import LoadTestShape

__all__ = ["SHAPES", "LinkOutage", "MajorIncident", "NormalDay"]

_log = logging.getLogger("euccs.loadtest")


def _scale() -> tuple[int, float]:
    """Peak users (``EUCCS_PEAK_USERS``, default 100) and time scale (``EUCCS_TIME_SCALE``)."""
    return int(os.environ.get("EUCCS_PEAK_USERS", "100")), float(
        os.environ.get("EUCCS_TIME_SCALE", "1")
    )


class _StagedShape(LoadTestShape):
    """Stages of (seconds, share of the peak users, spawn rate per second, note)."""

    abstract = True
    stages: ClassVar[tuple[tuple[float, float, float, str], ...]] = ()

    def __init__(self) -> None:
        # The runner resets start_time when the test starts (LoadTestShape.reset_time).
        self.start_time = time.perf_counter()
        self._announced = -1

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate now; None after the last stage."""
        peak, scale = _scale()
        elapsed = (time.perf_counter() - self.start_time) / scale
        for number, (seconds, share, rate, note) in enumerate(self.stages):
            if elapsed < seconds:
                if number != self._announced:
                    self._announced = number
                    _log.warning("%s stage %d: %s", type(self).__name__, number + 1, note)
                return max(1, round(peak * share)), rate
        return None


class NormalDay(_StagedShape):
    """A working day compressed to 25 minutes: ramp-up, a shift change peak, steady traffic."""

    stages = (
        (120, 0.3, 2, "morning ramp-up to 30 % of the peak"),
        (720, 0.3, 2, "steady routine traffic"),
        (1020, 0.5, 2, "shift change: 50 %"),
        (1500, 0.3, 2, "back to routine"),
    )


class MajorIncident(_StagedShape):
    """A cross-border major incident: baseline, a surge to the peak in 30 s, slow decay."""

    stages = (
        (180, 0.3, 5, "baseline 30 %"),
        (210, 1.0, 50, "incident: surge to 100 % within 30 s"),
        (810, 1.0, 50, "incident: hold the peak"),
        (1110, 0.6, 5, "decay to 60 %"),
        (1410, 0.3, 5, "back to baseline"),
    )


class LinkOutage(_StagedShape):
    """Steady load across an outage the operator causes between minute 5 and minute 10."""

    stages = (
        (300, 0.5, 5, "steady 50 % before the outage"),
        (600, 0.5, 5, "OUTAGE WINDOW: cut the link now (docs/loadtesting.md)"),
        (1200, 0.5, 5, "RESTORE the link now; backlog drains under steady load"),
    )


#: Shape name -> class.
SHAPES: dict[str, type[LoadTestShape]] = {
    cls.__name__: cls for cls in (NormalDay, MajorIncident, LinkOutage)
}
