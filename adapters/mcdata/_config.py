"""Configuration, targets, events and send outcome of the MCData adapter.

Plain data only: no I/O and no parsing of SIP or MCData bytes (the codecs in
:mod:`protocols.sip` and :mod:`protocols.mcdata` do that).
"""

from __future__ import annotations

import math
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from adapters._link import LinkStateChanged
from protocols.errors import ConfigError
from protocols.mcdata import (
    ContentType,
    DispositionRequest,
    McdataId,
    McdataInfo,
    NotificationType,
    Payload,
    SdsNotification,
    SdsSignalling,
)
from protocols.sip import DEFAULT_MAX_BODY

__all__ = [
    "McdataAdapterConfig",
    "McdataEvent",
    "McdataGroup",
    "McdataNotificationReceived",
    "McdataRejected",
    "McdataSdsReceived",
    "McdataSendOutcome",
    "McdataSink",
    "McdataUser",
    "SdsTarget",
]

#: Default bound of inbound connections from one remote address (capped at max_connections).
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 16


@dataclass(frozen=True)
class McdataUser:
    """An MCData user: the target of a one-to-one SDS.

    Attributes:
        id: The MCData ID, a URI such as ``sip:alice@mcx.example.eu``.
    """

    id: McdataId

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or self.id != self.id.strip():
            raise ValueError(f"MCData user ID {self.id!r} is not valid.")


@dataclass(frozen=True)
class McdataGroup:
    """An MCData group: the target of a group SDS.

    Attributes:
        id: The MCData group ID, a URI such as ``sip:fire-1@mcx.example.eu``.
    """

    id: McdataId

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or self.id != self.id.strip():
            raise ValueError(f"MCData group ID {self.id!r} is not valid.")


#: Who an SDS is addressed to.
SdsTarget = McdataUser | McdataGroup


@dataclass(frozen=True, kw_only=True)
class McdataSdsReceived:
    """A standalone MCData SDS arrived from the MCX system (SIP MESSAGE, TS 24.282 clause 9).

    Attributes:
        adapter: Name of the adapter that received it.
        sender: MCData ID of the sending user (mcdatainfo calling user, else the
            signalling payload's Sender MCData user ID).
        target: The addressed LMR-side user (one-to-one) or group (group SDS).
        signalling: The decoded SDS SIGNALLING PAYLOAD (date and time, conversation ID,
            message ID, InReplyTo, disposition request, user location, ...).
        payloads: The decoded payloads of the DATA PAYLOAD, in order.
        info: The decoded mcdatainfo body.
        emergency: ``<emergency-ind>`` was true.
        alert: ``<alert-ind>`` was true (MCData emergency alert).
        imminent_peril: ``<imminentperil-ind>`` was true.
        call_id: SIP Call-ID of the MESSAGE (for logs and correlation).
        received_at: Wall-clock time of arrival, seconds since the Unix epoch.
    """

    adapter: str
    sender: McdataId
    target: SdsTarget
    signalling: SdsSignalling
    payloads: tuple[Payload, ...]
    info: McdataInfo
    emergency: bool
    alert: bool
    imminent_peril: bool
    call_id: str
    received_at: float

    @property
    def message_id(self) -> uuid.UUID:
        """The SDS's Message ID."""
        return self.signalling.message_id

    @property
    def conversation_id(self) -> uuid.UUID:
        """The SDS's Conversation ID."""
        return self.signalling.conversation_id

    @property
    def in_reply_to(self) -> uuid.UUID | None:
        """The InReplyTo message ID, if any."""
        return self.signalling.in_reply_to

    @property
    def disposition_request(self) -> DispositionRequest | int:
        """The requested disposition notifications (NONE if none)."""
        return self.signalling.disposition_request

    @property
    def text(self) -> str | None:
        """The first TEXT payload as a string, or None."""
        for payload in self.payloads:
            if payload.content_type == ContentType.TEXT:
                return payload.text
        return None


