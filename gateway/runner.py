"""Run one or more gateways in this process, federated over the embedded bus or MQTT.

Used by ``euccs-gw run``. Stops cleanly on SIGINT and SIGTERM. Each gateway gets the link of
its configuration's ``[federation] transport``: ``local`` attaches it to the embedded bus,
``mqtt`` builds a :class:`gateway.mqtt_link.MqttFederationLink` from ``[federation.mqtt]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from gateway.config import GatewayConfig
from gateway.federation import FederationLink, LocalFederationBus
from gateway.node import Gateway
from protocols.errors import ConfigError, GatewayError

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
        return bus.attach(config.nation)
    from gateway.mqtt_link import MqttFederationLink, MqttSettings

    settings: Any = getattr(config.federation, "mqtt", None)
    if not isinstance(settings, MqttSettings):
        raise ConfigError(
            f"{config.name}: federation.transport is 'mqtt' but [federation.mqtt] is missing."
        )
    return MqttFederationLink(config.nation, settings, epoch=epoch, gateway_name=config.name)


def build_gateways(
    configs: Sequence[GatewayConfig],
    bus: LocalFederationBus,
    *,
    state_dir: str | Path,
    link_factory: LinkFactory = default_link,
) -> list[Gateway]:
    """Create one gateway per configuration, each with the link ``link_factory`` builds."""
    nations = [c.nation for c in configs]
    if len(set(nations)) != len(nations):
        raise ConfigError("two configurations are for the same nation; run them in two processes.")
    gateways: list[Gateway] = []
    for config in configs:
        made: list[Gateway] = []

        def epoch(made: list[Gateway] = made) -> int:
            return made[0].epoch if made else 0

        link = link_factory(config, bus, epoch)
        made.append(Gateway(config, link, journal=journal_path(config, state_dir)))
        gateways.extend(made)
    return gateways


async def run_gateways(configs: Sequence[GatewayConfig], *, state_dir: str | Path) -> None:
    """Run gateways until SIGINT or SIGTERM; SIGHUP reloads certificates, keys and CRLs."""
    bus = LocalFederationBus()
    gateways = build_gateways(configs, bus, state_dir=state_dir)
    stop = asyncio.Event()
    reloadable: list[Any] = [g.link for g in gateways if hasattr(g.link, "reload")]
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":  # the event loop has no signal handlers there
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload_credentials, reloadable)
    async with contextlib.AsyncExitStack() as stack:
        for gateway in gateways:
            await stack.enter_async_context(gateway.running())
            log.info("gateway.started", gateway=gateway.name, nation=gateway.nation)
            if gateway.config.api is not None:
                from gateway.api.server import serve_api

                api = await stack.enter_async_context(serve_api(gateway, gateway.config.api))
                reloadable.append(api)
                log.info(
                    "api.listening", gateway=gateway.name, url=api.url, metrics=api.metrics_url
                )
        await stop.wait()
        log.info("gateway.stopping")


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
