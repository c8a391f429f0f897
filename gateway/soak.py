"""``euccs-gw soak``: a bounded soak run of a three-country federation on one machine.

The federation is the demo's (:mod:`gateway.demo`): Germany and France in front of simulated
TETRA networks, Belgium in front of a simulated MCX system, federated over the embedded bus,
all in this process on loopback. Steady mixed traffic (texts, status, locations, now and
then an emergency) crosses the borders at ``rate`` messages per second while the process is
sampled every ``interval`` seconds:

* resident memory (``/proc/self/statm``; the peak from :mod:`resource` elsewhere),
* open file descriptors (``/proc/self/fd``),
* queue depths (every gateway's per-destination schedulers) and messages in flight to
  partners (sent, not yet acknowledged),
* journal size: bytes of each ``.sqlite3`` file and its ``-wal``, and copies in custody,
* messages sent and delivered to the far radio or MCData user.

Each sample is printed as one line; the samples go to ``soak.csv`` and a plot to
``soak.png`` in the output directory. The verdict (:func:`verdict`) ignores the warm-up
(the first 20 % of the run) and fits a straight line through each watched metric over the
rest: the run is ``steady`` when the fitted growth over that span stays within each
metric's allowance (:data:`ALLOWANCES`), otherwise ``growing`` names what grew and by how
much. The simulators' own records of what they received are cleared at every sample: they
belong to the test harness, not to the gateways.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from adapters.mcdata import McdataSystemSimulator
from adapters.tetra import TetraNetworkSimulator
from gateway.config import GatewayConfig, parse_config
from gateway.demo import _STATUS_CODES, _TEXTS
from gateway.demo_configs import (
    DEMO_UNITS,
    GATEWAY_RADIO,
    GROUP_GSSI,
    IWF_DOMAIN,
    MCDATA_UNITS,
    DemoUnit,
    demo_config_text,
)
from gateway.federation import LocalFederationBus
from gateway.logs import configure_logging
from gateway.node import Gateway
from gateway.runner import build_gateways

__all__ = [
    "ALLOWANCES",
    "WARMUP_FRACTION",
    "Allowance",
    "Sample",
    "SoakSummary",
    "fitted_growth",
    "run_soak",
    "verdict",
    "write_csv",
    "write_plot",
]

#: Share of the run (by time) left out of the verdict: start-up, caches filling, WAL growing.
WARMUP_FRACTION = 0.2
_MIB = 1024 * 1024
#: Every how many messages one is an emergency.
_EMERGENCY_EVERY = 500
#: Sends awaiting their simulator at once; above it a tick's message is skipped and counted.
_MAX_PENDING = 256


@dataclass(frozen=True)
class Allowance:
    """How much a metric may grow over the steady part: ``absolute + relative * start``."""

    absolute: float
    relative: float
    unit: str = ""
    scale: float = 1.0  # divisor for display (bytes -> MiB)

    def limit(self, start: float) -> float:
        """The allowed growth for a metric that was at ``start`` when the steady part began."""
        return self.absolute + self.relative * max(start, 0.0)


#: The metrics the verdict watches and how much each may grow over the steady part: memory
#: 2 MiB + 5 %, descriptors 8 + 5 %, journal file bytes 4 MiB + 10 % (the WAL grows to its
#: checkpoint size), copies in custody 100 + 10 % (they follow the traffic, not the time).
ALLOWANCES: dict[str, Allowance] = {
    "rss_bytes": Allowance(2 * _MIB, 0.05, "MiB", _MIB),
    "fds": Allowance(8, 0.05),
    "journal_bytes": Allowance(4 * _MIB, 0.10, "MiB", _MIB),
    "journal_entries": Allowance(100, 0.10),
}


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One sample of the running federation (a row of ``soak.csv``)."""

    t_s: float
    rss_bytes: int
    fds: int
    queued: int
    in_flight: int
    journal_bytes: int
    journal_entries: int
    sent: int
    delivered: int
    tasks: int


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Sample))


