"""``euccs-gw bench``: the gateway path against two TLS-bridged Mosquitto brokers, one run.

Both paths carry the same traffic from a radio network in country A to one in country B:

gateway path
    simulated TETRA network (PEI over TCP) -> gateway A (adapter, interworking, journal,
    priority queues) -> MQTT 5 over mutual TLS through Mosquitto -> gateway B -> simulated
    TETRA network. Every message is a real SDS-TL text (or, for emergencies, a LIP
    emergency location), decoded, journalled, federated in the protobuf schema and
    delivered to a field radio with ``AT+CMGS``.
peer path
    an MQTT client publishes raw payloads at QoS 1 to broker A, which is bridged to
    broker B over mutual TLS (``topic euccs/# out 1``); a client on B receives them.

For each path the harness measures

* capacity: messages per second delivered end to end while the sender keeps the path
  saturated;
* latency p50/p95/p99/max at 25 %, 50 % and 90 % of that capacity (open-loop senders at a
  fixed rate);
* the emergency test: routine traffic at 2x capacity plus one emergency message every
  100 ms on its own connection; the emergencies' latency percentiles and losses.

Latency is measured from the moment the sender hands a message to its first hop (the PEI
write, the PUBLISH) to the moment the receiving radio (client) has it; both ends run in
this process on one monotonic clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["BenchOptions", "PathFigures", "run_bench"]

#: Share of capacity of the three fixed-rate latency runs.
LOAD_LEVELS = (0.25, 0.50, 0.90)
#: Seconds after which an undelivered message of the capacity phase counts as lost.
LOST_AFTER = 2.0
#: One emergency message every this many seconds during the overload test.
EMERGENCY_EVERY = 0.100
#: Routine payload (bytes) of the peer path; the gateway path's texts give envelopes of
#: about this size on the federation link.
PAYLOAD_BYTES = 256
#: How a routine text carries its number (the gateway prefixes the sender's identity).
_NUMBERED = re.compile(r"\bB(\d{8})\b")
#: Text length of the gateway path's routine SDS (one SDS-TL PDU, no concatenation).
TEXT_CHARS = 120
#: Most radio lines the destination gateway may have in the bench.
MAX_RADIO_LINES = 16
#: Longest federation batch linger the bench accepts (the gateway's own bound).
MAX_LINGER_MS = 1000.0


@dataclass
class BenchOptions:
    """What to measure and for how long (the defaults keep a run under 3 minutes)."""

    capacity_seconds: float = 10.0
    level_seconds: float = 8.0
    overload_seconds: float = 10.0
    drain_seconds: float = 15.0
    paths: tuple[str, ...] = ("gateway", "peer")
    #: Radio lines (PEI connections, each its own gateway radio) of the destination
    #: gateway; routine texts go to a unit behind each in turn.
    radio_lines: int = 8
    #: The gateways' federation batch linger in milliseconds (``linger_ms`` of
    #: ``[federation.mqtt]``); None keeps the gateway's default.
    linger_ms: float | None = None
    out: TextIO = field(default_factory=lambda: sys.stderr)

    @classmethod
    def quick(cls, paths: tuple[str, ...] = ("gateway", "peer")) -> BenchOptions:
        """Short phases: a smoke run of the whole harness (figures are rough)."""
        return cls(
            capacity_seconds=3.0,
            level_seconds=2.0,
            overload_seconds=3.0,
            drain_seconds=10.0,
            paths=paths,
        )

    def with_radio_lines(self, lines: int) -> BenchOptions:
        """The same run with ``lines`` radio lines at the destination."""
        if not 1 <= lines <= MAX_RADIO_LINES:
            raise ValueError(f"--radio-lines must be between 1 and {MAX_RADIO_LINES}, not {lines}")
        return dataclasses.replace(self, radio_lines=lines)

    def with_linger(self, linger_ms: float) -> BenchOptions:
        """The same run with the gateways' federation batch linger set to ``linger_ms``."""
        if not 0.0 <= linger_ms <= MAX_LINGER_MS:
            raise ValueError(
                f"--linger-ms must be between 0 and {MAX_LINGER_MS:g}, not {linger_ms:g}"
            )
        return dataclasses.replace(self, linger_ms=linger_ms)

    def scaled(self, seconds: float) -> BenchOptions:
        """The same run with measuring phases of ``seconds``."""
        if not 1.0 <= seconds <= 600.0:
            raise ValueError(f"--seconds must be between 1 and 600, not {seconds}")
        return BenchOptions(
            capacity_seconds=seconds,
            level_seconds=seconds * 0.8,
            overload_seconds=seconds,
            drain_seconds=max(10.0, seconds * 1.5),
            paths=self.paths,
            radio_lines=self.radio_lines,
            linger_ms=self.linger_ms,
            out=self.out,
        )

    def say(self, text: str) -> None:
        """Progress output (never on stdout, which carries the JSON line)."""
        print(text, file=self.out, flush=True)


@dataclass
class Latency:
    """Latency percentiles in milliseconds, and what was sent and lost."""

    offered_rate: float
    sent: int
    delivered: int
    lost: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    #: Messages per second delivered from the first send to the last delivery.
    delivered_rate: float | None = None
    #: p99 over every message sent, a lost one counting as never delivered: None when
    #: that rank falls on a lost message (more than 1 % lost), or nothing was sent.
    p99_of_sent_ms: float | None = None
    #: How late the load generator handed messages over, behind when they were due (its
    #: timer tick, a busy event loop, a first hop that pushed back): part of the latency
    #: above, and not the path's doing except for the push-back. None: not a fixed rate.
    sender_lag_p99_ms: float | None = None
    sender_lag_max_ms: float | None = None