@dataclass(frozen=True, kw_only=True)
class McdataNotificationReceived:
    """A disposition notification (SDS NOTIFICATION) arrived from the MCX system.

    Attributes:
        adapter: Name of the adapter that received it.
        sender: MCData ID of the user who notifies (the recipient of the original SDS).
        recipient: MCData ID the notification is addressed to (the original sender,
            an LMR-side user).
        notification: The decoded SDS NOTIFICATION (type, conversation and message ID
            of the SDS it refers to, date and time).
        info: The decoded mcdatainfo body.
        call_id: SIP Call-ID of the MESSAGE.
        received_at: Wall-clock time of arrival, seconds since the Unix epoch.
    """

    adapter: str
    sender: McdataId
    recipient: McdataId
    notification: SdsNotification
    info: McdataInfo
    call_id: str
    received_at: float

    @property
    def notification_type(self) -> NotificationType | int:
        """DELIVERED, READ, DELIVERED_AND_READ or UNDELIVERED (unknown codes stay int)."""
        return self.notification.notification

    @property
    def message_id(self) -> uuid.UUID:
        """Message ID of the SDS the notification refers to."""
        return self.notification.message_id

    @property
    def conversation_id(self) -> uuid.UUID:
        """Conversation ID of the SDS the notification refers to."""
        return self.notification.conversation_id


@dataclass(frozen=True, kw_only=True)
class McdataRejected:
    """The adapter refused input from the MCX system (malformed or unsupported).

    Attributes:
        adapter: Name of the adapter.
        reason: What was wrong (protocol error text; never message content).
        status: SIP status answered (or that would have been answered when no
            response was possible).
        peer: ``host:port`` of the connection it came on.
        call_id: SIP Call-ID, when the message got that far.
        sender: Sender MCData ID, when it was readable.
        at: Wall-clock time, seconds since the Unix epoch.
    """

    adapter: str
    reason: str
    status: int
    peer: str
    call_id: str | None
    sender: McdataId | None
    at: float


#: What the adapter hands to its sink.
McdataEvent = McdataSdsReceived | McdataNotificationReceived | McdataRejected | LinkStateChanged

