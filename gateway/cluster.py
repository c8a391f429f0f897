"""Several instances of one gateway: one active at a time, the others standing by, by lease.

A gateway configuration with a ``[cluster]`` table may run as several ``euccs-gw run``
processes, on several machines, all with the same configuration and each with its own
instance id. They share the PostgreSQL journal (``[journal] url``). The lease
``gateway:<name>`` in that database (:mod:`gateway.leases`) says which instance is
*active*: that one runs the whole gateway (adapters, federation link, API); the others
keep trying to take the lease and start the gateway the moment they get it.

What a takeover keeps:

* **Custody.** Every message the active instance acknowledged (to a radio, an MCX
  system or a partner) is in the shared journal; the next active instance resumes it,
  in the order it was admitted, as after a restart of a single instance.
* **No double delivery.** The SDS-TL message reference of a delivery is journaled before
  the delivery is attempted, so a resent copy carries the same reference and the far
  end recognises it; partner message ids seen are in the journal too.
* **No split brain.** The lease is given up locally before the database can hand it to
  another instance (argument in :mod:`gateway.leases`), the gateway is cancelled at once
  when it is, and every journal transaction checks the lease and its fencing token before
  it commits, under a row lock (:data:`gateway.leases.FENCE_CHECK`): an instance that was
  paused or cut off cannot write behind its successor's back.

**A split country** (:mod:`gateway.members`) runs several gateways, each with its own
configuration and lease; every instance may run all of them (``euccs-gw run -c de.toml -c
de-2.toml``). ``[cluster] home`` names the instance that runs a gateway whenever it is up:
while it stands by for the gateway or runs it, the home instance holds the lease
``home:<name>``. Another instance takes the gateway only while that lease has lapsed (the
home instance is down), or when the gateway's own lease has stayed free for two ttls although
the home instance is up (it cannot take it); it hands the gateway back, by a clean release,
once the home instance has been seen up at two renewals in a row (and, after such a retake,
only once the home instance has restarted). So two instances share two gateways' work, and
either runs both while the other is down.

A takeover after a crash takes at most the lease ttl (``[cluster] lease_ttl``), plus one
acquisition interval (ttl/3) and the gateway's start; a clean stop (SIGTERM) releases the
lease at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog

from gateway.config import GatewayConfig
from gateway.journal import CLOSE_TIMEOUT
from gateway.leases import Lease, LeaseError, LeaseKeeper, LeaseStore

__all__ = ["ActiveStandby", "home_resource", "instance_id", "lease_resource"]

log = structlog.get_logger(__name__)

#: Starts the gateway under a lease for the duration of the context, and yields what to
#: await: it ends (or raises) only if the gateway stops on its own.
Starter = Callable[[Lease], AbstractAsyncContextManager[Awaitable[Any]]]


#: Seconds an away instance waits for a gateway's home instance to appear before it warns.
_HOME_GRACE = 60.0

#: Seconds the gateway of an instance that lost its lease has to stop (its journal gives up
#: a hanging commit after ``gateway.journal.CLOSE_TIMEOUT``).
STOP_TIMEOUT = CLOSE_TIMEOUT + 10.0


def lease_resource(gateway_name: str) -> str:
    """The lease resource of a gateway: ``gateway:<name>``."""
    return f"gateway:{gateway_name}"


def home_resource(gateway_name: str) -> str:
    """The lease a gateway's home instance holds while it is up for it: ``home:<name>``."""
    return f"home:{gateway_name}"


def instance_id(config: GatewayConfig, override: str | None = None) -> str:
    """This instance's id.

    In order: ``override`` (``--instance``), ``[cluster] instance``, the environment
    variable ``EUCCS_INSTANCE``, else ``<host name>-<process id>``.
    """
    configured = config.cluster.instance if config.cluster is not None else None
    return (
        override
        or configured
        or os.environ.get("EUCCS_INSTANCE")
        or f"{socket.gethostname()}-{os.getpid()}"
    )