@dataclass
class Added:
    """Latency the gateways added, from the destination gateway's histogram.

    ``euccs_end_to_end_latency_seconds{measured_at="destination"}``: from the moment the
    origin gateway had decoded a text read from its radio line (its creation time, stamped
    before its custody commit) until the destination gateway had the final status of its
    ``AT+CMGS`` from its radio line. In it: the origin's custody commit, queues and batch
    linger, the broker hop, the destination's custody and reference commits, and the
    destination's radio exchange with a simulated radio (in the bench's process). Not in
    it: the load generator, the origin's simulated radio network, and the time a text
    waited in the origin gateway's socket before it was read. Bucket resolution: the
    percentiles are the bucket bounds they fall within (5, 10, 25, 50 ms, ...);
    ``within_5ms`` is exact.
    """

    count: int
    #: Fraction of the messages that took at most 5 ms.
    within_5ms: float | None
    p50_at_most_ms: float | None
    p99_at_most_ms: float | None


@dataclass
class PathFigures:
    """Everything measured on one path."""

    name: str
    capacity_msg_s: float = 0.0
    levels: dict[str, Latency] = field(default_factory=dict)
    overload_routine: Latency | None = None
    overload_emergency: Latency | None = None
    #: Work per message delivered in the capacity phase, by process and kind:
    #: ``cpu_ms/<process>`` (CPU milliseconds, user and system), and on the gateway path
    #: ``commits/<gateway>`` (journal group commits) and ``operations/<gateway>``.
    costs: dict[str, float] = field(default_factory=dict)
    #: Per load level: the latency the gateways added (gateway path only).
    added: dict[str, Added] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Probe:
    """Send and delivery times of numbered messages on one monotonic clock."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        #: Fixed-rate messages: how late each one went, in seconds, behind its due time.
        self.lag: dict[int, float] = {}
        #: While a saturating phase runs: numbers sent and not yet delivered.
        self.pending: set[int] | None = None
        self.delivered: dict[int, float] = {}
        self._next = 0
        self.arrived = asyncio.Event()

    def number(self) -> int:
        """Reserve the next message number."""
        self._next += 1
        return self._next

    def mark_sent(self, number: int) -> None:
        """The message left the sender."""
        self.sent[number] = time.perf_counter()

    def mark_delivered(self, number: int) -> None:
        """The message reached its receiver (a duplicate keeps its first time)."""
        self.delivered.setdefault(number, time.perf_counter())
        if self.pending is not None:
            self.pending.discard(number)
        self.arrived.set()

    def window(self, numbers: range) -> Latency:
        """Latency of the messages numbered in ``numbers`` that were sent."""
        sent = [n for n in numbers if n in self.sent]
        delays = sorted(
            (self.delivered[n] - self.sent[n]) * 1000.0 for n in sent if n in self.delivered
        )
        arrived = [self.delivered[n] for n in sent if n in self.delivered]
        lags = sorted(self.lag[n] * 1000.0 for n in sent if n in self.lag)
        span = max(arrived) - min(self.sent[n] for n in sent) if arrived else 0.0
        return Latency(
            offered_rate=0.0,
            sent=len(sent),
            delivered=len(delays),
            lost=len(sent) - len(delays),
            p50_ms=_percentile(delays, 50),
            p95_ms=_percentile(delays, 95),
            p99_ms=_percentile(delays, 99),
            max_ms=round(delays[-1], 3) if delays else None,
            delivered_rate=round(len(arrived) / span, 1) if span > 0 else None,
            p99_of_sent_ms=_percentile(delays + [math.inf] * (len(sent) - len(delays)), 99),
            sender_lag_p99_ms=_percentile(lags, 99),
            sender_lag_max_ms=round(lags[-1], 3) if lags else None,
        )

    async def wait_delivered(self, numbers: range, seconds: float) -> None:
        """Wait until every sent message of ``numbers`` arrived, or ``seconds`` passed."""
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if all(n in self.delivered for n in numbers if n in self.sent):
                return
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.2)


def unsustained(label: str, latency: Latency) -> str | None:
    """A note if a fixed-rate phase delivered less than 90 % of the rate it offered.

    The load levels are fractions of the capacity measured with a fixed number of
    messages outstanding; a path whose queues grow at one of those fixed rates did not
    sustain it, and its latency there is that of a growing backlog.
    """
    offered, delivered = latency.offered_rate, latency.delivered_rate
    if delivered is None or offered <= 0 or delivered >= 0.9 * offered:
        return None
    return (
        f"at {label} load {delivered:,.0f} msg/s were delivered of {offered:,.0f} offered: "
        "the path did not sustain that rate, its queues grew"
    )


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(values)))
    value = values[rank - 1]
    return None if math.isinf(value) else round(value, 3)


SendOne = Callable[[int], Awaitable[None]]


async def _open_loop(
    send: SendOne, probe: Probe, rate: float, seconds: float, *, from_due: bool = True
) -> range:
    """Send at ``rate`` messages per second for ``seconds``; return the numbers used.

    The sender never waits for deliveries. Each message's latency counts from when it was
    due, not from when it went: if the first hop pushes back (a full TCP window), the
    wait at the sender is part of the latency it causes, and the rate reached is lower
    than the one offered. ``from_due=False``: from when it went, for a sparse stream on
    a connection of its own (the emergencies), which nothing pushes back but which
    shares this process with an overloading sender: its lateness is the load
    generator's, not the path's (``Probe.lag`` keeps it either way).
    """
    first = probe._next + 1
    start = time.perf_counter()
    done = 0
    tick = 0.002
    while (elapsed := time.perf_counter() - start) < seconds:
        # Message k (from 0) is due at start + k / rate: at ``elapsed``, messages
        # 0 .. floor(rate * elapsed) are due.
        due = math.floor(rate * elapsed) + 1 - done
        for _ in range(max(0, due)):
            number = probe.number()
            due_at = start + done / rate
            now = time.perf_counter()
            probe.sent[number] = due_at if from_due else now
            probe.lag[number] = now - due_at
            await send(number)
            done += 1
        await asyncio.sleep(tick)
    return range(first, probe._next + 1)


async def _saturate(
    send: SendOne, probe: Probe, seconds: float, outstanding: int
) -> tuple[range, float]:
    """Keep ``outstanding`` messages in flight for ``seconds``; return numbers and rate.

    The rate counts deliveries in the second half of the run (steady state). A message not
    delivered within :data:`LOST_AFTER` seconds no longer counts as in flight (a path that
    drops messages is not slowed down by its own losses).
    """
    first = probe._next + 1
    start = time.perf_counter()
    half = start + seconds / 2
    # In flight: sent, neither delivered (the probe takes a delivered one out) nor given
    # up on. Kept as it changes, in order of sending for the expiry, so that the load
    # generator's own work stays small beside the path's, whatever it loses.
    in_flight = probe.pending = set()
    waiting: collections.deque[int] = collections.deque()
    while (now := time.perf_counter()) - start < seconds:
        while waiting and (
            waiting[0] not in in_flight or now - probe.sent[waiting[0]] >= LOST_AFTER
        ):
            in_flight.discard(waiting.popleft())
        for _ in range(max(0, outstanding - len(in_flight))):
            number = probe.number()
            probe.mark_sent(number)
            in_flight.add(number)
            waiting.append(number)
            await send(number)
        probe.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.arrived.wait(), 0.05)
    end = time.perf_counter()
    probe.pending = None
    numbers = range(first, probe._next + 1)
    late = sum(1 for n in numbers if half <= probe.delivered.get(n, 0.0) <= end)
    return numbers, late / (end - half)


async def _unknown() -> float | None:
    """A path that cannot tell when it is idle."""
    return None


async def _no_buckets() -> dict[float, float] | None:
    """A path without gateways."""
    return {}


def added_latency(
    before: dict[float, float] | None, after: dict[float, float] | None
) -> Added | None:
    """The latency the gateways added between two readings of their histogram.

    None when nothing was delivered in between, or a reading failed (None): a failed
    first reading must not pass the whole histogram since start-up off as the level's.
    """
    if before is None or after is None:
        return None
    grown = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    if not grown or (count := grown[-1][1]) <= 0:  # the last bound is +Inf: all of them
        return None

    def at_most(pct: float) -> float | None:
        rank = math.ceil(pct / 100.0 * count)
        bound = next(b for b, n in grown if n >= rank)
        return None if math.isinf(bound) else round(bound * 1000.0, 3)

    within = next((n for b, n in grown if b == 0.005), None)
    return Added(
        count=int(count),
        within_5ms=None if within is None else round(within / count, 4),
        p50_at_most_ms=at_most(50),
        p99_at_most_ms=at_most(99),
    )


async def _no_counters() -> dict[str, float]:
    """A path whose processes are not measured."""
    return {}


def per_message(
    before: dict[str, float], after: dict[str, float], delivered: int
) -> dict[str, float]:
    """What each counter grew by per message delivered (CPU seconds as milliseconds)."""
    if delivered <= 0:
        return {}
    costs = {}
    for key, end in after.items():
        if (start := before.get(key)) is not None:
            scale = 1000.0 if key.startswith("cpu_ms/") else 1.0
            costs[key] = round((end - start) * scale / delivered, 3)
    return costs


def cpu_counters(pids: dict[str, int]) -> dict[str, float]:
    """``cpu_ms/<name>``: CPU seconds each process has used so far (Linux only)."""
    from loadtests._processes import cpu_seconds

    found = {name: cpu_seconds(pid) for name, pid in pids.items()}
    return {f"cpu_ms/{name}": value for name, value in found.items() if value is not None}


@dataclass
class PathDriver:
    """How a path's harness sends and observes messages."""

    name: str
    routine: SendOne
    emergency: SendOne
    probe: Probe
    emergency_probe: Probe
    outstanding: int
    notes: list[str] = field(default_factory=list)
    #: Waits until the path has finished the work a phase left behind (receipts,
    #: acknowledgements), so that the next phase starts from an idle system; returns
    #: when it found the path idle (``time.perf_counter()``), None if it cannot tell.
    settle: Callable[[], Awaitable[float | None]] = field(default=_unknown)
    #: Cumulative work counters of the path's processes (see ``PathFigures.costs``).
    counters: Callable[[], Awaitable[dict[str, float]]] = field(default=_no_counters)
    #: Cumulative bucket counts (upper bound in seconds -> count) of the latency the
    #: gateways added to routine messages; empty on a path without gateways.
    added_buckets: Callable[[], Awaitable[dict[float, float] | None]] = field(default=_no_buckets)