@dataclass(kw_only=True)
class SoakSummary:
    """The outcome of a soak run."""

    verdict: str  # "steady" or "growing: ..."
    steady: bool
    duration_s: float
    samples: int
    sent: int
    delivered: int
    skipped: int
    growth: dict[str, dict[str, float]]
    first: dict[str, Any]
    last: dict[str, Any]
    csv: str = ""
    png: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON summary."""
        return asdict(self)


# ------------------------------------------------------------------ the verdict (pure)


def fitted_growth(times: Sequence[float], values: Sequence[float]) -> float:
    """Growth over ``times`` of the least-squares line through ``(times, values)``.

    0 when fewer than two distinct times are given.
    """
    n = len(times)
    if n < 2 or n != len(values):
        return 0.0
    mean_t = sum(times) / n
    mean_v = sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times)
    if var == 0:
        return 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / var
    return slope * (max(times) - min(times))


def steady_part(samples: Sequence[Sample], duration: float | None = None) -> list[Sample]:
    """The samples after the warm-up (the first :data:`WARMUP_FRACTION` of the run)."""
    if not samples:
        return []
    span = duration if duration is not None else samples[-1].t_s
    start = samples[0].t_s + WARMUP_FRACTION * max(span - samples[0].t_s, 0.0)
    return [s for s in samples if s.t_s >= start]


def verdict(
    samples: Sequence[Sample],
    duration: float | None = None,
    allowances: dict[str, Allowance] | None = None,
) -> tuple[bool, str, dict[str, dict[str, float]]]:
    """Judge a run: ``(steady, text, growth per metric)``.

    The text is ``"steady"`` or ``"growing: <metric> +<growth> (limit <allowance>), ..."``.
    With fewer than three samples after the warm-up nothing can be judged: ``steady``, and
    the text says so.
    """
    allowances = ALLOWANCES if allowances is None else allowances
    part = steady_part(samples, duration)
    if len(part) < 3:
        return True, "steady (too few samples after the warm-up to judge)", {}
    times = [s.t_s for s in part]
    growth: dict[str, dict[str, float]] = {}
    growing: list[str] = []
    for name, allowance in allowances.items():
        values = [float(getattr(s, name)) for s in part]
        grown = fitted_growth(times, values)
        start = values[0]
        limit = allowance.limit(start)
        growth[name] = {"start": start, "end": values[-1], "growth": grown, "limit": limit}
        if grown > limit:
            growing.append(_describe(name, allowance, start, grown, limit))
    if growing:
        return False, "growing: " + "; ".join(growing), growth
    return True, "steady", growth


def _describe(name: str, allowance: Allowance, start: float, grown: float, limit: float) -> str:
    scale = allowance.scale
    unit = f" {allowance.unit}" if allowance.unit else ""
    share = f", {100 * grown / start:+.1f} %" if start > 0 else ""
    return (
        f"{name} {grown / scale:+.1f}{unit}{share} over the steady part "
        f"(limit {limit / scale:.1f}{unit})"
    )


# ------------------------------------------------------------------ output files


def write_csv(path: Path, samples: Sequence[Sample]) -> None:
    """Write the samples as CSV, one column per :class:`Sample` field."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for sample in samples:
            writer.writerow([getattr(sample, c) for c in COLUMNS])


