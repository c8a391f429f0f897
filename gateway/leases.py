"""Ownership leases in PostgreSQL: one gateway instance of a country owns each adapter at a time.

Several instances of one country share the work without a coordinator of their own: each
*resource* (an adapter: a national radio network link, an MCX system link) has one row in
``euccs_leases``; the instance named in ``owner`` runs it until ``expires_at``. Every
operation of :class:`LeaseStore` is one atomic statement that compares against the
**database's** clock (``now()``), never the instance's, so clock skew between machines
cannot give two owners. The ``fencing`` token increases on every change of owner (and when
an owner takes back a lease that had expired), so anything an owner writes can carry it and
a stale owner's writes can be told apart from the current one's.

:class:`LeaseKeeper` is the asyncio side: it keeps trying to acquire each free resource,
renews held ones every ``ttl / 3``, and calls ``on_acquired`` / ``on_lost``.

Safety when an instance is cut off from the database
----------------------------------------------------
A renewal that fails (the database is unreachable, the call hangs) does not end the lease
at once: the lease stays valid *locally* until ``ttl`` has passed on the instance's
monotonic clock since the **start** of the last successful renewal (or acquisition). Then
the keeper calls ``on_lost`` and the instance must stop acting for that resource.

The database hands the resource to another instance only when ``now() >= expires_at``,
where ``expires_at = now() + ttl`` was computed by the renewal's statement, i.e. with the
database time of that statement's transaction, which began *after* the instance sent it,
hence after the local start. So the instance gives up at ``start + ttl`` and the database
hands over no earlier than ``(start + network delay) + ttl``: the two intervals never
overlap, whatever the clock *offset* between the machines, as long as both clocks run at
the same *rate* (a drift of d over ttl eats d of the network-delay margin; ``guard`` adds
an explicit margin). ``on_lost`` must therefore stop the adapter promptly (cancel, close),
not run a long clean-up first.

The decision part (:class:`Slot`, :func:`plan`) is pure and takes the time as an argument;
the keeper only runs the database calls on a thread pool and applies the results.

psycopg is imported when a store is opened, so the gateway runs without the ``postgres``
extra as long as no lease store is configured.

``python -m gateway.leases --demo-holder --url URL --owner NAME --resources a,b --ttl 2``
runs a keeper and prints one JSON line per acquisition or loss (used by the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import enum
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog

from gateway._postgres import (
    PooledStore,
    liveness_kwargs,
    open_pool,
    redact_url,
    require_psycopg,
)
from protocols.errors import GatewayError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "FENCE_CHECK",
    "Lease",
    "LeaseError",
    "LeaseKeeper",
    "LeaseStore",
    "LeaseStoreProtocol",
    "Slot",
    "Step",
    "plan",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Seconds between two warnings of failed acquisitions of one keeper.
_ACQUIRE_WARNING_INTERVAL = 60.0

_EXTRA_MISSING = "ownership leases need the postgres extra: pip install 'euccs-gateway[postgres]'"

_SCHEMA = """CREATE TABLE IF NOT EXISTS euccs_leases (
        resource   TEXT        PRIMARY KEY,
        owner      TEXT        NOT NULL,
        fencing    BIGINT      NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )"""


def _create_table(conn: psycopg.Connection[Any]) -> None:
    # Two instances starting at once must not race on CREATE TABLE.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('euccs-leases'))")
    conn.execute(_SCHEMA)
    conn.commit()


# Insert; or take over an expired lease (new token); or renew our own live lease (same token).
# Under contention the row lock serialises the racers: the loser re-evaluates the WHERE
# clause against the winner's row, finds it live and not its own, and gets no row back.
_ACQUIRE = """
INSERT INTO euccs_leases AS l (resource, owner, fencing, expires_at)
VALUES (%(resource)s, %(owner)s, 1, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (resource) DO UPDATE SET
    owner = EXCLUDED.owner,
    fencing = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > now()
                   THEN l.fencing ELSE l.fencing + 1 END,
    expires_at = EXCLUDED.expires_at
WHERE l.owner = EXCLUDED.owner OR l.expires_at <= now()
RETURNING resource, owner, fencing, expires_at
"""

_RENEW = """
UPDATE euccs_leases SET expires_at = now() + make_interval(secs => %(ttl)s)
WHERE resource = %(resource)s AND owner = %(owner)s AND fencing = %(fencing)s
  AND expires_at > now()
RETURNING resource, owner, fencing, expires_at
"""

# The row stays (expired at once) so the fencing token keeps increasing across owners.
_RELEASE = """
UPDATE euccs_leases SET expires_at = '-infinity'
WHERE resource = %(resource)s AND owner = %(owner)s AND fencing = %(fencing)s
  AND expires_at > now()
"""

_HOLDER = """
SELECT resource, owner, fencing, expires_at FROM euccs_leases
WHERE resource = %(resource)s AND expires_at > now()
"""

#: Run last, before the commit, in each journal transaction of a lease holder (see
#: :class:`Lease`): a row only while the lease is still the holder's. ``FOR SHARE`` makes a
#: takeover (an UPDATE of the row) wait for that transaction's end, so the new owner, which
#: reads the journal after taking the lease, sees every write the old one committed, and
#: the old one commits nothing after the takeover.
FENCE_CHECK = """
SELECT 1 FROM euccs_leases
WHERE resource = %(resource)s AND owner = %(owner)s AND fencing = %(fencing)s
  AND expires_at > now()
FOR SHARE
"""


class LeaseError(GatewayError):
    """The lease store cannot be reached or used: ownership is unknown."""


@dataclass(frozen=True, kw_only=True)
class Lease:
    """One owner's hold on a resource.

    Attributes:
        resource: what is owned (an adapter's name).
        owner: the instance holding it.
        fencing: increases on every change of owner; attach it to what the owner writes.
        expires_at: the database's time at which the lease ends unless renewed.
        ttl: the lease's duration in seconds, as requested.
    """

    resource: str
    owner: str
    fencing: int
    expires_at: dt.datetime
    ttl: float

    def fence_params(self) -> dict[str, Any]:
        """The parameters of :data:`FENCE_CHECK` for this lease."""
        return {"resource": self.resource, "owner": self.owner, "fencing": self.fencing}


class LeaseStoreProtocol(Protocol):
    """What :class:`LeaseKeeper` needs of a store (synchronous; run on a thread)."""

    def acquire(self, resource: str, owner: str, ttl: float) -> Lease | None:
        """Take ``resource`` for ``owner`` for ``ttl`` seconds, or None if someone else holds it."""
        ...

    def renew(self, lease: Lease) -> Lease | None:
        """Extend ``lease``, or None if it is no longer ours."""
        ...

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up at once; True if it was still ours."""
        ...

    def holder(self, resource: str) -> Lease | None:
        """The live lease on ``resource``, whoever holds it, or None."""
        ...


class LeaseStore(PooledStore):
    """Leases in the table ``euccs_leases`` of the database at ``url`` (created if missing).

    Every method is one atomic statement in its own transaction, timed by the database.

    Args:
        url: a libpq URL (``postgresql://user@host:port/db``).
        connect_timeout: seconds to wait for the server when connecting.
        statement_timeout: seconds after which the server cancels a statement (a lease
            call must not hang longer than a fraction of a lease's ttl).
        pool_timeout: seconds a call waits for a pooled connection before it fails.
        max_connections: size of the connection pool.

    Raises:
        ConfigError: psycopg is not installed.
        LeaseError: the database cannot be reached or the table cannot be created.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 3.0,
        statement_timeout: float = 2.0,
        pool_timeout: float = 3.0,
        max_connections: int = 4,
    ) -> None:
        require_psycopg(_EXTRA_MISSING)
        import psycopg
        import psycopg_pool

        self._psycopg = psycopg
        self._pool_errors: tuple[type[Exception], ...] = (psycopg_pool.PoolTimeout,)
        self._location = redact_url(url)
        self._pool_timeout = pool_timeout
        self._statement_timeout_ms = max(1, round(statement_timeout * 1000))
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": "euccs-gateway leases",
            **liveness_kwargs(3 * statement_timeout),
        }
        try:
            self._pool = open_pool(
                url,
                kwargs=kwargs,
                setup=_create_table,
                max_size=max(1, max_connections),
                configure=self._configure,
                check=psycopg_pool.ConnectionPool.check_connection,
                name="leases",
                timeout=pool_timeout,
                connect_timeout=connect_timeout,
            )
        except psycopg.Error as exc:
            raise LeaseError(f"{self._location}: cannot open the lease store: {exc}") from exc

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            with self._pool.connection(timeout=self._pool_timeout) as conn:
                return fn(conn)
        except self._psycopg.Error as exc:
            raise LeaseError(f"{self._location}: {exc}") from exc
        except self._pool_errors as exc:
            raise LeaseError(f"{self._location}: no database connection: {exc}") from exc

    def _one(self, query: str, params: dict[str, Any], ttl: float) -> Lease | None:
        def run(conn: psycopg.Connection[Any]) -> Lease | None:
            row = conn.execute(query, params).fetchone()
            if row is None:
                return None
            return Lease(
                resource=row[0], owner=row[1], fencing=int(row[2]), expires_at=row[3], ttl=ttl
            )

        return self._run(run)

    def acquire(self, resource: str, owner: str, ttl: float) -> Lease | None:
        """Take ``resource`` for ``owner`` for ``ttl`` seconds.

        Inserts the lease, takes it over when it has expired (new fencing token), or renews
        it when ``owner`` already holds it (same token).

        Returns:
            The lease, or None when another owner holds it.

        Raises:
            LeaseError: the database could not be asked; ownership is unknown.
        """
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        params = {"resource": resource, "owner": owner, "ttl": float(ttl)}
        return self._one(_ACQUIRE, params, ttl)

    def renew(self, lease: Lease) -> Lease | None:
        """Extend ``lease`` by its ttl from the database's now.

        Returns:
            The renewed lease, or None when it is lost (expired, or taken over).

        Raises:
            LeaseError: the database could not be asked; the lease may still be ours.
        """
        params = {
            "resource": lease.resource,
            "owner": lease.owner,
            "fencing": lease.fencing,
            "ttl": float(lease.ttl),
        }
        return self._one(_RENEW, params, lease.ttl)

    def release(self, lease: Lease) -> bool:
        """End ``lease`` at once so another owner can take it; True if it was still ours."""
        params = {"resource": lease.resource, "owner": lease.owner, "fencing": lease.fencing}
        return self._run(lambda c: c.execute(_RELEASE, params).rowcount == 1)

    def holder(self, resource: str) -> Lease | None:
        """The live lease on ``resource``, or None when it is free (ttl is reported as 0)."""
        return self._one(_HOLDER, {"resource": resource}, 0.0)


# ---------------------------------------------------------------------- decisions (pure)


class Step(enum.Enum):
    """What a keeper does next for one resource."""

    ACQUIRE = "acquire"
    RENEW = "renew"
    LOSE = "lose"
    WAIT = "wait"


@dataclass
class Slot:
    """A keeper's knowledge of one resource; all times are local monotonic seconds.

    Attributes:
        ttl: the lease duration asked for.
        interval: time between attempts (renewals, or acquisitions of a free resource).
        guard: margin subtracted from ``ttl`` before a lease counts as lost locally.
        lease: the lease held, or None.
        valid_until: when a held lease counts as lost without a successful renewal.
        next_attempt: when to try the database again.
    """

    ttl: float
    interval: float
    guard: float = 0.0
    lease: Lease | None = None
    valid_until: float = 0.0
    next_attempt: float = 0.0

    def acquired(self, lease: Lease | None, started: float) -> None:
        """Apply the result of an acquisition (or renewal) that began at ``started``."""
        self.next_attempt = started + self.interval
        if lease is None:
            self.lease = None
            return
        self.lease = lease
        self.valid_until = started + self.ttl - self.guard

    def failed(self, now: float) -> None:
        """The database could not be asked: try again soon, keep the local deadline."""
        self.next_attempt = now + min(self.interval, 0.5)

    def lost(self, now: float) -> None:
        """The lease is given up locally."""
        self.lease = None
        self.next_attempt = now


def plan(slot: Slot, now: float) -> tuple[Step, float]:
    """The next step for ``slot`` at ``now``, and (for :attr:`Step.WAIT`) until when."""
    if slot.lease is not None and now >= slot.valid_until:
        return Step.LOSE, now
    if now >= slot.next_attempt:
        return (Step.RENEW if slot.lease is not None else Step.ACQUIRE), now
    if slot.lease is not None:
        return Step.WAIT, min(slot.next_attempt, slot.valid_until)
    return Step.WAIT, slot.next_attempt


# ---------------------------------------------------------------------- asyncio keeper

OnAcquired = Callable[[str, Lease], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]


async def _nothing_acquired(_resource: str, _lease: Lease) -> None:
    return None


async def _nothing_lost(_resource: str) -> None:
    return None


#: Asked before each acquisition attempt (False: not now), and after each renewal
#: (True: hand the resource over, see :class:`LeaseKeeper`).
Gate = Callable[[str], Awaitable[bool]]


@dataclass
class _Tracked:
    slot: Slot
    task: asyncio.Task[None] | None = None


class LeaseKeeper:
    """Keeps trying to own ``resources`` as ``owner``; calls back on every change.

    Args:
        store: the lease store (its calls run on the keeper's own threads).
        resources: what to own.
        owner: this instance's unique id.
        ttl: lease duration in seconds; renewals every ``ttl / 3``.
        on_acquired: awaited when a resource becomes ours (start acting for it; return
            quickly, the resource's renewals wait for it).
        on_lost: awaited when a resource is no longer ours (stop acting for it at once).
        guard: extra margin before a lease whose renewals fail counts as lost locally.
        may_acquire: asked before each attempt to acquire a resource: False skips the
            attempt (the resource belongs elsewhere for now); None: always try.
        should_yield: asked after each renewal: True hands the resource over (``on_lost``,
            then release; the next attempt to take it back waits a ttl); None: never.

    Attributes:
        counters: ``acquired``, ``lost``, ``renew_failed``, ``acquire_failed``,
            ``handed_over``.
    """

    def __init__(
        self,
        store: LeaseStoreProtocol,
        resources: Iterable[str],
        owner: str,
        *,
        ttl: float = 10.0,
        on_acquired: OnAcquired = _nothing_acquired,
        on_lost: OnLost = _nothing_lost,
        guard: float = 0.0,
        may_acquire: Gate | None = None,
        should_yield: Gate | None = None,
    ) -> None:
        if ttl <= 0 or not 0 <= guard < ttl:
            raise ValueError("ttl must be positive and guard within [0, ttl)")
        self.store = store
        self.owner = owner
        self.ttl = ttl
        self.interval = ttl / 3
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._may_acquire, self._should_yield = may_acquire, should_yield
        self._tracked = {
            r: _Tracked(Slot(ttl=ttl, interval=self.interval, guard=guard)) for r in resources
        }
        self.counters: Counter[str] = Counter()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * len(self._tracked) + 1, thread_name_prefix="leases"
        )
        self._started = False
        self._stopping = False
        self._warned_at: float | None = None

    @property
    def held(self) -> dict[str, Lease]:
        """The leases held now."""
        return {r: t.slot.lease for r, t in self._tracked.items() if t.slot.lease is not None}

    async def start(self) -> None:
        """Start one loop per resource."""
        if self._started:
            return
        self._started = True
        for resource, tracked in self._tracked.items():
            tracked.task = asyncio.create_task(
                self._keep(resource, tracked), name=f"lease:{resource}"
            )

    async def stop(self, *, release: bool = True) -> None:
        """Stop the loops; call ``on_lost`` for held leases, then release them."""
        if not self._started:
            return
        self._stopping = True
        tasks = [t.task for t in self._tracked.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for resource, tracked in self._tracked.items():
            tracked.task = None
            lease = tracked.slot.lease
            if lease is None:
                if release:
                    await self._release_in_flight(resource)
                continue
            tracked.slot.lost(time.monotonic())
            await self._lose(resource, reason="stopped")
            if release:
                try:
                    await self._call(self.interval, self.store.release, lease)
                except (LeaseError, TimeoutError) as exc:
                    log.warning("lease.release_failed", resource=resource, error=str(exc))
        self._started = False
        self._stopping = False
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _release_in_flight(self, resource: str) -> None:
        """Release a lease an acquisition cancelled by :meth:`stop` may still have taken.

        Its thread commits in the database even though its result is never applied: left
        alone, the lease would keep a standby waiting for a whole ttl.
        """
        try:
            held = await self._call(self.interval, self.store.holder, resource)
            if held is not None and held.owner == self.owner:
                await self._call(self.interval, self.store.release, held)
                log.info("lease.released_in_flight", resource=resource, fencing=held.fencing)
        except (LeaseError, TimeoutError) as exc:
            log.warning("lease.release_failed", resource=resource, error=str(exc))

    async def _call(self, within: float, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, fn, *args)
        # A call still running at the deadline is abandoned; its result is never applied.
        async with asyncio.timeout(max(within, 0.0)):
            return await future

    async def _keep(self, resource: str, tracked: _Tracked) -> None:
        slot = tracked.slot
        while not self._stopping:
            now = time.monotonic()
            step, until = plan(slot, now)
            if step is Step.WAIT:
                await asyncio.sleep(until - now)
            elif step is Step.LOSE:
                slot.lost(now)
                await self._lose(resource, reason="renewal_deadline")
            elif step is Step.ACQUIRE:
                await self._acquire(resource, slot, now)
            else:
                await self._renew(resource, slot, now)

    async def _gate(self, gate: Gate | None, resource: str, default: bool, within: float) -> bool:
        """Ask ``gate``; past ``within`` seconds or on an error, answer ``default``.

        Bounded: a held lease's local deadline must be checked in time, whatever the
        database does meanwhile.
        """
        if gate is None:
            return default
        try:
            async with asyncio.timeout(max(within, 0.0)):
                return await gate(resource)
        except Exception as exc:  # e.g. the database did not answer: do as without a gate
            log.warning("lease.gate_failed", resource=resource, error=str(exc) or repr(exc))
            return default

    async def _acquire(self, resource: str, slot: Slot, started: float) -> None:
        if not await self._gate(self._may_acquire, resource, True, self.interval):
            slot.acquired(None, started)  # try again after an interval
            return
        try:
            lease = await self._call(
                self.interval, self.store.acquire, resource, self.owner, self.ttl
            )
        except (LeaseError, TimeoutError) as exc:
            self.counters["acquire_failed"] += 1
            now = time.monotonic()
            # A standby that can never take over (no permission on the table, a database
            # gone) must say so, once a minute rather than at every attempt.
            if self._warned_at is None or now - self._warned_at >= _ACQUIRE_WARNING_INTERVAL:
                self._warned_at = now
                log.warning(
                    "lease.acquire_failed",
                    resource=resource,
                    error=str(exc) or type(exc).__name__,
                    failures=self.counters["acquire_failed"],
                )
            slot.failed(now)
            return
        slot.acquired(lease, started)
        if lease is None:
            return
        if time.monotonic() >= slot.valid_until:  # too slow to be of use: let it lapse
            slot.lost(time.monotonic())
            return
        self.counters["acquired"] += 1
        log.info("lease.acquired", resource=resource, owner=self.owner, fencing=lease.fencing)
        try:
            await self._on_acquired(resource, lease)
        except Exception:  # a failing callback must not stop the renewals
            log.exception("lease.on_acquired_failed", resource=resource)

    async def _renew(self, resource: str, slot: Slot, started: float) -> None:
        lease = slot.lease
        assert lease is not None
        try:
            renewed = await self._call(slot.valid_until - time.monotonic(), self.store.renew, lease)
        except (LeaseError, TimeoutError) as exc:
            self.counters["renew_failed"] += 1
            log.warning(
                "lease.renew_failed",
                resource=resource,
                fencing=lease.fencing,
                left=round(slot.valid_until - time.monotonic(), 3),
                error=str(exc) or type(exc).__name__,
            )
            slot.failed(time.monotonic())
            return
        if renewed is None:
            slot.lost(time.monotonic())
            await self._lose(resource, reason="taken_over")
            return
        slot.acquired(renewed, started)
        within = min(self.interval, slot.valid_until - time.monotonic())
        if await self._gate(self._should_yield, resource, False, within):
            await self._hand_over(resource, slot, renewed)

    async def _hand_over(self, resource: str, slot: Slot, lease: Lease) -> None:
        """Give ``resource`` up on purpose: stop acting for it, then release it."""
        now = time.monotonic()
        slot.lost(now)
        slot.next_attempt = now + self.ttl  # its rightful owner takes it meanwhile
        self.counters["handed_over"] += 1
        await self._lose(resource, reason="handed_over")
        try:
            await self._call(self.interval, self.store.release, lease)
        except (LeaseError, TimeoutError) as exc:  # it lapses after its ttl instead
            log.warning("lease.release_failed", resource=resource, error=str(exc))

    async def _lose(self, resource: str, *, reason: str) -> None:
        self.counters["lost"] += 1
        # Handing a resource over on purpose is no loss to alert on.
        level = log.info if reason in ("handed_over", "stopped") else log.warning
        level("lease.lost", resource=resource, owner=self.owner, reason=reason)
        try:
            await self._on_lost(resource)
        except Exception:
            log.exception("lease.on_lost_failed", resource=resource)


# ---------------------------------------------------------------------- demo holder


async def _demo_holder(url: str, owner: str, resources: Sequence[str], ttl: float) -> None:
    def emit(event: str, **fields: Any) -> None:
        line = {"event": event, "owner": owner, "t": time.monotonic(), **fields}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    async def acquired(resource: str, lease: Lease) -> None:
        emit("acquired", resource=resource, fencing=lease.fencing)

    async def lost(resource: str) -> None:
        emit("lost", resource=resource)

    store = await asyncio.to_thread(LeaseStore, url)
    keeper = LeaseKeeper(store, resources, owner, ttl=ttl, on_acquired=acquired, on_lost=lost)
    await keeper.start()
    emit("started")
    try:
        await asyncio.Event().wait()
    finally:
        await keeper.stop()
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gateway.leases --demo-holder``: hold leases and print JSON lines."""
    parser = argparse.ArgumentParser(prog="python -m gateway.leases")
    parser.add_argument("--demo-holder", action="store_true", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--resources", required=True, help="comma-separated")
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    from gateway.logs import configure_logging

    configure_logging(args.log_level)
    resources = [r for r in args.resources.split(",") if r]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_demo_holder(args.url, args.owner, resources, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