async def measure(driver: PathDriver, options: BenchOptions) -> PathFigures:
    """Capacity, latency at fixed loads, and the emergency test on one path."""
    figures = PathFigures(name=driver.name, notes=driver.notes)
    say = options.say
    say(f"[{driver.name}] capacity: saturating for {options.capacity_seconds:.0f} s")
    before = await driver.counters()
    started = time.perf_counter()
    numbers, steady = await _saturate(
        driver.routine, driver.probe, options.capacity_seconds, driver.outstanding
    )
    await driver.probe.wait_delivered(numbers, options.drain_seconds)
    idle_at = await driver.settle()
    after = await driver.counters()
    # Sustained: everything the phase delivered, over the time until the last delivery
    # and the follow-up work (receipts, acknowledgements) were done. A path that defers
    # work while saturated shows a steady-state rate it cannot keep up.
    arrivals = [driver.probe.delivered[n] for n in numbers if n in driver.probe.delivered]
    end = max([*arrivals, idle_at or 0.0])
    capacity = min(steady, len(arrivals) / (end - started)) if arrivals else 0.0
    figures.capacity_msg_s = round(capacity, 1)
    figures.costs = per_message(before, after, len(arrivals))
    say(f"[{driver.name}] capacity {capacity:,.0f} msg/s delivered end to end")
    if figures.costs:
        say(f"[{driver.name}] per message delivered: {_costs_text(figures.costs)}")
    if capacity <= 0:
        figures.notes.append("nothing was delivered: no latency figures")
        return figures
    for level in LOAD_LEVELS:
        rate = capacity * level
        buckets = await driver.added_buckets()
        numbers = await _open_loop(driver.routine, driver.probe, rate, options.level_seconds)
        await driver.probe.wait_delivered(numbers, options.drain_seconds)
        await driver.settle()
        latency = driver.probe.window(numbers)
        latency.offered_rate = round(rate, 1)  # asked for: a sender held back shows
        figures.levels[f"{round(level * 100)}%"] = latency
        say(
            f"[{driver.name}] {level:.0%} load ({rate:,.0f} msg/s): p50 {latency.p50_ms} ms, "
            f"p99 {latency.p99_ms} ms, lost {latency.lost} (sender lag p99 "
            f"{latency.sender_lag_p99_ms} ms)"
        )
        if (added := added_latency(buckets, await driver.added_buckets())) is not None:
            figures.added[f"{round(level * 100)}%"] = added
            say(f"[{driver.name}] {level:.0%} load, added by the gateways: {_added_text(added)}")
        if (note := unsustained(f"{level:.0%}", latency)) is not None:
            figures.notes.append(note)
            say(f"[{driver.name}] {note}")
    say(
        f"[{driver.name}] emergency test: routine at 2x capacity ({2 * capacity:,.0f} msg/s) "
        f"for {options.overload_seconds:.0f} s, one emergency every "
        f"{EMERGENCY_EVERY * 1000:.0f} ms"
    )
    routine_task = asyncio.create_task(
        _open_loop(driver.routine, driver.probe, 2 * capacity, options.overload_seconds)
    )
    emergencies = await _open_loop(
        driver.emergency,
        driver.emergency_probe,
        1 / EMERGENCY_EVERY,
        options.overload_seconds,
        from_due=False,
    )
    routine = await routine_task
    await driver.emergency_probe.wait_delivered(emergencies, options.drain_seconds)
    await driver.probe.wait_delivered(routine, options.drain_seconds)
    figures.overload_emergency = driver.emergency_probe.window(emergencies)
    figures.overload_emergency.offered_rate = 1 / EMERGENCY_EVERY
    figures.overload_routine = driver.probe.window(routine)
    figures.overload_routine.offered_rate = round(len(routine) / options.overload_seconds, 1)
    e = figures.overload_emergency
    say(
        f"[{driver.name}] emergencies: p50 {e.p50_ms} ms, p99 {e.p99_ms} ms, "
        f"max {e.max_ms} ms, lost {e.lost} of {e.sent}; routine lost "
        f"{figures.overload_routine.lost} of {figures.overload_routine.sent} (sender lag p99 "
        f"{e.sender_lag_p99_ms} ms for emergencies)"
    )
    return figures


