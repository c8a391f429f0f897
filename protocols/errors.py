"""The project's one exception tree.

Every error the gateway raises on purpose derives from :class:`GatewayError`::

    GatewayError
    ├── ProtocolError                 bytes that break a protocol's rules
    │   ├── LocalProtocolError        we were asked to send something invalid
    │   └── RemoteProtocolError       a peer sent something invalid
    ├── ConfigError                   the configuration is wrong (names the key)
    ├── RoutingError                  no route / unknown identity
    ├── DeliveryRefused               a message is refused; carries the reason code
    └── LinkError                     a transport failed
        └── LinkTimeoutError          ... by timing out (also a TimeoutError)

Codec contract: a decoder returns an event or raises :class:`RemoteProtocolError`;
any other exception escaping a decoder is a bug.

Errors carry what the caller needs in order to reply: ``reason_code`` is the
wire code a negative report should carry (for TETRA, an SDS-TL delivery status
of EN 300 392-2 table 29.16) and ``reply_hint`` a short text for people.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryRefused",
    "GatewayError",
    "LinkError",
    "LinkTimeoutError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RoutingError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose.

    Args:
        message: What went wrong, naming the offending value and the state.
        reason_code: Wire code for a negative report, if the protocol has one.
        reply_hint: Short explanation suitable for a negative report or a log line.
    """

    def __init__(
        self, message: str, *, reason_code: int | None = None, reply_hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.reply_hint = reply_hint if reply_hint is not None else message


class ProtocolError(GatewayError):
    """Bytes or events that break a protocol's rules."""


class LocalProtocolError(ProtocolError):
    """We were asked to encode or send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something the protocol does not allow."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message names the key."""


class RoutingError(GatewayError):
    """No route for a destination, or an identity that is not mapped."""


class DeliveryRefused(GatewayError):
    """A message is refused; ``reason_code`` says why in the origin's protocol."""


class LinkError(GatewayError, ConnectionError):
    """A transport to a radio, a broker or a partner gateway failed."""


class LinkTimeoutError(LinkError, TimeoutError):
    """A transport operation timed out."""
