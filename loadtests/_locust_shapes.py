"""Ramp shapes of the exercise load tests (``EUCCS_SHAPE``, see ``docs/loadtesting.md``).

Peak users come from ``EUCCS_PEAK_USERS`` (default 100); ``EUCCS_TIME_SCALE`` (default 1)
stretches or compresses every stage (0.1: a 25-minute day in 2.5 minutes). Users are added
or removed evenly over each stage, whatever the peak and the scale. The outage of
:class:`LinkOutage` is caused by ``EUCCS_OUTAGE_COMMAND`` and ended by
``EUCCS_RESTORE_COMMAND`` (shell commands; ``euccs-gw demo --serve`` writes both), or by the
operator when they are not set.
"""

from __future__ import annotations

import logging
import os
import subprocess
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
    """Stages of (end in seconds, share of the peak users, note).

    Each stage moves from the previous stage's users to its own evenly over its length:
    the spawn rate is the change divided by the stage's (scaled) length.
    """

    abstract = True
    stages: ClassVar[tuple[tuple[float, float, str], ...]] = ()
    #: Per stage number: the environment variable naming a command to run as it begins.
    commands: ClassVar[dict[int, str]] = {}

    def __init__(self) -> None:
        # The runner resets start_time when the test starts (LoadTestShape.reset_time).
        self.start_time = time.perf_counter()
        self._announced = -1
        self._started: list[subprocess.Popen[bytes]] = []

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate now; None after the last stage."""
        peak, scale = _scale()
        elapsed = (time.perf_counter() - self.start_time) / scale
        start, users = 0.0, 0
        for number, (end, share, note) in enumerate(self.stages):
            target = max(1, round(peak * share))
            if elapsed < end:
                if number != self._announced:
                    self._announced = number
                    _log.warning("%s stage %d: %s", type(self).__name__, number + 1, note)
                    self._run(self.commands.get(number))
                change = abs(target - users)
                return target, change / ((end - start) * scale) if change else 1.0
            start, users = end, target
        return None

    def _run(self, variable: str | None) -> None:
        """Start the shell command ``variable`` names, if set (never waits for it)."""
        self._started = [p for p in self._started if p.poll() is None]  # the finished reaped
        command = os.environ.get(variable, "") if variable else ""
        if not command:
            if variable:
                _log.warning("%s is not set: do it by hand (docs/loadtesting.md)", variable)
            return
        _log.warning("running %s: %s", variable, command)
        try:
            self._started.append(subprocess.Popen(["/bin/sh", "-c", command]))  # noqa: S603
        except OSError as exc:  # the shape goes on: the operator sees why and acts
            _log.error("%s could not start (%s): do it by hand", variable, exc)


class NormalDay(_StagedShape):
    """A working day compressed to 25 minutes: ramp-up, a shift change peak, steady traffic."""

    stages = (
        (120, 0.3, "morning ramp-up to 30 % of the peak"),
        (720, 0.3, "steady routine traffic"),
        (1020, 0.5, "shift change: 50 %"),
        (1500, 0.3, "back to routine"),
    )


class MajorIncident(_StagedShape):
    """A cross-border major incident: baseline, a surge to the peak in 30 s, slow decay."""

    stages = (
        (180, 0.3, "baseline 30 %"),
        (210, 1.0, "incident: surge to 100 % within 30 s"),
        (810, 1.0, "incident: hold the peak"),
        (1110, 0.6, "decay to 60 %"),
        (1410, 0.3, "back to baseline"),
    )


class LinkOutage(_StagedShape):
    """Steady load across an outage between minute 5 and minute 10."""

    stages = (
        (300, 0.5, "steady 50 % before the outage"),
        (600, 0.5, "OUTAGE WINDOW: the link is cut now"),
        (1200, 0.5, "the link is RESTORED now; backlog drains under steady load"),
    )
    commands: ClassVar[dict[int, str]] = {1: "EUCCS_OUTAGE_COMMAND", 2: "EUCCS_RESTORE_COMMAND"}


#: Shape name -> class.
SHAPES: dict[str, type[LoadTestShape]] = {
    cls.__name__: cls for cls in (NormalDay, MajorIncident, LinkOutage)
}
