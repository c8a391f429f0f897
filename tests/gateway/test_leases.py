"""Ownership leases: the store against a private PostgreSQL server, the keeper, and a takeover
between real processes killed with SIGKILL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from gateway.leases import Lease, LeaseError, LeaseKeeper, LeaseStore, Slot, Step, plan
from protocols.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _name(prefix: str = "res") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stores(postgres_url: str) -> Iterator[tuple[LeaseStore, LeaseStore]]:
    a = LeaseStore(postgres_url, max_connections=8)
    b = LeaseStore(postgres_url, max_connections=8)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _until(predicate: Any, *, within: float) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ---------------------------------------------------------------------- store


def _race(stores: tuple[LeaseStore, LeaseStore], resource: str, threads: int) -> list[Lease | None]:
    """``threads`` owners on two stores try to acquire ``resource`` at the same moment."""
    barrier = threading.Barrier(threads)
    results: list[Lease | None] = [None] * threads

    def race(i: int) -> None:
        barrier.wait()
        results[i] = stores[i % 2].acquire(resource, f"owner-{i}", 30.0)

    workers = [threading.Thread(target=race, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=20)
    return results


def test_exactly_one_owner_wins_a_race(stores: tuple[LeaseStore, LeaseStore]) -> None:
    for _round in range(5):
        resource = _name()
        results = _race(stores, resource, 16)
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        holder = stores[0].holder(resource)
        assert holder is not None
        assert (holder.owner, holder.fencing) == (winners[0].owner, 1)


def test_takeover_only_after_expiry_with_a_greater_token(
    stores: tuple[LeaseStore, LeaseStore],
) -> None:
    a, b = stores
    resource = _name()
    first = a.acquire(resource, "a", 0.5)
    assert first is not None and first.fencing == 1
    assert b.acquire(resource, "b", 5.0) is None  # live: refused
    taken = _until(lambda: b.acquire(resource, "b", 5.0), within=10)
    # Taken over only once the database's clock passed the first lease's end.
    assert taken.expires_at - dt.timedelta(seconds=5.0) >= first.expires_at
    assert taken.fencing == first.fencing + 1
    assert a.renew(first) is None  # the old owner has lost it
    assert a.acquire(resource, "a", 5.0) is None
    holder = a.holder(resource)
    assert holder is not None and (holder.owner, holder.fencing) == ("b", taken.fencing)


def test_renew_extends_and_keeps_the_token(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, _b = stores
    resource = _name()
    lease = a.acquire(resource, "a", 5.0)
    assert lease is not None
    renewed = a.renew(lease)
    assert renewed is not None
    assert renewed.fencing == lease.fencing
    assert renewed.expires_at >= lease.expires_at
    again = a.acquire(resource, "a", 5.0)  # acquiring what we hold renews it
    assert again is not None and again.fencing == lease.fencing


def test_an_expired_lease_cannot_be_renewed(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, _b = stores
    resource = _name()
    lease = a.acquire(resource, "a", 0.2)
    assert lease is not None
    _until(lambda: a.holder(resource) is None, within=10)
    assert a.renew(lease) is None
    back = a.acquire(resource, "a", 5.0)  # taken back after expiry: a new token
    assert back is not None and back.fencing == lease.fencing + 1


def test_release_frees_at_once(stores: tuple[LeaseStore, LeaseStore]) -> None:
    a, b = stores
    resource = _name()
    lease = a.acquire(resource, "a", 60.0)
    assert lease is not None
    assert a.release(lease) is True
    assert a.holder(resource) is None
    taken = b.acquire(resource, "b", 60.0)
    assert taken is not None and taken.fencing == lease.fencing + 1
    assert a.release(lease) is False  # no longer ours: nothing happens
    assert b.holder(resource) is not None


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match="postgres extra"):
        LeaseStore("postgresql://127.0.0.1/db")


def test_unreachable_database_is_a_lease_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LeaseError, match=r"\*\*\*"):
        LeaseStore(f"postgresql://u:secret@127.0.0.1:{port}/db", connect_timeout=1)


# ---------------------------------------------------------------------- decisions


def _lease(fencing: int = 1) -> Lease:
    return Lease(
        resource="r", owner="o", fencing=fencing, expires_at=dt.datetime.now(dt.UTC), ttl=9
    )


def test_plan_acquires_a_free_resource_then_renews_every_interval() -> None:
    slot = Slot(ttl=9, interval=3)
    assert plan(slot, 100.0) == (Step.ACQUIRE, 100.0)
    slot.acquired(_lease(), started=100.0)
    assert plan(slot, 101.0) == (Step.WAIT, 103.0)
    assert plan(slot, 103.0) == (Step.RENEW, 103.0)
    slot.acquired(_lease(), started=103.0)
    assert slot.valid_until == 112.0


def test_plan_loses_at_ttl_from_the_last_renewal_start_when_the_database_fails() -> None:
    slot = Slot(ttl=9, interval=3)
    slot.acquired(_lease(), started=100.0)
    for now in (103.0, 106.0, 108.5):
        assert plan(slot, now)[0] is Step.RENEW
        slot.failed(now)
    assert plan(slot, 108.9) == (Step.WAIT, 109.0)
    assert plan(slot, 109.0) == (Step.LOSE, 109.0)
    slot.lost(109.0)
    assert plan(slot, 109.0) == (Step.ACQUIRE, 109.0)


def test_plan_guard_gives_up_earlier() -> None:
    slot = Slot(ttl=9, interval=3, guard=1)
    slot.acquired(_lease(), started=0.0)
    assert plan(slot, 8.0)[0] is Step.LOSE


def test_a_refused_acquisition_waits_an_interval() -> None:
    slot = Slot(ttl=9, interval=3)
    slot.acquired(None, started=5.0)
    assert plan(slot, 6.0) == (Step.WAIT, 8.0)


# ---------------------------------------------------------------------- keeper


class FlakyStore:
    """Grants every lease; renewals fail or hang once told to."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.renew_starts: list[float] = []
        self.successful_starts: list[float] = []
        self.hang = threading.Event()
        self.renewed = threading.Event()
        self.fencing = 0

    def acquire(self, resource: str, owner: str, ttl: float) -> Lease | None:
        if self.mode != "ok":
            raise LeaseError("down")
        self.fencing += 1
        now = dt.datetime.now(dt.UTC)
        return Lease(resource=resource, owner=owner, fencing=self.fencing, expires_at=now, ttl=ttl)

    def renew(self, lease: Lease) -> Lease | None:
        time.sleep(0.05)  # the request's way to the database
        start = time.monotonic()  # the database's now, when the renewal ran there
        self.renew_starts.append(start)
        if self.mode == "down":
            raise LeaseError("down")
        if self.mode == "hang":
            self.hang.wait(10)
            raise LeaseError("hung")
        self.successful_starts.append(start)
        self.renewed.set()
        return lease

    def release(self, lease: Lease) -> bool:
        return True

    def holder(self, resource: str) -> Lease | None:
        return None


