"""MCData adapter: the gateway as a 3GPP TS 23.283 interworking function ("a peer MCData server").

Standalone MCData SDS and disposition notifications as SIP MESSAGE requests over TCP or
TLS, towards one national MCX system; plus :class:`McdataSystemSimulator`, a scriptable
MCX system for tests and demos. The adapter is a thin asyncio shell around the sans-IO
codecs in :mod:`protocols.sip` and :mod:`protocols.mcdata`; it does no parsing of its own.
"""

from adapters.mcdata._adapter import McdataAdapter
from adapters.mcdata._body import RefusalStatus, refusal_status
from adapters.mcdata._config import (
    McdataAdapterConfig,
    McdataEvent,
    McdataGroup,
    McdataNotificationReceived,
    McdataRejected,
    McdataSdsReceived,
    McdataSendOutcome,
    McdataSink,
    McdataUser,
    SdsTarget,
)
from adapters.mcdata.simulator import McdataSystemSimulator

__all__ = [
    "McdataAdapter",
    "McdataAdapterConfig",
    "McdataEvent",
    "McdataGroup",
    "McdataNotificationReceived",
    "McdataRejected",
    "McdataSdsReceived",
    "McdataSendOutcome",
    "McdataSink",
    "McdataSystemSimulator",
    "McdataUser",
    "RefusalStatus",
    "SdsTarget",
    "refusal_status",
]
