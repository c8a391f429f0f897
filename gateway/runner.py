"""Run one or more gateways in this process, federated over the embedded bus or MQTT.

Used by ``euccs-gw run``. Stops cleanly on SIGINT and SIGTERM. A configuration with a
``[cluster]`` table runs active/standby by lease (:mod:`gateway.cluster`). Each gateway
gets the link of
its configuration's ``[federation] transport``: ``local`` attaches it to the embedded bus,
``mqtt`` builds a :class:`gateway.mqtt_link.MqttFederationLink` from ``[federation.mqtt]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from gateway.collector import full_collections, tuned_collector
from gateway.config import GatewayConfig
from gateway.federation import FederationLink, LocalFederationBus
from gateway.node import Gateway
from protocols.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from gateway.leases import Lease

__all__ = [
    "LinkFactory",
    "build_gateways",
    "default_link",
    "journal_path",
    "reload_credentials",
    "run_gateways",
]

#: Builds the federation link of one gateway: (config, bus, epoch source) -> link. The
#: epoch source returns the gateway's journal epoch once it is known (0 before).
LinkFactory = Callable[[GatewayConfig, LocalFederationBus, Callable[[], int]], FederationLink]

log = structlog.get_logger(__name__)


def journal_path(config: GatewayConfig, state_dir: str | Path) -> Path:
    """Where ``config``'s gateway keeps its journal: its own setting, else in ``state_dir``."""
    if config.journal_path is not None:
        return Path(config.journal_path)
    return Path(state_dir) / f"{config.name}.journal.sqlite3"


def default_link(
    config: GatewayConfig, bus: LocalFederationBus, epoch: Callable[[], int]
) -> FederationLink:
    """The link of ``config``'s transport: the embedded bus, or MQTT.

    Raises:
        ConfigError: ``mqtt`` without a parsed ``[federation.mqtt]`` table.
    """
    if config.federation.transport != "mqtt":
        return bus.attach(config.federation_member)
    from gateway.mqtt_link import MqttFederationLink, MqttSettings

    settings: Any = getattr(config.federation, "mqtt", None)
    if not isinstance(settings, MqttSettings):
        raise ConfigError(
            f"{config.name}: federation.transport is 'mqtt' but [federation.mqtt] is missing."
        )
    return MqttFederationLink(
        config.federation_member, settings, epoch=epoch, gateway_name=config.name
    )


def build_gateways(
    configs: Sequence[GatewayConfig],
    bus: LocalFederationBus,
    *,
    state_dir: str | Path,
    link_factory: LinkFactory = default_link,
) -> list[Gateway]:
    """Create one gateway per configuration, each with the link ``link_factory`` builds."""
    check_together(configs)
    gateways: list[Gateway] = []
    for config in configs:
        made: list[Gateway] = []

        def epoch(made: list[Gateway] = made) -> int:
            return made[0].epoch if made else 0

        link = link_factory(config, bus, epoch)
        made.append(Gateway(config, link, journal=journal_path(config, state_dir)))
        gateways.extend(made)
    return gateways


