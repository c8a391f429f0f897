"""TETRA adapter: one radio's PEI (EN 300 392-5) over TCP or serial, plus a network simulator.

The adapter is a thin asyncio shell around the sans-IO codec in
:mod:`protocols.tetra`; it does no parsing of its own.
"""

from adapters.tetra._adapter import TetraAdapter
from adapters.tetra._config import (
    DEFAULT_SERVICE_PROFILES,
    AdapterEvent,
    AdapterSink,
    PreparedSds,
    SendOutcome,
    TetraAdapterConfig,
)
from adapters.tetra._transport import PeiEndpoint, parse_pei_url
from adapters.tetra.simulator import TetraNetworkSimulator

__all__ = [
    "DEFAULT_SERVICE_PROFILES",
    "AdapterEvent",
    "AdapterSink",
    "PeiEndpoint",
    "PreparedSds",
    "SendOutcome",
    "TetraAdapter",
    "TetraAdapterConfig",
    "TetraNetworkSimulator",
    "parse_pei_url",
]
