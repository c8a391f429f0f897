"""Federation over an MQTT 5 broker with mutual TLS and signed envelope batches.

:class:`MqttFederationLink` has the interface of :class:`gateway.federation.LocalLink`
(``nation``, ``send``, ``reachable``, ``serve``) over a broker shared by the federation:

* MQTT 5 (aiomqtt), QoS 1, persistent session (clean start off, session expiry), client id
  = the gateway's certificate identity (``euccs://DE/gateway/gw-de``; the broker replaces
  it with the username, see :mod:`gateway.mqtt_acl`);
* mutual TLS 1.3 with :func:`certs.client_context`; after each connect the broker's server
  certificate is checked with :func:`certs.peer_identity` (role gateway, serverAuth, and
  the configured ``broker_identity`` if any): a broker gets a *gateway* certificate of the
  hosting country (the only leaf role with serverAuth), e.g. ``euccs://DE/gateway/mqtt-broker``;
  batches signed by the broker identity are refused;
* batches of envelopes per destination and priority class (:mod:`gateway.mqtt_batch`),
  signed by the gateway's key, verified by the receiver against its own trust bundle; the
  broker is never trusted for integrity or attribution;
* presence: a retained birth message (online, epoch, session) on
  ``euccs/v1/gateways/<NATION>``, a retained Last Will (offline, same epoch and session),
  a retained graceful offline before a clean disconnect. Presence carrying an older
  ``(epoch, session)`` than the newest seen is ignored;
* reconnect with exponential backoff and full jitter; refused credentials (TLS alerts,
  CONNACK "not authorized", our certificate refused by our own bundle, a broker certificate
  that fails verification) back off for a long time instead of hammering the broker;
* :meth:`MqttFederationLink.reload` re-reads certificate, key and bundle (CRLs) and
  reconnects; senders see a short :class:`LinkError` window and retry.

``send`` returns once the broker acknowledged (PUBACK) the batch carrying the envelope: the
envelope is "handed over". End-to-end custody is the gateway's ack protocol on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import json
import math
import os
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import aiomqtt
import structlog
from aiomqtt import ProtocolVersion, Will
from aiomqtt.exceptions import MqttConnectError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError
from paho.mqtt.client import MQTT_ERR_SUCCESS
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from adapters._link import Backoff, LinkState, LinkStateChanged
from certs.bundle import TrustBundle, load_bundle
from certs.errors import CertificateError, PeerRefused
from certs.expiry import expiry_warnings
from certs.identity import PeerIdentity, Role, identity_of, parse_identity_uri
from certs.tls import client_context, peer_identity
from certs.verify import verify_peer
from gateway._toml import Table
from gateway.federation import FEATURES, Inbox
from gateway.members import member_nation
from gateway.mqtt_acl import (
    data_topic,
    inbox_filter,
    parse_data_topic,
    presence_filter,
    presence_topic,
)
from gateway.mqtt_batch import BatchRejected, BatchSigner, BatchVerifier, encode_batch
from protocols.errors import LinkError
from protocols.schema import v1

__all__ = [
    "BadCredentials",
    "MqttFederationLink",
    "MqttSettings",
    "PartnerPresence",
    "parse_mqtt_settings",
]

log = structlog.get_logger(__name__)

#: Envelopes of a received batch handed to the inbox together, at most.
INBOX_GROUP = 256

#: Bytes of received messages waiting in the link's queue beyond which a routine one is
#: dropped (its sender sends it again when our acknowledgement does not come); urgent
#: messages may fill twice as much.
QUEUE_MAX_BYTES = 64 * 1024 * 1024

#: The largest MQTT packet the broker may send us (MQTT 5 Maximum Packet Size).
MAX_PACKET_BYTES = 16 * 1024 * 1024

#: Seconds between two checks of our own certificate while connected (expiry, revocation).
OWN_CHECK_INTERVAL = 60.0

#: Priorities that never wait for a batch linger.
URGENT = frozenset({v1.PRIORITY_EMERGENCY, v1.PRIORITY_IMMINENT_PERIL})
_CONNACK_CREDENTIAL_CODES = frozenset({4, 5, 0x86, 0x87, 0x8A, 0x8C})
_TLS_REFUSAL_WORDS = (
    "certificate",
    "alert",
    "handshake",
    "unknown ca",
    "protocol version",
    "wrong version",
    "no shared cipher",
    "unsupported protocol",
)


class BadCredentials(LinkError):
    """The broker (or our own bundle) refuses our credentials, or the broker's certificate."""


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """The ``[federation.mqtt]`` table.

    Attributes:
        host: Broker host name or address.
        port: Broker TLS port.
        cert: Our gateway certificate (PEM).
        key: Its private key (PEM).
        bundle: The federation trust bundle (directory or single JSON file).
        passphrase_env: Environment variable holding the key's passphrase, if encrypted.
        broker_identities: The identities a broker's certificate may have
            (``euccs://DE/gateway/mqtt-broker``; one per node of a broker cluster whose
            nodes have certificates of their own). Empty accepts any gateway certificate
            of the federation; the identity it presents is then excluded from signing
            only once it was seen.
        keepalive: MQTT keepalive in seconds.
        session_expiry: MQTT session expiry interval in seconds (persistent session).
        batch_max_envelopes: Flush a batch at this many envelopes.
        batch_max_bytes: Flush a batch at this many envelope bytes.
        linger: Seconds a non-urgent envelope may wait for company in its batch; the
            first one after a quiet linger (no batch of its class to that partner on its
            way or sent within the last linger) goes at once, so batching costs no latency
            at low load.
        replay_window: Accepted clock skew and replay memory in seconds.
        connect_timeout: Seconds for connecting and for each acknowledgement.
        reconnect_base: First reconnect delay ceiling (full jitter).
        reconnect_cap: Largest reconnect delay ceiling.
        bad_credentials_delay: Minimum delay after refused credentials (doubles, capped x8).
        expiry_check_interval: Seconds between certificate/CRL expiry checks.
    """

    host: str
    port: int = 8883
    cert: Path
    key: Path
    bundle: Path
    passphrase_env: str | None = None
    broker_identities: tuple[str, ...] = ()
    keepalive: int = 30
    session_expiry: int = 3600
    batch_max_envelopes: int = 64
    batch_max_bytes: int = 256 * 1024
    linger: float = 0.005
    replay_window: float = 300.0
    connect_timeout: float = 10.0
    reconnect_base: float = 0.5
    reconnect_cap: float = 30.0
    bad_credentials_delay: float = 60.0
    expiry_check_interval: float = 3600.0