async def run_gateways(
    configs: Sequence[GatewayConfig], *, state_dir: str | Path, instance: str | None = None
) -> int:
    """Run gateways until SIGINT or SIGTERM; SIGHUP reloads certificates, keys and CRLs.

    A configuration with ``[cluster]`` runs active/standby (:mod:`gateway.cluster`): the
    gateway starts only while this instance (``instance``, see
    :func:`gateway.cluster.instance_id`) holds its lease.

    Returns:
        0 after a signal; 1 when a gateway stopped on its own (it failed), so that a
        supervisor restarts the process and, in a cluster, another instance takes over.
    """
    bus = LocalFederationBus()
    check_together(configs)
    gateways = build_gateways([c for c in configs if c.cluster is None], bus, state_dir=state_dir)
    stop = asyncio.Event()
    reloadable: list[Any] = []
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":  # the event loop has no signal handlers there
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload_credentials, reloadable)
    failed = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
            watched: list[asyncio.Task[Any]] = []
            for gateway in gateways:
                watched.append(await stack.enter_async_context(_serving(gateway, reloadable)))
            from gateway.cluster import ActiveStandby, instance_id

            for config in (c for c in configs if c.cluster is not None):
                member = ActiveStandby(
                    config,
                    instance=instance_id(config, instance),
                    start=functools.partial(_active, config, bus, state_dir, reloadable),
                )
                await stack.enter_async_context(member)
                waiters.append(asyncio.ensure_future(member.failed.wait()))
            # Everything is built: keep full collections from pausing message handling.
            stack.enter_context(tuned_collector())
            collections = asyncio.create_task(full_collections(), name="gc.full_collections")
            stack.push_async_callback(_cancel, collections)
            await asyncio.wait([*waiters, *watched], return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            for task in watched:
                if task.done() and not task.cancelled():
                    error = task.exception()
                    log.error("gateway.failed", task=task.get_name(), error=repr(error))
            failed = not stop.is_set()
            log.info("gateway.stopping", failed=failed)
    except Exception:
        if not failed:
            raise
        # The failure was logged (gateway.failed); its task raises it again on the way out.
    return 1 if failed else 0


def check_together(configs: Sequence[GatewayConfig]) -> None:
    """Refuse configurations that cannot run side by side in one process.

    Raises:
        ConfigError: Two are one federation member, share a name, a certificate or a
            listening port, or (gateways of one country) do not list each other as siblings.
    """
    seen: dict[str, GatewayConfig] = {}
    for config in configs:
        other = seen.get(config.federation_member)
        if other is not None:
            raise ConfigError(
                f"{other.source} and {config.source} are both federation member "
                f"{config.federation_member}: the gateways of a split country need member "
                f"ids of their own (gateway.member, e.g. {config.nation}-2, "
                f"{config.nation}-3), and two instances of one gateway run in two processes."
            )
        seen[config.federation_member] = config
    for config in configs:
        for sibling in config.federation.siblings:
            other = seen.get(sibling)
            if other is not None and config.federation_member not in other.federation.siblings:
                raise ConfigError(
                    f"{config.source} lists {sibling} as a sibling, but {other.source} does "
                    f"not list {config.federation_member} in federation.siblings: they would "
                    "not share their units' presence both ways."
                )
    # The name keys the lease, the journal (file or schema) and the logs.
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(
            "two configurations name the same gateway (gateway.name): they would share a "
            "lease and a journal; give each gateway a name of its own."
        )
    certificates = [c.federation.mqtt.cert for c in configs if c.federation.mqtt is not None]
    if len(set(certificates)) != len(certificates):
        raise ConfigError(
            "two configurations use the same certificate on the federation link: the "
            "broker would take each one's connection for the other's; give each gateway "
            "a certificate of its own."
        )
    # Gateways of one process (e.g. every gateway of a split country on each instance)
    # must not listen on one port: the second would fail to start, after the first had.
    taken: list[tuple[str, int, str]] = []
    for config in configs:
        for key, host, port in _listeners(config):
            for other_host, other_port, owner in taken:
                if port == other_port and _overlap(host, other_host):
                    raise ConfigError(
                        f"{config.source}: {key} listens on port {port}, as {owner} does; "
                        "gateways run in one process need ports of their own."
                    )
            taken.append((host, port, f"{config.source}: {key}"))


_ANY_HOST = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - compared, not bound


def _overlap(host: str, other: str) -> bool:
    return host == other or host in _ANY_HOST or other in _ANY_HOST


def _listeners(config: GatewayConfig) -> list[tuple[str, str, int]]:
    """``(key, host, port)`` of each fixed TCP port a gateway listens on (0 left out)."""
    found: list[tuple[str, str, int]] = []
    if config.api is not None:
        found.append(("api.listen", config.api.host, config.api.port))
        if config.api.metrics_port is not None:
            metrics_host = config.api.metrics_host or ""
            found.append(("api.metrics_listen", metrics_host, config.api.metrics_port))
    for adapter in config.adapters:
        if adapter.type == "mcdata" and adapter.listen:
            host, _, port = adapter.listen.rpartition(":")
            found.append((f"adapters {adapter.name}: listen", host, int(port)))
    return [entry for entry in found if entry[2]]


@contextlib.asynccontextmanager
async def _serving(gateway: Gateway, reloadable: list[Any]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``gateway`` and its API; yield the gateway's task (it ends only on failure)."""
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(gateway.running())
        log.info("gateway.started", gateway=gateway.name, nation=gateway.nation)
        if hasattr(gateway.link, "reload"):
            reloadable.append(gateway.link)
            stack.callback(reloadable.remove, gateway.link)
        if gateway.config.api is not None:
            from gateway.api.server import serve_api

            api = await stack.enter_async_context(serve_api(gateway, gateway.config.api))
            reloadable.append(api)
            stack.callback(reloadable.remove, api)  # serve_api logged api.started
        assert gateway.task is not None
        # Unwinding runs last-in first-out: stop the gateway's work (adapters, federation)
        # first, before the API's graceful shutdown, so that an instance that lost its
        # lease stops acting at once.
        stack.push_async_callback(_cancel, gateway.task)
        yield gateway.task


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


@contextlib.asynccontextmanager
async def _active(
    config: GatewayConfig,
    bus: LocalFederationBus,
    state_dir: str | Path,
    reloadable: list[Any],
    lease: Lease,
) -> AsyncIterator[asyncio.Task[None]]:
    """The gateway of ``config`` while this instance holds ``lease`` (writes fenced by it)."""
    made: list[Gateway] = []

    def epoch() -> int:
        return made[0].epoch if made else 0

    link = default_link(config, bus, epoch)
    made.append(Gateway(config, link, journal=journal_path(config, state_dir), fence=lease))
    async with _serving(made[0], reloadable) as task:
        yield task


def reload_credentials(endpoints: Sequence[Any]) -> None:
    """Re-read certificates, keys and trust bundles of every TLS endpoint (on SIGHUP).

    An endpoint whose new files cannot be loaded keeps its old ones and says why.
    """
    for endpoint in endpoints:
        try:
            endpoint.reload()
        except GatewayError as exc:
            log.error("credentials.reload_failed", endpoint=repr(endpoint), error=str(exc))
        else:
            log.info("credentials.reloaded", endpoint=type(endpoint).__name__)