# ---------------------------------------------------------------------- gateway path


@contextlib.asynccontextmanager
async def gateway_path(state: Path, options: BenchOptions) -> AsyncIterator[PathDriver]:
    """Two gateways federated over Mosquitto with mutual TLS, TETRA simulators on both ends.

    Each gateway runs in its own process (``euccs-gw run``), as deployed; the simulated
    radio networks and the load generator share this one.
    """
    from adapters.tetra import TetraNetworkSimulator
    from gateway.demo_configs import DEMO_UNITS, GATEWAY_RADIO, demo_config_text
    from loadtests._processes import (
        mqtt_backbone,
        over_mqtt,
        radios_initialised,
        while_running,
    )
    from protocols.tetra import LocationReport, TextSds

    sender = next(u for u in DEMO_UNITS if u.nation == "DE")
    target = next(u for u in DEMO_UNITS if u.nation == "FR")
    lines = [_RadioLine.first(target.issi, target.alias_abroad)] + [
        _RadioLine.added(n) for n in range(2, options.radio_lines + 1)
    ]
    sos_radio, sos_unit = "9000001", "2099"
    probe, emergency_probe = Probe(), Probe()

    def received(_source: str, _destination: str, content: Any) -> None:
        if isinstance(content, TextSds) and (match := _NUMBERED.search(content.text)):
            probe.mark_delivered(int(match[1]))
        elif isinstance(content, LocationReport) and content.longitude is not None:
            emergency_probe.mark_delivered(round((content.longitude - 7.0) * 10_000))

    units_de = [u.issi for u in DEMO_UNITS if u.nation == "DE"]
    units_fr = [u.issi for u in DEMO_UNITS if u.nation == "FR"]
    delivery = "\n".join(["queue_max_messages = 20000", "window = 1024"])
    names = {"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg"}
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=units_de) as sim_de,
        TetraNetworkSimulator(radio_issi=sos_radio, units=[sos_unit]) as sim_sos,
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["FR"], units=units_fr, delivery_latency=0.0
        ) as sim_fr,
        contextlib.AsyncExitStack() as stack,
    ):
        more_fr = [
            await stack.enter_async_context(
                TetraNetworkSimulator(
                    radio_issi=line.radio, units=[line.issi], delivery_latency=0.0
                )
            )
            for line in lines[1:]
        ]
        per_line: Counter[int] = Counter()
        for index, sim in enumerate((sim_fr, *more_fr)):
            sim.radios.on_received = functools.partial(_count_line, per_line, index, received)
        broker: dict[str, int] = {}
        with mqtt_backbone(state, names, broker) as mqtt:
            metrics = {"DE": _free_port(), "FR": _free_port()}
            de_text = over_mqtt(
                demo_config_text("DE", partner="FR", pei_port=sim_de.port, delivery=delivery),
                _tuned(mqtt["DE"], options),
                _sos_adapter(sim_sos.port, sos_radio, sos_unit, target.unit, target.alias_abroad),
                *(line.alias("tetra-de") for line in lines[1:]),
                UNLIMITED_RATES,
                _api_table(mqtt["DE"], metrics["DE"]),
            )
            fr_text = over_mqtt(
                demo_config_text("FR", partner="DE", pei_port=sim_fr.port, delivery=delivery),
                _tuned(mqtt["FR"], options),
                *(line.adapter(sim.port) for line, sim in zip(lines[1:], more_fr, strict=True)),
                UNLIMITED_RATES,
                _api_table(mqtt["FR"], metrics["FR"]),
            )
            async with _gateway_processes(state, {"de": de_text, "fr": fr_text}) as procs:
                sims = [sim_de, sim_sos, sim_fr, *more_fr]
                await while_running(procs, state, radios_initialised(sims, 1), 60.0)
                padding = "x" * TEXT_CHARS

                async def routine(number: int) -> None:
                    text = f"B{number:08d} {padding}"[:TEXT_CHARS]
                    alias = lines[number % len(lines)].alias_issi
                    await sim_de.send_text(sender.issi, alias, text, report_request=0)

                async def emergency(number: int) -> None:
                    lon = 7.0 + number / 10_000
                    await sim_sos.send_location(sos_unit, target.alias_abroad, 48.5, lon, reason=2)

                # The first text waits in custody until the federation link is up.
                warmup = probe.number()
                probe.mark_sent(warmup)
                await routine(warmup)
                first = probe.wait_delivered(range(warmup, warmup + 1), 60.0)
                await while_running(procs, state, first, 60.0)
                if warmup not in probe.delivered:
                    raise RuntimeError("the gateway path delivered nothing within 60 s")

                driver = PathDriver(
                    name="gateway",
                    settle=functools.partial(_settle, list(metrics.values()), options),
                    added_buckets=functools.partial(_added_buckets, metrics["FR"]),
                    counters=functools.partial(
                        _gateway_counters,
                        {names[n]: port for n, port in metrics.items()},
                        {names[n.upper()]: p.pid for n, p in procs.items()} | broker,
                        "bench (radio networks, load)",
                    ),
                    routine=routine,
                    emergency=emergency,
                    probe=probe,
                    emergency_probe=emergency_probe,
                    outstanding=512,
                    notes=[
                        "TETRA PEI in -> gateway DE -> MQTT 5 / mutual TLS 1.3 (Mosquitto) -> "
                        f"gateway FR -> TETRA PEI out ({len(lines)} radio lines, texts to each "
                        "in turn); each gateway its own process; journal fsync on every group "
                        "commit",
                        f"routine: {TEXT_CHARS}-character SDS-TL texts; emergencies: LIP "
                        "emergency reports from a second radio network (own PEI line)",
                        "federation batch linger: "
                        + (
                            "the gateways' default (5 ms)"
                            if options.linger_ms is None
                            else f"{options.linger_ms:g} ms"
                        ),
                    ],
                )
                yield driver
                counts = "/".join(str(per_line[i]) for i in range(len(lines)))
                driver.notes.append(f"SDS delivered per radio line: {counts}")