def _broker_identities(table: Table) -> tuple[str, ...]:
    """``broker_identity``: one identity URI, a list of them (a cluster's nodes), or none."""
    if not table.has("broker_identity"):
        return ()
    brokers = tuple(table.one_or_more("broker_identity"))
    if not brokers:  # a template whose nodes were never filled in must not unpin the broker
        raise table.error("broker_identity", "names no identity (leave it out to pin none).")
    for uri in brokers:
        try:
            parse_identity_uri(uri)
        except ValueError as exc:
            raise table.error("broker_identity", f"{exc}.") from None
    return brokers


def parse_mqtt_settings(table: Table) -> MqttSettings:
    """Read a ``[federation.mqtt]`` table.

    Keys: ``host`` (required), ``port`` (8883), ``cert``, ``key``, ``bundle`` (required
    paths), ``passphrase_env``, ``broker_identity`` (one identity URI or a list of
    them), ``keepalive`` (30 s),
    ``session_expiry`` (3600 s), ``batch_max_envelopes`` (64), ``batch_max_bytes``
    (262144), ``linger_ms`` (5), ``replay_window`` (300 s), ``connect_timeout`` (10 s),
    ``reconnect_cap`` (30 s), ``bad_credentials_delay`` (60 s).

    Raises:
        ConfigError: A missing, mistyped, out-of-range or unknown key (the message names it).
    """
    host = table.string("host")
    if not host:
        raise table.error("host", "must not be empty.")
    port = table.number("port", 8883.0, minimum=1)
    if port != int(port) or port > 65535:
        raise table.error("port", f"{port:g} is not a TCP port (1..65535).")
    paths: dict[str, Path] = {}
    for key in ("cert", "key", "bundle"):
        value = table.string(key)
        if not value:
            raise table.error(key, "must name a file.")
        paths[key] = Path(value)
    passphrase_env = table.string("passphrase_env", "") or None
    brokers = _broker_identities(table)
    keepalive = table.number("keepalive", 30.0, minimum=5)
    expiry = table.number("session_expiry", 3600.0, minimum=0)
    max_envelopes = table.number("batch_max_envelopes", 64.0, minimum=1)
    if max_envelopes != int(max_envelopes) or max_envelopes > 65535:
        raise table.error("batch_max_envelopes", "must be a whole number from 1 to 65535.")
    max_bytes = table.number("batch_max_bytes", 256.0 * 1024, minimum=1024)
    linger_ms = table.number("linger_ms", 5.0, minimum=0)
    if linger_ms > 1000:
        raise table.error("linger_ms", f"{linger_ms:g} ms is too long (at most 1000).")
    settings = MqttSettings(
        host=host,
        port=int(port),
        cert=paths["cert"],
        key=paths["key"],
        bundle=paths["bundle"],
        passphrase_env=passphrase_env,
        broker_identities=brokers,
        keepalive=int(keepalive),
        session_expiry=int(expiry),
        batch_max_envelopes=int(max_envelopes),
        batch_max_bytes=int(max_bytes),
        linger=linger_ms / 1000,
        replay_window=table.number("replay_window", 300.0, minimum=10),
        connect_timeout=table.number("connect_timeout", 10.0, minimum=0.5),
        reconnect_cap=table.number("reconnect_cap", 30.0, minimum=1),
        bad_credentials_delay=table.number("bad_credentials_delay", 60.0, minimum=1),
    )
    table.finish()
    return settings


# ---------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class _Credentials:
    identity: PeerIdentity
    certificate: x509.Certificate
    bundle: TrustBundle
    context: ssl.SSLContext
    signer: BatchSigner


def _load_credentials(
    settings: MqttSettings, context_factory: Callable[[], ssl.SSLContext] | None
) -> _Credentials:
    passphrase: bytes | None = None
    if settings.passphrase_env:
        value = os.environ.get(settings.passphrase_env)
        if value is None:
            raise CertificateError(
                f"the key passphrase variable {settings.passphrase_env} is not set"
            )
        passphrase = value.encode()
    bundle = load_bundle(settings.bundle)
    try:
        certificate = x509.load_pem_x509_certificates(settings.cert.read_bytes())[0]
        key = serialization.load_pem_private_key(settings.key.read_bytes(), passphrase)
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise CertificateError(
            f"cannot load certificate {settings.cert} with key {settings.key}: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{settings.key} is not an ECDSA key")
    identity = identity_of(certificate)
    if context_factory is not None:
        context = context_factory()
    else:
        context = client_context(settings.cert, settings.key, bundle, passphrase=passphrase)
    return _Credentials(identity, certificate, bundle, context, BatchSigner(key, certificate))


# ---------------------------------------------------------------------------- aiomqtt glue


class _UrgentFirst(asyncio.Queue[aiomqtt.Message]):
    """Incoming messages, emergency and imminent-peril topics first, else FIFO."""

    def _init(self, maxsize: int) -> None:
        self._heap: list[tuple[int, int, aiomqtt.Message]] = []
        self._order = itertools.count()
        #: Emergency and imminent-peril data messages waiting here.
        self.urgent = 0
        #: Payload bytes waiting here.
        self.bytes = 0

    def _put(self, item: aiomqtt.Message) -> None:
        parsed = parse_data_topic(item.topic.value)
        rank = -parsed[2] if parsed is not None else -10  # presence first of all
        if parsed is not None and parsed[2] in URGENT:
            self.urgent += 1
        self.bytes += _size(item)
        heapq.heappush(self._heap, (rank, next(self._order), item))

    def _get(self) -> aiomqtt.Message:
        rank, _, item = heapq.heappop(self._heap)
        if rank != -10 and -rank in URGENT:
            self.urgent -= 1
        self.bytes -= _size(item)
        return item

    def qsize(self) -> int:
        return len(self._heap)

    def empty(self) -> bool:
        return not self._heap


