"""The store-and-forward journal: durability order, recovery order, duplicates, group commit.

The shared tests run on both backends (SQLite and PostgreSQL, fixture ``store``); the
PostgreSQL server is a private one (``loadtests/_postgres.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.config import parse_config
from gateway.journal import (
    MAX_GROUP,
    AsyncJournal,
    Bounds,
    Journal,
    JournalError,
    JournalStore,
    NewEntry,
    SqliteJournal,
    epoch_after,
    open_journal,
)
from gateway.journal_pg import PostgresJournal, namespace_for, redact_url
from gateway.leases import Lease
from protocols.errors import ConfigError
from protocols.schema import v1


def entry(message_id: bytes, priority: int, queue: str = "egress:FR", **kw: object) -> NewEntry:
    return NewEntry(
        message_id=message_id,
        queue=queue,
        priority=priority,
        envelope=b"env-" + message_id,
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class Stores:
    """Opens journals of one backend, all at the same place (a file, or a schema)."""

    kind: str
    opener: Callable[[], JournalStore]
    opened: list[JournalStore] = field(default_factory=list)

    def open(self) -> JournalStore:
        store = self.opener()
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        stores = Stores("sqlite", lambda: Journal(tmp_path / "j.sqlite3"))
    else:
        url: str = request.getfixturevalue("postgres_url")
        namespace = f"euccs_test_{uuid.uuid4().hex[:12]}"
        stores = Stores("postgres", lambda: PostgresJournal(url, namespace=namespace))
    yield stores
    for opened in stores.opened:
        opened.close()


def test_wal_mode_and_full_sync_are_in_force(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    db = sqlite3.connect(tmp_path / "j.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    journal.close()
    db.close()


def test_recovery_is_most_urgent_first_then_arrival_order(store: Stores) -> None:
    journal = store.open()
    journal.run_batch(
        [
            lambda j: j.add([entry(b"r1", v1.PRIORITY_ROUTINE)]),
            lambda j: j.add([entry(b"e1", v1.PRIORITY_EMERGENCY, expires_at=99.5)]),
            lambda j: j.add([entry(b"r2", v1.PRIORITY_ROUTINE, meta={"issi": "1001"})]),
            lambda j: j.add([entry(b"h1", v1.PRIORITY_HIGH)]),
            lambda j: j.put_origin(b"r1", {"adapter": "tetra-de"}, 10.0),
            lambda j: j.set_ref("tetra-fr", "1001", 17),
        ]
    )
    journal.close()
    started = int(time.time())
    recovered = store.open().recover()
    assert [e.message_id for e in recovered.entries] == [b"e1", b"h1", b"r1", b"r2"]
    assert recovered.entries[0].expires_at == 99.5
    assert recovered.entries[3].meta == {"issi": "1001"}
    assert recovered.entries[3].envelope == b"env-r2"
    assert recovered.origins == {b"r1": {"adapter": "tetra-de"}}
    assert recovered.refs == {("tetra-fr", "1001"): 17}
    assert recovered.epoch >= started  # a new journal: the wall-clock second


def test_entries_after_reads_one_class_of_one_queue_in_arrival_order(store: Stores) -> None:
    journal = store.open()
    routine, high = v1.PRIORITY_ROUTINE, v1.PRIORITY_HIGH
    ids = journal.add(
        [
            entry(b"r1", routine),
            entry(b"h1", high),
            entry(b"x1", routine, queue="local:tetra-de"),
            entry(b"r2", routine, meta={"reference": 7}),
            entry(b"r3", routine, expires_at=12.5),
        ]
    )
    after_first = journal.entries_after("egress:FR", routine, ids[0], 10)
    assert [e.message_id for e in after_first] == [b"r2", b"r3"]
    assert after_first[0].meta == {"reference": 7} and after_first[1].expires_at == 12.5
    assert after_first[0].envelope == b"env-r2" and after_first[0].queue == "egress:FR"
    assert [e.message_id for e in journal.entries_after("egress:FR", routine, 0, 2)] == [
        b"r1",
        b"r2",
    ]
    assert [e.message_id for e in journal.entries_after("egress:FR", high, 0, 10)] == [b"h1"]
    assert journal.entries_after("egress:FR", routine, ids[4], 10) == []
    assert journal.entries_after("egress:IT", routine, 0, 10) == []


def test_a_bounded_recovery_reads_the_oldest_of_each_class_and_every_urgent_copy(
    store: Stores,
) -> None:
    journal = store.open()
    routine, high, emergency = v1.PRIORITY_ROUTINE, v1.PRIORITY_HIGH, v1.PRIORITY_EMERGENCY
    journal.add(
        [entry(b"r%d" % n, routine) for n in range(5)]
        + [entry(b"h%d" % n, high) for n in range(3)]
        + [entry(b"e%d" % n, emergency) for n in range(4)]
        + [entry(b"x%d" % n, routine, queue="local:tetra-de") for n in range(3)]
    )
    for n in range(5):
        journal.put_origin(b"r%d" % n, {"n": n}, float(n))
    journal.close()
    bounds = Bounds(per_class=6, all_from=v1.PRIORITY_IMMINENT_PERIL, origins=3)
    recovered = store.open().recover(bounds)
    # Per queue: the most urgent first, then the oldest, six at most (urgent ones always).
    assert [e.message_id for e in recovered.entries] == [
        b"e0", b"e1", b"e2", b"e3", b"h0", b"h1", b"x0", b"x1", b"x2",
    ]  # fmt: skip
    urgent_only = store.open().recover(
        Bounds(per_class=2, all_from=v1.PRIORITY_IMMINENT_PERIL, origins=0)
    )
    assert [e.message_id for e in urgent_only.entries] == [b"e0", b"e1", b"e2", b"e3", b"x0", b"x1"]
    assert urgent_only.origins == {}
    assert recovered.counts == {
        ("egress:FR", routine): 5,
        ("egress:FR", high): 3,
        ("egress:FR", emergency): 4,
        ("local:tetra-de", routine): 3,
    }
    assert list(recovered.origins) == [b"r2", b"r3", b"r4"]  # the newest, oldest first
    whole = store.open().recover()
    assert len(whole.entries) == 15 and len(whole.origins) == 5
    assert whole.counts == recovered.counts


def test_an_origin_record_is_read_back_until_dropped(store: Stores) -> None:
    journal = store.open()
    journal.put_origin(b"m1", {"adapter": "tetra-de", "issi": "2001", "reference": 3}, 1.0)
    assert journal.get_origin(b"m1") == {"adapter": "tetra-de", "issi": "2001", "reference": 3}
    assert journal.get_origin(b"m2") is None
    journal.drop_origin(b"m1")
    assert journal.get_origin(b"m1") is None


def test_soft_state_is_replaced_deleted_and_read_back_per_kind(store: Stores) -> None:
    journal = store.open()
    online = {"unit": "de.2001", "availability": "ONLINE", "groups": ["g"], "stale_in": 12.5}
    journal.run_batch(
        [
            lambda j: j.put_state("presence", [("de.2001", {"old": True}), ("de.2002", {"x": 1})]),
            lambda j: j.put_state("alert", [("ab01", {"group": "g"})]),
        ]
    )
    journal.run_batch(
        [lambda j: j.put_state("presence", [("de.2001", online), ("de.2002", None), ("no", None)])]
    )
    journal.close()
    state = store.open().recover().state
    assert state == {"presence": {"de.2001": online}, "alert": {"ab01": {"group": "g"}}}


def test_removed_entries_do_not_come_back(store: Stores) -> None:
    journal = store.open()
    [[ok, ids]] = journal.run_batch([lambda j: j.add([entry(b"a", 1), entry(b"b", 1)])])
    assert ok
    assert journal.run_batch([lambda j: j.remove([ids[0], 12345])]) == [(True, 1)]
    assert journal.count() == 1
    journal.close()
    assert [e.message_id for e in store.open().recover().entries] == [b"b"]


def test_meta_and_origins_are_replaced_and_dropped(store: Stores) -> None:
    journal = store.open()
    [[_, [entry_id]]] = journal.run_batch([lambda j: j.add([entry(b"m", 1, meta={"a": 1})])])
    journal.run_batch(
        [
            lambda j: j.update_meta(entry_id, {"reference": 42, "target": "2001"}),
            lambda j: j.put_origin(b"o1", {"v": 1}, 10.0),
            lambda j: j.put_origin(b"o1", {"v": 2}, 20.0),
            lambda j: j.put_origin(b"o2", {"v": 3}, 5.0),
            lambda j: j.put_origin(b"o3", {"v": 4}, 30.0),
            lambda j: j.drop_origin(b"o3"),
            lambda j: j.set_ref("tetra", "2001", 5),
            lambda j: j.set_ref("tetra", "2001", 6),
        ]
    )
    assert journal.run_batch([lambda j: j.prune_origins(before=15.0)]) == [(True, 1)]
    recovered = journal.recover()
    assert recovered.entries[0].meta == {"reference": 42, "target": "2001"}
    assert recovered.origins == {b"o1": {"v": 2}}
    assert recovered.refs == {("tetra", "2001"): 6}


def test_seen_ids_suppress_duplicates_until_pruned(store: Stores) -> None:
    journal = store.open()
    results = journal.run_batch(
        [
            lambda j: j.mark_seen(b"m1", 100.0),
            lambda j: j.mark_seen(b"m1", 101.0),
            lambda j: j.is_seen(b"m1"),
            lambda j: j.prune_seen(before=100.5),
            lambda j: j.is_seen(b"m1"),
            lambda j: j.mark_seen(b"m1", 200.0),
        ]
    )
    assert [value for _ok, value in results] == [True, False, True, 1, False, True]


def test_a_failing_operation_is_rolled_back_alone(store: Stores) -> None:
    journal = store.open()

    def half_then_fail(j: JournalStore) -> None:
        j.add([entry(b"half", 1)])
        raise ValueError("boom")

    results = journal.run_batch(
        [lambda j: j.add([entry(b"x", 1)]), half_then_fail, lambda j: j.add([entry(b"y", 1)])]
    )
    assert [ok for ok, _ in results] == [True, False, True]
    assert isinstance(results[1][1], ValueError)
    assert sorted(e.message_id for e in journal.recover().entries) == [b"x", b"y"]


def test_a_failing_statement_is_a_journal_error_for_its_operation_only(store: Stores) -> None:
    journal = store.open()

    def bad_statement(j: JournalStore) -> None:
        j.add([entry(b"half", 1)])
        j.set_ref("tetra", "2001", 2**40)  # out of range for the stored column

    results = journal.run_batch(
        [lambda j: j.add([entry(b"x", 1)]), bad_statement, lambda j: j.add([entry(b"y", 1)])]
    )
    if store.kind == "sqlite":  # SQLite stores any integer: the op succeeds there
        assert [ok for ok, _ in results] == [True, True, True]
        return
    assert [ok for ok, _ in results] == [True, False, True]
    assert isinstance(results[1][1], JournalError)
    assert sorted(e.message_id for e in journal.recover().entries) == [b"x", b"y"]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(blocker / "j.sqlite3")


async def test_concurrent_submissions_share_commits(store: Stores) -> None:
    journal = AsyncJournal(store.open())
    journal.recover()
    journal.start()
    try:
        ids = await asyncio.gather(
            *(journal.submit(functools.partial(_add_one, i)) for i in range(200))
        )
        assert sorted(i for [i] in ids) == list(range(1, 201))
        assert journal.operations == 200
        assert journal.commits < 200  # grouped: fewer commits than operations
        with pytest.raises(ValueError, match="bad op"):
            await journal.submit(_bad_op)
        assert journal.journal.count() == 200
    finally:
        journal.close()
    with pytest.raises(JournalError, match="not running"):
        await journal.submit(lambda j: j.count())


def _stops_iteration(_j: object) -> None:
    raise StopIteration  # a future cannot carry it


async def test_one_commit_settles_every_waiter_whatever_the_others_did(store: Stores) -> None:
    journal = AsyncJournal(store.open())
    journal.recover()
    journal.start()
    try:
        busy = journal.submit_nowait(lambda _j: time.sleep(0.2))  # the next ops share a commit
        first = journal.submit_nowait(functools.partial(_add_one, 1))
        abandoned = journal.submit_nowait(functools.partial(_add_one, 2))
        odd = journal.submit_nowait(_stops_iteration)
        failing = journal.submit_nowait(_bad_op)
        last = journal.submit_nowait(functools.partial(_add_one, 3))
        abandoned.cancel()  # its waiter went away; the write is durable all the same
        await busy
        assert await first == [1]
        with pytest.raises(JournalError, match="StopIteration"):
            await odd
        with pytest.raises(ValueError, match="bad op"):
            await failing
        assert await last == [3]
        assert abandoned.cancelled()
        assert journal.journal.count() == 3  # the abandoned one too; the failed ones rolled back
    finally:
        journal.close()


def _recording(tmp_path: Path) -> tuple[AsyncJournal, list[list[str]]]:
    """A started journal that records each commit's results (as text), in order."""
    batches: list[list[str]] = []

    class Recording(Journal):
        def run_batch(self, ops: Any) -> list[tuple[bool, Any]]:
            results = super().run_batch(ops)
            batches.append([str(value) for _ok, value in results])
            return results

    journal = AsyncJournal(Recording(tmp_path / "j.sqlite3"))
    journal.start()
    return journal, batches