class ActiveStandby:
    """Runs ``start(lease)`` while this instance holds the gateway's lease.

    Args:
        config: The gateway's configuration (with ``[cluster]`` and a journal URL).
        instance: This instance's unique id.
        start: Builds and runs the gateway under the lease, for the duration of the
            context (it must stop promptly when cancelled).
        store: The lease store (default: one on the journal's database).

    Attributes:
        failure: The exception the gateway ended with, if it stopped on its own; the
            caller should then stop this instance so that another one takes over.
        activations: How many times this instance became active.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        instance: str,
        start: Starter,
        store: LeaseStore | None = None,
    ) -> None:
        if config.cluster is None or not config.journal_url:
            raise ValueError("active/standby needs [cluster] and a PostgreSQL journal")
        self.config = config
        self.instance = instance
        #: The lease owner: the instance id and a random part of this process, so that two
        #: processes started with the same id by mistake can never both be active.
        self.owner = f"{instance}/{secrets.token_hex(4)}"
        self.resource = lease_resource(config.name)
        self.home = config.cluster.home
        self._start = start
        self._store = store
        self._own_store = False
        self._main: asyncio.Task[None] | None = None
        self._keeper: LeaseKeeper | None = None
        self._up: LeaseKeeper | None = None
        #: Away from home: since when the gateway is seen free with its home instance up,
        #: the home lease's owner (its process) when it was taken anyway, and renewals with
        #: home seen up.
        self._free_since: float | None = None
        self._stuck_home: str | None = None
        self._home_seen = 0
        self._handing_back = self._closing = False
        #: When this instance began to stand by, and whether it warned that the gateway's
        #: home instance was never seen (a mistyped ``home``).
        self._since = time.monotonic()
        self._home_missing_warned = False
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()
        self.activations = 0
        self.log = log.bind(gateway=config.name, instance=instance, owner=self.owner)

    @property
    def active(self) -> bool:
        """True while the gateway runs here."""
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> ActiveStandby:
        self._main = asyncio.create_task(self._stand_by(), name=f"cluster[{self.config.name}]")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        main, self._main = self._main, None
        if main is not None:
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
        # The gateway stops (or finishes a stop under way, e.g. a hand-back's) while the
        # lease is still ours and renewed; only then is the lease released.
        self._closing = True
        await self._stop_gateway()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            await keeper.stop(release=True)
        await self._stop_gateway()
        up, self._up = self._up, None
        if up is not None:
            await up.stop(release=True)
        store, self._store = self._store, None
        if store is not None and self._own_store:
            await asyncio.to_thread(store.close)

    async def _stand_by(self) -> None:
        """Open the lease store (until the database answers), then keep trying for the lease."""
        cluster = self.config.cluster
        assert cluster is not None and self.config.journal_url
        try:
            delay = 0.5
            while self._store is None:
                try:
                    self._store = await asyncio.to_thread(LeaseStore, self.config.journal_url)
                    self._own_store = True
                except LeaseError as exc:
                    self.log.warning("cluster.leases_unreachable", error=str(exc), retry_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, cluster.lease_ttl)
            if self.home == self.instance:  # say we are here: the gateway comes home
                self._up = LeaseKeeper(
                    self._store,
                    [home_resource(self.config.name)],
                    self.owner,
                    ttl=cluster.lease_ttl,
                )
                await self._up.start()
            self._keeper = LeaseKeeper(
                self._store,
                [self.resource],
                self.owner,
                ttl=cluster.lease_ttl,
                on_acquired=self._acquired,
                on_lost=self._lost,
                # Give up locally a little early: the stop takes event-loop turns and
                # clocks drift, and sends to a radio that have no journal write of their
                # own rely on this margin alone.
                guard=min(max(0.5, cluster.lease_ttl / 10), cluster.lease_ttl / 4),
                may_acquire=self._may_acquire,
                should_yield=self._should_yield,
            )
            await self._keeper.start()
        except Exception as exc:  # e.g. the postgres extra is missing: nothing to wait for
            self.failure = exc
            self.log.error("cluster.cannot_stand_by", error=str(exc))
            self.failed.set()
            return
        self.log.info(
            "cluster.standby", resource=self.resource, lease_ttl=cluster.lease_ttl, home=self.home
        )

    def _away(self) -> bool:
        """True if the gateway has a home instance and it is not this one."""
        return self.home is not None and self.home != self.instance

    async def _holder(self, resource: str) -> Lease | None:
        assert self._store is not None
        return await asyncio.to_thread(self._store.holder, resource)

    async def _may_acquire(self, _resource: str) -> bool:
        """Away from home, take the gateway only while its home instance is down.

        Or when the gateway has stayed free for two ttls with its home instance up (it
        cannot take the gateway: e.g. its file lacks it); then it is not handed back to
        that home instance until it restarts.
        """
        if not self._away():
            return True
        home = await self._holder(home_resource(self.config.name))
        if home is None:
            self._free_since = None
            self._warn_home_missing()
            return True
        self._home_missing_warned = True  # it exists: a lapse later is a crash, not a typo
        if await self._holder(self.resource) is not None:
            self._free_since = None
            return False
        if home.owner == self._stuck_home:
            return True  # the same home process that did not take it before
        now = time.monotonic()
        if self._free_since is None:
            self._free_since = now
        assert self.config.cluster is not None
        if now - self._free_since < 2 * self.config.cluster.lease_ttl:
            return False
        self._free_since, self._stuck_home = None, home.owner
        self.log.warning("cluster.home_not_taking", resource=self.resource, home=self.home)
        return True

    def _warn_home_missing(self) -> None:
        """Warn once if the home instance was never seen in the first minute (a typo?)."""
        if self._home_missing_warned or time.monotonic() - self._since < _HOME_GRACE:
            return
        self._home_missing_warned = True
        self.log.warning(
            "cluster.home_never_seen",
            resource=self.resource,
            home=self.home,
            hint="[cluster] home must be the --instance id of the instance meant to run it",
        )

    async def _should_yield(self, _resource: str) -> bool:
        """Away from home, hand the gateway back once its home instance is up for it."""
        if not self._away():
            return False
        home = await self._holder(home_resource(self.config.name))
        if home is None or home.owner == self._stuck_home:
            self._home_seen = 0
            if home is None:
                self._warn_home_missing()
            return False
        self._home_missing_warned = True
        self._home_seen += 1
        if self._home_seen < 2:  # seen up at two renewals in a row: not a flicker
            return False
        self._home_seen, self._stuck_home, self._handing_back = 0, None, True
        self.log.info("cluster.handing_back", resource=self.resource, home=self.home)
        return True

    async def _acquired(self, _resource: str, lease: Lease) -> None:
        await self._stop_gateway()  # a lease taken again after a lapse: start afresh
        self._free_since, self._home_seen = None, 0
        if self._closing:
            return  # this instance is stopping: the lease is released with the rest
        self.activations += 1
        self.log.info("cluster.active", resource=self.resource, fencing=lease.fencing)
        self._task = asyncio.create_task(
            self._serve(lease), name=f"cluster[{self.config.name}].active"
        )

    async def _lost(self, _resource: str) -> None:
        self._free_since, self._home_seen = None, 0
        await self._stop_gateway()
        if self._handing_back:
            self._handing_back = False
            self.log.info("cluster.standby", resource=self.resource, reason="handed back home")
        else:
            self.log.warning("cluster.standby", resource=self.resource, reason="lease lost")

    async def _serve(self, lease: Lease) -> None:
        began = time.monotonic()
        try:
            async with self._start(lease) as running:
                self.log.info(
                    "cluster.serving",
                    fencing=lease.fencing,
                    start_s=round(time.monotonic() - began, 3),
                )
                await running
            raise RuntimeError("the gateway stopped on its own")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the gateway could not run: let another instance try
            self.failure = exc
            self.log.error(
                "cluster.gateway_failed", fencing=lease.fencing, error=str(exc) or repr(exc)
            )
            self.failed.set()

    async def _stop_gateway(self) -> None:
        """Cancel the gateway and wait for it, within bounds.

        The lease keeper waits for this before it tries for the lease again: a stop that
        hangs (a journal commit stuck on a dead connection) must not leave this instance
        out of the running for good. Past the bound the gateway is left cancelled: its
        journal is fenced, so whatever it still does writes nothing.
        """
        task = self._task
        if task is None or task.done():
            self._task = None
            return
        if not task.cancelling():
            # Once: a stop under way (a hand-back's, when this instance stops meanwhile)
            # is waited for, never cancelled again, which would cut the gateway's own
            # stop short (its journal, its adapters) in the middle.
            task.cancel()
        bound = STOP_TIMEOUT
        # Interrupted here (our own stop), the task stays ours: the next call waits for it.
        done, _ = await asyncio.wait({task}, timeout=bound)
        if self._task is task:
            self._task = None
        if not done:
            self.log.error("cluster.stop_timeout", resource=self.resource, timeout_s=bound)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await task
