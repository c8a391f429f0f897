"""Several instances of one gateway (``gateway/cluster.py``): the ``[cluster]`` table, the
active/standby supervisor against a real PostgreSQL, and the takeover when the active
instance is killed with SIGKILL during traffic, with real ``euccs-gw run`` processes, a
real PostgreSQL journal and a real Mosquitto broker with mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from adapters.tetra import TetraNetworkSimulator
from gateway.cluster import ActiveStandby, home_resource, instance_id, lease_resource
from gateway.config import parse_config
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from gateway.leases import Lease, LeaseStore
from loadtests._postgres import fresh_database
from protocols.errors import ConfigError, LinkError
from tests.gateway.federation import eventually
from tests.processes import (
    STORED,
    arrivals,
    log_events,
    mqtt_backbone,
    over_mqtt,
    radios_initialised,
    reports_with,
    start_gateways,
)

_MQTT = """
[federation.mqtt]
host = "broker"
cert = "de.pem"
key = "de.key"
bundle = "bundle"
"""
_URL = "postgresql://gw@db/euccs"


def _config(cluster: str, *, journal: str = f'[journal]\nurl = "{_URL}"\n') -> Any:
    text = over_mqtt(demo_config_text("DE", partner="FR"), _MQTT, journal, cluster)
    return parse_config(text)


# ---------------------------------------------------------------------- configuration


def test_cluster_table_defaults_and_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config("[cluster]\n")
    assert config.cluster is not None
    assert config.cluster.lease_ttl == 10.0
    monkeypatch.delenv("EUCCS_INSTANCE", raising=False)
    assert re.fullmatch(r".+-\d+", instance_id(config))
    monkeypatch.setenv("EUCCS_INSTANCE", "kehl-b")
    assert instance_id(config) == "kehl-b"
    assert instance_id(config, "kehl-c") == "kehl-c"
    named = _config('[cluster]\ninstance = "kehl-a"\nlease_ttl = 4\n')
    assert named.cluster is not None and named.cluster.lease_ttl == 4.0
    assert instance_id(named) == "kehl-a"
    assert instance_id(named, "kehl-c") == "kehl-c"
    assert _config("").cluster is None
    assert lease_resource("gw-de-kehl") == "gateway:gw-de-kehl"


@pytest.mark.parametrize(
    ("cluster", "journal", "message"),
    [
        ("[cluster]\n", "", "must share their journal: set \\[journal\\] url"),
        ("[cluster]\n", '[journal]\npath = "j.sqlite3"\n', "must share their journal"),
        ('[cluster]\ninstance = "a b"\n', None, "cluster.instance: 'a b' is not an instance id"),
        ("[cluster]\nlease_ttl = 0.5\n", None, "cluster.lease_ttl: 0.5 is below the minimum"),
        ("[cluster]\nlease_ttl = 600\n", None, "cluster.lease_ttl: 600 s is too long"),
        ("[cluster]\nleases = 1\n", None, "cluster.leases: unknown key"),
        ('[cluster]\nhome = "a/b"\n', None, "cluster.home: 'a/b' is not an instance id"),
    ],
)
def test_cluster_table_errors_name_the_key(cluster: str, journal: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        if journal is None:
            _config(cluster)
        else:
            _config(cluster, journal=journal)


def test_cluster_needs_the_mqtt_transport() -> None:
    text = demo_config_text("DE", partner="FR") + f'\n[journal]\nurl = "{_URL}"\n\n[cluster]\n'
    with pytest.raises(ConfigError, match=r"set federation\.transport = 'mqtt'"):
        parse_config(text)


# ---------------------------------------------------------------------- supervisor


def _fresh(postgres_url: str, home: str | None = None) -> tuple[str, Any]:
    """A new database, and a clustered configuration whose journal is in it."""
    url = fresh_database(postgres_url)
    cluster = "[cluster]\nlease_ttl = 1.5\n" + (f'home = "{home}"\n' if home else "")
    return url, _config(cluster, journal=f'[journal]\nurl = "{url}"\n')


class _Runs:
    """A fake gateway start: records the leases it ran under; can fail on demand."""

    def __init__(self) -> None:
        self.leases: list[Lease] = []
        self.running = 0
        self.fail_with: Exception | None = None
        self.stopped = asyncio.Event()

    @contextlib.asynccontextmanager
    async def start(self, lease: Lease) -> AsyncIterator[Awaitable[Any]]:
        if self.fail_with is not None:
            raise self.fail_with
        self.leases.append(lease)
        self.running += 1
        try:
            yield asyncio.Event().wait()
        finally:
            self.running -= 1
            self.stopped.set()


async def test_one_instance_is_active_and_the_other_takes_over_on_stop(
    postgres_url: str,
) -> None:
    url, config = _fresh(postgres_url)
    a, b = _Runs(), _Runs()
    async with ActiveStandby(config, instance="kehl-a", start=a.start) as first:
        await eventually(lambda: first.active)
        async with ActiveStandby(config, instance="kehl-b", start=b.start) as second:
            await asyncio.sleep(1.0)  # more than an acquisition interval: b stays standby
            assert (a.running, b.running) == (1, 0)
            assert not second.active
            await first.__aexit__(None, None, None)  # a clean stop releases at once
            assert a.running == 0
            began = time.monotonic()
            await eventually(lambda: second.active)
            assert time.monotonic() - began < 1.5, "a released lease waits for expiry"
            await eventually(lambda: b.running == 1)  # its start runs in the active task
            assert b.leases[0].fencing > a.leases[0].fencing
            holder = LeaseStore(url)
            try:
                held = holder.holder(lease_resource(config.name))
                assert held is not None and held.owner == second.owner
                assert held.owner.startswith("kehl-b/")
            finally:
                holder.close()
        assert b.running == 0, "leaving the block stops the gateway"
    assert (first.activations, second.activations) == (1, 1)


async def test_a_gateway_runs_at_its_home_instance_whenever_that_one_is_up(
    postgres_url: str,
) -> None:
    _url, config = _fresh(postgres_url, home="kehl-a")
    assert config.cluster is not None and config.cluster.home == "kehl-a"
    home, away = _Runs(), _Runs()
    async with ActiveStandby(config, instance="kehl-b", start=away.start) as second:
        # Its home instance is down: another instance runs it meanwhile.
        await eventually(lambda: away.running == 1)
        async with ActiveStandby(config, instance="kehl-a", start=home.start) as first:
            # Home is up: the gateway is handed back, by a clean release.
            await eventually(lambda: home.running == 1, seconds=10)
            assert away.running == 0
            assert second._keeper is not None and second._keeper.counters["handed_over"] == 1
            await asyncio.sleep(1.5)  # several acquisition intervals: it stays at home
            assert (home.running, away.running) == (1, 0)
            assert first.active and not second.active
        # Home stopped (its instance lease released): the other instance takes it again.
        await eventually(lambda: away.running == 1, seconds=10)
    assert home.leases[0].fencing > away.leases[0].fencing
    assert away.leases[1].fencing > home.leases[0].fencing


async def test_a_home_instance_that_does_not_take_its_gateway_leaves_it_running_elsewhere(
    postgres_url: str,
) -> None:
    """Home is up (its lease is held) but never takes the gateway: another one runs it."""
    url, config = _fresh(postgres_url, home="kehl-a")
    store = LeaseStore(url)
    try:
        home = store.acquire(home_resource(config.name), "kehl-a/stuck", 60)
        assert home is not None
        away = _Runs()
        with structlog.testing.capture_logs() as logs:
            async with ActiveStandby(config, instance="kehl-b", start=away.start) as member:
                began = time.monotonic()
                await eventually(lambda: away.running == 1, seconds=15)
                assert time.monotonic() - began >= 2 * 1.5 - 0.5  # free for two ttls first
                await asyncio.sleep(2.0)  # several renewals: not handed back to a stuck home
                assert away.running == 1 and member.active
                # The home instance restarts (a new home lease): now it gets its gateway.
                store.release(home)
                assert store.acquire(home_resource(config.name), "kehl-a/new", 60) is not None
                await eventually(lambda: away.running == 0, seconds=10)
        assert any(e["event"] == "cluster.home_not_taking" for e in logs)
        assert any(e["event"] == "cluster.handing_back" for e in logs)
    finally:
        store.close()


async def test_a_home_instance_never_seen_is_warned_about_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped home ("de2" for "de-2"): the gateway runs elsewhere, and the log says why."""
    monkeypatch.setattr("gateway.cluster._HOME_GRACE", 0.5)
    _url, config = _fresh(postgres_url, home="kehl2")
    away = _Runs()
    with structlog.testing.capture_logs() as logs:
        async with ActiveStandby(config, instance="kehl-1", start=away.start):
            await eventually(lambda: away.running == 1)
            await eventually(lambda: any(e["event"] == "cluster.home_never_seen" for e in logs))
            await asyncio.sleep(1.5)  # several renewals: one warning only
    warned = [e for e in logs if e["event"] == "cluster.home_never_seen"]
    assert len(warned) == 1 and warned[0]["home"] == "kehl2"