class SlowAcquireStore(FlakyStore):
    """An acquisition that commits in the database after its caller gave up on it."""

    def __init__(self) -> None:
        super().__init__()
        self.acquiring = threading.Event()
        self.go = threading.Event()
        self.committed = threading.Event()
        self.held: Lease | None = None
        self.released: list[Lease] = []

    def acquire(self, resource: str, owner: str, ttl: float) -> Lease | None:
        self.acquiring.set()
        self.go.wait(10)
        self.held = super().acquire(resource, owner, ttl)
        self.committed.set()
        return self.held

    def holder(self, resource: str) -> Lease | None:
        self.committed.wait(10)  # the database serialises it after the acquisition
        return self.held

    def release(self, lease: Lease) -> bool:
        self.released.append(lease)
        return True


async def test_a_stop_releases_a_lease_an_acquisition_in_flight_took() -> None:
    store = SlowAcquireStore()
    keeper = LeaseKeeper(store, ["gateway:x"], "kehl-1", ttl=3.0)
    await keeper.start()
    await asyncio.to_thread(store.acquiring.wait, 5)
    asyncio.get_running_loop().call_later(0.2, store.go.set)  # commits after the stop began
    await keeper.stop()
    assert keeper.held == {}  # its result was never applied
    assert store.held is not None
    assert store.released == [store.held]  # but the database's lease is given back


