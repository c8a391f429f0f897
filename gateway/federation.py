"""Federation links between national gateways.

A gateway hands serialized :class:`~protocols.schema.v1.Envelope` bytes to a
:class:`FederationLink` addressed by destination nation, and receives its
partners' envelopes through an inbox callback. Links carry bytes, not Python
objects, so every path exercises the common schema exactly as the wire does.

:class:`LocalFederationBus` is the embedded transport: gateways in one process
(the demo, tests). A partner that is detached (stopped, or cut off by a test)
makes :meth:`LocalLink.send` raise :class:`LinkError`; the sender keeps the
envelope queued and retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from protocols.errors import LinkError

__all__ = ["FEATURES", "FederationLink", "Inbox", "LocalFederationBus", "LocalLink"]

#: Receives one partner envelope (serialized) and the sending gateway's nation.
Inbox = Callable[[str, bytes], Awaitable[None]]

log = structlog.get_logger(__name__)

#: What this gateway understands beyond the schema's first form, announced to partners
#: (the MQTT link's presence): ``receipts-batched``, a receipt about several envelopes
#: (``DeliveryReceipt.also_about``).
FEATURES = frozenset({"receipts-batched"})


class FederationLink(Protocol):
    """What a gateway needs from any federation transport."""

    nation: str

    async def send(self, nation: str, payload: bytes) -> None:
        """Hand one serialized envelope to the partner gateway of ``nation``.

        Raises:
            LinkError: the partner cannot be reached now; the caller keeps the envelope.
        """

    def reachable(self, nation: str) -> bool:
        """Return True if ``nation``'s gateway is attached and its link is up."""

    def supports(self, nation: str, feature: str) -> bool:
        """Return True if ``nation``'s gateway announced ``feature`` (see :data:`FEATURES`)."""

    async def serve(self, inbox: Inbox) -> None:
        """Feed every envelope addressed to this gateway to ``inbox`` until cancelled."""


class LocalFederationBus:
    """In-process federation: one inbox queue per attached nation."""

    def __init__(self, *, inbox_size: int = 10_000) -> None:
        self._inboxes: dict[str, asyncio.Queue[tuple[str, bytes]]] = {}
        self._cut: set[str] = set()
        self._inbox_size = inbox_size

    def attach(self, nation: str) -> LocalLink:
        """Attach a gateway for ``nation``; return its link."""
        if nation in self._inboxes:
            raise LinkError(f"nation {nation} is already attached to this bus")
        self._inboxes[nation] = asyncio.Queue(self._inbox_size)
        return LocalLink(self, nation)

    def detach(self, nation: str) -> None:
        """Detach ``nation``: envelopes addressed to it are refused until it attaches again."""
        self._inboxes.pop(nation, None)

    def cut(self, nation: str, *, down: bool = True) -> None:
        """Simulate an outage of ``nation``'s link (or end it with ``down=False``)."""
        if down:
            self._cut.add(nation)
        else:
            self._cut.discard(nation)

    def reachable(self, nation: str) -> bool:
        """Return True if ``nation`` is attached and not cut."""
        return nation in self._inboxes and nation not in self._cut

    async def _deliver(self, sender: str, nation: str, payload: bytes) -> None:
        if sender in self._cut or not self.reachable(nation):
            raise LinkError(f"partner {nation} is not reachable from {sender}")
        await self._inboxes[nation].put((sender, payload))

    async def _next(self, nation: str) -> tuple[str, bytes]:
        return await self._inboxes[nation].get()


class LocalLink:
    """One gateway's end of a :class:`LocalFederationBus`."""

    def __init__(self, bus: LocalFederationBus, nation: str) -> None:
        self._bus = bus
        self.nation = nation

    async def send(self, nation: str, payload: bytes) -> None:
        """Deliver to ``nation``'s inbox; raise :class:`LinkError` if it is unreachable."""
        await self._bus._deliver(self.nation, nation, payload)

    def reachable(self, nation: str) -> bool:
        """Return True if ``nation`` can be reached now."""
        return self._bus.reachable(nation) and self._bus.reachable(self.nation)

    def supports(self, nation: str, feature: str) -> bool:
        """Gateways on one bus run the same code: every feature of :data:`FEATURES`."""
        return feature in FEATURES

    async def serve(self, inbox: Inbox) -> None:
        """Feed every envelope addressed to this nation to ``inbox`` until cancelled."""
        while True:
            sender, payload = await self._bus._next(self.nation)
            try:
                await inbox(sender, payload)
            except Exception:  # one bad envelope must not stop the inbox
                log.exception("federation.inbox_failed", sender=sender, size=len(payload))

    def close(self) -> None:
        """Detach from the bus."""
        self._bus.detach(self.nation)