class _OrphanSafeSocket(ssl.SSLSocket):
    """A TLS socket that closes itself if ``wrap_socket`` raised before handing it out.

    CPython 3.11's ``SSLSocket._create`` takes over the TCP socket's descriptor, then raises
    without closing it when the peer reset the connection before the handshake
    (``getpeername`` ENOTCONN, then ``recv`` ECONNRESET). Nobody holds that orphan, so it
    would only be closed by the garbage collector, with a ResourceWarning. A socket that
    was handed out keeps the standard behaviour, so a real leak still shows.
    """

    handed_out = False

    def __del__(self) -> None:
        if not self.handed_out and self.fileno() != -1:
            self.close()
            return
        super().__del__()  # type: ignore[misc]


class _SocketTracker:
    """An ``ssl.SSLContext`` stand-in for paho that remembers the sockets it wraps."""

    def __init__(self, context: ssl.SSLContext) -> None:
        context.sslsocket_class = _OrphanSafeSocket
        self._context = context
        self._sockets: list[ssl.SSLSocket] = []
        # paho connects in an executor thread that outlives a timed-out ``__aenter__``:
        # a socket it wraps after :meth:`close_all` is closed at once instead of leaking.
        self._lock = threading.Lock()
        self._closed = False

    @property
    def check_hostname(self) -> bool:
        """As the wrapped context."""
        return self._context.check_hostname

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        self._context.check_hostname = value

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
        """Wrap ``sock`` with the real context and remember the result.

        Nagle's algorithm is switched off first: a small PUBLISH or PUBACK would otherwise
        wait for the peer's delayed ACK (tens of milliseconds) behind the previous one.
        """
        with contextlib.suppress(OSError):  # not a TCP socket (tests): nothing to tune
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self._context.wrap_socket(sock, **kwargs)
        if isinstance(wrapped, _OrphanSafeSocket):
            wrapped.handed_out = True
        with self._lock:
            if not self._closed:
                self._sockets = [s for s in self._sockets if s.fileno() != -1]
                self._sockets.append(wrapped)
                return wrapped
        wrapped.close()
        raise OSError("the MQTT client was closed while it was connecting")

    def close_all(self) -> None:
        """Close every socket wrapped so far and any wrapped from now on."""
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _size(message: aiomqtt.Message) -> int:
    payload = message.payload
    return len(payload) if isinstance(payload, bytes | bytearray) else 0


def _stop_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop.

    aiomqtt waits for CONNACK and SUBACK with ``asyncio.wait_for``, which in Python 3.11
    swallows a cancellation that arrives together with the reply: the link would go on
    into a new session and never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


#: Seconds a closing connection has to see our DISCONNECT through before it is cut.
DISCONNECT_TIMEOUT = 5.0


class _PublishRefused(LinkError):
    """The broker answered a PUBLISH with a failure reason code (an ACL refusal)."""