#: The gateway's coroutine that receives adapter events, in order per connection.
#: For :class:`McdataSdsReceived` and :class:`McdataNotificationReceived`, returning
#: normally accepts the message (the MCX system gets 200 OK); raising
#: :class:`~protocols.errors.DeliveryRefused` refuses it (see ``refusal_status``).
McdataSink = Callable[[McdataEvent], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class McdataSendOutcome:
    """What happened to one SIP MESSAGE the adapter sent.

    Attributes:
        ok: True for a 2xx final response.
        status: Final SIP status, or None when none arrived within ``request_timeout``.
        reason: Reason phrase of the final response (with its Warning text, if any), or
            the cause of the failure; empty when ``ok``.
        call_id: SIP Call-ID of the MESSAGE.
        message_id: Message ID of the SDS (or of the SDS a notification refers to).
        conversation_id: Conversation ID of the SDS (or of the notified SDS).
    """

    ok: bool
    status: int | None
    reason: str
    call_id: str
    message_id: uuid.UUID
    conversation_id: uuid.UUID

    @property
    def timed_out(self) -> bool:
        """True when no final response arrived in time."""
        return self.status is None


@dataclass(frozen=True, kw_only=True)
class McdataAdapterConfig:
    """How to reach the national MCX system and how to accept its requests.

    The gateway acts as a TS 23.283 interworking function, "a peer MCData server": it
    listens for the MCX SIP server's connections and opens one connection of its own
    (reused, reconnected with backoff) to the MCX system's SIP address.

    Attributes:
        name: Adapter name, used in logs, task names and events.
        server_uri: Our own SIP URI (the IWF's MCData server identity).
        peer_host: Host of the MCX system's SIP server.
        peer_port: Its SIP port.
        listen_host: Address to accept the MCX system's connections on.
        listen_port: Port to listen on; 0 picks a free one (see ``McdataAdapter.listen_port``).
        transport: ``"tcp"`` or ``"tls"`` (both directions).
        server_ssl: TLS context of the listener (required for ``"tls"``).
        client_ssl: TLS context of the outgoing connection (required for ``"tls"``).
        peer_server_name: Name to verify the peer's certificate against (default
            ``peer_host``).
        advertised_host: Host written in our Via (default: the local address of the
            outgoing connection).
        request_timeout: Seconds to wait for the final response to a MESSAGE we sent
            (RFC 3261 Timer F is 32 s); on expiry the send fails.
        connect_timeout: Seconds for opening the outgoing connection (TLS included).
        keepalive_interval: Seconds between RFC 5626 CRLF pings on the outgoing
            connection; None disables them.
        pong_timeout: Seconds to wait for the pong before the connection is dropped.
        reconnect_min: Ceiling of the first reconnect delay, in seconds.
        reconnect_max: Largest reconnect delay, in seconds.
        max_body: Largest SIP body accepted (octets); larger gives 413.
        max_connections: Most inbound connections served at once; more are closed.
        max_connections_per_address: Most of those from one remote IP address (1 to
            ``max_connections``); more from it are closed, so one address cannot take
            every slot. None: :data:`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS` or
            ``max_connections`` if lower (see :attr:`per_address_limit`).
    """

    name: str
    server_uri: str
    peer_host: str
    peer_port: int
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    transport: Literal["tcp", "tls"] = "tcp"
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    peer_server_name: str | None = None
    advertised_host: str | None = None
    request_timeout: float = 32.0
    connect_timeout: float = 5.0
    keepalive_interval: float | None = 30.0
    pong_timeout: float = 10.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    max_body: int = DEFAULT_MAX_BODY
    max_connections: int = 64
    max_connections_per_address: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name must not be empty.")
        if ":" not in self.server_uri or not self.server_uri.lower().startswith(("sip:", "sips:")):
            raise ConfigError(f"server_uri={self.server_uri!r} must be a sip: or sips: URI.")
        if not self.peer_host:
            raise ConfigError("peer_host must not be empty.")
        for key in ("peer_port", "listen_port"):
            value = getattr(self, key)
            if not (isinstance(value, int) and 0 <= value <= 65535):
                raise ConfigError(f"{key}={value!r} must be a port number 0..65535.")
        if self.peer_port == 0:
            raise ConfigError("peer_port must not be 0.")
        if self.transport not in ("tcp", "tls"):
            raise ConfigError(f"transport={self.transport!r} must be 'tcp' or 'tls'.")
        if self.transport == "tls" and (self.server_ssl is None or self.client_ssl is None):
            raise ConfigError("transport='tls' needs both server_ssl and client_ssl.")
        if self.transport == "tcp" and (self.server_ssl or self.client_ssl):
            raise ConfigError("server_ssl/client_ssl are only used with transport='tls'.")
        timeouts = ["request_timeout", "connect_timeout", "pong_timeout", "reconnect_min"]
        if self.keepalive_interval is not None:
            timeouts.append("keepalive_interval")
        for key in timeouts:
            value = getattr(self, key)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ConfigError(f"{key}={value!r} must be a positive number of seconds.")
        if not self.reconnect_min <= self.reconnect_max < math.inf:
            raise ConfigError(
                f"reconnect_max={self.reconnect_max!r} must be >= reconnect_min "
                f"({self.reconnect_min!r}) and finite."
            )
        if not 1024 <= self.max_body <= 16 * 1024 * 1024:
            raise ConfigError(f"max_body={self.max_body!r} is outside 1024..16 MiB.")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections={self.max_connections!r} must be >= 1.")
        per_address = self.max_connections_per_address
        if per_address is not None and not 1 <= per_address <= self.max_connections:
            raise ConfigError(
                f"max_connections_per_address={per_address!r} must be >= 1 and at most "
                f"max_connections ({self.max_connections})."
            )

    @property
    def per_address_limit(self) -> int:
        """Inbound connections one remote address may hold at once."""
        if self.max_connections_per_address is not None:
            return self.max_connections_per_address
        return min(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, self.max_connections)

    @property
    def via_transport(self) -> str:
        """The transport token of our Via header (TCP or TLS)."""
        return self.transport.upper()