async def test_an_urgent_operation_goes_in_the_next_commit_on_its_own(tmp_path: Path) -> None:
    held = threading.Event()
    journal, batches = _recording(tmp_path)
    try:
        # The first commit is held up while routine and then urgent operations arrive.
        first = asyncio.ensure_future(journal.submit(functools.partial(_held, held, "first")))
        await asyncio.sleep(0.05)
        routine = [
            asyncio.ensure_future(journal.submit(functools.partial(_named, f"routine {n}")))
            for n in range(MAX_GROUP + 10)
        ]
        await asyncio.sleep(0.05)
        urgent_op = functools.partial(_named, "urgent")
        urgent = asyncio.ensure_future(journal.submit(urgent_op, urgent=True))
        await asyncio.sleep(0.05)
        held.set()
        await asyncio.gather(first, urgent, *routine)
    finally:
        journal.close()
    assert batches[0] == ["first"]
    assert batches[1] == ["urgent"]  # ahead of the routine operations that waited longer
    assert len(batches[2]) == MAX_GROUP  # a routine group is bounded
    assert batches[2][0] == "routine 0" and batches[3] == [
        f"routine {MAX_GROUP + n}" for n in range(10)
    ]


async def test_urgent_and_routine_commits_alternate_while_both_wait(tmp_path: Path) -> None:
    journal, batches = _recording(tmp_path)
    first_held, urgent_held = threading.Event(), threading.Event()
    try:
        first = asyncio.ensure_future(journal.submit(functools.partial(_held, first_held, "first")))
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(journal.submit(functools.partial(_named, "r1")))]
        held_urgent = functools.partial(_held, urgent_held, "u1")
        waiting.append(asyncio.ensure_future(journal.submit(held_urgent, urgent=True)))
        await asyncio.sleep(0.05)
        first_held.set()
        await asyncio.sleep(0.05)  # "u1" is being committed; more of both kinds arrive
        more_urgent = functools.partial(_named, "u2")
        waiting.append(asyncio.ensure_future(journal.submit(more_urgent, urgent=True)))
        waiting.append(asyncio.ensure_future(journal.submit(functools.partial(_named, "r2"))))
        await asyncio.sleep(0.05)
        urgent_held.set()
        await asyncio.gather(first, *waiting)
    finally:
        journal.close()
    # After an urgent commit, the routine work that waited goes before the next urgent one.
    assert batches == [["first"], ["u1"], ["r1", "r2"], ["u2"]]


