"""Prometheus text exposition (format 0.0.4), written by hand.

Why not ``prometheus_client``: every gateway in a process (the demo and the tests run two)
needs its own metrics, so its global default registry would have to be bypassed anyway; most
values are read from the gateway at scrape time (queue depths, presence, counters), which is a
custom collector in ``prometheus_client`` terms; and the format is small and stable. This
module is the whole implementation: counters, gauges and fixed-bucket histograms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "Exposition",
    "Histogram",
    "LabelledHistograms",
]

#: Content type of the exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds: from a few milliseconds (same host) to minutes (store and forward).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

Labels = tuple[tuple[str, str], ...]


class Histogram:
    """Cumulative fixed-bucket histogram of observed values.

    Args:
        buckets: Upper bounds, increasing (``+Inf`` is implied).
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("histogram buckets must be strictly increasing")
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Add one observation (negative values count as 0)."""
        value = max(0.0, value)
        self.count += 1
        self.sum += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1


class LabelledHistograms:
    """One :class:`Histogram` per label set, created on first observation (bounded)."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS, *, max_series: int = 256):
        self.buckets = tuple(buckets)
        self.max_series = max_series
        self.series: dict[Labels, Histogram] = {}

    def observe(self, value: float, **labels: str) -> None:
        """Add one observation to the series of ``labels`` (dropped beyond ``max_series``)."""
        key = tuple(sorted(labels.items()))
        histogram = self.series.get(key)
        if histogram is None:
            if len(self.series) >= self.max_series:
                return
            histogram = self.series[key] = Histogram(self.buckets)
        histogram.observe(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    parts = [f'{name}="{_escape_label(str(value))}"' for name, value in labels]
    return "{" + ",".join(parts) + "}" if parts else ""


class Exposition:
    """Builds one scrape: families are declared once, then sampled."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._families: set[str] = set()

    def family(self, name: str, kind: str, help_text: str) -> None:
        """Declare a metric family (``kind``: counter, gauge or histogram)."""
        if name in self._families:
            raise ValueError(f"metric family {name} declared twice")
        self._families.add(name)
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        """Add one sample line."""
        self._lines.append(f"{name}{_labels((labels or {}).items())} {_number(value)}")

    def counter(
        self, name: str, help_text: str, series: Mapping[Labels, float], *, zero: bool = True
    ) -> None:
        """Declare a counter family and write its series (``zero``: an empty family gets 0)."""
        self.family(name, "counter", help_text)
        for labels, value in sorted(series.items()):
            self.sample(name, value, dict(labels))
        if not series and zero:
            self.sample(name, 0)

    def gauge(self, name: str, help_text: str, series: Mapping[Labels, float]) -> None:
        """Declare a gauge family and write its series."""
        self.family(name, "gauge", help_text)
        for labels, value in sorted(series.items()):
            self.sample(name, value, dict(labels))

    def histogram(self, name: str, help_text: str, histograms: LabelledHistograms) -> None:
        """Declare a histogram family and write every series (buckets, sum, count)."""
        self.family(name, "histogram", help_text)
        for labels, histogram in sorted(histograms.series.items()):
            for bound, count in zip(histogram.buckets, histogram.counts, strict=True):
                self.sample(f"{name}_bucket", count, {**dict(labels), "le": _number(bound)})
            self.sample(f"{name}_bucket", histogram.count, {**dict(labels), "le": "+Inf"})
            self.sample(f"{name}_sum", histogram.sum, dict(labels))
            self.sample(f"{name}_count", histogram.count, dict(labels))

    def text(self) -> str:
        """The exposition, newline-terminated."""
        return "\n".join(self._lines) + "\n"