class _SlowToStop(_Runs):
    """A gateway whose stop hangs (a journal commit stuck on a dead connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.unstick = asyncio.Event()

    @contextlib.asynccontextmanager
    async def start(self, lease: Lease) -> AsyncIterator[Awaitable[Any]]:
        self.leases.append(lease)
        try:
            yield asyncio.Event().wait()
        finally:
            await self.unstick.wait()


async def test_an_instance_whose_gateway_hangs_in_its_stop_still_takes_the_lease_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    monkeypatch.setattr("gateway.cluster.STOP_TIMEOUT", 0.5)
    url, config = _fresh(postgres_url)
    runs = _SlowToStop()
    with structlog.testing.capture_logs() as logs:
        async with ActiveStandby(config, instance="kehl-a", start=runs.start) as member:
            await eventually(lambda: member.active and len(runs.leases) == 1)
            # Another owner holds the lease for a moment (our renewal is refused).
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE euccs_leases SET owner = 'intruder', fencing = fencing + 1,"
                    " expires_at = now() + interval '1 second' WHERE resource = %s",
                    (lease_resource(config.name),),
                )
            await eventually(lambda: len(runs.leases) == 2, seconds=10)
            assert runs.leases[1].fencing > runs.leases[0].fencing + 1
            runs.unstick.set()
    assert any(e["event"] == "cluster.stop_timeout" for e in logs)


class _Overlap:
    """Gateways of several instances that take ``stop_seconds`` to stop; counts the most
    that ran at once (a stop in progress counts as running)."""

    def __init__(self, stop_seconds: float) -> None:
        self.stop_seconds = stop_seconds
        self.running = 0
        self.most = 0
        self.stopping = asyncio.Event()

    def runs(self) -> _Runs:
        overlap = self

        class _Slow(_Runs):
            @contextlib.asynccontextmanager
            async def start(self, lease: Lease) -> AsyncIterator[Awaitable[Any]]:
                self.leases.append(lease)
                self.running += 1
                overlap.running += 1
                overlap.most = max(overlap.most, overlap.running)
                try:
                    yield asyncio.Event().wait()
                finally:
                    overlap.stopping.set()
                    await asyncio.sleep(overlap.stop_seconds)
                    overlap.running -= 1
                    self.running -= 1

        return _Slow()


async def test_an_instance_stopped_while_it_hands_its_gateway_back_never_overlaps_home(
    postgres_url: str,
) -> None:
    """The away instance stops during the hand-back, while its gateway's stop is still
    under way: it releases the lease only once that stop is over, so the home instance
    never runs the gateway beside it."""
    _url, config = _fresh(postgres_url, home="kehl-a")
    overlap = _Overlap(stop_seconds=1.0)  # slower than a renewal, shorter than the ttl
    home, away = overlap.runs(), overlap.runs()
    async with ActiveStandby(config, instance="kehl-b", start=away.start) as second:
        await eventually(lambda: away.running == 1)
        async with ActiveStandby(config, instance="kehl-a", start=home.start):
            await asyncio.wait_for(overlap.stopping.wait(), 15)  # the hand-back began
            assert away.running == 1  # its stop is still under way
            await second.__aexit__(None, None, None)  # the instance stops meanwhile
            assert away.running == 0, "the stop returned before its gateway had stopped"
            await eventually(lambda: home.running == 1, seconds=10)
    assert overlap.most == 1, "the home instance ran the gateway beside a stopping one"
    assert home.leases[0].fencing > away.leases[0].fencing


async def test_a_gateway_that_cannot_start_is_reported(postgres_url: str) -> None:
    _url, config = _fresh(postgres_url)
    runs = _Runs()
    runs.fail_with = OSError("journal unreachable")
    async with ActiveStandby(config, instance="kehl-a", start=runs.start) as member:
        await asyncio.wait_for(member.failed.wait(), 10)
        assert isinstance(member.failure, OSError)
        assert "journal unreachable" in str(member.failure)


async def test_an_unreachable_database_is_waited_for_not_fatal() -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    config = _config("[cluster]\nlease_ttl = 1\n", journal=f'[journal]\nurl = "{url}"\n')
    runs = _Runs()
    with structlog.testing.capture_logs() as logs:
        async with ActiveStandby(config, instance="kehl-a", start=runs.start) as member:
            await eventually(
                lambda: sum(e["event"] == "cluster.leases_unreachable" for e in logs) >= 2
            )
            assert not member.failed.is_set()
            assert not member.active and runs.leases == []
    assert "nobody@127.0.0.1:1" in logs[0]["error"]


async def test_two_processes_with_the_same_instance_id_are_never_both_active(
    postgres_url: str,
) -> None:
    _url, config = _fresh(postgres_url)
    a, b = _Runs(), _Runs()
    async with (
        ActiveStandby(config, instance="kehl", start=a.start) as first,
        ActiveStandby(config, instance="kehl", start=b.start) as second,
    ):
        await eventually(lambda: first.active or second.active)
        await asyncio.sleep(1.5)  # several acquisition intervals
        assert a.running + b.running == 1
        assert first.owner != second.owner


def test_active_standby_needs_a_cluster_table() -> None:
    with pytest.raises(ValueError, match="needs \\[cluster\\]"):
        ActiveStandby(_config(""), instance="a", start=_Runs().start)


# ---------------------------------------------------------------------- takeover

#: Sender -> the alias it addresses -> the radio that receives it.
DE_TO_FR = {"2001": ("9001001", "1001"), "2002": ("9001002", "1002")}
FR_TO_DE = {"1001": ("8002001", "2001"), "1002": ("8002002", "2002")}
TTL = 3.0
KILL_AT = 50
AFTER_TAKEOVER = 40


def _out_of_order(texts: list[str]) -> list[str]:
    """Texts that arrived after a later one of the same sender (``<sender> #<n>``)."""
    last: dict[str, int] = {}
    late = []
    for text in texts:
        sender, number = text.split(" #")
        if int(number) <= last.get(sender, -1):
            late.append(text)
        last[sender] = max(last.get(sender, -1), int(number))
    return late


@pytest.mark.slow
@pytest.mark.interop
async def test_sigkill_of_the_active_instance_loses_duplicates_and_reorders_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    url = fresh_database(postgres_url)
    names = {"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg"}
    logs = {name: tmp_path / f"{name}.log" for name in ("fr", "de-1", "de-2")}
    async with (
        # The German radios take 40 ms per delivery: traffic from France backs up in the
        # active instance's custody, which the standby must resume.
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["DE"], units=list(DE_TO_FR), delivery_latency=0.04
        ) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=list(FR_TO_DE)) as sim_fr,
    ):
        with mqtt_backbone(tmp_path, names) as mqtt:
            de, fr = tmp_path / "de.toml", tmp_path / "fr.toml"
            de.write_text(
                over_mqtt(
                    demo_config_text("DE", partner="FR", pei_port=sim_de.port),
                    mqtt["DE"],
                    f'[journal]\nurl = "{url}"\n',
                    f"[cluster]\nlease_ttl = {TTL}\n",
                )
            )
            fr.write_text(
                over_mqtt(demo_config_text("FR", partner="DE", pei_port=sim_fr.port), mqtt["FR"])
            )
            procs: dict[str, asyncio.subprocess.Process] = {}
            files = {name: path.open("wb") for name, path in logs.items()}
            try:

                async def start(name: str, config: Path, *extra: str) -> None:
                    procs[name] = await start_gateways(
                        [config],
                        tmp_path / f"state-{name}",
                        extra=extra,
                        stderr=files[name],
                        log_level="info",
                    )

                async with asyncio.timeout(150):
                    await start("fr", fr)
                    await start("de-1", de, "--instance", "de-1")
                    await radios_initialised([sim_de, sim_fr], 1)
                    await start("de-2", de, "--instance", "de-2")
                    await eventually(lambda: bool(log_events(logs["de-2"], "cluster.standby")), 30)

                    # (simulator, sender, message reference) -> text
                    sent: dict[tuple[int, str, int], str] = {}
                    killed_at = 0.0
                    taken_over: asyncio.Task[float] | None = None

                    async def took_over() -> float:
                        await radios_initialised([sim_de], 2)
                        return time.monotonic()

                    tick = after = 0
                    through_new: set[str] = set()  # German texts sent after the takeover
                    while after < AFTER_TAKEOVER:
                        if taken_over is not None and taken_over.done():
                            after += 1  # traffic goes on through the new active instance
                        if tick == KILL_AT:
                            procs["de-1"].send_signal(signal.SIGKILL)
                            assert await procs["de-1"].wait() == -signal.SIGKILL
                            killed_at = time.monotonic()
                            taken_over = asyncio.create_task(took_over())
                        for sender, (alias, _radio) in FR_TO_DE.items():
                            text = f"{sender} #{tick:03d}"
                            mr = await sim_fr.send_text(sender, alias, text)
                            sent[(id(sim_fr), sender, mr)] = text
                        sender = ("2001", "2002")[tick % 2]
                        text = f"{sender} #{tick:03d}"
                        try:
                            mr = await sim_de.send_text(sender, DE_TO_FR[sender][0], text)
                        except LinkError:
                            pass  # no German instance was connected: nobody acknowledged it
                        else:
                            sent[(id(sim_de), sender, mr)] = text
                            if after:
                                through_new.add(text)
                        tick += 1
                        await asyncio.sleep(0.03)

                    assert taken_over is not None
                    seconds = await taken_over - killed_at
                    takeover = log_events(logs["de-2"], "cluster.active")
                    assert len(takeover) == 1, "the standby did not become active once"

                    def acknowledged(
                        sim: TetraNetworkSimulator, senders: dict[str, Any]
                    ) -> set[str]:
                        # The texts of the origin radios' SDS-TL "stored" reports.
                        return {
                            sent[(id(sim), s, mr)]
                            for s in senders
                            for mr in reports_with(sim, s, STORED)
                        }

                    def delivered() -> set[str]:
                        return {
                            t
                            for sim, routes in ((sim_fr, DE_TO_FR), (sim_de, FR_TO_DE))
                            for _alias, radio in routes.values()
                            for t in arrivals(sim, radio)
                        }

                    await eventually(lambda: through_new <= acknowledged(sim_de, DE_TO_FR), 60)
                    want = acknowledged(sim_de, DE_TO_FR) | acknowledged(sim_fr, FR_TO_DE)
                    await eventually(lambda: want <= delivered(), 60)
            finally:
                for proc in procs.values():
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in procs.values():
                    await asyncio.wait_for(proc.wait(), 30)
                for file in files.values():
                    file.close()

    assert procs["de-2"].returncode == 0, logs["de-2"].read_text()[-3000:]
    # Every text acknowledged to a radio arrived, once, in order per sender and receiver.
    from_de = acknowledged(sim_de, DE_TO_FR)
    print(f"acknowledged: {len(want)}, of them from German radios: {len(from_de)}")
    # Traffic went both ways through each instance: some German texts before the kill
    # (not all: the busy PEI delays "stored" reports) and every one after the takeover.
    assert len(from_de - through_new) >= 10
    assert len(through_new) == AFTER_TAKEOVER and through_new <= from_de
    assert len(want - from_de) >= 2 * (KILL_AT + AFTER_TAKEOVER)
    for sim, routes in ((sim_fr, DE_TO_FR), (sim_de, FR_TO_DE)):
        for _alias, radio in routes.values():
            texts = arrivals(sim, radio)
            duplicates = sorted({t for t in texts if texts.count(t) > 1})
            assert duplicates == [], f"{radio} got texts twice: {duplicates}"
            late = _out_of_order(texts)
            assert late == [], f"{radio} got these after later texts of their sender: {late}"
            assert set(texts) <= set(sent.values())
    # The standby resumed the custody of the instance it replaced.
    [recovered] = log_events(logs["de-2"], "journal.recovered")
    assert recovered["resumed"], "nothing was in custody at the kill: the test proved little"
    # ... and the presence it had saved: the German radios that talked (2001, 2002).
    assert recovered["presence"]["ours"] >= 2, recovered
    active = takeover[0]
    assert active["fencing"] == 2
    # Takeover time: from the kill to the standby's adapter initialised on the radio network.
    print(f"takeover after SIGKILL: {seconds:.2f} s (lease ttl {TTL:g} s)")
    assert seconds < TTL + TTL / 3 + 10, f"takeover took {seconds:.1f} s"
