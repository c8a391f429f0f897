"""Store-and-forward journal: every message is on disk before anyone is told it was accepted.

The journal is one SQLite database per gateway in WAL mode with
``synchronous=FULL``: each commit appends to the write-ahead log and fsyncs it
before :meth:`AsyncJournal.submit` returns, so a record the gateway has
acknowledged survives a process kill or a power cut. Commits are *grouped*: all
operations that arrive while one commit is in progress share the next one, so
the cost of an fsync is spread over every message of a burst (throughput grows
with load instead of collapsing).

Tables:

``entries``
    Messages in custody: one row per copy the gateway still owes a hop, keyed
    by an integer ``entry_id``; ``queue`` names where it waits
    (``egress:FR``, ``local:tetra-kehl``), ``meta`` carries JSON the owner
    needs to resume it (for a local delivery: the target and the SDS-TL
    message reference of a send that may have reached the radio).
``seen``
    Message ids accepted from partners, for duplicate suppression within a
    window (a partner that did not get our acknowledgement sends again).
``origins``
    Messages our radios sent abroad that still owe their radio a report.
``refs``
    The next SDS-TL message reference per (adapter, unit), so a restarted
    gateway neither repeats a reference a radio would discard as a
    retransmission nor forgets one it must repeat.
``state``
    Soft state a restarted gateway (or the instance taking over) resumes rather
    than rebuilds: presence of units and outstanding emergency alerts, JSON per
    ``(kind, key)``.

All operations run on one writer thread that owns the connection; the asyncio
side only awaits futures. :class:`JournalStore` is what a backend provides (the
statements, usable synchronously in tests): :class:`Journal` on SQLite, or
:class:`gateway.journal_pg.PostgresJournal` when several gateways share one
PostgreSQL database. :class:`AsyncJournal` drives either on its thread;
:func:`open_journal` builds the one a configuration asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog

from protocols.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from gateway.leases import Lease

__all__ = [
    "AsyncJournal",
    "Bounds",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalSettings",
    "JournalStore",
    "NewEntry",
    "Recovered",
    "SqliteJournal",
    "epoch_after",
    "open_journal",
]

log = structlog.get_logger(__name__)

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    entry_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id BLOB    NOT NULL,
    queue      TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    expires_at REAL,
    envelope   BLOB    NOT NULL,
    meta       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS entries_by_message ON entries (message_id);
CREATE INDEX IF NOT EXISTS entries_by_queue ON entries (queue, priority, entry_id);
CREATE TABLE IF NOT EXISTS seen (
    message_id BLOB PRIMARY KEY,
    seen_at    REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (seen_at);
CREATE TABLE IF NOT EXISTS origins (
    message_id BLOB PRIMARY KEY,
    record     TEXT NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (
    adapter TEXT NOT NULL,
    unit    TEXT NOT NULL,
    next    INTEGER NOT NULL,
    PRIMARY KEY (adapter, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


#: Most routine operations in one commit (an urgent one waits for at most that many).
MAX_GROUP = 256


class JournalError(GatewayError):
    """The journal cannot be opened or written: custody cannot be guaranteed."""


@dataclass(frozen=True, kw_only=True)
class NewEntry:
    """A message copy to take into custody."""

    message_id: bytes
    queue: str
    priority: int
    envelope: bytes
    expires_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    """A message copy in custody, as stored."""

    entry_id: int
    message_id: bytes
    queue: str
    priority: int
    envelope: bytes
    expires_at: float | None
    meta: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Recovered:
    """Everything a restarting gateway resumes from."""

    entries: list[JournalEntry]
    origins: dict[bytes, dict[str, Any]]
    refs: dict[tuple[str, str], int]
    epoch: int
    #: Copies in custody per (queue, priority), read or not (see :class:`Bounds`).
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Soft state per kind and key (:meth:`JournalStore.put_state`); JSON as stored, None if
    #: unreadable.
    state: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Bounds:
    """How much of a large custody a recovery reads.

    Attributes:
        per_class: At most this many copies per queue, the most urgent first and then the
            oldest (so what is read of each priority is its oldest copies), except that
            priorities from ``all_from`` on are always read whole.
        all_from: The lowest priority read whole.
        origins: At most this many origin records (the newest); the rest stay in the
            journal and are read when needed.
    """

    per_class: int
    all_from: int
    origins: int


class JournalStore(Protocol):
    """The statements every journal backend provides (one writer at a time).

    An operation is a callable ``op(store) -> result``; :meth:`run_batch` runs a
    batch of them in one transaction, each in its own savepoint.
    """

    @property
    def location(self) -> str:
        """Where the journal lives, fit for logs (never a password)."""
        ...

    def close(self) -> None:
        """Release the connection(s)."""
        ...

    def run_batch(self, ops: Sequence[Callable[[JournalStore], Any]]) -> list[tuple[bool, Any]]:
        """Run ``ops`` in one durable transaction, each op in its own savepoint.

        Returns:
            Per op ``(True, result)`` or ``(False, exception)``; a failed op is
            rolled back alone and the others commit.

        Raises:
            JournalError: the commit failed: nothing of the batch is durable.
        """
        ...

    def add(self, entries: Iterable[NewEntry]) -> list[int]:
        """Insert message copies; return their entry ids in order."""
        ...

    def remove(self, entry_ids: Iterable[int]) -> int:
        """Delete message copies that reached their next hop; return how many existed."""
        ...

    def update_meta(self, entry_id: int, meta: dict[str, Any]) -> None:
        """Replace the resume information of one entry."""
        ...

    def mark_seen(self, message_id: bytes, now: float) -> bool:
        """Record a partner's message id; return False if it was already recorded."""
        ...

    def is_seen(self, message_id: bytes) -> bool:
        """Return True if a partner's message id is recorded."""
        ...

    def prune_seen(self, before: float) -> int:
        """Forget partner message ids recorded before ``before``; return how many."""
        ...

    def put_origin(self, message_id: bytes, record: dict[str, Any], now: float) -> None:
        """Remember which radio is owed reports for a message it sent abroad."""
        ...

    def drop_origin(self, message_id: bytes) -> None:
        """Forget an origin record once its radio has had its final report."""
        ...

    def get_origin(self, message_id: bytes) -> dict[str, Any] | None:
        """The origin record of a message, if it is still kept."""
        ...

    def prune_origins(self, before: float) -> int:
        """Forget origin records older than ``before`` with no copy in custody; return how many."""
        ...

    def set_ref(self, adapter: str, unit: str, next_reference: int) -> None:
        """Record the next SDS-TL message reference for a unit."""
        ...

    def next_epoch(self) -> int:
        """Increment and return this gateway's restart epoch."""
        ...

    def put_state(self, kind: str, rows: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        """Store (or, for None, delete) soft-state rows of ``kind``, by key."""
        ...

    def recover(self, bounds: Bounds | None = None) -> Recovered:
        """Start a new epoch; read what is in custody, most urgent first, then arrival order.

        With ``bounds``, read only that much of it (``Recovered.counts`` says how much there is).
        """
        ...

    def entries_after(
        self, queue: str, priority: int, after: int, limit: int
    ) -> list[JournalEntry]:
        """Up to ``limit`` copies in ``queue`` at ``priority`` after id ``after``, by id."""
        ...

    def count(self) -> int:
        """Number of message copies in custody."""
        ...


class Journal:
    """The SQLite journal: the statements on one connection (not thread-safe by itself)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{self.path}: the file system does not support WAL mode")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"{self.path}: cannot open the journal: {exc}") from exc

    @property
    def location(self) -> str:
        """The database file."""
        return str(self.path)

    def close(self) -> None:
        """Close the connection (pending WAL content is checkpointed by SQLite)."""
        self._db.close()

    # ------------------------------------------------------------------ transactions

    def run_batch(self, ops: Sequence[Callable[[Journal], Any]]) -> list[tuple[bool, Any]]:
        """Run ``ops`` in one transaction; each op in its own savepoint.

        Returns:
            Per op ``(True, result)`` or ``(False, exception)``; a failed op is
            rolled back alone and the others commit.

        Raises:
            JournalError: the commit itself failed: nothing of the batch is durable.
        """
        results: list[tuple[bool, Any]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for op in ops:
                self._db.execute("SAVEPOINT op")
                try:
                    results.append((True, op(self)))
                except sqlite3.Error as exc:  # disk full, I/O error: custody not possible
                    self._db.execute("ROLLBACK TO op")
                    results.append((False, JournalError(f"{self.path}: {exc}")))
                except Exception as exc:  # one bad op must not sink the batch
                    self._db.execute("ROLLBACK TO op")
                    results.append((False, exc))
                self._db.execute("RELEASE op")
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise JournalError(f"{self.path}: commit failed: {exc}") from exc
        return results

    # ------------------------------------------------------------------ statements

    def add(self, entries: Iterable[NewEntry]) -> list[int]:
        """Insert message copies; return their entry ids in order."""
        ids: list[int] = []
        for entry in entries:
            cursor = self._db.execute(
                "INSERT INTO entries (message_id, queue, priority, expires_at, envelope, meta)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.message_id,
                    entry.queue,
                    entry.priority,
                    entry.expires_at,
                    entry.envelope,
                    json.dumps(entry.meta, separators=(",", ":")),
                ),
            )
            assert cursor.lastrowid is not None
            ids.append(cursor.lastrowid)
        return ids

    def remove(self, entry_ids: Iterable[int]) -> int:
        """Delete message copies that reached their next hop; return how many existed."""
        removed = 0
        for entry_id in entry_ids:
            removed += self._db.execute(
                "DELETE FROM entries WHERE entry_id = ?", (entry_id,)
            ).rowcount
        return removed

    def update_meta(self, entry_id: int, meta: dict[str, Any]) -> None:
        """Replace the resume information of one entry."""
        self._db.execute(
            "UPDATE entries SET meta = ? WHERE entry_id = ?",
            (json.dumps(meta, separators=(",", ":")), entry_id),
        )

    def mark_seen(self, message_id: bytes, now: float) -> bool:
        """Record a partner's message id; return False if it was already recorded."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO seen (message_id, seen_at) VALUES (?, ?)", (message_id, now)
        )
        return cursor.rowcount == 1

    def is_seen(self, message_id: bytes) -> bool:
        """Return True if a partner's message id is recorded."""
        row = self._db.execute("SELECT 1 FROM seen WHERE message_id = ?", (message_id,))
        return row.fetchone() is not None

    def prune_seen(self, before: float) -> int:
        """Forget partner message ids recorded before ``before``; return how many."""
        return self._db.execute("DELETE FROM seen WHERE seen_at < ?", (before,)).rowcount

    def put_origin(self, message_id: bytes, record: dict[str, Any], now: float) -> None:
        """Remember which radio is owed reports for a message it sent abroad."""
        self._db.execute(
            "INSERT OR REPLACE INTO origins (message_id, record, created_at) VALUES (?, ?, ?)",
            (message_id, json.dumps(record, separators=(",", ":")), now),
        )

    def drop_origin(self, message_id: bytes) -> None:
        """Forget an origin record once its radio has had its final report."""
        self._db.execute("DELETE FROM origins WHERE message_id = ?", (message_id,))

    def get_origin(self, message_id: bytes) -> dict[str, Any] | None:
        """The origin record of a message, if it is still kept."""
        row = self._db.execute(
            "SELECT record FROM origins WHERE message_id = ?", (message_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def prune_origins(self, before: float) -> int:
        """Forget origin records older than ``before`` (their reports can no longer come)."""
        # Not while a copy of the message is still in custody: its receipt needs the record.
        return self._db.execute(
            "DELETE FROM origins WHERE created_at < ? AND NOT EXISTS "
            "(SELECT 1 FROM entries WHERE entries.message_id = origins.message_id)",
            (before,),
        ).rowcount

    def set_ref(self, adapter: str, unit: str, next_reference: int) -> None:
        """Record the next SDS-TL message reference for a unit."""
        self._db.execute(
            "INSERT OR REPLACE INTO refs (adapter, unit, next) VALUES (?, ?, ?)",
            (adapter, unit, next_reference),
        )

    def put_state(self, kind: str, rows: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        """Store (or, for None, delete) soft-state rows of ``kind``, by key."""
        for key, value in rows:
            if value is None:
                self._db.execute("DELETE FROM state WHERE kind = ? AND key = ?", (kind, key))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO state (kind, key, value) VALUES (?, ?, ?)",
                    (kind, key, json.dumps(value, separators=(",", ":"), allow_nan=False)),
                )

    def next_epoch(self) -> int:
        """Increment and return this gateway's restart epoch (see :func:`epoch_after`)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        epoch = epoch_after(int(row[0]) if row else 0, time.time())
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        return epoch

    def recover(self, bounds: Bounds | None = None) -> Recovered:
        """Read what is still in custody, most urgent first, then in arrival order."""
        epoch = self.run_batch([Journal.next_epoch])[0][1]
        if bounds is None:
            entries = self._entries("ORDER BY priority DESC, entry_id", ())
            origins_sql = "SELECT message_id, record FROM origins"
            origins_params: tuple[int, ...] = ()
        else:
            entries = self._entries(
                "WHERE entry_id IN (SELECT entry_id FROM (SELECT entry_id, priority, ROW_NUMBER()"
                " OVER (PARTITION BY queue ORDER BY priority DESC, entry_id) AS n FROM entries)"
                " WHERE n <= ? OR priority >= ?) ORDER BY priority DESC, entry_id",
                (bounds.per_class, bounds.all_from),
            )
            origins_sql = "SELECT message_id, record FROM origins ORDER BY created_at DESC LIMIT ?"
            origins_params = (bounds.origins,)
        rows = self._db.execute(origins_sql, origins_params).fetchall()
        if bounds is not None:
            rows.reverse()  # the newest, oldest first (a tracker evicts the oldest)
        origins = {row[0]: json.loads(row[1]) for row in rows}
        refs = {(a, u): n for a, u, n in self._db.execute("SELECT adapter, unit, next FROM refs")}
        counts = {
            (queue, priority): n
            for queue, priority, n in self._db.execute(
                "SELECT queue, priority, COUNT(*) FROM entries GROUP BY queue, priority"
            )
        }
        state: dict[str, dict[str, Any]] = {}
        for kind, key, value in self._db.execute("SELECT kind, key, value FROM state"):
            try:
                state.setdefault(kind, {})[key] = json.loads(value)
            except ValueError:
                # Soft state: an unreadable row is passed on as such, to be refused and deleted.
                log.warning("journal.state_unreadable", kind=kind, key=key)
                state[kind][key] = None
        return Recovered(
            entries=entries,
            origins=origins,
            refs=refs,
            epoch=int(epoch),
            counts=counts,
            state=state,
        )

    def entries_after(
        self, queue: str, priority: int, after: int, limit: int
    ) -> list[JournalEntry]:
        """Up to ``limit`` copies in ``queue`` at ``priority`` after id ``after``, by id."""
        return self._entries(
            "WHERE queue = ? AND priority = ? AND entry_id > ? ORDER BY entry_id LIMIT ?",
            (queue, priority, after, limit),
        )

    def _entries(self, clause: str, params: tuple[Any, ...]) -> list[JournalEntry]:
        return [
            JournalEntry(
                entry_id=row[0],
                message_id=row[1],
                queue=row[2],
                priority=row[3],
                expires_at=row[4],
                envelope=row[5],
                meta=json.loads(row[6]),
            )
            for row in self._db.execute(
                "SELECT entry_id, message_id, queue, priority, expires_at, envelope, meta"  # noqa: S608
                f" FROM entries {clause}",  # constant clauses, values bound
                params,
            )
        ]

    def count(self) -> int:
        """Number of message copies in custody."""
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])


#: The SQLite backend under a name that says so.
SqliteJournal = Journal


#: Seconds :meth:`AsyncJournal.close` waits for the commit in progress.
CLOSE_TIMEOUT = 15.0


@dataclass
class _Pending:
    op: Callable[[JournalStore], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class AsyncJournal:
    """A journal store driven by one writer thread with group commit.

    ``await journal.submit(op)`` returns once ``op``'s transaction is durable. Operations
    submitted with ``urgent=True`` (emergency and imminent-peril custody) go into a commit
    of their own, ahead of routine operations that were waiting; a routine group is at most
    :data:`MAX_GROUP` operations, so an urgent one waits for at most the commit in progress
    and one routine group (urgent and routine commits alternate while both wait, so a steady
    urgent stream cannot starve routine work, some of which urgent work depends on).

    Args:
        store: a SQLite file (a path), or an open :class:`JournalStore`, which
            this object then owns and closes.
    """

    def __init__(self, store: str | Path | JournalStore) -> None:
        self.journal: JournalStore = Journal(store) if isinstance(store, (str, Path)) else store
        self._pending: list[_Pending] = []
        self._urgent: list[_Pending] = []
        self._last_urgent = False
        self._cond = threading.Condition()
        #: The event loop that will wake the writer for the routine operations queued.
        self._wake_due: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._abandoned = False
        self._thread: threading.Thread | None = None
        #: Commits and operations so far (operations / commits = mean group size).
        self.commits = 0
        self.operations = 0

    @property
    def location(self) -> str:
        """Where the journal lives (a file, or a database URL without its password)."""
        return self.journal.location

    def recover(self, bounds: Bounds | None = None) -> Recovered:
        """Read the custody state (call before :meth:`start`)."""
        return self.journal.recover(bounds)

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._writer, name=f"journal[{self.location}]", daemon=True
            )
            self._thread.start()

    async def submit(self, op: Callable[[JournalStore], R], *, urgent: bool = False) -> R:
        """Run ``op`` in the next group commit and return its result once durable.

        ``urgent``: in the next commit, with urgent operations only.

        Raises:
            JournalError: the journal is closed or the commit failed.
            Exception: whatever ``op`` raised (its changes are rolled back).
        """
        return await self.submit_nowait(op, urgent=urgent)

    def submit_nowait(
        self, op: Callable[[JournalStore], R], *, urgent: bool = False
    ) -> asyncio.Future[R]:
        """Queue ``op`` for the next group commit now; the future settles once it is durable.

        Operations commit in the order they were queued (urgent ones ahead of routine
        ones). Cancelling the future does not withdraw the operation.

        Raises:
            JournalError: the journal is not running.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._cond:
            if self._closing or self._thread is None:
                raise JournalError(f"{self.location}: the journal is not running")
            if urgent:
                self._urgent.append(_Pending(op, future, loop))
                self._cond.notify()
                return future
            self._pending.append(_Pending(op, future, loop))
            due = self._wake_due
            if due is None or due.is_closed():
                # One wake-up of the writer for all routine operations queued in this pass
                # of the event loop, not one each: waking a thread costs a system call and
                # often a stall of the loop behind it on a busy machine. The operations are
                # queued already (a close() in between still commits them). A wake-up left
                # on a loop closed before it ran is taken over.
                self._wake_due = loop
                loop.call_soon(self._wake)
            elif due is not loop:  # another running loop's wake-up may come late for ours
                self._cond.notify()
        return future

    def _wake(self) -> None:
        with self._cond:
            self._wake_due = None
            self._cond.notify()

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Finish pending commits, stop the thread and close the database.

        A commit hanging on a dead database connection must not hold the caller (a
        stop, an instance giving up its lease) for ever: after ``timeout`` seconds the
        operations not yet committed fail with :class:`JournalError` and the thread is
        left to close the database when its hanging commit returns.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                with self._cond:
                    self._abandoned = True
                    waiting, self._pending, self._urgent = self._pending + self._urgent, [], []
                log.error(
                    "journal.close_timeout",
                    location=self.location,
                    timeout_s=timeout,
                    not_committed=len(waiting),
                )
                error = JournalError(f"{self.location}: the journal was closed while hanging")
                _fail_all(waiting, error)
                return
        self.journal.close()

    def _writer(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._urgent) and not self._closing:
                    self._cond.wait()
                if self._urgent and not (self._last_urgent and self._pending):
                    batch, self._urgent = self._urgent, []
                    self._last_urgent = True
                else:
                    batch, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                    self._last_urgent = False
                if not batch and self._closing:
                    if self._abandoned:  # close() gave up waiting: the database is ours
                        with contextlib.suppress(Exception):
                            self.journal.close()
                    return
            try:
                results = self.journal.run_batch([p.op for p in batch])
            except JournalError as exc:
                log.error("journal.commit_failed", error=str(exc), operations=len(batch))
                results = [(False, exc)] * len(batch)
            except Exception as exc:  # a backend bug must not leave the waiters hanging
                log.exception("journal.commit_failed", operations=len(batch))
                error = JournalError(f"{self.location}: commit failed: {exc!r}")
                results = [(False, error)] * len(batch)
            if len(results) != len(batch):  # a backend bug: fail the waiters, keep the thread
                log.error("journal.results_mismatch", operations=len(batch), results=len(results))
                error = JournalError(f"{self.location}: the commit's outcome is unknown")
                results = [(False, error)] * len(batch)
            self.commits += 1
            self.operations += len(batch)
            # One wake-up per event loop and commit, not one per operation; the waiters
            # resume in the order they submitted.
            outcomes: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            for pending, (ok, value) in zip(batch, results, strict=True):
                outcomes.setdefault(pending.loop, []).append((pending.future, ok, value))
            for loop, settled in outcomes.items():
                with contextlib.suppress(RuntimeError):  # the waiter's loop is already closed
                    loop.call_soon_threadsafe(_settle_all, settled)


_Outcome = tuple["asyncio.Future[Any]", bool, Any]


def _fail_all(waiting: Sequence[_Pending], error: JournalError) -> None:
    outcomes: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for pending in waiting:
        outcomes.setdefault(pending.loop, []).append((pending.future, False, error))
    for loop, settled in outcomes.items():
        with contextlib.suppress(RuntimeError):  # the waiter's loop is already closed
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(outcomes: list[_Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the waiter was cancelled; the write is durable all the same
            continue
        try:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        except Exception as exc:  # e.g. StopIteration, which a future refuses to carry
            future.set_exception(JournalError(f"the operation failed: {value!r} ({exc})"))


class JournalSettings(Protocol):
    """The journal part of a gateway's configuration (``[journal]``)."""

    @property
    def journal_path(self) -> str | None:
        """The SQLite file, if configured."""
        ...

    @property
    def journal_url(self) -> str | None:
        """A ``postgresql://`` URL, if configured (it takes precedence over the file)."""
        ...


def epoch_after(previous: int, now: float) -> int:
    """The epoch of a new process: greater than ``previous`` and than any before it.

    At least the wall-clock second it starts in, so a gateway whose journal was lost (a
    rebuilt machine) still starts above every epoch partners saw from it: they take its
    presence and births as newer, where counting from 1 again would have them refused as
    stale until the partners restart. ``previous + 1`` keeps it growing if the clock is
    behind.

    Args:
        previous: The epoch stored in the journal (0 for a new journal).
        now: Wall-clock time, seconds since the Unix epoch.
    """
    return max(previous + 1, int(now))


def open_journal(
    settings: JournalSettings,
    name: str,
    *,
    path: str | Path | None = None,
    fence: Lease | None = None,
) -> AsyncJournal:
    """Open the journal ``settings`` select for the gateway called ``name``.

    With ``journal_url`` set: PostgreSQL, in the gateway's own schema
    (:func:`gateway.journal_pg.namespace_for`). Otherwise the SQLite file
    ``path`` (the location the caller resolved, e.g. in the state directory),
    else ``journal_path``.

    Raises:
        ConfigError: neither a URL nor a file, or PostgreSQL without its extra.
        JournalError: the journal cannot be opened.

    ``fence``: the lease under which this instance writes (PostgreSQL only; see
    :class:`gateway.journal_pg.PostgresJournal`).
    """
    if settings.journal_url:
        from gateway.journal_pg import PostgresJournal, namespace_for

        return AsyncJournal(
            PostgresJournal(settings.journal_url, namespace=namespace_for(name), fence=fence)
        )
    if fence is not None:
        raise ConfigError(f"{name}: a fenced journal needs PostgreSQL ([journal] url).")
    file = path if path is not None else settings.journal_path
    if file is None:
        raise ConfigError(f"{name}: the journal has neither a file nor a URL.")
    return AsyncJournal(file)