async def test_routine_operations_of_one_pass_of_the_loop_wake_the_writer_once(
    tmp_path: Path,
) -> None:
    journal, batches = _recording(tmp_path)
    wakes = 0
    notify = journal._cond.notify

    def counting(n: int = 1) -> None:
        nonlocal wakes
        wakes += 1
        notify(n)

    journal._cond.notify = counting  # type: ignore[method-assign]
    try:
        await asyncio.gather(
            *(journal.submit(functools.partial(_named, f"routine {n}")) for n in range(20))
        )
        assert wakes == 1
        assert [name for batch in batches for name in batch] == [f"routine {n}" for n in range(20)]
        await journal.submit(functools.partial(_named, "urgent"), urgent=True)
        assert wakes == 2  # an urgent operation wakes it at once
    finally:
        journal.close()


def _wake_due(journal: AsyncJournal) -> asyncio.AbstractEventLoop | None:
    return journal._wake_due


def test_a_wake_up_left_on_a_closed_loop_does_not_hold_up_another_loop(tmp_path: Path) -> None:
    journal, batches = _recording(tmp_path)
    try:
        first = asyncio.new_event_loop()

        async def queue_only() -> None:
            journal.submit_nowait(functools.partial(_named, "from the first loop"))
            first.stop()  # the loop stops before the pass that would wake the writer
            await asyncio.sleep(3600)

        task = first.create_task(queue_only())
        first.run_forever()
        task.cancel()
        first.close()
        assert _wake_due(journal) is first and not batches  # queued, the writer asleep

        async def submit() -> None:
            await journal.submit(functools.partial(_named, "from the second loop"))

        asyncio.run(submit())
        assert _wake_due(journal) is None  # the second loop took the wake-up over
    finally:
        journal.close()
    assert [name for batch in batches for name in batch] == [
        "from the first loop",
        "from the second loop",
    ]


