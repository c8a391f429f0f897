"""The store-and-forward journal on PostgreSQL, for gateways that share one database.

Same statements and semantics as the SQLite journal (:class:`gateway.journal.Journal`):
one transaction per batch, one savepoint per operation (a failed operation is rolled
back alone), and a batch is durable when :meth:`PostgresJournal.run_batch` returns:
every connection runs with ``synchronous_commit = on``, so the commit waits for the
server's WAL flush (and, with synchronous replication, the standby's).

Each gateway keeps its tables in its own schema (``euccs_<gateway name>``, see
:func:`namespace_for`), created if missing, so several gateways can use one database
without seeing each other's custody.

Connections come from a small pool (one or two): the writer thread holds one per
batch. A connection the server dropped while it sat idle is replaced and the batch
runs on the new one; a connection lost in the middle of a batch fails that batch with
:class:`gateway.journal.JournalError` (nothing of it is durable, unless the loss hit the
commit itself, whose outcome is then unknown and reported as such) and the next batch
gets a fresh connection.

psycopg is imported when a journal is opened, so the gateway runs without the
``postgres`` extra as long as no ``[journal] url`` is configured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from gateway._postgres import (
    PooledStore,
    liveness_kwargs,
    open_pool,
    redact_url,
    require_psycopg,
)
from gateway.journal import (
    Bounds,
    JournalEntry,
    JournalError,
    JournalStore,
    NewEntry,
    Recovered,
    epoch_after,
)
from protocols.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

    from gateway.leases import Lease

__all__ = ["PostgresJournal", "namespace_for", "redact_url"]

log = structlog.get_logger(__name__)

#: Seconds one journal statement may run before the server cancels it (a lock wait, a
#: server in trouble): the commit fails with an error instead of hanging.
STATEMENT_TIMEOUT = 60.0

T = TypeVar("T")

_EXTRA_MISSING = (
    "the PostgreSQL journal needs the postgres extra: pip install 'euccs-gateway[postgres]'"
)

#: PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
_MAX_IDENTIFIER = 63


def namespace_for(gateway_name: str) -> str:
    """The schema of a gateway's journal: ``euccs_<name>``, shortened with a hash if too long."""
    namespace = f"euccs_{gateway_name}"
    if len(namespace.encode()) <= _MAX_IDENTIFIER:
        return namespace
    digest = hashlib.sha256(gateway_name.encode()).hexdigest()[:12]
    return f"euccs_{gateway_name.encode()[:40].decode(errors='ignore')}_{digest}"