def _tuned(mqtt_table: str, options: BenchOptions) -> str:
    """A gateway's ``[federation.mqtt]`` table with the bench's linger, if it sets one."""
    if options.linger_ms is None:
        return mqtt_table
    return f"{mqtt_table}\nlinger_ms = {options.linger_ms:g}\n"


def _count_line(
    per_line: Counter[int], index: int, received: Callable[[str, str, Any], None], *args: Any
) -> None:
    per_line[index] += 1
    received(*args)


def _api_table(mqtt_table: str, metrics_port: int) -> str:
    """An ``[api]`` table with the gateway's own credential and a loopback metrics port."""
    found = dict(re.findall(r'^(cert|key|bundle) = "([^"]+)"$', mqtt_table, re.MULTILINE))
    return "\n".join(
        [
            "[api]",
            'listen = "127.0.0.1:0"',
            f'cert = "{found["cert"]}"',
            f'key = "{found["key"]}"',
            f'bundle = "{found["bundle"]}"',
            f'metrics_listen = "127.0.0.1:{metrics_port}"',
            "",
        ]
    )


async def _settle(ports: list[int], options: BenchOptions) -> float:
    """Wait until the gateways at ``ports`` (metrics) have nothing queued or in flight.

    Idle twice in a row: returns when the first of those polls began. Still busy (or not
    answering) after ``drain_seconds``: says so and returns that moment, so a capacity
    figure counts the work left over until then.
    """
    deadline = time.perf_counter() + options.drain_seconds
    idle_since: float | None = None
    while time.perf_counter() < deadline:
        polled = time.perf_counter()
        if all([await _busy(port) == 0 for port in ports]):
            if idle_since is not None:
                return idle_since
            idle_since = polled
        else:
            idle_since = None
        await asyncio.sleep(0.05)
    options.say(
        f"[gateway] still busy {options.drain_seconds:g} s after the phase "
        "(or its metrics did not answer): counted until then"
    )
    return time.perf_counter()


async def _metrics(port: int) -> str | None:
    """A gateway's metrics exposition (None: no valid answer)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        body = (await asyncio.wait_for(reader.read(), 5.0)).decode(errors="replace")
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    return body if body.startswith(("HTTP/1.0 200", "HTTP/1.1 200")) else None


async def _gateway_counters(
    ports: dict[str, int], pids: dict[str, int], bench: str
) -> dict[str, float]:
    """CPU of the gateways and of the bench (``bench``), and the gateways' journal commits."""
    counters = cpu_counters({**pids, bench: os.getpid()})
    for name, port in ports.items():
        counters.update(journal_counters(await _metrics(port) or "", name))
    return counters


def _added_text(added: Added) -> str:
    within = "-" if added.within_5ms is None else f"{added.within_5ms:.1%}"
    return (
        f"p50 <= {added.p50_at_most_ms} ms, p99 <= {added.p99_at_most_ms} ms, {within} within 5 ms"
    )


async def _added_buckets(port: int) -> dict[float, float] | None:
    """The destination gateway's routine end-to-end histogram (None: no valid answer)."""
    body = await _metrics(port)
    return None if body is None else destination_buckets(body)


def destination_buckets(exposition: str) -> dict[float, float]:
    """Bucket bound (seconds) -> count of the routine end-to-end latency measured at
    the destination, from a gateway's metrics exposition."""
    prefix = "euccs_end_to_end_latency_seconds_bucket{"
    buckets = {}
    for line in exposition.splitlines():
        if not line.startswith(prefix):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[len(prefix) : line.index("}")]))
        if labels.get("measured_at") == "destination" and labels.get("priority") == "routine":
            buckets[float(labels["le"])] = float(line.rsplit(" ", 1)[1])
    return buckets


def journal_counters(exposition: str, gateway: str) -> dict[str, float]:
    """``commits/<gateway>`` and ``operations/<gateway>`` from a metrics exposition."""
    counters = {}
    for line in exposition.splitlines():
        for metric, key in (
            ("euccs_journal_commits_total ", "commits"),
            ("euccs_journal_operations_total ", "operations"),
        ):
            if line.startswith(metric):
                counters[f"{key}/{gateway}"] = float(line.rsplit(" ", 1)[1])
    return counters


