"""Start the control-room API of one gateway: ``async with serve_api(gateway, settings)``.

::

    async with gateway.running(), serve_api(gateway, settings) as api:
        print(api.url)            # https://127.0.0.1:8443
        print(api.metrics_url)    # http://127.0.0.1:9464 or None

The HTTPS listener uses :func:`certs.server_context` (TLS 1.3, client certificate
required, CRLs checked when the bundle has them). TLS handshake failures are counted by
reason (``euccs_api_tls_handshake_failures_total``) through an :class:`ssl.SSLObject`
subclass installed on the context: asyncio itself swallows them silently.

Hostile clients are bounded on the HTTPS listener (:class:`_GuardedListener`): at most
``max_connections`` connections at once (more are closed at once, API rejection
``too_many_connections``), of which at most ``max_connections_per_address`` from one remote
IP address (more from it are closed at once, API rejection
``too_many_connections_from_address``), ``handshake_timeout`` seconds for the TLS
handshake (TLS failure ``handshake_timeout``), ``header_timeout`` seconds for each
request head (API rejection ``header_timeout``: slow-loris), and a ``Content-Length``
above ``max_body_bytes`` is answered 413 before any of the body is read (API rejection
``body_too_large``). Each refusal is logged and exported by ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from adapters._limits import AddressLimiter, peer_address
from certs import load_bundle, reload_context, server_context
from gateway.api.app import ApiError, Auth, Handler, create_app, create_monitoring_app
from gateway.api.recorder import Recorder
from gateway.api.settings import ApiSettings
from gateway.node import Gateway

__all__ = ["ApiServer", "count_handshake_failures", "handshake_failure_reason", "serve_api"]

log = structlog.get_logger(__name__)

#: OpenSSL X509_V_ERR_* codes -> short reasons.
_VERIFY_REASONS = {
    2: "unknown_ca",  # unable to get issuer certificate
    3: "crl_missing",  # unable to get certificate CRL
    9: "not_yet_valid",
    10: "expired",
    11: "crl_not_yet_valid",
    12: "crl_expired",
    18: "self_signed",
    19: "unknown_ca",  # self-signed certificate in chain
    20: "unknown_ca",  # unable to get local issuer certificate
    21: "unknown_ca",  # unable to verify the first certificate
    23: "revoked",
    26: "wrong_purpose",
    47: "name_constraints",  # permitted subtree violation
}
_OPENSSL_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_client_certificate",
    "CERTIFICATE_REQUIRED": "no_client_certificate",
    "WRONG_VERSION_NUMBER": "not_tls",
    "HTTP_REQUEST": "plain_http",
    "UNSUPPORTED_PROTOCOL": "protocol_version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
    "NO_SHARED_CIPHER": "no_shared_cipher",
}


def handshake_failure_reason(exc: ssl.SSLError) -> str:
    """A short, bounded label for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        known = _VERIFY_REASONS.get(exc.verify_code)
        if known is not None:
            return known
        return "verify_" + re.sub(r"\W+", "_", (exc.verify_message or "failed").lower())[:40]
    if isinstance(exc, ssl.SSLEOFError):
        return "eof"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return _OPENSSL_REASONS.get(reason, reason.lower()[:48])
    return type(exc).__name__.lower()