#: The statements, with ``{ns}`` for the gateway's schema (composed with psycopg.sql).
_SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS {ns}",
    """CREATE TABLE IF NOT EXISTS {ns}.entries (
        entry_id   BIGSERIAL PRIMARY KEY,
        message_id BYTEA            NOT NULL,
        queue      TEXT             NOT NULL,
        priority   INTEGER          NOT NULL,
        expires_at DOUBLE PRECISION,
        envelope   BYTEA            NOT NULL,
        meta       JSONB            NOT NULL DEFAULT '{{}}'
    )""",
    "CREATE INDEX IF NOT EXISTS entries_by_message ON {ns}.entries (message_id)",
    "CREATE INDEX IF NOT EXISTS entries_by_queue ON {ns}.entries (queue, priority, entry_id)",
    """CREATE TABLE IF NOT EXISTS {ns}.seen (
        message_id BYTEA PRIMARY KEY,
        seen_at    DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS seen_by_time ON {ns}.seen (seen_at)",
    """CREATE TABLE IF NOT EXISTS {ns}.origins (
        message_id BYTEA PRIMARY KEY,
        record     JSONB            NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS {ns}.refs (
        adapter        TEXT    NOT NULL,
        unit           TEXT    NOT NULL,
        next_reference INTEGER NOT NULL,
        PRIMARY KEY (adapter, unit)
    )""",
    """CREATE TABLE IF NOT EXISTS {ns}.meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS {ns}.state (
        kind  TEXT  NOT NULL,
        key   TEXT  NOT NULL,
        value JSONB NOT NULL,
        PRIMARY KEY (kind, key)
    )""",
)

_STATEMENTS = {
    "add": "INSERT INTO {ns}.entries (message_id, queue, priority, expires_at, envelope, meta)"
    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING entry_id",
    "remove": "DELETE FROM {ns}.entries WHERE entry_id = ANY(%s)",
    "update_meta": "UPDATE {ns}.entries SET meta = %s WHERE entry_id = %s",
    "mark_seen": "INSERT INTO {ns}.seen (message_id, seen_at) VALUES (%s, %s)"
    " ON CONFLICT (message_id) DO NOTHING",
    "is_seen": "SELECT 1 FROM {ns}.seen WHERE message_id = %s",
    "prune_seen": "DELETE FROM {ns}.seen WHERE seen_at < %s",
    "put_origin": "INSERT INTO {ns}.origins (message_id, record, created_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (message_id)"
    " DO UPDATE SET record = EXCLUDED.record, created_at = EXCLUDED.created_at",
    "drop_origin": "DELETE FROM {ns}.origins WHERE message_id = %s",
    "get_origin": "SELECT record FROM {ns}.origins WHERE message_id = %s",
    "prune_origins": "DELETE FROM {ns}.origins o WHERE o.created_at < %s AND NOT EXISTS"
    " (SELECT 1 FROM {ns}.entries e WHERE e.message_id = o.message_id)",
    "set_ref": "INSERT INTO {ns}.refs (adapter, unit, next_reference) VALUES (%s, %s, %s)"
    " ON CONFLICT (adapter, unit) DO UPDATE SET next_reference = EXCLUDED.next_reference",
    "next_epoch": "INSERT INTO {ns}.meta AS m (key, value) VALUES ('epoch', %(now)s::text)"
    " ON CONFLICT (key) DO UPDATE SET value = GREATEST(m.value::bigint + 1, %(now)s)::text"
    " RETURNING value",
    "entries": "SELECT entry_id, message_id, queue, priority, expires_at, envelope, meta"
    " FROM {ns}.entries ORDER BY priority DESC, entry_id",
    "entries_after": "SELECT entry_id, message_id, queue, priority, expires_at, envelope, meta"
    " FROM {ns}.entries WHERE queue = %s AND priority = %s AND entry_id > %s"
    " ORDER BY entry_id LIMIT %s",
    "origins": "SELECT message_id, record FROM {ns}.origins",
    "entries_bounded": "SELECT entry_id, message_id, queue, priority, expires_at, envelope, meta"
    " FROM {ns}.entries WHERE entry_id IN (SELECT entry_id FROM (SELECT entry_id, priority,"
    " ROW_NUMBER() OVER (PARTITION BY queue ORDER BY priority DESC, entry_id) AS n"
    " FROM {ns}.entries) AS ranked WHERE n <= %s OR priority >= %s)"
    " ORDER BY priority DESC, entry_id",
    "origins_newest": "SELECT message_id, record FROM {ns}.origins"
    " ORDER BY created_at DESC LIMIT %s",
    "counts": "SELECT queue, priority, COUNT(*) FROM {ns}.entries GROUP BY queue, priority",
    "refs": "SELECT adapter, unit, next_reference FROM {ns}.refs",
    "count": "SELECT COUNT(*) FROM {ns}.entries",
    "put_state": "INSERT INTO {ns}.state (kind, key, value) VALUES (%s, %s, %s)"
    " ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
    "drop_state": "DELETE FROM {ns}.state WHERE kind = %s AND key = %s",
    "state": "SELECT kind, key, value FROM {ns}.state",
}


class _StaleConnection(Exception):
    """The pooled connection was dead before any operation of the batch ran."""


class PostgresJournal(PooledStore):
    """The journal's statements on PostgreSQL, in schema ``namespace`` of the database at ``url``.

    Args:
        url: a libpq URL (``postgresql://user@host:port/db``); a password is better kept
            in ``~/.pgpass`` or ``PGPASSWORD`` than in the configuration file.
        namespace: the schema holding this gateway's tables (:func:`namespace_for`).
        connect_timeout: seconds to wait for the server when connecting.
        pool_timeout: seconds a batch waits for a connection before it fails.
        fence: the lease under which this instance writes (several instances of one
            gateway, :mod:`gateway.cluster`): every batch checks, in its own transaction
            just before the commit, that the lease is still ours and fails with
            :class:`~gateway.journal.JournalError` otherwise (nothing of it is
            written), so an instance that lost its lease (paused, cut off) cannot write
            behind its successor's back.

    Raises:
        ConfigError: psycopg is not installed, or ``namespace`` is not a valid schema name.
        JournalError: the database cannot be reached or the tables cannot be created.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        connect_timeout: float = 10.0,
        pool_timeout: float = 15.0,
        fence: Lease | None = None,
    ) -> None:
        if not namespace or "\x00" in namespace or len(namespace.encode()) > _MAX_IDENTIFIER:
            raise ConfigError(
                f"journal namespace {namespace!r}: must be 1 to {_MAX_IDENTIFIER} bytes."
            )
        require_psycopg(_EXTRA_MISSING)
        import psycopg
        import psycopg_pool

        self._psycopg = psycopg
        self._pool_errors: tuple[type[Exception], ...] = (psycopg_pool.PoolTimeout,)
        self.namespace = namespace
        self._location = f"{redact_url(url)} (schema {namespace})"
        self._pool_timeout = pool_timeout
        self._local = threading.local()
        self._fence = fence
        from psycopg import sql

        ns = sql.Identifier(namespace)
        self._schema = [sql.SQL(text).format(ns=ns) for text in _SCHEMA]
        self._q = {key: sql.SQL(text).format(ns=ns) for key, text in _STATEMENTS.items()}
        # A dead connection is noticed within half a lease (ten seconds without one), so
        # an instance does not hang in a commit while it keeps renewing its lease.
        dead_after = fence.ttl / 2 if fence is not None else 10.0
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": f"euccs-gateway journal {namespace}"[:63],
            **liveness_kwargs(dead_after),
        }
        try:
            self._pool = open_pool(
                url,
                kwargs=kwargs,  # the pool's in autocommit: run_batch says BEGIN and COMMIT
                setup=self._create_schema,
                max_size=2,
                configure=self._configure,
                name=f"journal[{namespace}]",
                timeout=pool_timeout,
                connect_timeout=connect_timeout,
            )
        except psycopg.Error as exc:
            raise JournalError(f"{self._location}: cannot open the journal: {exc}") from exc

    # ------------------------------------------------------------------ connections

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        # Durability as with SQLite's synchronous=FULL, whatever the server's default.
        conn.execute("SET synchronous_commit TO on")
        conn.execute(f"SET statement_timeout = {round(STATEMENT_TIMEOUT * 1000)}")

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        # Two gateways starting at once must not race on CREATE SCHEMA.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('euccs-journal'), hashtext(%s))",
            (self.namespace,),
        )
        if conn.execute("SHOW fsync").fetchone() == ("off",):
            log.warning("journal.fsync_off", location=self._location)
        for statement in self._schema:
            conn.execute(statement)
        conn.commit()

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on the batch's connection, or alone in its own transaction."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            return fn(conn)
        [(ok, value)] = self.run_batch([lambda _store: fn(self._current())])
        if not ok:
            raise value
        result: T = value
        return result

    def _current(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = self._local.conn
        return conn

    # ------------------------------------------------------------------ transactions

    def run_batch(self, ops: Sequence[Callable[[JournalStore], Any]]) -> list[tuple[bool, Any]]:
        """Run ``ops`` in one transaction; each op in its own savepoint.

        Returns:
            Per op ``(True, result)`` or ``(False, exception)``; a failed op is
            rolled back alone and the others commit.

        Raises:
            JournalError: the commit failed or the connection was lost: nothing of the
                batch is durable (for a loss during the commit itself, the message says
                the outcome is unknown).
        """
        try:
            try:
                return self._attempt(ops)
            except _StaleConnection:
                # The server dropped the idle connection; nothing ran: once more, fresh.
                log.warning("journal.reconnected", location=self._location)
                return self._attempt(ops)
        except _StaleConnection as exc:
            raise JournalError(f"{self._location}: connection lost: {exc.__cause__}") from exc
        except self._pool_errors as exc:
            raise JournalError(f"{self._location}: no database connection: {exc}") from exc

    def _attempt(self, ops: Sequence[Callable[[JournalStore], Any]]) -> list[tuple[bool, Any]]:
        psycopg = self._psycopg
        results: list[tuple[bool, Any]] = []
        with self._pool.connection(timeout=self._pool_timeout) as conn:
            try:
                conn.execute("BEGIN")
            except psycopg.OperationalError as exc:
                if conn.broken:
                    raise _StaleConnection(str(exc)) from exc
                raise JournalError(f"{self._location}: cannot begin: {exc}") from exc
            self._local.conn = conn
            step = "batch"
            try:
                for op in ops:
                    conn.execute("SAVEPOINT op")
                    try:
                        results.append((True, op(self)))
                    except Exception as exc:  # one bad op must not sink the batch
                        if conn.broken:
                            raise
                        conn.execute("ROLLBACK TO SAVEPOINT op")
                        if isinstance(exc, psycopg.Error):
                            exc = JournalError(f"{self._location}: {exc}")
                        results.append((False, exc))
                    conn.execute("RELEASE SAVEPOINT op")
                if self._fence is not None:
                    # Last, so the lease row is locked only from here to the commit.
                    self._check_fence(conn)
                step = "commit"
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                if conn.broken:
                    if step == "commit":
                        raise JournalError(
                            f"{self._location}: connection lost during the commit, "
                            f"its outcome is unknown: {exc}"
                        ) from exc
                    raise JournalError(
                        f"{self._location}: connection lost, the batch is not durable: {exc}"
                    ) from exc
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                raise JournalError(f"{self._location}: commit failed: {exc}") from exc
            finally:
                self._local.conn = None
        return results

    def _check_fence(self, conn: psycopg.Connection[Any]) -> None:
        from gateway.leases import FENCE_CHECK

        fence = self._fence
        assert fence is not None
        # A holder that dies from here to the commit keeps the lease row share-locked until
        # the server drops its session: bound that by the ttl. Only here: a long recovery
        # read (rows converted between statements) must not count as idle.
        timeout_ms = max(1000, round(fence.ttl * 1000))
        conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {timeout_ms}")
        if conn.execute(FENCE_CHECK, fence.fence_params()).fetchone() is None:
            conn.execute("ROLLBACK")
            log.error(
                "journal.fenced",
                location=self._location,
                resource=fence.resource,
                owner=fence.owner,
                fencing=fence.fencing,
            )
            raise JournalError(
                f"{self._location}: fenced: instance {fence.owner} no longer holds "
                f"{fence.resource} (token {fence.fencing}); nothing was written."
            )

    # ------------------------------------------------------------------ statements

    def add(self, entries: Iterable[NewEntry]) -> list[int]:
        """Insert message copies; return their entry ids in order."""
        from psycopg.types.json import Jsonb

        rows = list(entries)
        query = self._q["add"]

        def run(conn: psycopg.Connection[Any]) -> list[int]:
            ids: list[int] = []
            with conn.cursor() as cursor:
                for e in rows:
                    meta = Jsonb(e.meta)
                    cursor.execute(
                        query, (e.message_id, e.queue, e.priority, e.expires_at, e.envelope, meta)
                    )
                    row = cursor.fetchone()
                    assert row is not None
                    ids.append(int(row[0]))
            return ids

        return self._run(run)

    def remove(self, entry_ids: Iterable[int]) -> int:
        """Delete message copies that reached their next hop; return how many existed."""
        ids = list(entry_ids)
        return self._run(lambda c: c.execute(self._q["remove"], (ids,)).rowcount)

    def update_meta(self, entry_id: int, meta: dict[str, Any]) -> None:
        """Replace the resume information of one entry."""
        from psycopg.types.json import Jsonb

        self._run(lambda c: c.execute(self._q["update_meta"], (Jsonb(meta), entry_id)))

    def mark_seen(self, message_id: bytes, now: float) -> bool:
        """Record a partner's message id; return False if it was already recorded."""
        query = self._q["mark_seen"]
        return self._run(lambda c: c.execute(query, (message_id, now)).rowcount == 1)

    def is_seen(self, message_id: bytes) -> bool:
        """Return True if a partner's message id is recorded."""
        query = self._q["is_seen"]
        return self._run(lambda c: c.execute(query, (message_id,)).fetchone() is not None)

    def prune_seen(self, before: float) -> int:
        """Forget partner message ids recorded before ``before``; return how many."""
        return self._run(lambda c: c.execute(self._q["prune_seen"], (before,)).rowcount)

    def put_origin(self, message_id: bytes, record: dict[str, Any], now: float) -> None:
        """Remember which radio is owed reports for a message it sent abroad."""
        from psycopg.types.json import Jsonb

        query = self._q["put_origin"]
        self._run(lambda c: c.execute(query, (message_id, Jsonb(record), now)))

    def drop_origin(self, message_id: bytes) -> None:
        """Forget an origin record once its radio has had its final report."""
        self._run(lambda c: c.execute(self._q["drop_origin"], (message_id,)))

    def get_origin(self, message_id: bytes) -> dict[str, Any] | None:
        """The origin record of a message, if it is still kept."""
        query = self._q["get_origin"]
        row = self._run(lambda c: c.execute(query, (message_id,)).fetchone())
        return None if row is None else dict(row[0])

    def prune_origins(self, before: float) -> int:
        """Forget origin records older than ``before`` (their reports can no longer come)."""
        return self._run(lambda c: c.execute(self._q["prune_origins"], (before,)).rowcount)

    def set_ref(self, adapter: str, unit: str, next_reference: int) -> None:
        """Record the next SDS-TL message reference for a unit."""
        self._run(lambda c: c.execute(self._q["set_ref"], (adapter, unit, next_reference)))

    def put_state(self, kind: str, rows: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        """Store (or, for None, delete) soft-state rows of ``kind``, by key."""
        from psycopg.types.json import Jsonb

        pairs = list(rows)
        dumps = functools.partial(json.dumps, allow_nan=False)  # JSONB has no NaN
        put = [(kind, key, Jsonb(value, dumps)) for key, value in pairs if value is not None]
        drop = [(kind, key) for key, value in pairs if value is None]

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cursor:
                if put:
                    cursor.executemany(self._q["put_state"], put)
                if drop:
                    cursor.executemany(self._q["drop_state"], drop)

        self._run(run)

    def next_epoch(self) -> int:
        """Increment and return this gateway's restart epoch."""
        # The same rule as the SQLite journal's (gateway.journal.epoch_after), in one statement.
        now = epoch_after(0, time.time())
        return self._run(lambda c: self._scalar(c, "next_epoch", {"now": now}))

    def recover(self, bounds: Bounds | None = None) -> Recovered:
        """Start a new epoch; read what is in custody, most urgent first, then arrival order.

        With ``bounds``, read only that much of it (``Recovered.counts`` says how much there is).
        """
        results = self.run_batch([lambda j: j.next_epoch(), lambda _j: self._read(bounds)])
        for ok, value in results:
            if not ok:
                raise value
        epoch: int = results[0][1]
        recovered: Recovered = results[1][1]
        return dataclasses.replace(recovered, epoch=epoch)

    def _read(self, bounds: Bounds | None) -> Recovered:
        conn = self._current()
        if bounds is None:
            rows = conn.execute(self._q["entries"])
            origin_rows = conn.execute(self._q["origins"])
        else:
            rows = conn.execute(self._q["entries_bounded"], (bounds.per_class, bounds.all_from))
            origin_rows = conn.execute(self._q["origins_newest"], (bounds.origins,))
        entries = [_entry(row) for row in rows]
        newest = origin_rows.fetchall()
        if bounds is not None:
            newest.reverse()  # the newest, oldest first (a tracker evicts the oldest)
        origins = {bytes(row[0]): row[1] for row in newest}
        refs = {(row[0], row[1]): int(row[2]) for row in conn.execute(self._q["refs"])}
        counts = {(row[0], int(row[1])): int(row[2]) for row in conn.execute(self._q["counts"])}
        state: dict[str, dict[str, Any]] = {}
        for kind, key, value in conn.execute(self._q["state"]):
            state.setdefault(kind, {})[key] = value
        return Recovered(
            entries=entries, origins=origins, refs=refs, epoch=0, counts=counts, state=state
        )

    def entries_after(
        self, queue: str, priority: int, after: int, limit: int
    ) -> list[JournalEntry]:
        """Up to ``limit`` copies in ``queue`` at ``priority`` after id ``after``, by id."""
        query = self._q["entries_after"]
        params = (queue, priority, after, limit)
        return self._run(lambda c: [_entry(row) for row in c.execute(query, params)])

    def count(self) -> int:
        """Number of message copies in custody."""
        return self._run(lambda c: self._scalar(c, "count"))

    def _scalar(
        self, conn: psycopg.Connection[Any], statement: str, params: dict[str, Any] | None = None
    ) -> int:
        row = conn.execute(self._q[statement], params).fetchone()
        assert row is not None
        return int(row[0])


def _entry(row: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        entry_id=int(row[0]),
        message_id=bytes(row[1]),
        queue=row[2],
        priority=row[3],
        expires_at=row[4],
        envelope=bytes(row[5]),
        meta=row[6],
    )