def _costs_text(costs: dict[str, float]) -> str:
    return ", ".join(
        f"{key.replace('cpu_ms/', 'CPU ms ')} {value:g}"
        if key.startswith("cpu_ms/")
        else f"{key.replace('/', ' ')} {value:g}"
        for key, value in sorted(costs.items())
    )


async def _busy(port: int) -> int:
    """Messages a gateway has queued or in flight, from its metrics (-1: no valid answer)."""
    body = await _metrics(port)
    if body is None:
        return -1
    total, answered = 0, False
    for line in body.splitlines():
        if line.startswith(("euccs_queue_depth{", "euccs_in_flight{", "euccs_queue_spilled{")):
            total += int(float(line.rsplit(" ", 1)[1]))
            answered = answered or line.startswith("euccs_in_flight{")
    return total if answered else -1


@contextlib.asynccontextmanager
async def _gateway_processes(
    state: Path, texts: dict[str, str]
) -> AsyncIterator[dict[str, asyncio.subprocess.Process]]:
    """One ``euccs-gw run`` process per configuration (log in ``<name>.log``); stopped after."""
    from loadtests._processes import start_gateways

    procs: dict[str, asyncio.subprocess.Process] = {}
    logs = []
    try:
        for name, text in texts.items():
            config = state / f"{name}.toml"
            config.write_text(text, encoding="utf-8")
            log = (state / f"{name}.log").open("wb")
            logs.append(log)
            procs[name] = await start_gateways([config], state / f"state-{name}", stderr=log)
        yield procs
        for name, proc in procs.items():
            if proc.returncode is not None:
                tail = (state / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"gateway {name} exited with {proc.returncode}: {tail}")
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for log in logs:
            log.close()


#: The bench measures capacity: the per-partner rate limits (a policy, 200 msg/s by
#: default) would refuse the load before the gateway is saturated.
UNLIMITED_RATES = """
[rate_limits]
messages_per_second = 1e6
burst = 1e6
bytes_per_second = 1e9
bytes_burst = 1e9
"""


@dataclass(frozen=True)
class _RadioLine:
    """One radio line of the destination gateway and the unit the bench texts behind it."""

    name: str
    radio: str
    issi: str
    unit: str
    alias_issi: str  # how German radios address the unit

    @classmethod
    def first(cls, issi: str, alias: str) -> _RadioLine:
        """The demo's own line (``tetra-fr``) and its first unit."""
        return cls(name="tetra-fr", radio="", issi=issi, unit="", alias_issi=alias)

    @classmethod
    def added(cls, n: int) -> _RadioLine:
        """The n-th line (n >= 2), with a radio, a unit and an alias of its own."""
        return cls(
            name=f"tetra-fr-{n}",
            radio=f"90{n:05d}",
            issi=f"3{n:03d}",
            unit=f"fr.sdis67.bench-line-{n}",
            alias_issi=f"87{n:05d}",
        )

    def adapter(self, port: int) -> str:
        """The destination gateway's adapter and unit for this line."""
        return "\n".join(
            [
                "",
                "[[adapters]]",
                f'name = "{self.name}"',
                'type = "tetra"',
                'organisation = "sdis67"',
                'codebook = "fr-sdis67"',
                f'url = "tcp://127.0.0.1:{port}"',
                f'radio_issi = "{self.radio}"',
                "",
                "[[units]]",
                f'unit = "{self.unit}"',
                f'adapter = "{self.name}"',
                f'issi = "{self.issi}"',
                f'label = "Bench line {self.name}"',
                "",
            ]
        )

    def alias(self, adapter: str) -> str:
        """The origin gateway's alias for this line's unit, on its ``adapter``."""
        return "\n".join(
            [
                "",
                "[[aliases]]",
                f'issi = "{self.alias_issi}"',
                f'unit = "{self.unit}"',
                'nation = "FR"',
                f'adapter = "{adapter}"',
                f'label = "Bench line {self.name}"',
                "",
            ]
        )


def _sos_adapter(port: int, radio: str, unit: str, target_unit: str, alias: str) -> str:
    """A second TETRA adapter of gateway A for the emergency sender (its own PEI line)."""
    return "\n".join(
        [
            "",
            "[[adapters]]",
            'name = "tetra-de-sos"',
            'type = "tetra"',
            'organisation = "bos"',
            'codebook = "de-bos"',
            f'url = "tcp://127.0.0.1:{port}"',
            f'radio_issi = "{radio}"',
            "",
            "[[units]]",
            'unit = "de.bos.sos-bench"',
            'adapter = "tetra-de-sos"',
            f'issi = "{unit}"',
            'label = "Emergency sender"',
            "",
            "[[aliases]]",
            f'issi = "{alias}"',
            f'unit = "{target_unit}"',
            'nation = "FR"',
            'adapter = "tetra-de-sos"',
            'label = "Bench target"',
            "",
        ]
    )


# ---------------------------------------------------------------------- peer path


