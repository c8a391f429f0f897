"""A scriptable simulated MCX system (MCData SDS over SIP) for tests and demos.

:class:`McdataSystemSimulator` plays a national MCX system's SIP/MCData server with
MCData users and groups. It listens for the gateway's outgoing SIP connection,
connects to the gateway's listener for the requests it sends itself, records every
SDS the gateway delivers to its users (:attr:`~McdataSystemSimulator.received`) and
every disposition notification addressed to them
(:attr:`~McdataSystemSimulator.notifications`), and answers disposition requests
automatically: DELIVERED and/or READ, or UNDELIVERED (or a SIP 480) for users switched
off with :meth:`~McdataSystemSimulator.set_reachable`. Scripts send with
:meth:`~McdataSystemSimulator.send_sds` and inject faults (``fail_next``,
``set_silent``, ``drop_connections``, ``send_raw``).

It parses nothing itself (the codecs of :mod:`protocols` do, through the adapter's
glue) and never logs message content. Run standalone with :func:`main`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog

from adapters._service import ListeningService
from adapters.mcdata._body import (
    ALLOWED_METHODS,
    build_mcdata_request,
    build_notification,
    build_sds,
    decode_mcdata_request,
    send_outcome,
    warning_header,
)
from adapters.mcdata._channel import SipChannel, respond
from adapters.mcdata._config import (
    McdataGroup,
    McdataNotificationReceived,
    McdataRejected,
    McdataSdsReceived,
    McdataSendOutcome,
    McdataUser,
    SdsTarget,
)
from adapters.mcdata._control import McdataControl
from protocols.errors import GatewayError, LinkError
from protocols.mcdata import (
    ContentType,
    DispositionRequest,
    McdataId,
    McdataInfo,
    NotificationType,
    Payload,
    SdsMessage,
    SdsNotification,
)
from protocols.sip import (
    DEFAULT_MAX_BODY,
    RandomBits,
    SipProtocolError,
    SipRequest,
    SipResponse,
    SipRole,
)

__all__ = ["McdataSystemSimulator", "main"]

_log = structlog.get_logger(__name__)

DEFAULT_USERS = ("sip:alice@mcx.example.eu", "sip:bob@mcx.example.eu")


def location_payload(latitude: float, longitude: float) -> Payload:
    """Return a LOCATION payload as the gateway encodes it: a ``geo:lat,lon`` URI (RFC 5870)."""
    return Payload(
        content_type=ContentType.LOCATION, data=f"geo:{latitude:.6f},{longitude:.6f}".encode()
    )


def enhanced_status_payload(value: int) -> Payload:
    """Return an ENHANCED STATUS payload as the gateway encodes it: two octets, big endian."""
    return Payload(content_type=ContentType.ENHANCED_STATUS, data=value.to_bytes(2, "big"))


class McdataSystemSimulator(ListeningService):
    """Simulated MCX system: MCData users and groups behind one SIP server.

    Args:
        users: MCData IDs of the simulated users (SIP URIs).
        groups: MCData group ID -> member user IDs: an SDS to the group reaches every
            reachable member.
        host: Address to listen on for the gateway's connection.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        gateway_host: Host of the gateway's SIP listener.
        gateway_port: Its port (may be set later through the attribute).
        name: Name used in events and logs.
        request_timeout: Seconds to wait for the gateway's final response.
        max_body: Largest SIP body accepted.
        randbits: Random source for tags, branches, Call-IDs and boundaries.
        control_port: Port of the HTTP control interface (:mod:`adapters.mcdata._control`);
            None: no control interface, 0: a free port (see :attr:`control`).
        control_host: Address the control interface listens on (loopback by default).
    """

    _label = "mcdata_sim"

    def __init__(
        self,
        *,
        users: Sequence[str] = DEFAULT_USERS,
        groups: Mapping[str, Sequence[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        gateway_host: str = "127.0.0.1",
        gateway_port: int | None = None,
        name: str = "mcdata-sim",
        request_timeout: float = 5.0,
        max_body: int = DEFAULT_MAX_BODY,
        randbits: RandomBits | None = None,
        control_port: int | None = None,
        control_host: str = "127.0.0.1",
    ) -> None:
        self.users = list(users)
        #: The HTTP control interface, if one was asked for.
        self.control = (
            None
            if control_port is None
            else McdataControl(self, host=control_host, port=control_port)
        )
        self.groups: dict[str, list[str]] = {g: list(m) for g, m in (groups or {}).items()}
        self.host = host
        self.port = port
        self.gateway_host = gateway_host
        self.gateway_port = gateway_port
        self.name = name
        self.request_timeout = request_timeout
        self.max_body = max_body
        self._randbits: RandomBits = randbits if randbits is not None else secrets.randbits
        #: Seconds a delivered SDS's 200 OK is held back (a slow MCX core): the recipient's
        #: disposition notifications may overtake it.
        self.answer_delay = 0.0
        #: Per simulated user, every SDS the gateway delivered to them, in order.
        self.received: dict[str, list[McdataSdsReceived]] = {user: [] for user in self.users}
        #: Per simulated user, every disposition notification addressed to them.
        self.notifications: dict[str, list[McdataNotificationReceived]] = {
            user: [] for user in self.users
        }
        #: Every request the gateway sent, in order.
        self.requests: list[SipRequest] = []
        #: Every request refused as malformed or unsupported.
        self.rejected: list[McdataRejected] = []
        #: Outcome of every MESSAGE the simulator sent (automatic notifications too).
        self.sent: list[McdataSendOutcome] = []
        #: Number of SIP connections accepted from the gateway so far.
        self.connection_count = 0
        self._unreachable: dict[str, bool] = {}
        self._non_readers: set[str] = set()
        self._fail_next: list[tuple[int, str | None]] = []
        self._silent = False
        self._inbound: set[SipChannel] = set()
        self._outgoing: SipChannel | None = None
        self._connect_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        server = await asyncio.start_server(self._accept, self.host, self.port)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.port = int(server.sockets[0].getsockname()[1])
                ready.set_result(None)
                await asyncio.Event().wait()
        finally:
            self._tg = None
            server.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tg is None:
            writer.transport.abort()
            return
        self.connection_count += 1
        channel = self._channel(reader, writer, SipRole.SERVER)
        self._inbound.add(channel)
        name = f"mcdata_sim.connection[{self.connection_count}]"
        self._tg.create_task(self._serve(channel), name=name)

    def _channel(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: SipRole
    ) -> SipChannel:
        return SipChannel(
            reader,
            writer,
            role=role,
            max_body=self.max_body,
            handler=self._handle,
            on_protocol_error=self._on_protocol_error,
            randbits=self._randbits,
            warning_agent=f"{self.host}:{self.port}",
            log=_log.bind(simulator=self.name),
        )

    async def _serve(self, channel: SipChannel) -> None:
        await self._notify()
        try:
            await channel.run()
        finally:
            self._inbound.discard(channel)
            if self._outgoing is channel:
                self._outgoing = None
            await self._notify()

    # ------------------------------------------------------------------ script API

    async def send_sds(
        self,
        from_user: str,
        to: str | SdsTarget,
        text: str | None = None,
        *,
        payloads: Iterable[Payload] = (),
        disposition: DispositionRequest | int = DispositionRequest.NONE,
        emergency: bool = False,
        alert: bool = False,
        imminent_peril: bool = False,
        location: tuple[float, float] | None = None,
        enhanced_status: int | None = None,
        user_location: bytes | None = None,
        conversation_id: uuid.UUID | None = None,
        message_id: uuid.UUID | None = None,
        in_reply_to: uuid.UUID | None = None,
        group: bool | None = None,
    ) -> McdataSendOutcome:
        """Send a standalone SDS from a simulated user to the gateway.

        Args:
            from_user: Sending MCData user.
            to: Target MCData ID (an LMR-side user or group behind the gateway), or a
                :class:`McdataUser`/:class:`McdataGroup`.
            text: A TEXT payload.
            payloads: Further payloads, after the text.
            disposition: Disposition notifications requested from the recipient.
            emergency: Set ``<emergency-ind>``.
            alert: Set ``<alert-ind>`` (emergency alert).
            imminent_peril: Set ``<imminentperil-ind>``.
            location: (latitude, longitude) as a LOCATION payload (``geo:`` URI).
            enhanced_status: Operational value as an ENHANCED STATUS payload (2 octets).
            user_location: Raw User location IE of the signalling payload.
            conversation_id: Conversation ID (new UUID when None).
            message_id: Message ID (new UUID when None).
            in_reply_to: Message ID this SDS answers.
            group: For a string ``to``: True for a group SDS; default: True when ``to``
                is one of :attr:`groups`.

        Returns:
            The outcome: the gateway's final SIP status.

        Raises:
            LinkError: The gateway cannot be reached.
            ValueError: No payload at all.
        """
        items: list[Payload] = []
        if text is not None:
            items.append(Payload.from_text(text))
        items.extend(payloads)
        if location is not None:
            items.append(location_payload(*location))
        if enhanced_status is not None:
            items.append(enhanced_status_payload(enhanced_status))
        if not items:
            raise ValueError("An SDS needs text, a payload, a location or an enhanced status.")
        target: SdsTarget
        if isinstance(to, McdataUser | McdataGroup):
            target = to
        else:
            is_group = to in self.groups if group is None else group
            target = McdataGroup(McdataId(to)) if is_group else McdataUser(McdataId(to))
        info, message = build_sds(
            from_user,
            target,
            items,
            now=time.time(),
            conversation_id=conversation_id,
            message_id=message_id,
            in_reply_to=in_reply_to,
            disposition_request=disposition,
            emergency=emergency,
            alert=alert,
            imminent_peril=imminent_peril,
            user_location=user_location,
        )
        return await self._send(from_user, target.id, info, message)

    async def send_notification(
        self,
        from_user: str,
        to: str,
        notification: NotificationType | int,
        *,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID,
    ) -> McdataSendOutcome:
        """Send a disposition notification from a simulated user to the gateway.

        Raises:
            LinkError: The gateway cannot be reached.
        """
        info, message = build_notification(
            from_user,
            to,
            notification,
            now=time.time(),
            conversation_id=conversation_id,
            message_id=message_id,
        )
        return await self._send(from_user, to, info, message)

    async def send_raw(self, data: bytes) -> None:
        """Write arbitrary (possibly malformed) bytes on the connection to the gateway.

        Raises:
            LinkError: The gateway cannot be reached.
        """
        channel = await self._gateway_channel()
        await channel.write(data)

    def set_reachable(self, user: str, reachable: bool, *, reject: bool = True) -> None:
        """Switch a simulated user on or off.

        Args:
            user: The MCData user.
            reachable: False: SDS to the user are not delivered.
            reject: While unreachable, answer a one-to-one SDS with SIP 480 (True), or
                accept it with 200 and send an UNDELIVERED notification when a
                disposition was requested (False).
        """
        if reachable:
            self._unreachable.pop(user, None)
        else:
            self._unreachable[user] = reject

    def set_reads(self, user: str, reads: bool) -> None:
        """Let a user read delivered SDS (READ notifications) or never read them."""
        if reads:
            self._non_readers.discard(user)
        else:
            self._non_readers.add(user)

    def fail_next(self, status: int, reason: str | None = None) -> None:
        """Answer the next MESSAGE from the gateway with ``status`` (e.g. 486, 503)."""
        self._fail_next.append((status, reason))

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) answering the gateway's MESSAGE requests at all."""
        self._silent = silent

    def drop_connections(self) -> None:
        """Abort every SIP connection with the gateway (it reconnects)."""
        for channel in (*self._inbound, self._outgoing):
            if channel is not None:
                channel.abort("dropped by the simulator")

    @property
    def gateway_connected(self) -> bool:
        """True while the simulator's own connection to the gateway's listener is open."""
        return self._outgoing is not None and not self._outgoing.closed

    @property
    def inbound_connections(self) -> int:
        """Number of gateway connections currently open to the simulator."""
        return len(self._inbound)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every simulator event.

        Wrap the call in ``asyncio.timeout`` to bound the wait.
        """
        async with self._changed:
            await self._changed.wait_for(predicate)

    # ------------------------------------------------------------------ SIP side

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _gateway_channel(self) -> SipChannel:
        async with self._connect_lock:
            channel = self._outgoing
            if channel is not None and not channel.closed:
                return channel
            if self.gateway_port is None or self._tg is None:
                raise LinkError("The simulator does not know (or is not running for) a gateway.")
            try:
                async with asyncio.timeout(self.request_timeout):
                    reader, writer = await asyncio.open_connection(
                        self.gateway_host, self.gateway_port
                    )
            except (OSError, TimeoutError) as exc:
                raise LinkError(
                    f"Cannot reach the gateway at {self.gateway_host}:{self.gateway_port}: {exc!r}"
                ) from exc
            channel = self._channel(reader, writer, SipRole.CLIENT)
            self._outgoing = channel
            self._tg.create_task(self._serve(channel), name="mcdata_sim.outgoing")
            return channel

    async def _send(
        self,
        sender: str,
        target_uri: str,
        info: McdataInfo,
        message: SdsMessage | SdsNotification,
    ) -> McdataSendOutcome:
        channel = await self._gateway_channel()
        local = channel.local_address()
        request = build_mcdata_request(
            sender=sender,
            target_uri=target_uri,
            info=info,
            message=message,
            host=local[0] if local else self.host,
            port=self.port,
            transport="TCP",
            randbits=self._randbits,
        )
        response = await channel.request(request, self.request_timeout)
        outcome = send_outcome(request, message, response, self.request_timeout)
        self.sent.append(outcome)
        _log.info(
            "mcdata_sim_sent",
            sender=sender,
            target=target_uri,
            message_id=str(outcome.message_id),
            status=outcome.status,
        )
        await self._notify()
        return outcome

    def _respond(
        self,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> SipResponse:
        return respond(request, status, reason, extra, randbits=self._randbits)

    async def _handle(self, request: SipRequest, channel: SipChannel) -> SipResponse | None:
        self.requests.append(request)
        try:
            response = self._answer(request, channel)
            if self.answer_delay > 0 and request.method == "MESSAGE":
                await asyncio.sleep(self.answer_delay)
            return response
        finally:
            await self._notify()

    def _answer(self, request: SipRequest, channel: SipChannel) -> SipResponse | None:
        if request.method == "ACK":
            return None
        if request.method == "OPTIONS":
            return self._respond(request, 200, extra=[("Allow", ALLOWED_METHODS)])
        if request.method != "MESSAGE":
            return self._respond(request, 405, extra=[("Allow", ALLOWED_METHODS)])
        if self._silent:
            return None
        if self._fail_next:
            status, reason = self._fail_next.pop(0)
            return self._respond(request, status, reason)
        try:
            event = decode_mcdata_request(request, self.name)
        except SipProtocolError as exc:
            self._record_rejected(str(exc), exc.status, channel, request.headers.get("Call-ID"))
            warning = warning_header(f"{self.host}:{self.port}", str(exc))
            return self._respond(request, exc.status, exc.reason, [warning])
        if isinstance(event, McdataNotificationReceived):
            if event.recipient not in self.notifications:
                return self._respond(request, 404)
            self.notifications[event.recipient].append(event)
            return self._respond(request, 200)
        return self._deliver(request, event)

    def _deliver(self, request: SipRequest, event: McdataSdsReceived) -> SipResponse:
        target = event.target
        if isinstance(target, McdataUser):
            if target.id not in self.received:
                return self._respond(request, 404)
            if self._unreachable.get(target.id, False):
                return self._respond(request, 480)
            self._deliver_to(target.id, event)
            return self._respond(request, 200)
        if target.id not in self.groups:
            return self._respond(request, 404)
        for member in self.groups[target.id]:
            if member in self.received:
                self._deliver_to(member, event)
        return self._respond(request, 200)

    def _deliver_to(self, user: str, event: McdataSdsReceived) -> None:
        if user in self._unreachable:
            kinds = [] if event.disposition_request == 0 else [NotificationType.UNDELIVERED]
        else:
            self.received[user].append(event)
            kinds = self._dispositions(user, event.disposition_request)
        _log.info(
            "mcdata_sim_delivered",
            user=user,
            delivered=user not in self._unreachable,
            message_id=str(event.message_id),
            notifications=[kind.name for kind in kinds],
        )
        for kind in kinds:
            self._spawn_notification(user, event, kind)

    def _dispositions(self, user: str, request: int) -> list[NotificationType]:
        reads = user not in self._non_readers
        if request == DispositionRequest.DELIVERY:
            return [NotificationType.DELIVERED]
        if request == DispositionRequest.READ:
            return [NotificationType.READ] if reads else []
        if request == DispositionRequest.DELIVERY_AND_READ:
            return [NotificationType.DELIVERED_AND_READ if reads else NotificationType.DELIVERED]
        return []

    def _spawn_notification(
        self, user: str, event: McdataSdsReceived, kind: NotificationType
    ) -> None:
        if self._tg is None:
            return
        self._tg.create_task(
            self._send_disposition(user, event, kind),
            name=f"mcdata_sim.notification[{kind.name}]",
        )

    async def _send_disposition(
        self, user: str, event: McdataSdsReceived, kind: NotificationType
    ) -> None:
        try:
            await self.send_notification(
                user,
                event.sender,
                kind,
                conversation_id=event.conversation_id,
                message_id=event.message_id,
            )
        except GatewayError as exc:  # LinkError, LocalProtocolError
            _log.warning("mcdata_sim_notification_not_sent", user=user, error=str(exc))

    async def _on_protocol_error(
        self, error: SipProtocolError, channel: SipChannel, answered: int | None
    ) -> None:
        call_id = None if error.headers is None else error.headers.get("Call-ID")
        self._record_rejected(str(error), error.status, channel, call_id)
        await self._notify()

    def _record_rejected(
        self, reason: str, status: int, channel: SipChannel, call_id: str | None
    ) -> None:
        _log.warning("mcdata_sim_rejected", status=status, reason=reason, peer=channel.peer)
        self.rejected.append(
            McdataRejected(
                adapter=self.name,
                reason=reason,
                status=status,
                peer=channel.peer,
                call_id=call_id,
                sender=None,
                at=time.time(),
            )
        )


def _parse_groups(values: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for value in values:
        group, separator, members = value.partition("=")
        if not separator or not group:
            raise argparse.ArgumentTypeError(f"--group {value!r} is not GROUP=MEMBER,MEMBER")
        groups[group] = [member.strip() for member in members.split(",") if member.strip()]
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process until interrupted (``euccs-gw simulate mcdata``).

    Args:
        argv: Command-line arguments without the program name.

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="euccs-gw simulate mcdata",
        description="Simulated MCX system: MCData SDS over SIP (TCP).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="SIP port (0: a free one)")
    parser.add_argument("--gateway-host", default="127.0.0.1")
    parser.add_argument("--gateway-port", type=int, default=None, help="gateway's SIP port")
    parser.add_argument(
        "--users", default=",".join(DEFAULT_USERS), help="comma-separated MCData user IDs"
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP=MEMBER,MEMBER",
        help="an MCData group and its members (repeatable)",
    )
    parser.add_argument(
        "--unreachable", default="", help="comma-separated users that are switched off"
    )
    parser.add_argument(
        "--control-port", type=int, default=None, help="HTTP control interface port (0: free)"
    )
    parser.add_argument("--control-host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        groups = _parse_groups(args.group)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    users = [user.strip() for user in args.users.split(",") if user.strip()]
    simulator = McdataSystemSimulator(
        users=users,
        groups=groups,
        host=args.host,
        port=args.port,
        gateway_host=args.gateway_host,
        gateway_port=args.gateway_port,
        control_port=args.control_port,
        control_host=args.control_host,
    )
    for user in args.unreachable.split(","):
        if user.strip():
            simulator.set_reachable(user.strip(), False)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(simulator))
    return 0


async def _serve_forever(simulator: McdataSystemSimulator) -> None:
    async with simulator:
        print(
            f"MCData simulator listening on {simulator.host}:{simulator.port} (SIP over TCP)",
            flush=True,
        )
        if simulator.control is not None:
            print(f"MCData simulator control interface on {simulator.control.url}", flush=True)
        await asyncio.Event().wait()
