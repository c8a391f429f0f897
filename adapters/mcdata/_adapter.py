"""MCData adapter: the gateway as a TS 23.283 interworking function towards an MCX system.

What it does: listen for the MCX SIP server's TCP/TLS connections and answer the SIP
MESSAGE requests carrying standalone MCData SDS and disposition notifications, after
the gateway's sink accepted (200 OK) or refused (4xx/5xx) them; keep one connection of
its own to the MCX system's SIP address (reconnected with backoff, kept alive with
RFC 5626 CRLF pings) and send the gateway's SDS and notifications over it, matching
each MESSAGE to its final response.

What it must not do: parse SIP or MCData bytes (:mod:`protocols.sip` and
:mod:`protocols.mcdata` do), crash on anything a peer sends, or log message content
(only identities, message IDs, Call-IDs, statuses and sizes are logged).
"""

from __future__ import annotations

import asyncio
import random as _random
import secrets
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Self

import structlog

from adapters._limits import AddressLimiter, peer_address
from adapters._link import Backoff, LinkState, LinkStateChanged, RunsInBackground
from adapters.mcdata._body import (
    ACCEPT,
    ALLOWED_METHODS,
    build_mcdata_request,
    build_notification,
    build_sds,
    decode_mcdata_request,
    refusal_status,
    send_outcome,
    warning_header,
)
from adapters.mcdata._channel import SipChannel, respond
from adapters.mcdata._config import (
    McdataAdapterConfig,
    McdataEvent,
    McdataGroup,
    McdataNotificationReceived,
    McdataRejected,
    McdataSdsReceived,
    McdataSendOutcome,
    McdataSink,
    SdsTarget,
)
from protocols.errors import ConfigError, GatewayError, LinkError, LinkTimeoutError
from protocols.mcdata import (
    DispositionRequest,
    McdataInfo,
    NotificationType,
    Payload,
    SdsMessage,
    SdsNotification,
)
from protocols.sip import (
    RandomBits,
    SipProtocolError,
    SipRequest,
    SipResponse,
    SipRole,
)

__all__ = ["DEFAULT_INBOUND_TIMEOUT", "McdataAdapter"]

#: Default seconds an inbound connection gets to deliver a complete request.
DEFAULT_INBOUND_TIMEOUT = 30.0


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _InboundProgress:
    """What one inbound connection has delivered (for the inbound deadline)."""

    __slots__ = ("busy", "last", "served")

    def __init__(self, now: float) -> None:
        self.busy = 0  # requests being answered
        self.last = now  # when the connection opened or the last request was answered
        self.served = 0  # requests answered