def test_async_journal_still_opens_a_sqlite_file(tmp_path: Path) -> None:
    journal = AsyncJournal(tmp_path / "j.sqlite3")
    assert isinstance(journal.journal, SqliteJournal)
    assert journal.location == str(tmp_path / "j.sqlite3")
    journal.close()


def _named(name: str, _journal: JournalStore) -> str:
    return name


def _held(event: threading.Event, name: str, _journal: JournalStore) -> str:
    event.wait(10)
    return name


def _add_one(i: int, j: JournalStore) -> list[int]:
    return j.add([entry(bytes([i]), 1)])


def _bad_op(j: JournalStore) -> None:
    raise ValueError("bad op")


# ---------------------------------------------------------------------- PostgreSQL only


def _terminate(url: str, pid: int) -> None:
    """Kill one server connection from another and wait until the server has let it go."""
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        deadline = time.monotonic() + 30.0
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "the server kept the terminated connection"
            time.sleep(0.01)


def _backend_pid(journal: PostgresJournal) -> int:
    [(ok, pid)] = journal.run_batch([lambda _j: _pid_of_batch(journal)])
    assert ok
    return int(pid)


def _pid_of_batch(journal: PostgresJournal) -> int:
    row = journal._current().execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PostgresJournal]:
    journal = PostgresJournal(postgres_url, namespace=f"euccs_test_{uuid.uuid4().hex[:12]}")
    yield journal
    journal.close()