@contextlib.asynccontextmanager
async def peer_path(state: Path, options: BenchOptions) -> AsyncIterator[PathDriver]:
    """Broker A bridged to broker B over mutual TLS; raw payloads, QoS 1, FIFO."""
    from loadtests.mqtt_wire import connect

    pki = await asyncio.to_thread(_mint_bridge_pki, state)
    broker_b, tls_b = _free_port(), _free_port()
    broker_a = _free_port()
    (state / "b.conf").write_text(
        "\n".join(
            [
                "per_listener_settings false",
                "allow_anonymous true",
                "persistence false",
                *(["user root"] if os.geteuid() == 0 else []),
                f"listener {broker_b} 127.0.0.1",
                f"listener {tls_b} 127.0.0.1",
                f"cafile {pki['ca']}",
                f"certfile {pki['server_cert']}",
                f"keyfile {pki['server_key']}",
                "require_certificate true",
                "tls_version tlsv1.3",
                "",
            ]
        )
    )
    (state / "a.conf").write_text(
        "\n".join(
            [
                "allow_anonymous true",
                "persistence false",
                *(["user root"] if os.geteuid() == 0 else []),
                f"listener {broker_a} 127.0.0.1",
                "connection bridge-a-b",
                f"address 127.0.0.1:{tls_b}",
                "topic euccs/# out 1",
                "cleansession true",
                f"bridge_cafile {pki['ca']}",
                f"bridge_certfile {pki['client_cert']}",
                f"bridge_keyfile {pki['client_key']}",
                "bridge_tls_version tlsv1.3",
                "",
            ]
        )
    )
    probe, emergency_probe = Probe(), Probe()

    def received(topic: str, payload: bytes) -> None:
        number = int.from_bytes(payload[:8], "big")
        (emergency_probe if topic.endswith("emergency") else probe).mark_delivered(number)

    async with contextlib.AsyncExitStack() as stack:
        pids = {"bench (clients)": os.getpid()}
        for name, port in (("b", broker_b), ("a", broker_a)):
            pid = await stack.enter_async_context(_mosquitto(state / f"{name}.conf", port))
            pids[f"mosquitto {name.upper()}"] = pid
        receiver = await connect("127.0.0.1", broker_b, "bench-rx", subscribe="euccs/#")
        stack.callback(receiver.close)
        receiver.on_message = received
        sender = await connect("127.0.0.1", broker_a, "bench-tx")
        stack.callback(sender.close)
        sos_sender = await connect("127.0.0.1", broker_a, "bench-sos")
        stack.callback(sos_sender.close)
        await _wait_bridged(sender, probe)
        padding = bytes(PAYLOAD_BYTES - 8)

        async def routine(number: int) -> None:
            sender.publish("euccs/routine", number.to_bytes(8, "big") + padding)
            await sender.drain()

        async def emergency(number: int) -> None:
            sos_sender.publish("euccs/emergency", number.to_bytes(8, "big") + padding)
            await sos_sender.drain()

        yield PathDriver(
            name="peer",
            routine=routine,
            emergency=emergency,
            probe=probe,
            emergency_probe=emergency_probe,
            outstanding=2048,
            counters=functools.partial(_cpu_now, pids),
            notes=[
                "client -> Mosquitto A -> bridge (topic euccs/# out 1, mutual TLS 1.3) -> "
                "Mosquitto B -> client; QoS 1, persistence off, default queue limits",
                f"{PAYLOAD_BYTES}-byte raw payloads; emergencies on their own topic and "
                "connection (the bridge itself is one FIFO link)",
            ],
        )


async def _cpu_now(pids: dict[str, int]) -> dict[str, float]:
    return cpu_counters(pids)


async def _wait_bridged(sender: Any, probe: Probe) -> None:
    """Publish probes until one crosses the bridge (it connects asynchronously)."""
    async with asyncio.timeout(15):
        while not probe.delivered:
            sender.publish("euccs/routine", (0).to_bytes(8, "big") + bytes(PAYLOAD_BYTES - 8))
            probe.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(probe.arrived.wait(), 0.2)
    probe.delivered.clear()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _mosquitto(conf: Path, port: int) -> AsyncIterator[int]:
    """Run ``mosquitto -c conf`` until the context ends; wait until ``port`` accepts.

    Yields the broker's process id.
    """
    from gateway.mqtt_broker import find_mosquitto

    log = conf.with_suffix(".log").open("w")
    process = await asyncio.create_subprocess_exec(
        find_mosquitto(), "-c", str(conf), stdout=log, stderr=log
    )
    try:
        async with asyncio.timeout(10):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited: {conf.with_suffix('.log').read_text()}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()


def _mint_bridge_pki(state: Path) -> dict[str, Path]:
    """A throwaway CA, broker B's server certificate and the bridge's client certificate."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def issue(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        *,
        ca: bool = False,
        usage: x509.ObjectIdentifier | None = None,
    ) -> x509.Certificate:
        issuer_name, issuer_key = issuer or (name(subject), key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    paths: dict[str, Path] = {}

    def write(label: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        paths[f"{label}_cert"] = state / f"{label}.crt"
        paths[f"{label}_key"] = state / f"{label}.key"
        paths[f"{label}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{label}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths[f"{label}_key"].chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("bench bridge CA", ca_key, None, ca=True)
    write("ca_", ca, ca_key)
    paths["ca"] = paths["ca__cert"]
    for label, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        write(label, issue(f"bench {label}", key, (ca.subject, ca_key), usage=usage), key)
    return paths


# ---------------------------------------------------------------------- the run


async def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the selected paths; return the summary (figures and ratios)."""
    results: dict[str, PathFigures] = {}
    with tempfile.TemporaryDirectory(prefix="euccs-bench-") as tmp:
        for name in options.paths:
            state = Path(tmp) / name
            state.mkdir()
            factory = gateway_path if name == "gateway" else peer_path
            async with factory(state, options) as driver:
                results[name] = await measure(driver, options)
    return summarise(results)


def summarise(results: dict[str, PathFigures]) -> dict[str, Any]:
    """Figures of each path plus the gateway/peer ratios."""
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "paths": {name: asdict(figures) for name, figures in results.items()},
    }
    gateway, peer = results.get("gateway"), results.get("peer")
    if gateway and peer:
        summary["ratios"] = ratios(gateway, peer)
    if gateway:
        summary["targets"] = targets(gateway, summary.get("ratios", {}))
    return summary