def write_plot(path: Path, samples: Sequence[Sample], title: str) -> None:
    """Plot memory, descriptors, journal, queues and delivery over time into a PNG.

    Raises:
        RuntimeError: matplotlib is not installed (the ``plots`` extra).
    """
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            "the plot needs matplotlib: install the 'plots' extra "
            "(uv sync --extra plots, or pip install 'euccs-gateway[plots]')"
        ) from exc
    t = [s.t_s for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    ax = axes[0][0]
    ax.plot(t, [s.rss_bytes / _MIB for s in samples], color="tab:blue")
    ax.set_ylabel("resident memory (MiB)")
    ax = axes[0][1]
    ax.plot(t, [s.fds for s in samples], color="tab:orange", label="open fds")
    ax.plot(t, [s.tasks for s in samples], color="tab:gray", label="asyncio tasks")
    ax.set_ylabel("count")
    ax.legend(loc="upper left")
    ax = axes[1][0]
    ax.plot(t, [s.journal_bytes / _MIB for s in samples], color="tab:green")
    ax.set_ylabel("journal files (MiB)", color="tab:green")
    twin = ax.twinx()
    twin.plot(t, [s.journal_entries for s in samples], color="tab:red")
    twin.set_ylabel("copies in custody", color="tab:red")
    ax = axes[1][1]
    ax.plot(t, [s.queued for s in samples], label="queued")
    ax.plot(t, [s.in_flight for s in samples], label="in flight to partners")
    ax.plot(t, [s.sent - s.delivered for s in samples], label="sent - delivered")
    ax.set_ylabel("messages")
    ax.legend(loc="upper left")
    for row in axes:
        for cell in row:
            cell.grid(alpha=0.3)
    for cell in axes[1]:
        cell.set_xlabel("seconds")
    if samples:
        warm = steady_part(samples)[0].t_s if steady_part(samples) else 0.0
        for row in axes:
            for cell in row:
                cell.axvspan(t[0], warm, color="0.9", zorder=0)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ measuring the process


def rss_bytes() -> int:
    """Resident memory of this process (peak resident memory where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def open_fds() -> int:
    """Open file descriptors of this process (-1 where /proc/self/fd is missing)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listing the directory
    except OSError:
        return -1


def journal_file_bytes(path: Path) -> int:
    """Bytes of a journal: its SQLite file and write-ahead log."""
    total = 0
    for candidate in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += candidate.stat().st_size
    return total


# ------------------------------------------------------------------ traffic


class _Traffic:
    """Sends a steady, seeded mix across the borders through the simulators."""

    def __init__(
        self,
        gateways: dict[str, Gateway],
        sims: dict[str, TetraNetworkSimulator],
        mcx: McdataSystemSimulator,
        seed: int,
    ) -> None:
        self.gateways = gateways
        self.sims = sims
        self.mcx = mcx
        self.rng = random.Random(seed)  # noqa: S311 - traffic mix, not security
        self.units = DEMO_UNITS + MCDATA_UNITS
        self.sent = 0
        self.skipped = 0
        self.failed = 0
        self.pending: set[asyncio.Task[None]] = set()

    def _status_value(self, nation: str, code: str) -> int:
        gateway = self.gateways[nation]
        codebook = gateway.config.codebooks[gateway.config.adapters[0].codebook]
        meaning = codebook.by_code(code)
        assert meaning is not None
        return meaning.tetra_value

    async def _send(self, number: int, kind: str, origin: DemoUnit, target: DemoUnit) -> None:
        lat = 48.57 + self.rng.uniform(-0.05, 0.05)
        lon = 7.78 + self.rng.uniform(-0.05, 0.05)
        code = self.rng.choice(_STATUS_CODES)
        text = f"{self.rng.choice(_TEXTS)} #{number:06d}"
        try:
            if origin.nation == "BE":
                to = f"sip:{target.unit}@{IWF_DOMAIN}"
                if kind == "text":
                    outcome = await self.mcx.send_sds(origin.issi, to, text, disposition=1)
                elif kind == "status":
                    value = self._status_value("BE", code)
                    outcome = await self.mcx.send_sds(origin.issi, to, enhanced_status=value)
                else:
                    outcome = await self.mcx.send_sds(
                        origin.issi, to, alert=kind == "emergency", location=(lat, lon)
                    )
                self.failed += not outcome.ok
                return
            sim = self.sims[origin.nation]
            if kind == "text":
                await sim.send_text(origin.issi, target.alias_abroad, text, report_request=1)
            elif kind == "status":
                value = self._status_value(origin.nation, code)
                await sim.send_status(origin.issi, target.alias_abroad, value)
            else:
                reason = 2 if kind == "emergency" else 0
                await sim.send_location(origin.issi, target.alias_abroad, lat, lon, reason=reason)
        except Exception:  # a failed send is counted, the soak goes on
            self.failed += 1

    def tick(self) -> None:
        """Start one message (skipped when too many sends are still pending)."""
        if len(self.pending) >= _MAX_PENDING:
            self.skipped += 1
            return
        self.sent += 1
        number = self.sent
        origin = self.rng.choice(self.units)
        target = self.rng.choice([u for u in self.units if u.nation != origin.nation])
        if number % _EMERGENCY_EVERY == 0:
            kind = "emergency"
        else:
            kind = self.rng.choices(("text", "status", "location"), weights=(5, 3, 2))[0]
        task = asyncio.get_running_loop().create_task(self._send(number, kind, origin, target))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def run(self, rate: float, until: float) -> None:
        """Send ``rate`` messages per second until the monotonic time ``until``."""
        period = 1.0 / rate
        loop = asyncio.get_running_loop()
        due = loop.time()
        while due < until:
            self.tick()
            due += period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > 1.0:  # fell behind by more than a second: do not burst
                due = loop.time()

    async def stop(self) -> None:
        """Let pending sends finish (bounded)."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=10.0)
        for task in list(self.pending):
            task.cancel()

    def forget_received(self) -> None:
        """Clear the simulators' records of what they received (harness memory)."""
        for sim in self.sims.values():
            sim.commands.clear()
            sim.submitted.clear()
            for records in (*sim.received.values(), *sim.reports.values()):
                records.clear()
        mcx = self.mcx
        for sds in mcx.received.values():
            sds.clear()
        for notifications in mcx.notifications.values():
            notifications.clear()
        mcx.requests.clear()
        mcx.rejected.clear()
        mcx.sent.clear()


# ------------------------------------------------------------------ the run

#: Duplicate-suppression window of the soak's gateways (seconds): short enough that the
#: journal's table of partners' message ids reaches its steady size early in the run.
DEFAULT_DEDUP_WINDOW = 60.0


@contextlib.asynccontextmanager
async def _federation(
    state: str, dedup_window: float
) -> AsyncIterator[tuple[list[Gateway], _Traffic]]:
    """The demo's three gateways and simulators, running and connected."""
    units = {n: [u.issi for u in DEMO_UNITS if u.nation == n] for n in ("DE", "FR")}
    users = [u.issi for u in MCDATA_UNITS]
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=units["DE"]) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=units["FR"]) as sim_fr,
        McdataSystemSimulator(users=users, groups={GROUP_GSSI["BE"]: users}, name="mcx-be") as mcx,
        contextlib.AsyncExitStack() as running,
    ):
        windows = _windows(dedup_window)
        configs: list[GatewayConfig] = [
            parse_config(
                demo_config_text(
                    "DE", partners=["FR", "BE"], pei_port=sim_de.port, delivery=windows
                ),
                source="soak:DE",
            ),
            parse_config(
                demo_config_text(
                    "FR", partners=["DE", "BE"], pei_port=sim_fr.port, delivery=windows
                ),
                source="soak:FR",
            ),
            parse_config(
                demo_config_text(
                    "BE", partners=["DE", "FR"], sip_peer_port=mcx.port, delivery=windows
                ),
                source="soak:BE",
            ),
        ]
        gateways = build_gateways(configs, LocalFederationBus(), state_dir=state)
        for gateway in gateways:
            await running.enter_async_context(gateway.running())
        for gateway in gateways:
            await gateway.wait_ready(10.0)
        by_nation = {g.nation: g for g in gateways}
        mcx.gateway_port = by_nation["BE"].mcdata["mcx-be"].listen_port
        yield gateways, _Traffic(by_nation, {"DE": sim_de, "FR": sim_fr}, mcx, seed=1)