async def test_failed_acquisitions_are_warned_about_once_a_minute() -> None:
    store = FlakyStore()
    store.mode = "down"
    keeper = LeaseKeeper(store, ["gateway:x"], "kehl-1", ttl=0.3)
    with structlog.testing.capture_logs() as logs:
        await keeper.start()
        try:
            async with asyncio.timeout(5):
                while keeper.counters["acquire_failed"] < 3:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        finally:
            await keeper.stop()
    warnings = [e for e in logs if e["event"] == "lease.acquire_failed"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["error"] == "down"


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_keeper_stops_acting_at_ttl_when_the_database_is_unreachable(mode: str) -> None:
    store = FlakyStore()
    events: list[tuple[str, str, float]] = []
    acquired = asyncio.Event()
    lost = asyncio.Event()

    async def on_acquired(resource: str, lease: Lease) -> None:
        events.append(("acquired", resource, time.monotonic()))
        acquired.set()

    async def on_lost(resource: str) -> None:
        events.append(("lost", resource, time.monotonic()))
        lost.set()

    ttl = 0.6
    keeper = LeaseKeeper(
        store, ["tetra-de"], "a", ttl=ttl, on_acquired=on_acquired, on_lost=on_lost
    )
    await keeper.start()
    try:
        await asyncio.wait_for(acquired.wait(), 5)
        assert await asyncio.to_thread(store.renewed.wait, 5)  # one renewal went through
        store.mode = mode
        await asyncio.wait_for(lost.wait(), 5)
        lost_at = events[-1][2]
        # Stopped acting before the store could hand the lease over (ttl from the
        # database's time of the last successful renewal), and no sooner than needed.
        assert lost_at < store.successful_starts[-1] + ttl
        assert lost_at > store.successful_starts[-1]
        assert keeper.counters["renew_failed"] >= 1
        assert keeper.counters["lost"] == 1
        assert keeper.held == {}
    finally:
        store.hang.set()
        await keeper.stop()


async def test_two_keepers_hand_over_on_graceful_stop(postgres_url: str) -> None:
    resources = [_name("tetra"), _name("mcx")]
    a_store = LeaseStore(postgres_url)
    b_store = LeaseStore(postgres_url)
    got: dict[str, dict[str, int]] = {"a": {}, "b": {}}
    changed = asyncio.Event()

    def recorder(owner: str) -> Any:
        async def on_acquired(resource: str, lease: Lease) -> None:
            got[owner][resource] = lease.fencing
            changed.set()

        return on_acquired

    a = LeaseKeeper(a_store, resources, "a", ttl=1.5, on_acquired=recorder("a"))
    b = LeaseKeeper(b_store, resources, "b", ttl=1.5, on_acquired=recorder("b"))
    try:
        await a.start()
        while len(got["a"]) < 2:
            changed.clear()
            await asyncio.wait_for(changed.wait(), 5)
        await b.start()
        await a.stop()  # releases: b takes over within one interval
        while len(got["b"]) < 2:
            changed.clear()
            await asyncio.wait_for(changed.wait(), 5)
        for resource in resources:
            assert got["b"][resource] > got["a"][resource]
        assert set(b.held) == set(resources)
    finally:
        await a.stop()
        await b.stop()
        a_store.close()
        b_store.close()


# ---------------------------------------------------------------------- processes


async def _holder(url: str, owner: str, resources: list[str], ttl: float) -> Any:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.leases",
        "--demo-holder",
        "--url",
        url,
        "--owner",
        owner,
        "--resources",
        ",".join(resources),
        "--ttl",
        str(ttl),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _read_until(
    process: Any, lines: list[dict[str, Any]], done: Any, *, within: float
) -> None:
    """Read JSON lines into ``lines`` until ``done(lines)``; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not done(lines):
            raw = await process.stdout.readline()
            assert raw, f"holder exited: {lines}"
            lines.append(json.loads(raw))


def _acquired(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["resource"]: line for line in lines if line["event"] == "acquired"}


async def test_takeover_between_processes_after_sigkill(postgres_url: str) -> None:
    ttl = 2.0
    suffix = uuid.uuid4().hex[:8]
    resources = [f"tetra-de-{suffix}", f"mcx-de-{suffix}"]
    first = await _holder(postgres_url, "instance-1", resources, ttl)
    second = None
    try:
        first_lines: list[dict[str, Any]] = []
        await _read_until(
            first, first_lines, lambda ls: len(_acquired(ls)) == len(resources), within=20
        )
        second = await _holder(postgres_url, "instance-2", resources, ttl)
        second_lines: list[dict[str, Any]] = []
        await _read_until(
            second, second_lines, lambda ls: any(x["event"] == "started" for x in ls), within=20
        )
        killed_at = time.monotonic()
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await _read_until(
            second,
            second_lines,
            lambda ls: len(_acquired(ls)) == len(resources),
            within=3 * ttl + 5,
        )
        taken_at = max(line["t"] for line in _acquired(second_lines).values())
        # Bounded: ttl + a renewal interval + margin, well under 3 * ttl.
        assert taken_at - killed_at < 3 * ttl
        before = _acquired(first_lines)
        after = _acquired(second_lines)
        for resource in resources:
            # Never two holders: the second only after the kill, with a greater token.
            assert after[resource]["t"] > killed_at
            assert after[resource]["fencing"] > before[resource]["fencing"]
        assert not any(line["event"] == "lost" for line in first_lines)
        store = LeaseStore(postgres_url)
        try:
            for resource in resources:
                holder = store.holder(resource)
                assert holder is not None
                assert (holder.owner, holder.fencing) == (
                    "instance-2",
                    after[resource]["fencing"],
                )
        finally:
            store.close()
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_hanging_yield_gate_does_not_hold_up_the_local_deadline() -> None:
    """A gate that hangs (a slow database) answers "keep it"; the deadline is checked in time."""
    store = FlakyStore()
    asked = asyncio.Event()

    async def hangs(_resource: str) -> bool:
        asked.set()
        await asyncio.Event().wait()
        return True

    lost: list[float] = []

    async def on_lost(_resource: str) -> None:
        lost.append(time.monotonic())

    keeper = LeaseKeeper(
        store, ["gateway:x"], "kehl-1", ttl=0.6, should_yield=hangs, on_lost=on_lost
    )
    await keeper.start()
    try:
        await asyncio.wait_for(asked.wait(), 5)
        store.mode = "down"  # from now on the lease can only run out
        began = time.monotonic()
        async with asyncio.timeout(5):
            while not lost:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # Lost within about a ttl of the last renewal, not after the gate gave up on its own.
        assert lost[0] - began < 0.6 + 0.3
        assert keeper.counters["handed_over"] == 0
    finally:
        await keeper.stop()


async def test_a_yield_gate_hands_the_lease_over_and_waits_a_ttl_before_trying_again() -> None:
    store = FlakyStore()
    released: list[Lease] = []
    store.release = released.append  # type: ignore[method-assign, assignment]
    answers = iter([True])

    async def once(_resource: str) -> bool:
        return next(answers, False)

    acquired: list[float] = []

    async def on_acquired(_resource: str, _lease: Lease) -> None:
        acquired.append(time.monotonic())

    keeper = LeaseKeeper(
        store, ["gateway:x"], "kehl-1", ttl=0.6, should_yield=once, on_acquired=on_acquired
    )
    await keeper.start()
    try:
        async with asyncio.timeout(5):
            while len(acquired) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert keeper.counters["handed_over"] == 1 and len(released) == 1
        assert acquired[1] - acquired[0] >= 0.6  # a renewal interval, then a whole ttl
    finally:
        await keeper.stop()
