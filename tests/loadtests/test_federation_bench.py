"""``euccs-gw bench``: its arithmetic, its MQTT load client, and a short real run of both paths."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway._toml import Table
from gateway.mqtt_link import parse_mqtt_settings
from loadtests import federation_bench as fb
from loadtests.mqtt_wire import connect
from tests.gateway.federation import eventually

ROOT = Path(__file__).resolve().parents[2]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert fb._percentile(values, 50) == 50.0
    assert fb._percentile(values, 99) == 99.0
    assert fb._percentile(values, 100) == 100.0
    assert fb._percentile([], 50) is None
    assert fb._percentile([7.0], 99) == 7.0


@contextlib.asynccontextmanager
async def _metrics_server(answers: list[tuple[int, str]]) -> AsyncIterator[int]:
    """A /metrics endpoint giving ``answers`` in turn (the last one for ever)."""
    from aiohttp import web

    async def metrics(_request: web.Request) -> web.Response:
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.Response(status=status, text=body)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


BUSY = """# HELP euccs_queue_depth Messages waiting per queue and priority.
euccs_queue_depth{priority="routine",queue="egress:FR"} 3
euccs_queue_depth{priority="emergency",queue="egress:FR"} 0
euccs_in_flight{partner="FR"} 2
euccs_queue_spilled{queue="egress:FR"} 1
"""
IDLE = (
    'euccs_queue_depth{priority="routine",queue="egress:FR"} 0\neuccs_in_flight{partner="FR"} 0\n'
)


async def test_a_gateway_is_busy_with_what_its_metrics_say_is_queued_or_in_flight() -> None:
    async with _metrics_server([(200, BUSY)]) as port:
        assert await fb._busy(port) == 6
    async with _metrics_server([(404, "not here")]) as port:
        assert await fb._busy(port) == -1
    async with _metrics_server([(200, "something_else 0\n")]) as port:
        assert await fb._busy(port) == -1  # not a gateway's metrics
    assert await fb._busy(fb._free_port()) == -1  # nobody listening


async def test_settle_waits_for_two_idle_polls_and_counts_a_busy_gateway_to_the_deadline() -> None:
    out = io.StringIO()
    options = fb.BenchOptions(drain_seconds=0.5, out=out)
    async with _metrics_server([(200, BUSY), (200, IDLE), (200, BUSY), (200, IDLE)]) as port:
        before = time.perf_counter()
        idle_at = await fb._settle([port], options)
        assert idle_at > before
        assert time.perf_counter() - idle_at > 0.04  # the second idle poll came after it
    assert out.getvalue() == ""
    async with _metrics_server([(200, BUSY)]) as port:
        started = time.perf_counter()
        end = await fb._settle([port], options)
        assert end - started >= 0.5
    assert "still busy" in out.getvalue()


async def test_a_lossy_path_is_not_slowed_down_by_its_own_losses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fb, "LOST_AFTER", 0.1)
    probe = fb.Probe()

    async def every_other_one(number: int) -> None:
        if number % 2 == 0:
            probe.mark_delivered(number)

    numbers, rate = await fb._saturate(every_other_one, probe, 0.6, 4)
    # Four lost messages would stall a sender that waits for them; this one goes on.
    assert len(numbers) > 20
    assert rate > 0


async def test_probe_counts_losses_and_keeps_the_first_arrival() -> None:
    probe = fb.Probe()
    numbers = [probe.number() for _ in range(4)]
    for number in numbers:
        probe.sent[number] = 10.0
    probe.delivered[1] = 10.002
    probe.delivered[2] = 10.004
    probe.mark_delivered(2)  # a duplicate keeps its first time
    window = probe.window(range(1, 5))
    assert (window.sent, window.delivered, window.lost) == (4, 2, 2)
    assert window.p50_ms == pytest.approx(2.0)
    assert window.max_ms == pytest.approx(4.0)
    assert window.p99_ms == pytest.approx(4.0)  # of the delivered ones
    assert window.p99_of_sent_ms is None  # of all sent: it falls on a lost one


def test_the_p99_of_sent_counts_a_lost_message_as_never_delivered() -> None:
    probe = fb.Probe()
    for number in range(1, 201):
        probe.number()
        probe.sent[number] = 10.0
        if number != 7:  # one lost in 200: the p99 of all sent is still a delivered one
            probe.delivered[number] = 10.0 + number / 1000
    window = probe.window(range(1, 201))
    assert window.lost == 1 and window.p99_of_sent_ms == pytest.approx(199.0)
    assert window.p99_ms == pytest.approx(199.0)
    summary = fb.summarise({"gateway": fb.PathFigures("gateway", overload_emergency=window)})
    assert "emergency p99 of sent (2x)" in fb.table(summary)


def test_a_fixed_rate_the_path_did_not_keep_up_with_is_noted() -> None:
    probe = fb.Probe()
    numbers = range(1, 101)
    for number in numbers:  # 100 messages offered at 100 per second
        probe.number()
        probe.sent[number] = 10.0 + (number - 1) / 100
    for number in numbers[:50]:  # kept up
        probe.delivered[number] = probe.sent[number] + 0.005
    kept_up = probe.window(range(1, 51))
    kept_up.offered_rate = 100.0
    assert kept_up.delivered_rate == pytest.approx(100, rel=0.02)
    assert fb.unsustained("50%", kept_up) is None
    for number in numbers[50:]:  # the second half arrives over two more seconds
        probe.delivered[number] = 10.5 + (number - 50) * 0.04
    overloaded = probe.window(numbers)
    overloaded.offered_rate = 100.0
    assert overloaded.delivered_rate == pytest.approx(100 / 2.5, rel=0.02)
    note = fb.unsustained("90%", overloaded)
    assert note is not None and "40 msg/s were delivered of 100 offered" in note
    assert fb.unsustained("90%", fb.Latency(0.0, 0, 0, 0, None, None, None, None)) is None


def _figures(name: str, capacity: float, p99: float, lost: int) -> fb.PathFigures:
    emergency = fb.Latency(10.0, 30, 30 - lost, lost, 1.0, 2.0, p99, p99)
    return fb.PathFigures(name=name, capacity_msg_s=capacity, overload_emergency=emergency)


def test_ratios_compare_gateway_and_peer() -> None:
    ratios = fb.ratios(_figures("gateway", 500.0, 2.0, 0), _figures("peer", 1000.0, 40.0, 7))
    assert ratios["throughput_gateway_over_peer"] == 0.5
    assert ratios["emergency_p99_peer_over_gateway"] == 20.0
    assert ratios["emergency_lost_gateway"] == 0.0
    assert ratios["emergency_lost_peer"] == 7.0
    missing = fb.ratios(_figures("gateway", 0.0, 2.0, 0), _figures("peer", 0.0, 40.0, 0))
    assert missing["throughput_gateway_over_peer"] is None


def test_costs_are_what_each_counter_grew_by_per_message() -> None:
    before = {"cpu_ms/gw": 10.0, "commits/gw": 100.0, "gone": 1.0}
    after = {"cpu_ms/gw": 10.5, "commits/gw": 160.0, "new": 5.0}
    costs = fb.per_message(before, after, 100)
    # CPU seconds become milliseconds; a counter seen only once is left out.
    assert costs == {"cpu_ms/gw": 5.0, "commits/gw": 0.6}
    assert fb.per_message(before, after, 0) == {}
    line = fb.table({"paths": {"gateway": {"capacity_msg_s": 1.0, "levels": {}, "costs": costs}}})
    assert "gateway, per message at capacity: commits gw 0.6, CPU ms gw 5" in line


def test_the_latency_the_gateways_added_comes_from_histogram_growth() -> None:
    inf = float("inf")
    before = {0.005: 10.0, 0.01: 10.0, 0.025: 10.0, inf: 10.0}
    # 100 more: 97 within 5 ms, 2 within 10 ms, 1 within 25 ms.
    after = {0.005: 107.0, 0.01: 109.0, 0.025: 110.0, inf: 110.0}
    added = fb.added_latency(before, after)
    assert added == fb.Added(count=100, within_5ms=0.97, p50_at_most_ms=5.0, p99_at_most_ms=10.0)
    assert fb.added_latency(after, after) is None  # nothing delivered meanwhile
    assert fb.added_latency({}, {}) is None  # no histogram (no gateways)
    # Beyond the last finite bound the p99 is not known.
    slow = fb.added_latency({}, {0.005: 0.0, inf: 3.0})
    assert slow is not None and slow.p99_at_most_ms is None and slow.within_5ms == 0.0


def test_nearest_rank_of_the_added_latency_rounds_up() -> None:
    inf = float("inf")
    # 150 texts: rank 75 is the p50 (75 within 5 ms: exactly at the bound), rank 149 the p99.
    within_five = fb.added_latency({}, {0.005: 75.0, 0.01: 148.0, 0.025: 150.0, inf: 150.0})
    assert within_five is not None and within_five.p50_at_most_ms == 5.0
    assert within_five.p99_at_most_ms == 25.0  # 148 < 149: the 149th is beyond 10 ms
    one_short = fb.added_latency({}, {0.005: 74.0, 0.01: 150.0, inf: 150.0})
    assert one_short is not None and one_short.p50_at_most_ms == 10.0
    assert fb.added_latency(None, {0.005: 1.0, inf: 1.0}) is None  # a failed reading
    assert fb.added_latency({0.005: 1.0, inf: 1.0}, None) is None


def _gateway(lost: int, within: float, p99_at_most: float | None) -> fb.PathFigures:
    figures = fb.PathFigures(name="gateway")
    figures.overload_emergency = fb.Latency(10.0, 99, 99 - lost, lost, 1.0, 1.5, 2.0, 2.0)
    figures.added["50%"] = fb.Added(
        count=1000, within_5ms=within, p50_at_most_ms=5.0, p99_at_most_ms=p99_at_most
    )
    return figures


@pytest.mark.parametrize(
    ("throughput", "emergency", "lost", "within", "p99", "expected"),
    [
        (1.0, 20.0, 0, 0.99, 5.0, (True, True, True)),  # each exactly at its bound
        (0.999, 19.9, 0, 0.989, 10.0, (False, False, False)),  # each just short
        (2.0, 50.0, 1, 1.0, 5.0, (True, False, True)),  # one emergency lost
        (2.0, None, 99, 1.0, 5.0, (True, False, True)),  # all lost: no p99 at all
        (None, None, 0, 0.5, None, (None, None, False)),  # gateway only: no ratios
    ],
)
def test_each_target_is_judged_at_its_bound(
    throughput: float | None,
    emergency: float | None,
    lost: int,
    within: float,
    p99: float | None,
    expected: tuple[bool | None, bool | None, bool | None],
) -> None:
    found = {
        "throughput_gateway_over_peer": throughput,
        "emergency_p99_peer_over_gateway": emergency,
    }
    met = fb.targets(_gateway(lost, within, p99), found)
    assert (
        met["throughput"]["met"],
        met["emergency"]["met"],
        met["gateway_added_p99_at_50"]["met"],
    ) == expected
    assert ("NOT met" in fb.table({"paths": {}, "targets": met})) == (False in expected)


_EXPOSITION = """\
# TYPE euccs_journal_commits_total counter
euccs_journal_commits_total 120
# TYPE euccs_journal_operations_total counter
euccs_journal_operations_total 480
euccs_end_to_end_latency_seconds_bucket{measured_at="destination",priority="routine",le="0.005"} 7
euccs_end_to_end_latency_seconds_bucket{measured_at="destination",priority="routine",le="+Inf"} 9
euccs_end_to_end_latency_seconds_bucket{measured_at="destination",priority="emergency",le="0.005"} 1
euccs_end_to_end_latency_seconds_bucket{measured_at="origin",priority="routine",le="0.005"} 3
euccs_end_to_end_latency_seconds_count{measured_at="destination",priority="routine"} 9
"""


def test_the_metrics_parsers_take_only_their_own_series() -> None:
    assert fb.destination_buckets(_EXPOSITION) == {0.005: 7.0, float("inf"): 9.0}
    assert fb.journal_counters(_EXPOSITION, "gw") == {
        "commits/gw": 120.0,
        "operations/gw": 480.0,
    }
    assert fb.destination_buckets("") == {} and fb.journal_counters("", "gw") == {}


def test_a_fixed_rate_phase_reports_how_late_the_sender_was() -> None:
    probe = fb.Probe()
    for number, lag in ((1, 0.0005), (2, 0.004)):
        probe.number()
        probe.sent[number] = 10.0
        probe.lag[number] = lag
        probe.delivered[number] = 10.01
    window = probe.window(range(1, 3))
    assert window.sender_lag_p99_ms == pytest.approx(4.0)
    assert window.sender_lag_max_ms == pytest.approx(4.0)
    assert fb.Probe().window(range(1, 2)).sender_lag_p99_ms is None


def test_summary_table_shows_missing_figures_as_dashes() -> None:
    summary = fb.summarise({"gateway": _figures("gateway", 500.0, 2.0, 0)})
    text = fb.table(summary)
    assert "capacity msg/s" in text and "500" in text
    assert "p50/p99 ms at 25%" in text and " -" in text  # no level was measured
    assert "ratios" not in summary


def test_phase_lengths_and_radio_lines_are_validated() -> None:
    assert fb.BenchOptions().scaled(20).capacity_seconds == 20
    with pytest.raises(ValueError, match="between 1 and 600"):
        fb.BenchOptions().scaled(0.1)
    options = fb.BenchOptions.quick().with_radio_lines(2)
    assert (options.radio_lines, options.capacity_seconds) == (2, 3.0)
    assert options.scaled(5).radio_lines == 2
    for bad in (0, fb.MAX_RADIO_LINES + 1):
        with pytest.raises(ValueError, match="--radio-lines must be between 1 and 16"):
            fb.BenchOptions().with_radio_lines(bad)


def test_the_linger_is_validated_and_reaches_the_gateways_link_settings() -> None:
    options = fb.BenchOptions.quick().with_linger(2)
    assert options.scaled(5).linger_ms == 2
    for bad in (-1.0, fb.MAX_LINGER_MS + 1):
        with pytest.raises(ValueError, match="--linger-ms must be between 0 and 1000"):
            fb.BenchOptions().with_linger(bad)
    table = "\n".join(
        [
            "[federation.mqtt]",
            'host = "127.0.0.1"',
            'cert = "c.pem"',
            'key = "k.pem"',
            'bundle = "b"',
            "",
        ]
    )
    assert fb._tuned(table, fb.BenchOptions()) == table  # the gateway's default stays

    def linger(text: str) -> float:
        data = tomllib.loads(text)["federation"]["mqtt"]
        return parse_mqtt_settings(Table(data, "federation.mqtt")).linger

    assert linger(table) == 0.005
    assert linger(fb._tuned(table, options)) == 0.002
    assert linger(fb._tuned(table, fb.BenchOptions().with_linger(0))) == 0.0


@pytest.mark.interop
async def test_wire_client_round_trip_through_a_real_broker(tmp_path: Path) -> None:
    port = fb._free_port()
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    got: list[tuple[str, bytes]] = []
    async with fb._mosquitto(conf, port):
        receiver = await connect("127.0.0.1", port, "rx", subscribe="t/#", on_message=None)
        receiver.on_message = lambda topic, payload: got.append((topic, payload))
        sender = await connect("127.0.0.1", port, "tx")
        for n in range(100):
            sender.publish("t/x", n.to_bytes(4, "big") * 64)
        await sender.drain()
        await eventually(lambda: len(got) >= 100 and sender.acked >= 100, 10.0)
        sender.close()
        receiver.close()
    assert [int.from_bytes(p[:4], "big") for _, p in got] == list(range(100))
    assert {len(p) for _, p in got} == {256}
    assert sender.acked == 100  # every QoS 1 publish was acknowledged


@pytest.mark.slow
@pytest.mark.interop
async def test_short_run_of_both_paths_gives_figures_and_ratios() -> None:
    out = io.StringIO()
    options = fb.BenchOptions(
        capacity_seconds=1.5,
        level_seconds=0.6,
        overload_seconds=1.0,
        drain_seconds=4.0,
        out=out,
    )
    summary = await fb.run_bench(options)
    json.dumps(summary)  # the --json line is serialisable
    for name in ("gateway", "peer"):
        figures = summary["paths"][name]
        assert figures["capacity_msg_s"] > 0, name
        assert set(figures["levels"]) == {"25%", "50%", "90%"}
        for latency in figures["levels"].values():
            assert latency["sent"] > 0 and latency["delivered"] > 0
        # One every 100 ms for 1 s, paced by a process that also runs the overload: on a
        # busy machine some ticks come late.
        assert figures["overload_emergency"]["sent"] >= 3, name
    # The gateway never loses an emergency message, whatever the routine overload.
    assert summary["paths"]["gateway"]["overload_emergency"]["lost"] == 0
    assert summary["ratios"]["throughput_gateway_over_peer"] is not None
    progress = out.getvalue()
    assert "[gateway] capacity" in progress and "[peer] emergencies" in progress
    # Texts went to every radio line of the destination gateway.
    notes = summary["paths"]["gateway"]["notes"]
    per_line = next(n for n in notes if n.startswith("SDS delivered per radio line: "))
    counts = [int(c) for c in per_line.rsplit(": ", 1)[1].split("/")]
    assert len(counts) == options.radio_lines == 8
    assert all(c > 0 for c in counts), counts
    # What each message cost, by process: the gateways' CPU and journal commits.
    costs = summary["paths"]["gateway"]["costs"]
    for gateway in ("gw-de-kehl", "gw-fr-strasbourg"):
        assert costs[f"cpu_ms/{gateway}"] > 0
        assert 0 < costs[f"commits/{gateway}"] <= costs[f"operations/{gateway}"]
    assert summary["paths"]["peer"]["costs"]["cpu_ms/mosquitto A"] > 0
    # The latency the gateways added, at every level, from the destination's histogram.
    added = summary["paths"]["gateway"]["added"]
    assert set(added) == {"25%", "50%", "90%"}
    assert all(a["count"] > 0 and 0 <= a["within_5ms"] <= 1 for a in added.values())
    assert summary["paths"]["peer"]["added"] == {}
    assert set(summary["targets"]) == {"throughput", "emergency", "gateway_added_p99_at_50"}
    assert all(t["met"] in (True, False) for t in summary["targets"].values())


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (["--seconds", "0.1"], "error: --seconds must be between 1 and 600"),
        (["--radio-lines", "0"], "error: --radio-lines must be between 1 and 16"),
        (["--linger-ms", "-1"], "error: --linger-ms must be between 0 and 1000"),
    ],
)
def test_bench_command_line_refuses_bad_values(option: list[str], error: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "bench", *option],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert error in result.stderr


async def test_latency_counts_from_when_a_message_was_due_not_when_it_went() -> None:
    """A first hop that takes 20 ms per message at 200 msg/s holds the sender back."""
    probe = fb.Probe()

    async def slow_first_hop(number: int) -> None:
        await asyncio.sleep(0.02)
        probe.mark_delivered(number)  # delivered the moment it got through

    numbers = await fb._open_loop(slow_first_hop, probe, 200.0, 0.3)
    window = probe.window(numbers)
    # Sent one at a time, each waited behind the ones before it: the wait is latency.
    assert window.max_ms is not None and window.max_ms > 100
    window.offered_rate = 200.0
    assert fb.unsustained("90%", window) is not None  # and the rate was not reached


class _FakeClock:
    """``time.perf_counter`` and ``asyncio.sleep`` on a clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleep = asyncio.sleep

    def perf_counter(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await self._sleep(0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    """The bench's clock and ``asyncio.sleep`` on a fake clock for the test."""
    fake = _FakeClock()
    monkeypatch.setattr(fb, "time", fake)
    monkeypatch.setattr(asyncio, "sleep", fake.sleep)
    return fake


async def test_a_message_goes_when_it_is_due_not_one_interval_later(clock: _FakeClock) -> None:
    """At 50 msg/s a message is due every 20 ms; the sender's tick is 2 ms.

    Each one must go within a tick of its due time. (Counting the first one due only after
    one interval made every message look one interval, 1/rate, slower than it was.)
    """
    probe = fb.Probe()

    async def instant(number: int) -> None:
        probe.mark_delivered(number)

    numbers = await fb._open_loop(instant, probe, 50.0, 1.0)
    window = probe.window(numbers)
    assert window.sent == 50
    assert window.max_ms is not None and window.max_ms <= 2.0 + 1e-6
    assert probe.sent[numbers[0]] == 1000.0  # the first was due at the start
    assert window.sender_lag_max_ms is not None and window.sender_lag_max_ms <= 2.0 + 1e-6


async def test_a_sparse_stream_counts_from_when_each_message_went(clock: _FakeClock) -> None:
    """Emergencies: a late tick of the load generator is its lag, not the path's latency."""
    probe = fb.Probe()

    async def busy_generator_then_instant(number: int) -> None:
        probe.mark_delivered(number)
        clock.now += 0.03  # the overloading sender holds the loop for 30 ms after each

    numbers = await fb._open_loop(busy_generator_then_instant, probe, 50.0, 0.5, from_due=False)
    window = probe.window(numbers)
    assert window.max_ms == 0.0  # delivered the moment it went
    assert window.sender_lag_max_ms is not None and window.sender_lag_max_ms > 10.0


async def test_the_saturating_sender_keeps_the_number_outstanding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deliveries out of order free their places; a message given up on frees its own."""
    monkeypatch.setattr(fb, "LOST_AFTER", 0.2)
    probe = fb.Probe()
    peak = 0

    async def newest_first(number: int) -> None:
        nonlocal peak
        now = time.perf_counter()
        in_flight = [
            n
            for n in range(1, number)
            if n not in probe.delivered and now - probe.sent[n] < fb.LOST_AFTER
        ]
        peak = max(peak, len(in_flight))
        if number % 3 == 0:  # every third one delivers the two before it
            probe.mark_delivered(number - 1)
            probe.mark_delivered(number - 2)
        if number % 30 == 0:
            probe.mark_delivered(number)  # the rest (every third) is never delivered

    numbers, _rate = await fb._saturate(newest_first, probe, 0.6, 8)
    assert 0 < peak < 8  # the one being sent makes it eight
    assert len(numbers) > 40  # given-up ones stopped holding the sender back
