"""The store-and-forward journal: durability order, recovery order, duplicates, group commit."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from pathlib import Path

import pytest

from gateway.journal import AsyncJournal, Journal, JournalError, NewEntry
from protocols.schema import v1


def entry(message_id: bytes, priority: int, queue: str = "egress:FR", **kw: object) -> NewEntry:
    return NewEntry(
        message_id=message_id,
        queue=queue,
        priority=priority,
        envelope=b"env-" + message_id,
        **kw,  # type: ignore[arg-type]
    )


def test_wal_mode_and_full_sync_are_in_force(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    db = sqlite3.connect(tmp_path / "j.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    journal.close()
    db.close()


def test_recovery_is_most_urgent_first_then_arrival_order(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
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
    recovered = Journal(path).recover()
    assert [e.message_id for e in recovered.entries] == [b"e1", b"h1", b"r1", b"r2"]
    assert recovered.entries[0].expires_at == 99.5
    assert recovered.entries[3].meta == {"issi": "1001"}
    assert recovered.entries[3].envelope == b"env-r2"
    assert recovered.origins == {b"r1": {"adapter": "tetra-de"}}
    assert recovered.refs == {("tetra-fr", "1001"): 17}
    assert recovered.epoch == 1


def test_epoch_grows_with_every_recovery(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    epochs = []
    for _ in range(3):
        journal = Journal(path)
        epochs.append(journal.recover().epoch)
        journal.close()
    assert epochs == [1, 2, 3]


def test_removed_entries_do_not_come_back(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    [[ok, ids]] = journal.run_batch([lambda j: j.add([entry(b"a", 1), entry(b"b", 1)])])
    assert ok
    assert journal.run_batch([lambda j: j.remove([ids[0], 12345])]) == [(True, 1)]
    assert journal.count() == 1
    journal.close()
    assert [e.message_id for e in Journal(path).recover().entries] == [b"b"]


def test_seen_ids_suppress_duplicates_until_pruned(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
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


def test_a_failing_operation_is_rolled_back_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")

    def half_then_fail(j: Journal) -> None:
        j.add([entry(b"half", 1)])
        raise ValueError("boom")

    results = journal.run_batch(
        [lambda j: j.add([entry(b"x", 1)]), half_then_fail, lambda j: j.add([entry(b"y", 1)])]
    )
    assert [ok for ok, _ in results] == [True, False, True]
    assert isinstance(results[1][1], ValueError)
    assert sorted(e.message_id for e in journal.recover().entries) == [b"x", b"y"]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(blocker / "j.sqlite3")


async def test_concurrent_submissions_share_commits(tmp_path: Path) -> None:
    journal = AsyncJournal(tmp_path / "j.sqlite3")
    journal.recover()
    journal.start()
    try:
        ids = await asyncio.gather(
            *(journal.submit(functools.partial(_add_one, i)) for i in range(200))
        )
        assert sorted(i for [i] in ids) == list(range(1, 201))
        assert journal.operations == 200
        assert journal.commits < 200  # grouped: fewer fsyncs than operations
        with pytest.raises(ValueError, match="bad op"):
            await journal.submit(_bad_op)
        assert journal.journal.count() == 200
    finally:
        journal.close()
    with pytest.raises(JournalError, match="not running"):
        await journal.submit(lambda j: j.count())


def _add_one(i: int, j: Journal) -> list[int]:
    return j.add([entry(bytes([i]), 1)])


def _bad_op(j: Journal) -> None:
    raise ValueError("bad op")