def count_handshake_failures(context: ssl.SSLContext, failures: Counter[str]) -> None:
    """Make every server-side handshake failure on ``context`` count in ``failures``."""

    class CountingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                reason = handshake_failure_reason(exc)
                failures[reason] += 1
                log.info("api.tls_handshake_failed", reason=reason, error=str(exc))
                raise

    context.sslobject_class = CountingSSLObject


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class _GuardedConnection(asyncio.Protocol):
    """One connection of the HTTPS listener: TLS under a deadline, then aiohttp's handler.

    It is the protocol of the TCP connection until :meth:`asyncio.loop.start_tls`, then the
    application protocol behind TLS, forwarding everything to an aiohttp ``RequestHandler``
    and dropping the connection when no complete request head arrives within
    ``header_timeout`` (see :meth:`request_started`).
    """

    def __init__(self, listener: _GuardedListener) -> None:
        self._listener = listener
        self._raw: asyncio.Transport | None = None
        self._tls: asyncio.Transport | None = None
        self._handler: RequestHandler | None = None
        self._early: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = False
        self._active = 0  # requests being handled
        self._served = 0  # requests handled
        self._partial = False  # bytes received while no request is being handled
        self.peer = ""
        self.address = ""  # the remote IP address (per-address limit)

    # ------------------------------------------------------------------ TCP, then TLS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._raw is not None:  # start_tls does not call it again; be safe
            return
        raw = cast(asyncio.Transport, transport)
        self._raw = raw
        self.peer = _peer(raw)
        self.address = peer_address(raw.get_extra_info("peername"))
        if not self._listener.admit(self):
            raw.abort()
            return
        raw.pause_reading()  # start_tls takes over the transport before any byte is read
        self._task = asyncio.get_running_loop().create_task(self._upgrade(raw))

    async def _upgrade(self, raw: asyncio.Transport) -> None:
        listener = self._listener
        timeout = listener.settings.handshake_timeout
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    raw,
                    self,
                    listener.context,
                    server_side=True,
                    ssl_handshake_timeout=2 * timeout,  # ours, above, fires first
                )
        except TimeoutError:
            listener.recorder.tls_failures["handshake_timeout"] += 1
            log.info("api.tls_handshake_failed", reason="handshake_timeout", peer=self.peer)
            tls = None
        except OSError as exc:  # ssl.SSLError included: counted by count_handshake_failures
            log.debug("api.tls_handshake_aborted", peer=self.peer, error=repr(exc))
            tls = None
        if tls is None or self._lost:
            raw.abort()
            self._release()
            return
        self._tls = tls
        handler = listener.server()
        self._handler = handler
        listener.by_transport[tls] = self
        handler.connection_made(tls)
        self._arm()
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    # ------------------------------------------------------------------ behind TLS

    def data_received(self, data: bytes) -> None:
        if self._handler is None:  # arrived with the handshake's last flight
            self._early.append(data)
            return
        if not self._active:
            self._partial = True
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            self._handler.eof_received()
        return None  # close when the peer has (as aiohttp's handler does)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._disarm()
        if self._handler is not None:
            self._handler.connection_lost(exc)
        self._release()

    # ------------------------------------------------------------------ head deadline

    def request_started(self) -> None:
        """A request head arrived: no deadline while it is handled."""
        self._active += 1
        self._partial = False
        self._disarm()

    def request_finished(self) -> None:
        """A request was handled: the next head is due within ``header_timeout``."""
        self._active -= 1
        self._served += 1
        if not self._active and not self._lost:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        delay = self._listener.settings.header_timeout
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        tls = self._tls
        if tls is None or tls.is_closing() or self._active:
            return
        if tls.get_write_buffer_size():  # the last response is still being written
            self._arm()
            return
        if self._served and not self._partial:
            log.debug("api.keepalive_expired", peer=self.peer, requests=self._served)
            tls.close()
            return
        self._listener.recorder.api_rejections["header_timeout"] += 1
        log.warning(
            "api.header_timeout",
            peer=self.peer,
            timeout=self._listener.settings.header_timeout,
            requests=self._served,
        )
        tls.abort()

    def abort(self) -> None:
        """Drop the connection now (listener shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._tls is None and self._raw is not None:
            self._raw.abort()
            self._release()

    def _release(self) -> None:
        self._disarm()
        self._listener.release(self)


class _GuardedListener:
    """The HTTPS listener's bounds: connections, handshake and header deadlines, body size."""

    def __init__(self, context: ssl.SSLContext, settings: ApiSettings, recorder: Recorder) -> None:
        self.context = context
        self.settings = settings
        self.recorder = recorder
        self.connections: set[_GuardedConnection] = set()
        self.per_address = AddressLimiter(settings.max_connections_per_address)
        self.by_transport: dict[asyncio.BaseTransport, _GuardedConnection] = {}
        self._server: web.Server | None = None

    @property
    def server(self) -> web.Server:
        """The aiohttp protocol factory (set once the runner is set up)."""
        assert self._server is not None
        return self._server

    @server.setter
    def server(self, server: web.Server) -> None:
        self._server = server

    def protocol(self) -> _GuardedConnection:
        """Protocol factory for :meth:`asyncio.loop.create_server`."""
        return _GuardedConnection(self)

    def admit(self, connection: _GuardedConnection) -> bool:
        """Count a new connection in, or refuse it (log, metric).

        Refused above ``max_connections`` in all, or above ``max_connections_per_address``
        from the connection's remote address.
        """
        limit = self.settings.max_connections
        if len(self.connections) >= limit:
            self.recorder.api_rejections["too_many_connections"] += 1
            log.warning("api.connection_refused", peer=connection.peer, limit=limit)
            return False
        if not self.per_address.admit(connection.address):
            self.recorder.api_rejections["too_many_connections_from_address"] += 1
            log.warning(
                "api.connection_refused_per_address",
                peer=connection.peer,
                address=connection.address,
                limit=self.per_address.limit,
            )
            return False
        self.connections.add(connection)
        return True

    def release(self, connection: _GuardedConnection) -> None:
        """Count a connection out (idempotent)."""
        if connection in self.connections:
            self.connections.discard(connection)
            self.per_address.release(connection.address)
        for transport in [t for t, c in self.by_transport.items() if c is connection]:
            del self.by_transport[transport]

    def close(self) -> None:
        """Drop connections still in their TLS handshake (aiohttp closes the others)."""
        for connection in list(self.connections):
            connection.abort()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Stop the head deadline while a request is handled; refuse oversized bodies unread."""
        transport = request.transport
        connection = self.by_transport.get(transport) if transport is not None else None
        if connection is not None:
            connection.request_started()
        try:
            length = request.content_length
            limit = self.settings.max_body_bytes
            if length is not None and length > limit:
                self.recorder.api_rejections["body_too_large"] += 1
                log.warning(
                    "api.body_too_large",
                    peer=request.remote,
                    path=request.path,
                    content_length=length,
                    limit=limit,
                )
                error = ApiError(
                    413, "body_too_large", f"the request body is larger than {limit} bytes"
                )
                response = error.response()
                response.force_close()  # the body is never read
                return response
            return await handler(request)
        finally:
            if connection is not None:
                connection.request_finished()


@dataclass(frozen=True)
class ApiServer:
    """A running API.

    Attributes:
        url: Base URL of the HTTPS listener (``https://host:port``).
        metrics_url: Base URL of the plain-HTTP monitoring listener, or None.
        recorder: The gateway observer behind the API (message log, alerts, metrics).
        app: The aiohttp application.
    """

    url: str
    metrics_url: str | None
    recorder: Recorder
    app: web.Application
    settings: ApiSettings
    context: ssl.SSLContext
    auth: Auth

    def reload(self) -> None:
        """Re-read the certificate, key and trust bundle (CRLs) without closing anything.

        Open connections and event streams stay; new handshakes use the new
        certificate, and every request from now on is checked against the new
        bundle, so a revoked console is refused at once.

        Raises:
            certs.CertificateError: The new files cannot be loaded; the old ones stay.
        """
        bundle = load_bundle(self.settings.bundle)
        reload_context(self.context, self.settings.cert, self.settings.key, bundle)
        self.auth.trust = bundle
        self.recorder.events.recheck()  # open event streams: a revoked console's ends now
        log.info("api.reloaded", url=self.url, countries=sorted(bundle.countries))


def _url(scheme: str, runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


@contextlib.asynccontextmanager
async def serve_api(
    gateway: Gateway,
    settings: ApiSettings,
    *,
    shutdown_timeout: float = 2.0,
    keepalive: float = 15.0,
) -> AsyncIterator[ApiServer]:
    """Serve the API of ``gateway`` for the duration of the block.

    Attach it to a gateway that is running (or about to): the recorder observes from now on.

    Args:
        gateway: The gateway.
        settings: The ``[api]`` settings (port 0: a free port; see ``ApiServer.url``).
        shutdown_timeout: Seconds open requests get when the block ends.
        keepalive: Seconds between keep-alive comments on idle event streams.

    Raises:
        certs.CertificateError: The certificate, key or bundle cannot be loaded.
        OSError: The address cannot be bound.
    """
    bundle = load_bundle(settings.bundle)
    context = server_context(settings.cert, settings.key, bundle)
    recorder = Recorder(
        gateway,
        log_size=settings.message_log_size,
        include_payload=settings.include_payload_in_audit,
    )
    count_handshake_failures(context, recorder.tls_failures)
    auth = Auth(bundle)
    app = create_app(gateway, settings, recorder, auth, keepalive=keepalive)
    listener = _GuardedListener(context, settings, recorder)
    app.middlewares.insert(0, listener.middleware)  # outermost: before authentication
    recorder.attach()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(recorder.detach)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        assert runner.server is not None
        listener.server = runner.server
        # Not a TCPSite: TLS is started by each connection (_GuardedConnection) so that the
        # handshake has a deadline and every connection counts against max_connections.
        loop = asyncio.get_running_loop()
        https = await loop.create_server(
            listener.protocol, settings.host, settings.port, backlog=128
        )
        stack.callback(listener.close)
        stack.callback(https.close)
        host, port = https.sockets[0].getsockname()[:2]
        url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        metrics_url = None
        if settings.metrics_port is not None:
            monitor = web.AppRunner(
                create_monitoring_app(gateway, settings, recorder),
                access_log=None,
                shutdown_timeout=shutdown_timeout,
            )
            await monitor.setup()
            stack.push_async_callback(monitor.cleanup)
            await web.TCPSite(monitor, settings.metrics_host, settings.metrics_port).start()
            metrics_url = _url("http", monitor)
        log.info("api.started", gateway=gateway.name, url=url, metrics_url=metrics_url)
        yield ApiServer(
            url=url,
            metrics_url=metrics_url,
            recorder=recorder,
            app=app,
            settings=settings,
            context=context,
            auth=auth,
        )
        log.info("api.stopping", gateway=gateway.name)