def test_durability_settings_are_in_force(pg: PostgresJournal) -> None:
    def settings(_j: JournalStore) -> tuple[Any, ...]:
        row = (
            pg._current()
            .execute("SELECT current_setting('synchronous_commit'), current_setting('fsync')")
            .fetchone()
        )
        assert row is not None
        return tuple(row)

    assert pg.run_batch([settings]) == [(True, ("on", "on"))]


def test_a_connection_killed_while_idle_is_replaced(postgres_url: str, pg: PostgresJournal) -> None:
    pg.run_batch([lambda j: j.add([entry(b"before", 1)])])
    _terminate(postgres_url, _backend_pid(pg))
    [(ok, ids)] = pg.run_batch([lambda j: j.add([entry(b"after", 1)])])
    assert ok, ids
    assert _backend_pid(pg) > 0
    assert [e.message_id for e in pg.recover().entries] == [b"before", b"after"]


def test_a_connection_killed_in_a_batch_fails_that_batch_only(
    postgres_url: str, pg: PostgresJournal
) -> None:
    def killed_midway(j: JournalStore) -> None:
        j.add([entry(b"lost-1", 1)])
        _terminate(postgres_url, _pid_of_batch(pg))
        j.add([entry(b"lost-2", 1)])

    with pytest.raises(JournalError, match="connection lost"):
        pg.run_batch([lambda j: j.add([entry(b"lost-0", 1)]), killed_midway])
    assert pg.run_batch([lambda j: j.add([entry(b"next", 1)])])[0][0]
    assert [e.message_id for e in pg.recover().entries] == [b"next"]