def targets(gateway: PathFigures, found: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    """The performance targets, each with its measured value and whether it was met.

    ``met`` is None where this run did not measure it (one path only).
    """
    throughput = found.get("throughput_gateway_over_peer")
    emergency = found.get("emergency_p99_peer_over_gateway")
    lost = gateway.overload_emergency.lost if gateway.overload_emergency else None
    added = gateway.added.get("50%")
    within = added.within_5ms if added else None
    if lost:  # however fast the others were
        emergency_met: bool | None = False
    else:
        emergency_met = None if emergency is None or lost is None else emergency >= 20
    return {
        "throughput": {
            "target": "gateway/bridge throughput at least 1",
            "measured": throughput,
            "met": None if throughput is None else throughput >= 1.0,
        },
        "emergency": {
            "target": "emergency p99 under 2x overload at least 20x below the bridge's, none lost",
            "measured": emergency,
            "lost": lost,
            "met": emergency_met,
        },
        "gateway_added_p99_at_50": {
            "target": "gateway-added p99 at 50 % load under 5 ms (99 % within 5 ms)",
            "measured": within,
            "p99_at_most_ms": added.p99_at_most_ms if added else None,
            "met": None
            if added is None
            else added.p99_at_most_ms is not None and added.p99_at_most_ms <= 5.0,
        },
    }


def ratios(gateway: PathFigures, peer: PathFigures) -> dict[str, float | None]:
    """Gateway/peer throughput ratio and peer/gateway emergency-latency ratios."""

    def div(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or b == 0:
            return None
        return round(a / b, 3)

    ge, pe = gateway.overload_emergency, peer.overload_emergency
    return {
        "throughput_gateway_over_peer": div(gateway.capacity_msg_s, peer.capacity_msg_s),
        "emergency_p99_peer_over_gateway": div(
            pe.p99_ms if pe else None, ge.p99_ms if ge else None
        ),
        "emergency_lost_gateway": float(ge.lost) if ge else None,
        "emergency_lost_peer": float(pe.lost) if pe else None,
    }


def table(summary: dict[str, Any]) -> str:
    """The human-readable table of a summary."""
    lines = [f"{'':28}" + "".join(f"{name:>18}" for name in summary["paths"])]

    def row(label: str, pick: Callable[[dict[str, Any]], Any]) -> None:
        cells = []
        for figures in summary["paths"].values():
            try:
                value = pick(figures)
            except (KeyError, TypeError):
                value = None
            cells.append(f"{'-' if value is None else value:>18}")
        lines.append(f"{label:28}" + "".join(cells))

    row("capacity msg/s", lambda f: f"{f['capacity_msg_s']:,.0f}")
    for level in ("25%", "50%", "90%"):
        row(f"p50/p99 ms at {level}", functools.partial(_level_pair, level))
    row(
        "sender lag p99 ms 25/50/90%",
        lambda f: "/".join(
            _ms(f["levels"][lv]["sender_lag_p99_ms"]) for lv in ("25%", "50%", "90%")
        ),
    )
    row("emergency p50/p99 ms (2x)", lambda f: _pair(f["overload_emergency"]))
    row("emergency sender lag p99 (2x)", lambda f: f["overload_emergency"]["sender_lag_p99_ms"])
    row("emergency max ms (2x)", lambda f: f["overload_emergency"]["max_ms"])
    row("emergency p99 of sent (2x)", lambda f: _of_sent(f["overload_emergency"]))
    row(
        "emergency lost (2x)",
        lambda f: f"{f['overload_emergency']['lost']}/{f['overload_emergency']['sent']}",
    )
    row(
        "routine lost (2x)",
        lambda f: f"{f['overload_routine']['lost']}/{f['overload_routine']['sent']}",
    )
    for level in ("25%", "50%", "90%"):
        row(f"gateway-added at {level}", functools.partial(_added_cell, level))
    for name, figures in summary["paths"].items():
        if costs := figures.get("costs"):
            lines.append(f"{name}, per message at capacity: {_costs_text(costs)}")
    for key, value in summary.get("ratios", {}).items():
        lines.append(f"{key:40} {value}")
    for key, target in summary.get("targets", {}).items():
        met = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        lines.append(f"target {key:33} {met}: {target['target']} (measured {target['measured']})")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _added_cell(level: str, figures: dict[str, Any]) -> str | None:
    """p99 bound and share within 5 ms of the latency the gateways added at ``level``."""
    added = figures.get("added", {}).get(level)
    if not added:
        return None
    within = "-" if added["within_5ms"] is None else f"{100 * added['within_5ms']:.1f}%"
    return f"p99<={added['p99_at_most_ms']} {within}<=5"


def _of_sent(latency: dict[str, Any]) -> str | None:
    """The p99 over every message sent; "lost" when it falls on a lost message."""
    value = latency["p99_of_sent_ms"]
    if value is None:
        return "lost" if latency["sent"] else None
    return str(value)


def _level_pair(level: str, figures: dict[str, Any]) -> str:
    return _pair(figures["levels"][level])


def _pair(latency: dict[str, Any]) -> str:
    return f"{latency['p50_ms']}/{latency['p99_ms']}"


def main(options: BenchOptions, *, as_json: bool, plot: str | None = None) -> int:
    """Run, print the table (and the JSON line); 0 when every path produced figures."""
    from gateway.logs import configure_logging
    from gateway.mqtt_broker import BrokerError, find_mosquitto

    configure_logging("error")
    try:
        find_mosquitto()
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(run_bench(options))
    print(table(summary), file=options.out if as_json else sys.stdout)
    if plot:
        draw(summary, Path(plot))
        options.say(f"plot written to {plot}")
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    ok = all(p["capacity_msg_s"] > 0 for p in summary["paths"].values())
    return 0 if ok else 1


def draw(summary: dict[str, Any], png: Path) -> None:
    """Latency (p50, p99) against offered load for each path, log scale, to ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, figures in summary["paths"].items():
        levels = figures["levels"]
        rates = [levels[k]["offered_rate"] for k in levels if levels[k]["p50_ms"] is not None]
        for pct, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            values = [levels[k][pct] for k in levels if levels[k]["p50_ms"] is not None]
            left.plot(rates, values, style, label=f"{name} {pct[:-3]}")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("offered load (messages/s, 25/50/90 % of each path's capacity)")
    left.set_ylabel("end-to-end latency (ms)")
    left.set_title("Latency against load")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    names = list(summary["paths"])
    emergency = [summary["paths"][n]["overload_emergency"] or {} for n in names]
    positions = range(len(names))
    right.bar(
        [p - 0.2 for p in positions],
        [e.get("p99_ms") or 0 for e in emergency],
        width=0.4,
        label="p99 latency (ms)",
    )
    right.bar(
        [p + 0.2 for p in positions],
        [e.get("lost") or 0 for e in emergency],
        width=0.4,
        label="emergencies lost",
    )
    right.set_xticks(list(positions), names)
    right.set_title("Emergency messages under 2x overload")
    right.legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    plt.close(figure)
