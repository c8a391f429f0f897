"""Per-address connection limits shared by the gateway's listeners.

::

    limiter = AddressLimiter(16)
    if not limiter.admit("192.0.2.7"):
        ...  # refuse: this address already holds 16 connections
    ...
    limiter.release("192.0.2.7")  # when that connection ends

Pure bookkeeping (no I/O, no clock): the listener decides what a refusal means (close the
connection, log, count). One hostile address can then hold at most ``limit`` of a
listener's ``max_connections`` slots, so other peers still get in during a flood.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

__all__ = ["AddressLimiter", "peer_address"]


class AddressLimiter:
    """Count open connections per remote address and refuse above ``limit``.

    Args:
        limit: Most connections one address may hold at once (>= 1).

    Raises:
        ValueError: ``limit`` is below 1.
    """

    __slots__ = ("_open", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit!r} must be >= 1.")
        self.limit = limit
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count one more connection from ``address``; False (nothing counted) above the limit."""
        held = self._open.get(address, 0)
        if held >= self.limit:
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        """Count one connection of ``address`` out (an address holding none is ignored)."""
        held = self._open.get(address, 0)
        if held <= 1:
            self._open.pop(address, None)
        else:
            self._open[address] = held - 1

    def held(self, address: str) -> int:
        """Connections ``address`` holds now."""
        return self._open.get(address, 0)

    @property
    def addresses(self) -> Mapping[str, int]:
        """Addresses holding connections, with how many (a read-only view)."""
        return dict(self._open)

    def __len__(self) -> int:
        """Number of addresses holding at least one connection."""
        return len(self._open)


def peer_address(peername: object) -> str:
    """The address part of a socket's ``peername`` (IPv4-mapped IPv6 as IPv4), as text.

    Anything that is not an ``(address, port, ...)`` tuple (a Unix socket, None) becomes
    its ``str()``, so such peers share one bucket.
    """
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        host = peername[0].split("%", 1)[0]
        try:
            parsed = ipaddress.ip_address(host)
        except ValueError:
            return host
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(parsed)
    return str(peername)