class McdataAdapter(RunsInBackground):
    """Gateway side of the SIP interface to one national MCX system's MCData service.

    Args:
        config: Where the MCX system is and how to talk to it.
        sink: Coroutine receiving :data:`McdataEvent` objects; for received SDS and
            notifications its outcome decides the SIP answer (see
            :func:`refusal_status`).
        random: Source of uniform floats in ``[0, 1)`` for the backoff jitter.
        randbits: ``random.getrandbits``-like source for tags, branches, Call-IDs and
            boundaries (default :func:`secrets.randbits`).
        inbound_timeout: Seconds an inbound connection gets to deliver a complete request,
            counted from its opening (TLS handshake included) and from the answer to its
            previous request; then it is dropped. This bounds silent connection floods and
            slow-loris peers (a head sent byte by byte, a body that never ends) that would
            otherwise hold the ``max_connections`` slots. Keep-alive pings alone do not
            extend it: a quiet MCX connection is closed and reopened by the MCX system
            (RFC 3261 §18). None: no deadline.
    """

    def __init__(
        self,
        config: McdataAdapterConfig,
        sink: McdataSink,
        *,
        random: Callable[[], float] | None = None,
        randbits: RandomBits | None = None,
        inbound_timeout: float | None = DEFAULT_INBOUND_TIMEOUT,
    ) -> None:
        if inbound_timeout is not None and not 0 < inbound_timeout < float("inf"):
            raise ConfigError(f"inbound_timeout={inbound_timeout!r} must be positive seconds.")
        self.config = config
        self.inbound_timeout = inbound_timeout
        self._sink = sink
        self._random = random if random is not None else _random.SystemRandom().random
        self._randbits: RandomBits = randbits if randbits is not None else secrets.randbits
        self._log = structlog.get_logger(__name__).bind(adapter=config.name)
        self._state = LinkState.STOPPED
        self._connected = asyncio.Event()
        self._listening = asyncio.Event()
        self._listen_port = config.listen_port
        self._outgoing: SipChannel | None = None
        self._inbound: set[SipChannel] = set()
        self._per_address = AddressLimiter(config.per_address_limit)
        self._progress: dict[SipChannel, _InboundProgress] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._was_connected = False
        #: Simple counters for metrics and tests.
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "sds_in",
                "notifications_in",
                "refused",
                "rejected",
                "sds_out",
                "notifications_out",
                "send_failed",
                "timeouts",
                "reconnects",
                "connections_refused",
                # inbound connections closed above max_connections_per_address
                "connections_refused_per_address",
                # inbound connections dropped at inbound_timeout: before any complete
                # request (stalled: silent or slow-loris), or after some (idle)
                "inbound_stalled",
                "inbound_idle_closed",
            ),
            0,
        )

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> LinkState:
        """State of the outgoing connection to the MCX system."""
        return self._state

    @property
    def listen_port(self) -> int:
        """The port the listener is bound to (the configured one before it is)."""
        return self._listen_port

    @property
    def inbound_connections(self) -> int:
        """Number of connections from the MCX system being served."""
        return len(self._inbound)

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109 (public API)
        """Wait until the outgoing connection is CONNECTED.

        Raises:
            LinkTimeoutError: If it is not connected within ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError as exc:
            raise LinkTimeoutError(
                f"Adapter {self.config.name} not connected after {timeout}s "
                f"(state {self._state.name})."
            ) from exc

    async def send_sds(
        self,
        sender: str,
        target: SdsTarget,
        payloads: Sequence[Payload],
        *,
        conversation_id: uuid.UUID | None = None,
        message_id: uuid.UUID | None = None,
        in_reply_to: uuid.UUID | None = None,
        disposition_request: DispositionRequest | int = DispositionRequest.NONE,
        emergency: bool = False,
        alert: bool = False,
        imminent_peril: bool = False,
        user_location: bytes | None = None,
        application_id: int | None = None,
        now: float | None = None,
    ) -> McdataSendOutcome:
        """Send a standalone SDS from an LMR-side user to an MCX user or group.

        Args:
            sender: MCData ID representing the LMR user (a SIP URI).
            target: :class:`McdataUser` (one-to-one) or :class:`McdataGroup` (group SDS).
            payloads: One to 255 payloads (text, location, enhanced status, ...).
            conversation_id: Conversation ID; a new UUID when None.
            message_id: Message ID; a new UUID when None (returned in the outcome).
            in_reply_to: Message ID this SDS answers.
            disposition_request: Notifications wanted back (DELIVERY, READ, both).
            emergency: Set ``<emergency-ind>``.
            alert: Set ``<alert-ind>`` (MCData emergency alert).
            imminent_peril: Set ``<imminentperil-ind>``.
            user_location: Raw User location IE of the sender.
            application_id: Application ID IE.
            now: Date and time of the SDS (seconds since the epoch); default now.

        Returns:
            The outcome: ``ok`` for a 2xx answer, else the SIP status and reason, or
            ``status=None`` when no final response came within ``request_timeout``.

        Raises:
            LinkError: Not connected, or the connection was lost during the send.
            LocalProtocolError: A value cannot be encoded (bad URI, too many payloads).
        """
        info, message = build_sds(
            sender,
            target,
            payloads,
            now=time.time() if now is None else now,
            conversation_id=conversation_id,
            message_id=message_id,
            in_reply_to=in_reply_to,
            disposition_request=disposition_request,
            emergency=emergency,
            alert=alert,
            imminent_peril=imminent_peril,
            user_location=user_location,
            application_id=application_id,
        )
        outcome = await self._send(sender, target.id, info, message)
        (self._log.debug if outcome.ok else self._log.warning)(
            "sds_sent" if outcome.ok else "sds_send_failed",
            sender=sender,
            target=target.id,
            group=isinstance(target, McdataGroup),
            message_id=str(outcome.message_id),
            status=outcome.status,
            reason=outcome.reason,
        )
        self.counters["sds_out" if outcome.ok else "send_failed"] += 1
        return outcome

    async def send_notification(
        self,
        sender: str,
        recipient: str,
        notification: NotificationType | int,
        *,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
        application_id: int | None = None,
        now: float | None = None,
    ) -> McdataSendOutcome:
        """Send a disposition notification about an SDS received from the MCX system.

        Args:
            sender: MCData ID of the LMR-side user who received (or read) the SDS.
            recipient: MCData ID of the SDS's sender.
            notification: DELIVERED, READ, DELIVERED_AND_READ or UNDELIVERED.
            conversation_id: Conversation ID of that SDS.
            message_id: Message ID of that SDS.
            application_id: Application ID IE.
            now: Date and time of the notification (seconds since the epoch).

        Returns:
            The outcome of the MESSAGE (see :meth:`send_sds`).

        Raises:
            LinkError: Not connected, or the connection was lost during the send.
            LocalProtocolError: A value cannot be encoded.
        """
        info, message = build_notification(
            sender,
            recipient,
            notification,
            now=time.time() if now is None else now,
            conversation_id=conversation_id,
            message_id=message_id,
            application_id=application_id,
        )
        outcome = await self._send(sender, recipient, info, message)
        self._log.info(
            "notification_sent" if outcome.ok else "notification_send_failed",
            sender=sender,
            recipient=recipient,
            notification=int(notification),
            message_id=str(message_id),
            status=outcome.status,
            reason=outcome.reason,
        )
        self.counters["notifications_out" if outcome.ok else "send_failed"] += 1
        return outcome

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Listen, keep the outgoing connection up and serve until cancelled.

        Raises:
            OSError: The listener cannot be bound.
        """
        config = self.config
        server = await asyncio.start_server(
            self._accept,
            config.listen_host,
            config.listen_port,
            ssl=config.server_ssl,
            ssl_handshake_timeout=config.connect_timeout if config.server_ssl else None,
            start_serving=False,
        )
        try:
            self._listen_port = int(server.sockets[0].getsockname()[1])
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                await server.start_serving()
                self._log.info("sip_listening", host=config.listen_host, port=self._listen_port)
                self._listening.set()
                tg.create_task(self._outgoing_loop(), name=f"adapter[{config.name}].outgoing")
                try:
                    await asyncio.Event().wait()
                finally:
                    # Stop accepting before the connections are torn down: the peer would
                    # reconnect at once into a listener about to go, and its half-made TLS
                    # connection would outlive us.
                    server.close()
        except asyncio.CancelledError:
            await self._set_state(LinkState.STOPPED, "adapter stopped")
            raise
        finally:
            self._tg = None
            self._listening.clear()
            server.close()

    async def __aenter__(self) -> Self:
        task = asyncio.create_task(self.run(), name=f"adapter[{self.config.name}].run")
        self._run_task = task
        listening = asyncio.create_task(self._listening.wait())
        await asyncio.wait({listening, task}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            self._run_task = None
            await task  # the listener could not start: raise why
        return self

    # ------------------------------------------------------------------ connections

    def _channel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: SipRole
    ) -> SipChannel:
        return SipChannel(
            reader,
            writer,
            role=role,
            max_body=self.config.max_body,
            handler=self._handle,
            on_protocol_error=self._on_protocol_error,
            randbits=self._randbits,
            warning_agent=self._agent(),
            log=self._log,
        )

    def _agent(self) -> str:
        host = self.config.advertised_host or self.config.listen_host
        return f"{_uri_host(host)}:{self._listen_port}"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tg = self._tg
        if tg is None or len(self._inbound) >= self.config.max_connections:
            self.counters["connections_refused"] += 1
            self._log.warning(
                "sip_connection_refused",
                peer=str(writer.get_extra_info("peername")),
                active=len(self._inbound),
            )
            writer.transport.abort()
            return
        address = peer_address(writer.get_extra_info("peername"))
        if not self._per_address.admit(address):
            self.counters["connections_refused_per_address"] += 1
            self._log.warning(
                "sip_connection_refused_per_address",
                peer=str(writer.get_extra_info("peername")),
                address=address,
                limit=self._per_address.limit,
            )
            writer.transport.abort()
            return
        channel = self._channel(reader, writer, SipRole.SERVER)
        self._inbound.add(channel)
        tg.create_task(
            self._serve_inbound(channel, address), name=f"adapter[{self.config.name}].inbound"
        )

    async def _serve_inbound(self, channel: SipChannel, address: str) -> None:
        self._log.info("sip_connection_accepted", peer=channel.peer)
        watchdog: asyncio.Task[None] | None = None
        if self.inbound_timeout is not None:
            progress = _InboundProgress(asyncio.get_running_loop().time())
            self._progress[channel] = progress
            watchdog = asyncio.create_task(
                self._watch_inbound(channel, progress, self.inbound_timeout),
                name=f"adapter[{self.config.name}].inbound-deadline",
            )
        try:
            await channel.run()
        finally:
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.wait({watchdog})
            self._progress.pop(channel, None)
            self._inbound.discard(channel)
            self._per_address.release(address)
            self._log.info("sip_connection_closed", peer=channel.peer, reason=channel.close_reason)

    async def _watch_inbound(
        self, channel: SipChannel, progress: _InboundProgress, limit: float
    ) -> None:
        """Drop ``channel`` when no complete request arrives within ``limit`` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            left = limit if progress.busy else progress.last + limit - loop.time()
            if left > 0:
                await asyncio.sleep(left)
                continue
            stalled = progress.served == 0
            self.counters["inbound_stalled" if stalled else "inbound_idle_closed"] += 1
            if stalled:
                self._log.warning(
                    "sip_connection_stalled", peer=channel.peer, timeout=limit, served=0
                )
            else:
                self._log.info(
                    "sip_connection_idle",
                    peer=channel.peer,
                    timeout=limit,
                    served=progress.served,
                )
            channel.abort(f"no complete request within {limit}s")
            return

    async def _outgoing_loop(self) -> None:
        backoff = Backoff(
            base=self.config.reconnect_min, cap=self.config.reconnect_max, random=self._random
        )
        while True:
            await self._set_state(LinkState.CONNECTING, "")
            state, reason = await self._outgoing_once()
            if self._was_connected:
                backoff.reset()
            self.counters["reconnects"] += 1
            await self._set_state(state, reason)
            delay = backoff.next_delay()
            self._log.info("sip_reconnect_scheduled", delay=round(delay, 3), reason=reason)
            await asyncio.sleep(delay)

    async def _outgoing_once(self) -> tuple[LinkState, str]:
        config = self.config
        self._was_connected = False
        where = f"{config.peer_host}:{config.peer_port}"
        try:
            async with asyncio.timeout(config.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    config.peer_host,
                    config.peer_port,
                    ssl=config.client_ssl,
                    server_hostname=(config.peer_server_name or config.peer_host)
                    if config.client_ssl
                    else None,
                )
        except ssl.SSLCertVerificationError as exc:
            self._log.error("sip_peer_certificate_refused", peer=where, error=str(exc))
            return LinkState.BAD_CREDENTIALS, f"certificate of {where} refused: {exc}"
        except (OSError, TimeoutError) as exc:
            self._log.warning("sip_connect_failed", peer=where, error=repr(exc))
            return LinkState.TRANSIENT_DISCONNECT, f"connect to {where} failed: {exc!r}"
        channel = self._channel(reader, writer, SipRole.CLIENT)
        keepalive: asyncio.Task[None] | None = None
        try:
            self._outgoing = channel
            self._was_connected = True
            self._log.info("sip_connected", peer=channel.peer)
            await self._set_state(LinkState.CONNECTED, "")
            if config.keepalive_interval is not None:
                keepalive = asyncio.create_task(
                    self._keepalive(channel, config.keepalive_interval),
                    name=f"adapter[{config.name}].keepalive",
                )
            await channel.run()
        finally:
            self._outgoing = None
            if keepalive is not None:
                keepalive.cancel()
                await asyncio.wait({keepalive})
            if not channel.closed:  # cancelled before run() took over the connection
                channel.abort("adapter stopped")
        self._log.warning("sip_connection_lost", peer=where, reason=channel.close_reason)
        return LinkState.TRANSIENT_DISCONNECT, channel.close_reason or "connection closed"

    async def _keepalive(self, channel: SipChannel, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                answered = await channel.ping(self.config.pong_timeout)
            except LinkError:
                return
            if not answered:
                self._log.warning("sip_keepalive_lost", timeout=self.config.pong_timeout)
                channel.abort(f"no keep-alive pong within {self.config.pong_timeout}s")
                return

    # ------------------------------------------------------------------ inbound

    def _respond(
        self,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> SipResponse:
        return respond(request, status, reason, extra, randbits=self._randbits)

    async def _handle(self, request: SipRequest, channel: SipChannel) -> SipResponse | None:
        progress = self._progress.get(channel)
        if progress is None:
            return await self._answer(request, channel)
        progress.busy += 1  # a complete request: no deadline while it is answered
        try:
            return await self._answer(request, channel)
        finally:
            progress.busy -= 1
            progress.served += 1
            progress.last = asyncio.get_running_loop().time()

    async def _answer(self, request: SipRequest, channel: SipChannel) -> SipResponse | None:
        if request.method == "ACK":
            return None
        if request.method == "OPTIONS":
            return self._respond(request, 200, extra=[("Allow", ALLOWED_METHODS)])
        if request.method != "MESSAGE":
            return self._respond(request, 405, extra=[("Allow", ALLOWED_METHODS)])
        call_id = request.headers.get("Call-ID")
        try:
            event = decode_mcdata_request(request, self.config.name)
        except SipProtocolError as exc:
            await self._reject(str(exc), exc.status, channel.peer, call_id, answered=True)
            extra = [warning_header(self._agent(), str(exc))]
            if exc.status == 415:
                extra.append(("Accept", ACCEPT))
            return self._respond(request, exc.status, exc.reason, extra)
        self._log_inbound(event)
        try:
            await self._sink(event)
        except Exception as exc:
            status, reason = refusal_status(exc)
            self.counters["refused"] += 1
            hint = exc.reply_hint if isinstance(exc, GatewayError) else "internal error"
            if isinstance(exc, GatewayError):
                self._log.info("mcdata_refused", call_id=call_id, status=status, reason=hint)
            else:
                self._log.exception("sink_failed", call_id=call_id, status=status)
            return self._respond(request, status, reason, [warning_header(self._agent(), hint)])
        return self._respond(request, 200)

    def _log_inbound(self, event: McdataSdsReceived | McdataNotificationReceived) -> None:
        if isinstance(event, McdataSdsReceived):
            self.counters["sds_in"] += 1
            self._log.debug(
                "sds_received",
                sender=event.sender,
                target=event.target.id,
                group=isinstance(event.target, McdataGroup),
                message_id=str(event.message_id),
                payloads=[int(p.content_type) for p in event.payloads],
                emergency=event.emergency,
                alert=event.alert,
                call_id=event.call_id,
            )
        else:
            self.counters["notifications_in"] += 1
            self._log.info(
                "notification_received",
                sender=event.sender,
                recipient=event.recipient,
                notification=int(event.notification_type),
                message_id=str(event.message_id),
                call_id=event.call_id,
            )

    async def _on_protocol_error(
        self, error: SipProtocolError, channel: SipChannel, answered: int | None
    ) -> None:
        call_id = None if error.headers is None else error.headers.get("Call-ID")
        await self._reject(
            str(error), error.status, channel.peer, call_id, answered=answered is not None
        )

    async def _reject(
        self,
        reason: str,
        status: int,
        peer: str,
        call_id: str | None,
        *,
        answered: bool,
    ) -> None:
        self.counters["rejected"] += 1
        self._log.warning(
            "mcdata_rejected",
            peer=peer,
            status=status,
            answered=answered,
            call_id=call_id,
            reason=reason,
        )
        await self._emit(
            McdataRejected(
                adapter=self.config.name,
                reason=reason,
                status=status,
                peer=peer,
                call_id=call_id,
                sender=None,
                at=time.time(),
            )
        )

    # ------------------------------------------------------------------ outbound

    async def _send(
        self,
        sender: str,
        target_uri: str,
        info: McdataInfo,
        message: SdsMessage | SdsNotification,
    ) -> McdataSendOutcome:
        channel = self._outgoing
        if channel is None or self._state is not LinkState.CONNECTED:
            raise LinkError(f"Adapter {self.config.name} cannot send in state {self._state.name}.")
        local = channel.local_address()
        host = _uri_host(self.config.advertised_host or (local[0] if local else "127.0.0.1"))
        request = build_mcdata_request(
            sender=sender,
            target_uri=target_uri,
            info=info,
            message=message,
            host=host,
            port=self._listen_port,
            transport=self.config.via_transport,
            randbits=self._randbits,
        )
        response = await channel.request(request, self.config.request_timeout)
        if response is None:
            self.counters["timeouts"] += 1
        return send_outcome(request, message, response, self.config.request_timeout)

    # ------------------------------------------------------------------ events

    async def _set_state(self, state: LinkState, reason: str) -> None:
        if state is self._state:
            return
        self._state = state
        if state is LinkState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        # Debug: a gateway logs each change as adapter.link, with its own context.
        self._log.debug("link_state_changed", state=state.name, reason=reason)
        await self._emit(
            LinkStateChanged(adapter=self.config.name, state=state, reason=reason, at=time.time())
        )

    async def _emit(self, event: McdataEvent) -> None:
        try:
            await self._sink(event)
        except Exception:
            self._log.exception("sink_failed", event_type=type(event).__name__)
