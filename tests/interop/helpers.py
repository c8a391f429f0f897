"""Envelopes and running links for the MQTT tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.mqtt_link import MqttFederationLink
from protocols.schema import v1


def envelope(origin: str, _dest: str, text: str, priority: int = v1.PRIORITY_ROUTINE) -> bytes:
    message = v1.Envelope(message_id=os.urandom(16), priority=priority)  # type: ignore[arg-type]
    message.origin.nation = origin
    message.origin.unit = f"{origin.lower()}.unit-1"
    message.text.text = text
    return message.SerializeToString()


def text_of(payload: bytes) -> str:
    message = v1.Envelope()
    message.ParseFromString(payload)
    return message.text.text


@dataclass
class Inbox:
    """Collects what a link delivers; ``wait_for(n)`` waits for n envelopes."""

    received: list[tuple[str, bytes]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, sender: str, payload: bytes) -> None:
        self.received.append((sender, payload))
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()

    def texts(self) -> list[str]:
        return [text_of(p) for _, p in self.received]


@contextlib.asynccontextmanager
async def serving(link: MqttFederationLink, inbox: Inbox | None = None) -> AsyncIterator[Inbox]:
    """Run ``link.serve`` for the block; yield its inbox."""
    box = inbox or Inbox()
    task = asyncio.create_task(link.serve(box))
    try:
        yield box
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