async def _sample(t: float, gateways: Sequence[Gateway], traffic: _Traffic) -> Sample:
    entries = 0
    for gateway in gateways:
        journal = gateway.journal
        if journal is not None:
            entries += await journal.submit(lambda j: j.count())
    return Sample(
        t_s=round(t, 2),
        rss_bytes=rss_bytes(),
        fds=open_fds(),
        queued=sum(len(q) for g in gateways for q in g.queues.values()),
        in_flight=sum(g.in_flight(n) for g in gateways for n in g.config.federation.partners),
        journal_bytes=sum(journal_file_bytes(g.journal_path) for g in gateways),
        journal_entries=entries,
        sent=traffic.sent,
        delivered=sum(g.counters["delivered_to_network"] for g in gateways),
        tasks=len(asyncio.all_tasks()),
    )


def _line(sample: Sample) -> str:
    return (
        f"[{sample.t_s:7.1f}s] rss {sample.rss_bytes / _MIB:7.1f} MiB  fds {sample.fds:4d}  "
        f"tasks {sample.tasks:4d}  queued {sample.queued:5d}  in flight {sample.in_flight:4d}  "
        f"journal {sample.journal_bytes / _MIB:6.2f} MiB / {sample.journal_entries:5d} in custody"
        f"  sent {sample.sent:7d}  delivered {sample.delivered:7d}"
    )


def default_out_dir() -> Path:
    """A new directory under the current one: ``soak-YYYYmmdd-HHMMSS``."""
    return Path.cwd() / time.strftime("soak-%Y%m%d-%H%M%S")