async def test_async_journal_survives_a_lost_connection(postgres_url: str) -> None:
    store = PostgresJournal(postgres_url, namespace=f"euccs_test_{uuid.uuid4().hex[:12]}")
    journal = AsyncJournal(store)
    journal.recover()
    journal.start()
    try:

        def killed_midway(j: JournalStore) -> None:
            _terminate(postgres_url, _pid_of_batch(store))
            j.add([entry(b"lost", 1)])

        with pytest.raises(JournalError, match="connection lost"):
            await journal.submit(killed_midway)
        [kept] = await journal.submit(lambda j: j.add([entry(b"kept", 1)]))
        assert await journal.submit(lambda j: j.count()) == 1
        assert await journal.submit(lambda j: j.remove([kept])) == 1
    finally:
        journal.close()


def test_two_gateways_share_a_database_without_seeing_each_other(postgres_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    kehl = PostgresJournal(postgres_url, namespace=namespace_for(f"gw-de-kehl-{suffix}"))
    strasbourg = PostgresJournal(postgres_url, namespace=namespace_for(f"gw-fr-sxb-{suffix}"))
    try:
        kehl.run_batch(
            [
                lambda j: j.add([entry(b"de-1", 1)]),
                lambda j: j.mark_seen(b"m", 1.0),
                lambda j: j.set_ref("tetra", "1", 3),
            ]
        )
        strasbourg.run_batch([lambda j: j.add([entry(b"fr-1", 2), entry(b"fr-2", 1)])])
        first = kehl.recover().epoch
        de, fr = kehl.recover(), strasbourg.recover()
        assert [e.message_id for e in de.entries] == [b"de-1"]
        assert [e.message_id for e in fr.entries] == [b"fr-1", b"fr-2"]
        assert (de.refs, fr.refs) == ({("tetra", "1"): 3}, {})
        assert de.epoch == first + 1  # each gateway's epochs grow on their own
        assert fr.epoch >= first
        assert strasbourg.run_batch([lambda j: j.is_seen(b"m")]) == [(True, False)]
    finally:
        kehl.close()
        strasbourg.close()


def test_an_unreachable_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(JournalError, match="cannot open the journal") as caught:
        PostgresJournal(f"postgresql://u:secret@127.0.0.1:{port}/db", namespace="euccs_x")
    assert "secret" not in str(caught.value)


def test_long_and_odd_gateway_names_make_valid_distinct_namespaces() -> None:
    assert namespace_for("gw-de-kehl") == "euccs_gw-de-kehl"
    long_a, long_b = namespace_for("a" * 64), namespace_for("a" * 63 + "b")
    assert long_a != long_b
    assert max(len(long_a.encode()), len(long_b.encode())) <= 63
    with pytest.raises(ConfigError, match="namespace"):
        PostgresJournal("postgresql://127.0.0.1/db", namespace="x" * 64)


def test_the_location_never_shows_a_password() -> None:
    assert redact_url("postgresql://gw:s3cret@db.example:5432/euccs") == (
        "postgresql://gw:***@db.example:5432/euccs"
    )
    assert redact_url("postgres://db/euccs?password=s3cret&sslmode=require") == (
        "postgres://db/euccs?password=***&sslmode=require"
    )
    assert redact_url("postgresql://gw@db/euccs") == "postgresql://gw@db/euccs"


# ---------------------------------------------------------------------- configuration

_CONFIG = """
[gateway]
name = "gw-de-kehl"
nation = "DE"
[federation]
transport = "local"
partners = ["FR"]
"""


def test_journal_url_selects_postgresql_and_path_stays_the_default() -> None:
    config = parse_config(_CONFIG + '[journal]\nurl = "postgresql://gw@db.example:5432/euccs"\n')
    assert config.journal_url == "postgresql://gw@db.example:5432/euccs"
    assert config.journal_path is None
    assert parse_config(_CONFIG + '[journal]\nurl = "postgres://db/euccs"\n').journal_url
    plain = parse_config(_CONFIG + '[journal]\npath = "/var/lib/euccs/j.sqlite3"\n')
    assert (plain.journal_url, plain.journal_path) == (None, "/var/lib/euccs/j.sqlite3")


@pytest.mark.parametrize(
    ("journal", "message"),
    [
        ('url = "mysql://db/euccs"', r"journal\.url: .*postgresql://"),
        ('url = "db.example:5432"', r"journal\.url: .*postgresql://"),
        ('url = ""', r"journal\.url: .*postgresql://"),
        ('url = "postgresql://db/e"\npath = "j.sqlite3"', r"journal\.url: .*not both"),
    ],
)
def test_journal_url_is_validated(journal: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_CONFIG + "[journal]\n" + journal + "\n")


async def test_open_journal_follows_the_configuration(postgres_url: str, tmp_path: Path) -> None:
    name = f"gw-de-{uuid.uuid4().hex[:8]}"
    config = parse_config(
        _CONFIG.replace("gw-de-kehl", name) + f'[journal]\nurl = "{postgres_url}"\n'
    )
    journal = open_journal(config, config.name, path=tmp_path / "unused.sqlite3")
    try:
        assert isinstance(journal.journal, PostgresJournal)
        assert journal.journal.namespace == f"euccs_{name}"
        assert journal.location.startswith(postgres_url)
        assert journal.recover().epoch >= 1
        journal.start()
        assert await journal.submit(lambda j: j.add([entry(b"a", 1)])) == [1]
    finally:
        journal.close()
    assert not (tmp_path / "unused.sqlite3").exists()
    sqlite = open_journal(parse_config(_CONFIG), "gw-de-kehl", path=tmp_path / "j.sqlite3")
    try:
        assert sqlite.location == str(tmp_path / "j.sqlite3")
    finally:
        sqlite.close()


def test_without_the_postgres_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(ConfigError, match=r"pip install 'euccs-gateway\[postgres\]'"):
        PostgresJournal("postgresql://db/euccs", namespace="euccs_x")


# ---------------------------------------------------------------------- fencing


def test_a_fenced_journal_writes_only_while_its_lease_holds(postgres_url: str) -> None:
    from gateway.leases import LeaseStore

    leases = LeaseStore(postgres_url)
    namespace = f"euccs_test_{uuid.uuid4().hex[:12]}"
    resource = f"gateway:{namespace}"
    first = leases.acquire(resource, "kehl-1", 30.0)
    assert first is not None
    old = PostgresJournal(postgres_url, namespace=namespace, fence=first)
    new: PostgresJournal | None = None
    try:
        [kept] = old.add(
            [NewEntry(message_id=b"m1", queue="egress:FR", priority=1, envelope=b"before")]
        )
        assert leases.release(first)
        second = leases.acquire(resource, "kehl-2", 30.0)
        assert second is not None and second.fencing > first.fencing
        new = PostgresJournal(postgres_url, namespace=namespace, fence=second)
        with pytest.raises(JournalError, match="fenced: instance kehl-1 no longer holds"):
            old.add(
                [
                    NewEntry(
                        message_id=b"m2",
                        queue="egress:FR",
                        priority=1,
                        envelope=b"after the takeover",
                    )
                ]
            )
        with pytest.raises(JournalError, match="fenced"):
            old.run_batch([lambda s: s.remove([kept]), lambda s: s.mark_seen(b"x", 1.0)])
        # The new holder sees what the old one wrote before the takeover, nothing after.
        assert [e.envelope for e in new.recover().entries] == [b"before"]
        assert not new.is_seen(b"x")
        new.add(
            [
                NewEntry(
                    message_id=b"m3", queue="egress:FR", priority=1, envelope=b"by the new holder"
                )
            ]
        )
        assert new.count() == 2
    finally:
        old.close()
        if new is not None:
            new.close()
        leases.close()


def test_a_slow_transaction_of_a_fenced_journal_is_not_taken_for_an_idle_one(
    postgres_url: str,
) -> None:
    """Rows converted between statements (a large recovery) are work, not idleness."""
    import dataclasses

    from gateway.leases import LeaseStore

    leases = LeaseStore(postgres_url)
    namespace = f"euccs_test_{uuid.uuid4().hex[:12]}"
    held = leases.acquire(f"gateway:{namespace}", "kehl-1", 30.0)
    assert held is not None
    fence = dataclasses.replace(held, ttl=1.0)  # idle in a transaction for 1 s at most
    journal = PostgresJournal(postgres_url, namespace=namespace, fence=fence)
    try:

        def slow(j: JournalStore) -> int:
            j.mark_seen(b"slow", 1.0)
            time.sleep(1.5)  # the session waits for us, inside the transaction
            return 1

        [(ok, value)] = journal.run_batch([slow])
        assert (ok, value) == (True, 1)
        assert journal.is_seen(b"slow")
    finally:
        journal.close()
        leases.close()


async def test_closing_a_journal_whose_commit_hangs_gives_up_and_fails_what_waits(
    tmp_path: Path,
) -> None:
    journal = AsyncJournal(tmp_path / "j.sqlite3")
    journal.recover()
    journal.start()
    hanging = threading.Event()
    release = threading.Event()

    def hang(j: JournalStore) -> int:
        hanging.set()
        release.wait(10)  # a commit stuck on a dead connection
        return 1

    stuck = journal.submit_nowait(hang)
    await asyncio.to_thread(hanging.wait, 5)
    waiting = journal.submit_nowait(lambda j: j.mark_seen(b"w", 1.0))
    began = time.monotonic()
    await asyncio.to_thread(journal.close, 0.3)
    assert time.monotonic() - began < 5  # bounded, not until the commit returns
    with pytest.raises(JournalError, match="closed while hanging"):
        await waiting
    release.set()  # the commit returns: its caller gets the result, the thread ends
    assert await stuck == 1
    assert journal._thread is not None
    await asyncio.to_thread(journal._thread.join, 5)
    assert not journal._thread.is_alive()


def test_a_fenced_journal_needs_postgresql(tmp_path: Path) -> None:
    lease = Lease(
        resource="gateway:x", owner="a", fencing=1, expires_at=dt.datetime.now(dt.UTC), ttl=5
    )
    config = parse_config(_CONFIG)
    with pytest.raises(ConfigError, match="fenced journal needs PostgreSQL"):
        open_journal(config, "gw", path=tmp_path / "j.sqlite3", fence=lease)


def test_epochs_grow_on_every_recovery_and_start_at_the_wall_clock(store: Stores) -> None:
    started = int(time.time())
    epochs = []
    for _ in range(3):  # three restarts
        journal = store.open()
        epochs.append(journal.recover().epoch)
        journal.close()
    assert epochs[0] >= started  # a journal lost and started anew is still above its past
    assert epochs[1] > epochs[0]
    assert epochs[2] > epochs[1]


def test_a_new_epoch_is_above_the_stored_one_and_the_wall_clock() -> None:
    assert epoch_after(0, 1_800_000_000.7) == 1_800_000_000
    assert epoch_after(1_800_000_000, 1_800_000_000.2) == 1_800_000_001  # same second
    assert epoch_after(1_900_000_000, 1_800_000_000.0) == 1_900_000_001  # clock behind
    assert epoch_after(41, 0.0) == 42  # a clock at 1970


def test_an_origin_record_is_kept_while_a_copy_of_its_message_is_in_custody(
    store: Stores,
) -> None:
    journal = store.open()
    journal.run_batch(
        [
            lambda j: j.put_origin(b"gone", {"adapter": "tetra-de"}, 10.0),
            lambda j: j.put_origin(b"held", {"adapter": "tetra-de"}, 10.0),
            lambda j: j.add([entry(b"held", 1)]),  # still waiting (spilled) for the partner
        ]
    )
    assert journal.prune_origins(before=100.0) == 1
    assert journal.get_origin(b"gone") is None
    assert journal.get_origin(b"held") == {"adapter": "tetra-de"}
    journal.close()
