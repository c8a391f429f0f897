"""Run one or more gateways in this process, federated over the embedded bus.

Used by ``euccs-gw run``. Stops cleanly on SIGINT and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence

import structlog

from gateway.config import GatewayConfig
from gateway.federation import LocalFederationBus
from gateway.node import Gateway
from protocols.errors import ConfigError

__all__ = ["build_gateways", "run_gateways"]

log = structlog.get_logger(__name__)


def build_gateways(configs: Sequence[GatewayConfig], bus: LocalFederationBus) -> list[Gateway]:
    """Create one gateway per configuration, each attached to ``bus``."""
    nations = [c.nation for c in configs]
    if len(set(nations)) != len(nations):
        raise ConfigError("two configurations are for the same nation; run them in two processes.")
    return [Gateway(config, bus.attach(config.nation)) for config in configs]


async def run_gateways(configs: Sequence[GatewayConfig]) -> None:
    """Run gateways until SIGINT or SIGTERM."""
    bus = LocalFederationBus()
    gateways = build_gateways(configs, bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        for gateway in gateways:
            await stack.enter_async_context(gateway.running())
            log.info("gateway.started", gateway=gateway.name, nation=gateway.nation)
        await stop.wait()
        log.info("gateway.stopping")