class _Client(aiomqtt.Client):
    """aiomqtt's client, plus PUBACK reason codes and fast failure before CONNACK.

    aiomqtt ignores PUBACK reason codes (an ACL refusal looks like success) and waits for
    its timeout when the broker closes the connection before CONNACK (TLS 1.3 sends the
    client-certificate alert only after the handshake). Both are fixed here.
    """

    def __init__(self, *args: Any, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        self._tls = _SocketTracker(tls_context)
        super().__init__(*args, tls_context=cast(ssl.SSLContext, self._tls), **kwargs)
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self.last_error = ""
        self._client.on_log = self._on_log

    async def __aenter__(self) -> Self:
        try:
            return await super().__aenter__()
        except BaseException:
            # paho leaves the TLS socket of a failed handshake open; close what it made.
            with contextlib.suppress(OSError):
                self._client._sock_close()  # private paho API: also unregisters the loop's reader
            self._tls.close_all()
            raise

    #: Offered each emergency and imminent-peril data message at once, before the message
    #: queue, where it would wait for the routine batch being taken in; returns False to
    #: leave it to the queue.
    on_urgent: Callable[[aiomqtt.Message], bool] | None = None
    #: Told of each message dropped because the queue holds ``QUEUE_MAX_BYTES`` already.
    on_dropped: Callable[[aiomqtt.Message], None] | None = None

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        parsed = parse_data_topic(message.topic)
        urgent = parsed is not None and parsed[2] in URGENT
        converted = aiomqtt.Message._from_paho_message(message)  # aiomqtt's own
        handler = self.on_urgent
        if urgent and handler is not None and handler(converted):
            return
        queue = self._queue
        limit = QUEUE_MAX_BYTES * (2 if urgent else 1)
        if isinstance(queue, _UrgentFirst) and queue.bytes + _size(converted) > limit:
            # paho has acknowledged it to the broker already; our custody acknowledgement
            # never goes out, so its sender sends it again (memory stays bounded).
            if self.on_dropped is not None:
                self.on_dropped(converted)
            return
        queue.put_nowait(converted)

    def _on_log(self, _client: Any, _userdata: Any, level: int, buf: str) -> None:
        if level >= 8:  # MQTT_LOG_ERR
            self.last_error = buf

    def _on_publish(
        self,
        client: Any,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        super()._on_publish(client, userdata, mid, reason_code, properties)
        future = self._acks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(reason_code)

    def _on_disconnect(
        self,
        client: Any,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            why = self.last_error or f"connection closed before CONNACK ({reason_code})"
            self._connected.set_exception(aiomqtt.MqttError(why))
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
        self.fail_pending(LinkError(f"disconnected from the broker: {reason_code}"))
        self._settle()

    def _settle(self) -> None:
        """Mark a disconnect error as seen: the link reports it through its state instead."""
        if self._disconnected.done() and not self._disconnected.cancelled():
            self._disconnected.exception()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # aiomqtt waits for the broker to close the connection after our DISCONNECT
            # without a bound: a connection that no longer carries it would hold up the
            # link's stop (and the gateway's) for good.
            async with asyncio.timeout(DISCONNECT_TIMEOUT):
                await super().__aexit__(exc_type, exc, tb)
        except (TimeoutError, aiomqtt.MqttError):
            # Not seen through (aiomqtt's own wait is the client's timeout): the connection
            # is closed here, and whatever ended the session goes on as it was.
            if not self._disconnected.done():
                self._disconnected.set_result(None)
            if self._lock.locked():
                self._lock.release()
        finally:
            with contextlib.suppress(OSError):
                self._client._sock_close()  # private paho API, as in __aenter__; idempotent
            self._settle()
            # A connection reset in the middle of the session (or of its TLS handshake)
            # can leave paho's socket open: whatever this client wrapped is closed now.
            self._tls.close_all()

    def fail_pending(self, error: LinkError) -> None:
        acks, self._acks = self._acks, {}
        for future in acks.values():
            if not future.done():
                future.set_exception(error)

    async def publish_acked(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        """Publish at QoS 1 and wait for a successful PUBACK.

        Raises:
            LinkError: Not connected, refused (reason code), or no PUBACK in time.
        """
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTT_ERR_SUCCESS:
            raise LinkError(f"cannot publish to {topic}: paho error {info.rc}")
        future: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._acks[info.mid] = future
        try:
            async with asyncio.timeout(timeout):
                reason = await future
        except TimeoutError:
            raise LinkError(f"no PUBACK for {topic} within {timeout:g} s") from None
        finally:
            self._acks.pop(info.mid, None)
        if reason.is_failure:
            raise _PublishRefused(f"the broker refused the PUBLISH to {topic}: {reason}")

    def peer_certificate_socket(self) -> ssl.SSLSocket:
        """The TLS socket of the connection (for the broker certificate check)."""
        sock = self._client.socket()
        if not isinstance(sock, ssl.SSLSocket):
            raise BadCredentials("the broker connection is not TLS")
        return sock


def _is_credential_refusal(exc: BaseException) -> bool:
    if isinstance(exc, BadCredentials | CertificateError):
        return True
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if isinstance(exc, MqttConnectError):
            return code in _CONNACK_CREDENTIAL_CODES
    text = f"{exc} {exc.__cause__ or ''}".lower()
    if isinstance(exc, ssl.SSLError) or "ssl" in text:
        return any(word in text for word in _TLS_REFUSAL_WORDS)
    return False


# ---------------------------------------------------------------------------- the link


@dataclass
class PartnerPresence:
    """The newest presence seen of one gateway.

    Attributes:
        nation: Its country.
        online: Online (birth) or offline (will or graceful).
        epoch: The gateway's epoch (larger after each restart).
        session: Connection counter within the epoch.
        gateway: The gateway's name.
        at: Its clock when it published.
        features: What it announced it understands (:data:`gateway.federation.FEATURES`).
    """

    nation: str
    online: bool
    epoch: int
    session: int
    gateway: str = ""
    at: float = 0.0
    features: frozenset[str] = frozenset()


@dataclass
class _Pending:
    payloads: list[bytes] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class MqttFederationLink:
    """One gateway's end of the MQTT federation backbone.

    Args:
        nation: Our federation member id: our country, or e.g. ``DE-2`` for one of the
            gateways of a split country (:mod:`gateway.members`); its country must be our
            certificate's.
        settings: Broker and credentials (:func:`parse_mqtt_settings`).
        epoch: The gateway's journal epoch, or a callable returning it (read at each
            connect; :class:`gateway.node.Gateway` knows it once its journal is open).
        gateway_name: Our gateway's name for the presence message (default: the
            certificate's name).
        on_state: Called with every link state change.
        clock: Wall clock, seconds since the Unix epoch.
        rng: Randomness for backoff jitter.
        check_own_certificate: Verify our certificate against our own bundle before
            connecting (refuse early and clearly); tests turn it off to make the broker refuse.
        tls_context: Build the TLS context instead of :func:`certs.client_context` (tests).
    """

    def __init__(
        self,
        nation: str,
        settings: MqttSettings,
        *,
        epoch: int | Callable[[], int] = 0,
        gateway_name: str | None = None,
        on_state: Callable[[LinkStateChanged], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        check_own_certificate: bool = True,
        tls_context: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.nation = nation
        self.settings = settings
        self._epoch = epoch
        self.gateway_name = gateway_name
        self.on_state = on_state
        self.clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._verify_own = check_own_certificate
        self._context_factory = tls_context
        self.state = LinkState.STOPPED
        self.reason = ""
        self.counters: Counter[str] = Counter()
        self.partners: dict[str, PartnerPresence] = {}
        #: Called with a partner's nation when it comes online with a greater epoch (it
        #: restarted, or another instance took over): what it had not acknowledged may
        #: never have reached its custody.
        self.on_partner_restart: Callable[[str], None] | None = None
        self.session = 0
        self._connections = 0
        self._credentials: _Credentials | None = None
        self._verifier: BatchVerifier | None = None
        self._client: _Client | None = None
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._publishing: set[asyncio.Task[None]] = set()
        #: Batches on their way to the broker, and when the last one left, per
        #: (partner, priority).
        self._busy: Counter[tuple[str, int]] = Counter()
        self._last_flush: dict[tuple[str, int], float] = {}
        self._restart = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._waiters: list[asyncio.Future[None]] = []
        self.log = log.bind(link="mqtt", nation=nation)

    # ------------------------------------------------------------------ public interface

    @property
    def epoch(self) -> int:
        """The epoch announced in presence messages."""
        return self._epoch() if callable(self._epoch) else self._epoch

    @property
    def identity(self) -> PeerIdentity | None:
        """Our certificate's identity (once loaded)."""
        return self._credentials.identity if self._credentials else None

    @property
    def connected(self) -> bool:
        """True while connected to the broker."""
        return self.state is LinkState.CONNECTED and self._client is not None

    def reachable(self, nation: str) -> bool:
        """Return True if we are connected and ``nation``'s gateway announced it is online."""
        partner = self.partners.get(nation)
        return self.connected and partner is not None and partner.online

    def supports(self, nation: str, feature: str) -> bool:
        """Return True if ``nation``'s gateway announced ``feature`` in its presence."""
        partner = self.partners.get(nation)
        return partner is not None and feature in partner.features

    async def send(self, nation: str, payload: bytes) -> None:
        """Hand one serialized envelope to ``nation``'s gateway via the broker.

        Returns once the broker acknowledged the batch carrying it. Emergency and
        imminent-peril envelopes go at once in their own batch. Others go at once too after
        a quiet ``linger`` (no batch of their class to ``nation`` on its way or sent within
        it); otherwise they wait at most ``linger`` for company.

        Raises:
            LinkError: Not connected, the partner is offline, or the broker refused or did
                not acknowledge the batch; the caller keeps the envelope and retries.
        """
        if not self.connected:
            raise LinkError(f"the MQTT link of {self.nation} is not connected ({self.reason})")
        if not self.reachable(nation):
            raise LinkError(f"partner {nation} is offline on the MQTT backbone")
        priority = _priority_of(payload)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = (nation, priority)
        pending = self._pending.setdefault(key, _Pending())
        pending.payloads.append(payload)
        pending.futures.append(future)
        pending.size += len(payload)
        settings = self.settings
        if (
            priority in URGENT
            or len(pending.payloads) >= settings.batch_max_envelopes
            or pending.size >= settings.batch_max_bytes
            or settings.linger <= 0
            or (
                not self._busy[key]
                and asyncio.get_running_loop().time() - self._last_flush.get(key, -math.inf)
                >= settings.linger
            )
        ):
            self._flush(key)
        elif pending.timer is None:
            pending.timer = asyncio.get_running_loop().call_later(settings.linger, self._flush, key)
        await future

    async def serve(self, inbox: Inbox) -> None:
        """Connect, keep connected and feed verified envelopes to ``inbox`` until cancelled."""
        expiry = asyncio.create_task(self._expiry_loop(), name=f"mqtt[{self.nation}].expiry")
        backoff = Backoff(
            base=self.settings.reconnect_base,
            cap=self.settings.reconnect_cap,
            random=self._rng.random,
        )
        refused = Backoff(
            base=self.settings.bad_credentials_delay,
            cap=self.settings.bad_credentials_delay * 8,
            random=self._rng.random,
        )
        try:
            while True:
                if not self._resumed.is_set():
                    self._set_state(LinkState.TRANSIENT_DISCONNECT, "suspended")
                    await self._resumed.wait()
                self._restart.clear()
                self._wakeup.clear()
                _stop_if_cancelled()
                try:
                    await self._session(inbox, backoff, refused)
                    continue  # a requested restart (reload, suspend): reconnect at once
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    _stop_if_cancelled()  # a failure that came with our stop: no backoff
                    delay = self._failed(exc, backoff, refused)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
        finally:
            expiry.cancel()
            self._fail_pending(LinkError("the MQTT link stopped"))
            self._set_state(LinkState.STOPPED, "stopped")

    def reload(self) -> None:
        """Re-read certificate, key and bundle (with CRLs), then reconnect.

        Raises:
            CertificateError: The new files are unreadable; the current ones stay in use.
        """
        credentials = _load_credentials(self.settings, self._context_factory)
        self._adopt(credentials)
        self.log.info("mqtt.reloaded", identity=credentials.identity.uri)
        self._restart.set()
        self._wakeup.set()

    def suspend(self) -> None:
        """Leave the backbone (graceful offline) until :meth:`resume` (outage drills)."""
        self._resumed.clear()
        self._restart.set()

    def resume(self) -> None:
        """Rejoin the backbone after :meth:`suspend`."""
        self._resumed.set()
        self._wakeup.set()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` holds; re-checked on every state or presence change.

        Raises:
            TimeoutError: It did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    # ------------------------------------------------------------------ connection

    def _adopt(self, credentials: _Credentials) -> None:
        if credentials.identity.country != member_nation(self.nation):
            raise CertificateError(
                f"{self.settings.cert} is the certificate of {credentials.identity.uri}, "
                f"not of a {self.nation} gateway"
            )
        self._credentials = credentials
        forbidden = [parse_identity_uri(uri) for uri in self.settings.broker_identities]
        if self._verifier is None:
            self._verifier = BatchVerifier(
                self.nation,
                credentials.bundle,
                window=self.settings.replay_window,
                forbidden=forbidden,
            )
        else:
            self._verifier.set_bundle(credentials.bundle)
        self._warn_expiry()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _check_own(self, credentials: _Credentials) -> None:
        if not self._verify_own:
            return
        try:
            verify_peer(
                credentials.certificate,
                credentials.bundle,
                self._now(),
                roles=[Role.GATEWAY],
                purpose="client",
            )
        except PeerRefused as exc:
            raise BadCredentials(
                f"our own certificate is refused by our trust bundle ({exc.reason}): {exc}"
            ) from None

    def _presence(self, online: bool) -> bytes:
        assert self._credentials is not None
        return json.dumps(
            {
                "nation": member_nation(self.nation),
                "member": self.nation,
                "gateway": self.gateway_name or self._credentials.identity.name,
                "state": "online" if online else "offline",
                "epoch": self.epoch,
                "session": self.session,
                "at": round(self.clock(), 3),
                "features": sorted(FEATURES),
            },
            sort_keys=True,
        ).encode()

    async def _session(self, inbox: Inbox, backoff: Backoff, refused: Backoff) -> None:
        if self._credentials is None:
            self._adopt(_load_credentials(self.settings, self._context_factory))
        credentials = self._credentials
        assert credentials is not None
        self._check_own(credentials)
        self._set_state(LinkState.CONNECTING, f"{self.settings.host}:{self.settings.port}")
        # Orders presence within an epoch: a reconnect's birth beats the previous will.
        self.session = max(self.session + 1, int(self.clock() * 1000))
        settings = self.settings
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = settings.session_expiry
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        will_properties = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        will_properties.WillDelayInterval = 0
        client = _Client(
            settings.host,
            settings.port,
            identifier=credentials.identity.uri,
            protocol=ProtocolVersion.V5,
            # A new process starts a new session: what the broker still holds for the
            # previous one was never acknowledged, and its senders resend it in order
            # when they see our new epoch. Reconnects of this process resume the session.
            clean_start=self._connections == 0,
            properties=properties,
            will=Will(
                presence_topic(self.nation),
                self._presence(online=False),
                qos=1,
                retain=True,
                properties=will_properties,
            ),
            keepalive=settings.keepalive,
            timeout=settings.connect_timeout,
            tls_context=credentials.context,
            queue_type=_UrgentFirst,
            max_inflight_messages=100,
        )
        async with client:
            self._connections += 1
            _stop_if_cancelled()  # the CONNACK may have come with our stop
            self._check_broker(client, credentials)
            try:
                await self._join(client)
                _stop_if_cancelled()  # ... or a SUBACK
                self._client = client
                backoff.attempt = 0
                refused.attempt = 0
                self._set_state(LinkState.CONNECTED, "")
                await self._receive_until_restart(client, inbox, credentials)
            except asyncio.CancelledError:
                await self._say_offline(client)  # stopping: a clean disconnect sends no will
                raise
            else:
                await self._say_offline(client)
            finally:
                self._client = None
                self._fail_pending(LinkError("the MQTT connection closed"))
                client.fail_pending(LinkError("the MQTT connection closed"))
        self._set_state(LinkState.TRANSIENT_DISCONNECT, "reconnecting")

    async def _join(self, client: _Client) -> None:
        """Subscribe to our inbox and every gateway's presence; announce we are online."""
        for topic in (inbox_filter(self.nation), presence_filter()):
            _stop_if_cancelled()  # a SUBACK may have come with our stop
            granted = await client.subscribe(topic, qos=1)
            for code in granted:
                if isinstance(code, ReasonCode) and code.is_failure:
                    raise BadCredentials(f"the broker refused the subscription {topic}: {code}")
        _stop_if_cancelled()  # ... the last one too: then we do not announce we are online
        try:
            await client.publish_acked(
                presence_topic(self.nation),
                self._presence(online=True),
                retain=True,
                timeout=self.settings.connect_timeout,
            )
        except _PublishRefused as exc:
            # The broker's ACL does not know us: retrying at once would only hammer it.
            raise BadCredentials(f"cannot announce our presence: {exc}") from None

    async def _say_offline(self, client: _Client) -> None:
        with contextlib.suppress(LinkError, aiomqtt.MqttError):
            await client.publish_acked(
                presence_topic(self.nation),
                self._presence(online=False),
                retain=True,
                timeout=min(2.0, self.settings.connect_timeout),
            )
            self.counters["offline_announced"] += 1

    def _check_broker(self, client: _Client, credentials: _Credentials) -> None:
        try:
            broker = peer_identity(
                client.peer_certificate_socket(),
                credentials.bundle,
                self._now(),
                roles=[Role.GATEWAY],
                purpose="server",
            )
        except PeerRefused as exc:
            raise BadCredentials(f"the broker's certificate is refused: {exc}") from None
        if broker == credentials.identity:
            # Whoever serves as the broker never signs a batch (below): with our own
            # certificate it would silence us at every partner.
            raise BadCredentials(
                f"the broker presents this gateway's own identity {broker.uri}; "
                "give the broker a certificate of its own (e.g. --name mqtt-broker)"
            )
        expected = self.settings.broker_identities
        if expected and broker.uri not in expected:
            raise BadCredentials(f"the broker is {broker.uri}, expected {' or '.join(expected)}")
        verifier = self._verifier
        if verifier is not None and broker not in verifier.forbidden:
            # Whoever serves as the broker never signs a batch, configured or not: a broker
            # host holds a gateway certificate (the only leaf role with serverAuth) and
            # could otherwise forge its country's traffic.
            verifier.forbidden = verifier.forbidden | {broker}
            if not expected:
                self.log.warning(
                    "mqtt.broker_identity_unset",
                    broker=broker.uri,
                    hint="set [federation.mqtt] broker_identity to pin the broker",
                )
        self.log.debug("mqtt.broker_verified", broker=broker.uri)

    async def _receive_until_restart(
        self, client: _Client, inbox: Inbox, credentials: _Credentials
    ) -> None:
        receiving = asyncio.create_task(self._receive(client, inbox))
        restart = asyncio.create_task(self._restart.wait())
        watching = asyncio.create_task(self._watch_own(credentials))
        try:
            await asyncio.wait({receiving, restart, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            restart.cancel()
            watching.cancel()
            if not receiving.done():
                receiving.cancel()
                await asyncio.wait({receiving})  # raises only if *we* are cancelled
        try:
            if watching.done() and not watching.cancelled():
                watching.result()  # raises BadCredentials
            if receiving.done() and not receiving.cancelled():
                receiving.result()  # raises the disconnect
        finally:
            await self._take_queued(client, inbox)

    async def _take_queued(self, client: _Client, inbox: Inbox) -> None:
        """Take in what the queue still holds when the session ends (not when we stop).

        paho acknowledged these to the broker as they arrived: left here, they would
        wait for their senders' retransmission (an acknowledgement timeout) after a
        reload, a drill's suspend or a disconnect.
        """
        queue = client._queue
        taken = 0
        while not queue.empty():
            await self._take(queue.get_nowait(), inbox)
            taken += 1
        if taken:
            self.counters["taken_at_session_end"] += taken
            self.log.info("mqtt.queue_taken_at_session_end", messages=taken)

    async def _watch_own(self, credentials: _Credentials) -> None:
        """Leave the backbone once our own certificate expires or is revoked.

        The broker checks it only at connect time; partners check every batch's
        signature, so a connection outliving the certificate would look healthy here
        while partners drop all we send. Returns only by raising :class:`BadCredentials`.
        """
        if not self._verify_own:
            await asyncio.Event().wait()
        not_after = credentials.certificate.not_valid_after_utc
        while True:
            left = (not_after - self._now()).total_seconds()
            await asyncio.sleep(min(max(left, 0.0) + 0.001, OWN_CHECK_INTERVAL))
            self._check_own(credentials)

    async def _receive(self, client: _Client, inbox: Inbox) -> None:
        """Take in what the broker delivers: urgent messages at once, the rest in order."""
        urgent: set[asyncio.Task[None]] = set()

        queue = client._queue
        assert isinstance(queue, _UrgentFirst)

        def at_once(message: aiomqtt.Message) -> bool:
            # Tasks start in creation order: urgent messages keep their order among
            # themselves, and overtake the routine batch in progress (by design). A
            # partner flooding urgent topics gets the queue (urgent first) beyond a bound,
            # and while urgent messages wait there, the next ones queue behind them: a
            # freed place must not let a later emergency overtake an earlier one.
            if len(urgent) >= INBOX_GROUP or queue.urgent:
                return False
            task = asyncio.get_running_loop().create_task(self._take(message, inbox))
            urgent.add(task)
            task.add_done_callback(urgent.discard)
            return True

        def dropped(message: aiomqtt.Message) -> None:
            self.counters["inbox_overflow"] += 1
            if self.counters["inbox_overflow"] % 1000 == 1:  # a flood: one line per thousand
                self.log.warning(
                    "mqtt.inbox_overflow",
                    topic=message.topic.value,
                    queued_bytes=queue.bytes,
                    dropped=self.counters["inbox_overflow"],
                )

        client.on_urgent = at_once
        client.on_dropped = dropped
        try:
            async for message in client.messages:
                await self._take(message, inbox)
        finally:
            client.on_urgent = None
            client.on_dropped = None
            for task in urgent:  # not acknowledged yet: the partner sends it again
                task.cancel()
            if urgent:
                await asyncio.wait(urgent)

    async def _take(self, message: aiomqtt.Message, inbox: Inbox) -> None:
        try:
            await self._on_message(message, inbox)
        except Exception:  # one bad message must never stop the link
            self.counters["inbox_failed"] += 1
            self.log.exception("mqtt.message_failed", topic=message.topic.value)

    def _failed(self, exc: Exception, backoff: Backoff, refused: Backoff) -> float:
        self._client = None
        self._fail_pending(LinkError(f"the MQTT connection failed: {exc}"))
        if _is_credential_refusal(exc):
            delay = max(self.settings.bad_credentials_delay / 2, refused.next_delay())
            self.counters["bad_credentials"] += 1
            self._set_state(LinkState.BAD_CREDENTIALS, str(exc))
            self.log.error("mqtt.bad_credentials", error=str(exc), retry_in=round(delay, 1))
        else:
            delay = backoff.next_delay()
            self.counters["disconnects"] += 1
            self._set_state(LinkState.TRANSIENT_DISCONNECT, str(exc))
            self.log.warning("mqtt.disconnected", error=str(exc), retry_in=round(delay, 2))
        return delay

    # ------------------------------------------------------------------ sending

    def _flush(self, key: tuple[str, int]) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        self._busy[key] += 1
        loop = asyncio.get_running_loop()
        self._last_flush[key] = loop.time()
        task = loop.create_task(self._publish(key, pending))
        self._publishing.add(task)
        task.add_done_callback(functools.partial(self._published, key, pending))

    def _published(self, key: tuple[str, int], pending: _Pending, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if task.cancelled():
            # Cancelled before it ran (a disconnect in the same pass): its senders must not
            # wait for ever; they keep their envelopes and send again.
            for future in pending.futures:
                if not future.done():
                    future.set_exception(LinkError("publish aborted: the link went down"))
        self._busy[key] -= 1
        if not self._busy[key]:
            del self._busy[key]
            waiting = self._pending.get(key)
            if (
                waiting is not None
                and not task.cancelled()
                and asyncio.get_running_loop().time() - self._last_flush[key]
                >= self.settings.linger
            ):
                self._flush(key)  # the link is quiet again: no need to wait out the linger

    async def _publish(self, key: tuple[str, int], pending: _Pending) -> None:
        nation, priority = key
        try:
            client, credentials = self._client, self._credentials
            if client is None or credentials is None:
                raise LinkError("the MQTT link is not connected")
            batch = encode_batch(
                pending.payloads,
                src=self.nation,
                dest=nation,
                signer=credentials.signer,
                now=self.clock(),
                batch_id=os.urandom(16),
            )
            await client.publish_acked(
                data_topic(nation, self.nation, priority),
                batch,
                timeout=self.settings.connect_timeout,
            )
        except (LinkError, aiomqtt.MqttError) as exc:
            error = exc if isinstance(exc, LinkError) else LinkError(str(exc))
            self.counters["publish_failed"] += 1
            self.log.warning("mqtt.publish_failed", partner=nation, error=str(error))
            for future in pending.futures:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException as exc:  # cancelled: the callers must not hang
            for future in pending.futures:
                if not future.done():
                    future.set_exception(LinkError(f"publish aborted: {exc!r}"))
            raise
        self.counters["batches_sent"] += 1
        self.counters["envelopes_sent"] += len(pending.payloads)
        for future in pending.futures:
            if not future.done():
                future.set_result(None)

    def _fail_pending(self, error: LinkError) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if item.timer is not None:
                item.timer.cancel()
            for future in item.futures:
                if not future.done():
                    future.set_exception(error)
        for task in list(self._publishing):
            task.cancel()

    # ------------------------------------------------------------------ receiving

    async def _on_message(self, message: aiomqtt.Message, inbox: Inbox) -> None:
        topic = message.topic.value
        data = bytes(message.payload)
        if topic.startswith(presence_topic("")):
            self._on_presence(topic.rsplit("/", 1)[-1], data, retained=message.retain)
            return
        parsed = parse_data_topic(topic)
        if parsed is None or parsed[0] != self.nation:
            self.counters["rejected_topic"] += 1
            self.log.warning("mqtt.unexpected_topic", topic=topic)
            return
        _dest, src, _priority = parsed
        verifier = self._verifier
        assert verifier is not None
        try:
            batch = verifier.verify(data, topic_src=src, now=self.clock())
        except BatchRejected as exc:
            self.counters[f"rejected_{exc.reason}"] += 1
            self.log.warning(
                "mqtt.batch_rejected",
                topic=topic,
                reason=exc.reason,
                error=str(exc),
                size=len(data),
            )
            return
        for index, reason in batch.dropped:
            self.counters[f"dropped_{reason}"] += 1
            self.log.warning(
                "mqtt.envelope_dropped", sender=batch.sender.uri, index=index, reason=reason
            )
        self.counters["batches_received"] += 1
        self.counters["envelopes_received"] += len(batch.envelopes)
        # A batch's envelopes are handled together (INBOX_GROUP at a time), so that their
        # custody shares one journal commit; they start in the batch's order and the
        # journal commits in the order it was given, so the order per origin and
        # destination holds. The next batch waits for this one's commit, not for one per
        # envelope.
        envelopes = batch.envelopes
        for start in range(0, len(envelopes), INBOX_GROUP):
            group = envelopes[start : start + INBOX_GROUP]
            await asyncio.gather(*(self._to_inbox(inbox, src, e) for e in group))

    async def _to_inbox(self, inbox: Inbox, src: str, envelope: bytes) -> None:
        try:
            await inbox(src, envelope)
        except Exception:  # one bad envelope must not stop the inbox
            self.counters["inbox_failed"] += 1
            self.log.exception("mqtt.inbox_failed", sender=src, size=len(envelope))

    def _on_presence(self, nation: str, data: bytes, *, retained: bool) -> None:
        if not data:
            return  # a cleared retained message
        try:
            body = json.loads(data)
            if (
                not isinstance(body, dict)
                or body.get("nation") != member_nation(nation)
                or body.get("member", nation) != nation
            ):
                raise ValueError("nation does not match the topic")
            online = {"online": True, "offline": False}[body["state"]]
            epoch, session = int(body["epoch"]), int(body["session"])
            gateway, at = str(body.get("gateway", "")), float(body.get("at", 0.0))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            self.counters["presence_malformed"] += 1
            self.log.warning("mqtt.presence_malformed", nation=nation, error=str(exc))
            return
        features = _features(body.get("features"))
        if features is None:
            # Optional and for later versions to extend: the partner stays reachable, and
            # we use none of its features.
            self.counters["presence_features_malformed"] += 1
            self.log.warning("mqtt.presence_features_malformed", nation=nation)
            features = frozenset()
        seen = self.partners.get(nation)
        restarted = False
        if seen is not None:
            key, seen_key = (epoch, session), (seen.epoch, seen.session)
            if key < seen_key or (key == seen_key and online and not seen.online):
                self.counters["presence_stale"] += 1
                self.log.info("mqtt.presence_stale", nation=nation, epoch=epoch, newest=seen.epoch)
                return
            restarted = online and epoch > seen.epoch and nation != self.nation
        self.partners[nation] = PartnerPresence(
            nation=nation,
            online=online,
            epoch=epoch,
            session=session,
            gateway=gateway,
            at=at,
            features=features,
        )
        self.log.info("mqtt.presence", nation=nation, online=online, epoch=epoch, retained=retained)
        if restarted and self.on_partner_restart is not None:
            # Before anyone is woken: what goes out to the partner next must be in order.
            self.counters["partner_restarts"] += 1
            self.on_partner_restart(nation)
        self._notify()

    # ------------------------------------------------------------------ housekeeping

    def _set_state(self, state: LinkState, reason: str) -> None:
        if state is self.state and reason == self.reason:
            return
        self.state, self.reason = state, reason
        self.log.info("mqtt.state", state=state.value, reason=reason)
        if self.on_state is not None:
            try:
                self.on_state(
                    LinkStateChanged(
                        adapter=f"federation-mqtt:{self.nation}",
                        state=state,
                        reason=reason,
                        at=self.clock(),
                    )
                )
            except Exception:
                self.log.exception("mqtt.on_state_failed")
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _warn_expiry(self) -> None:
        credentials = self._credentials
        if credentials is None:
            return
        items: list[Any] = [credentials.certificate, *credentials.bundle.artifacts()]
        for warning in expiry_warnings(items, self._now()):
            self.counters["expiry_warnings"] += 1
            self.log.warning("mqtt.expiry", item=warning.label, message=warning.message)

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry_check_interval)
            self._warn_expiry()


def _features(announced: object) -> frozenset[str] | None:
    """The feature names a partner's presence announces (None if not a list)."""
    if announced is None:
        return frozenset()
    if not isinstance(announced, list):
        return None
    return frozenset(f for f in announced if isinstance(f, str))


def _priority_of(payload: bytes) -> int:
    envelope = v1.Envelope()
    try:
        envelope.ParseFromString(payload)
    except DecodeError:
        return v1.PRIORITY_UNSPECIFIED
    return int(envelope.priority)