async def run_soak(
    *,
    duration: float = 600.0,
    interval: float = 5.0,
    rate: float = 50.0,
    out_dir: Path | None = None,
    as_json: bool = False,
    log_level: str = "off",
    out: TextIO | None = None,
    dedup_window: float = DEFAULT_DEDUP_WINDOW,
) -> tuple[int, SoakSummary]:
    """Run the soak; return the exit status (0 steady, 1 growing) and the summary.

    Args:
        duration: Seconds of traffic.
        interval: Seconds between samples.
        rate: Messages per second.
        out_dir: Where ``soak.csv`` and ``soak.png`` go (default: a new directory here).
        as_json: Progress on stderr, and the JSON summary as the last stdout line.
        log_level: Structured gateway logs on stderr (off by default).
        out: Stream of the progress lines (default stdout, stderr with ``as_json``).
        dedup_window: The gateways' duplicate-suppression window (seconds); message
            lifetimes are set to half of it. A deployment's default (2 h) would keep the
            window's table growing for the whole run; a short one shows it reach its bound.
    """
    if not (duration > 0 and interval > 0 and rate > 0):
        raise ValueError("duration, interval and rate must be positive")
    configure_logging(log_level)
    stream = out if out is not None else (sys.stderr if as_json else sys.stdout)
    directory = out_dir if out_dir is not None else default_out_dir()
    directory.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []

    def say(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    say(
        f"euccs-gw soak: {duration:g} s at {rate:g} msg/s over DE, FR (TETRA) and BE (MCData), "
        f"a sample every {interval:g} s; output in {directory}"
    )
    with tempfile.TemporaryDirectory(prefix="euccs-soak-") as state:
        async with _federation(state, dedup_window) as (gateways, traffic):
            loop = asyncio.get_running_loop()
            start = loop.time()
            sender = loop.create_task(traffic.run(rate, start + duration))
            try:
                next_at = start
                while True:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - loop.time()))
                    traffic.forget_received()
                    sample = await _sample(loop.time() - start, gateways, traffic)
                    samples.append(sample)
                    say(_line(sample))
                    if next_at >= start + duration - 1e-9:
                        break
            finally:
                await sender
                await traffic.stop()
    summary = _finish(samples, traffic, directory, duration=duration, rate=rate, say=say)
    if as_json:
        print(json.dumps(summary.as_dict(), sort_keys=True))
    return (0 if summary.steady else 1), summary


def _finish(
    samples: Sequence[Sample],
    traffic: _Traffic,
    directory: Path,
    *,
    duration: float,
    rate: float,
    say: Callable[[str], None],
) -> SoakSummary:
    """Judge the run, write the CSV and the plot, print the verdict; return the summary."""
    steady, text, growth = verdict(samples, duration)
    csv_path = directory / "soak.csv"
    write_csv(csv_path, samples)
    png: str | None = None
    try:
        write_plot(directory / "soak.png", samples, f"euccs-gw soak, {rate:g} msg/s: {text}")
        png = str(directory / "soak.png")
    except RuntimeError as exc:
        say(f"no plot: {exc}")
    first = asdict(samples[0]) if samples else {}
    last = asdict(samples[-1]) if samples else {}
    summary = SoakSummary(
        verdict=text,
        steady=steady,
        duration_s=duration,
        samples=len(samples),
        sent=traffic.sent,
        delivered=last.get("delivered", 0),
        skipped=traffic.skipped,
        growth={k: {n: _round(v) for n, v in g.items()} for k, g in growth.items()},
        first=first,
        last=last,
        csv=str(csv_path),
        png=png,
    )
    say(f"verdict: {text}")
    for name, figures in summary.growth.items():
        scale = ALLOWANCES[name].scale
        unit = ALLOWANCES[name].unit
        say(
            f"  {name:<16} {figures['start'] / scale:10.1f} -> {figures['end'] / scale:10.1f} "
            f"{unit:<3}  fitted growth {figures['growth'] / scale:+8.2f}  "
            f"(limit {figures['limit'] / scale:.2f})"
        )
    say(f"  sent {summary.sent}, delivered {summary.delivered}, skipped {summary.skipped}")
    say(f"  {csv_path}" + (f", {png}" if png else ""))
    return summary


def _round(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else value


def _windows(dedup_window: float) -> str:
    """``[delivery]`` lines: the dedup window and message lifetimes of half of it."""
    lifetime = max(1.0, dedup_window / 2)
    lines = [f"dedup_window = {dedup_window}", "[delivery.expiry_seconds]"]
    lines += [f"{key} = {lifetime}" for key in ("emergency", "imminent_peril", "high", "routine")]
    return "\n".join(lines)
