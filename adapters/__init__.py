"""Adapters: thin asyncio shells that connect national radio systems to the gateway.

Each adapter reads bytes from its transport, feeds the sans-IO codec of
:mod:`protocols`, and forwards the events. Adapters do no parsing of their own.
"""

from adapters._link import Backoff, LinkState, LinkStateChanged, full_jitter_delay

__all__ = ["Backoff", "LinkState", "LinkStateChanged", "full_jitter_delay"]
