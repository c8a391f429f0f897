"""TETRA adapter: drives one radio's PEI (EN 300 392-5) over TCP or a serial line.

What it does: open the transport, feed every byte to the sans-IO
:class:`protocols.tetra.PeiConnection`, forward the decoded events to the
gateway's sink, and turn the gateway's send requests into PEI commands. It keeps
the link alive (periodic ``AT``), reconnects with exponential backoff and full
jitter, reassembles concatenated texts, discards SDS-TL retransmissions of
transfers already handed on, and answers the SDS-TL duties the gateway cannot see
(SDS-ACK for reports that require one, negative reports for corrupt transfers or
incomplete texts, reports for retransmissions). These control SDS go out in the
background; one lost with its PEI session is logged (``control_sds_lost``) and
counted, never persisted.

What it must not do: parse PEI or SDS bytes (the codec does), or log message
text (privacy: only identities, references, lengths and types are logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import structlog

from adapters._link import Backoff, LinkState, LinkStateChanged, RunsInBackground
from adapters.tetra._channel import PeiChannel
from adapters.tetra._config import (
    AdapterEvent,
    AdapterSink,
    PreparedSds,
    SendOutcome,
    TetraAdapterConfig,
)
from adapters.tetra._transport import open_pei_stream, parse_pei_url
from protocols.errors import LinkError, LinkTimeoutError, LocalProtocolError, RemoteProtocolError
from protocols.tetra import (
    MAX_TYPE4_BITS,
    NEED_DATA,
    AiService,
    CommandCompleted,
    DeliveryStatus,
    DuplicateFilter,
    Identity,
    IncompleteMessage,
    PeiConnection,
    QuerySendCapability,
    RawCommand,
    Reassembler,
    Retransmission,
    SdsAck,
    SdsContent,
    SdsReceived,
    SdsRejected,
    SdsReport,
    SendCapability,
    SendResult,
    SendSds,
    ShortReport,
    StatusSds,
    TextSds,
    UnsolicitedResult,
    encode_sds,
    split_text,
)

__all__ = ["TetraAdapter"]

_READ_SIZE = 4096


def _ack_status(report_status: int) -> int:
    """SDS-ACK delivery status that acknowledges a report (EN 300 392-2 table 29.16)."""
    if report_status == DeliveryStatus.CONSUMED:
        return DeliveryStatus.CONSUMED_REPORT_ACK
    if report_status >= 0x40:
        return DeliveryStatus.NEGATIVE_REPORT_ACK
    return DeliveryStatus.RECEIPT_REPORT_ACK


@dataclass
class _Session:
    """One connected PEI stream and the task group of its tasks; replaced on reconnect."""

    channel: PeiChannel
    tg: asyncio.TaskGroup


class TetraAdapter(RunsInBackground):
    """Gateway side of one TETRA radio's PEI.

    Args:
        config: Where the radio is and how to drive it.
        sink: Coroutine receiving :data:`AdapterEvent` objects in order.
        random: Source of uniform floats in ``[0, 1)`` for backoff jitter and the
            first message reference per destination (injectable for tests).
    """

    def __init__(
        self,
        config: TetraAdapterConfig,
        sink: AdapterSink,
        *,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self._endpoint = parse_pei_url(config.url)
        self._sink = sink
        self._random = random if random is not None else _random.SystemRandom().random
        self._log = structlog.get_logger(__name__).bind(adapter=config.name)
        self._state = LinkState.STOPPED
        self._connected = asyncio.Event()
        self._session: _Session | None = None
        self._max_pdu_bits = config.max_pdu_bits
        self._send_lock = asyncio.Lock()
        self._references: dict[str, int] = {}
        self._reassembler = Reassembler(config.reassembly_timeout)
        self._duplicates = DuplicateFilter(config.duplicate_window)
        self._timer_changed = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._was_connected = False
        #: Simple counters: sds_in, sds_out, rejected, reconnects, send_failed,
        #: sds_duplicate (SDS-TL retransmissions discarded) and control_sds_lost
        #: (background SDS-ACKs and reports never sent: session ended, link lost).
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "sds_in",
                "sds_out",
                "rejected",
                "reconnects",
                "send_failed",
                "sds_duplicate",
                "control_sds_lost",
            ),
            0,
        )

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> LinkState:
        """Current link state."""
        return self._state

    @property
    def max_pdu_bits(self) -> int:
        """Largest type-4 PDU the radio accepts (from ``AT+CMGS=?``, else the configured value)."""
        return self._max_pdu_bits

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109 (public API)
        """Wait until the link is CONNECTED.

        Args:
            timeout: Seconds to wait.

        Raises:
            LinkTimeoutError: If the link is not connected within ``timeout``.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError as exc:
            raise LinkTimeoutError(
                f"Adapter {self.config.name} not connected after {timeout}s "
                f"(state {self._state.name})."
            ) from exc

    def allocate_reference(self, destination: str) -> int:
        """Return the next 8-bit SDS-TL message reference for ``destination``.

        References count up per destination and wrap from 255 to 0; the first one
        is random so that a restarted gateway does not repeat recent references.

        Args:
            destination: Identity the transfer is addressed to.

        Returns:
            A message reference in 0..255.
        """
        value = self._references.get(destination)
        if value is None:
            value = int(self._random() * 256) % 256
        self._references[destination] = (value + 1) % 256
        return value

    async def send_report(
        self,
        destination: str,
        *,
        protocol_id: int,
        message_reference: int,
        delivery_status: int,
    ) -> SendOutcome:
        """Send an SDS-REPORT for a transfer received from ``destination``.

        Args:
            destination: The sender of the transfer being reported on.
            protocol_id: SDS-TL protocol identifier of that transfer.
            message_reference: Its message reference.
            delivery_status: SDS-TL delivery status (:class:`DeliveryStatus` or int).

        Returns:
            The outcome of the send.
        """
        report = SdsReport(
            protocol_id=protocol_id,
            delivery_status=delivery_status,
            message_reference=message_reference,
        )
        return await self.send(destination, report)

    def seed_references(self, references: dict[str, int]) -> None:
        """Continue the reference counters of a previous run (destination -> next reference).

        A restarted gateway that repeats a recent reference would have its new
        message discarded by the radio as a retransmission of the old one.
        """
        for destination, value in references.items():
            self._references[destination] = value % 256

    def next_reference(self, destination: str) -> int | None:
        """Return the reference the next allocation for ``destination`` will use, if known."""
        return self._references.get(destination)

    def prepare(self, destination: str, content: SdsContent) -> PreparedSds:
        """Encode ``content`` into the PDUs the radio will send, allocating references.

        A text longer than the radio's maximum PDU is split into 0x8A parts
        numbered from the text's own message reference (or a newly allocated
        one); sending the same :class:`PreparedSds` again repeats the same
        references, which a radio discards as a retransmission if it already
        has the message.

        Raises:
            LocalProtocolError: If the content cannot be encoded.
        """
        pdus = self._encode_pdus(destination, content)
        references = [
            ref
            for part, _, _ in pdus
            if isinstance(ref := getattr(part, "message_reference", None), int)
        ]
        return PreparedSds(
            destination=destination,
            content=content,
            pdus=pdus,
            references=references,
        )

    async def send(
        self, destination: str, content: SdsContent, *, ai_service: int | None = None
    ) -> SendOutcome:
        """Send one SDS through the radio and wait for its final ``+CMGS`` status.

        A text longer than the radio's maximum PDU is split into 0x8A parts whose
        message references follow the text's own (see :meth:`prepare`); other
        content is sent verbatim (an SDS-TL caller sets its own message reference).

        Args:
            destination: ISSI/GSSI/TSI to send to.
            content: What to send.
            ai_service: PEI AI service; default 13 (status) for
                :class:`StatusSds`/:class:`ShortReport`, else 12 (type 4).

        Returns:
            ``ok`` with the message references, or ``ok=False`` with a reason.

        Raises:
            LinkError: If the link is not connected or fails during the send.
            LocalProtocolError: If the content cannot be encoded.
        """
        self._require_connected()
        return await self.send_prepared(self.prepare(destination, content), ai_service=ai_service)

    async def send_prepared(
        self, prepared: PreparedSds, *, ai_service: int | None = None
    ) -> SendOutcome:
        """Send PDUs made by :meth:`prepare` and wait for the final ``+CMGS`` status.

        A radio that refuses the send (``+CME ERROR``, status 5, no final status in time,
        the SDS AI service refused) gives an outcome that is not ``ok``: the message failed.

        Raises:
            LinkError: If the link is not connected or fails during the send: whether the
                SDS went out is unknown, the caller keeps the message and sends it again.
        """
        session = self._require_connected()
        content = prepared.content
        destination = prepared.destination
        service = ai_service if ai_service is not None else self._service_for(content)
        async with self._send_lock:
            if await session.channel.select_service(service, fatal=False):
                outcome = await self._send_pdus(session.channel, destination, prepared.pdus)
            else:  # the radio refused the AI service: this message fails, the link is fine
                outcome = SendOutcome(ok=False, reason=f"radio refused SDS AI service {service}")
        if outcome.ok:
            self.counters["sds_out"] += 1
            if isinstance(content, SdsReport):  # a retransmission gets the same answer
                self._duplicates.note_report(
                    destination,
                    content.protocol_id,
                    content.message_reference,
                    content.delivery_status,
                )
        else:
            self.counters["send_failed"] += 1
            self._log.warning(
                "sds_send_failed",
                destination=destination,
                reason=outcome.reason,
                content_type=type(content).__name__,
            )
        return outcome

    async def run(self) -> None:
        """Connect, serve and reconnect until cancelled; then report STOPPED."""
        backoff = Backoff(
            base=self.config.reconnect_min, cap=self.config.reconnect_max, random=self._random
        )
        try:
            while True:
                await self._set_state(LinkState.CONNECTING, "")
                session = asyncio.create_task(
                    self._connect_once(), name=f"adapter[{self.config.name}].session"
                )
                state, reason = await session
                _raise_if_cancelling()
                if self._was_connected:
                    backoff.reset()
                self.counters["reconnects"] += 1
                await self._set_state(state, reason)
                delay = backoff.next_delay()
                self._log.info("pei_reconnect_scheduled", delay=round(delay, 3), reason=reason)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            await self._set_state(LinkState.STOPPED, "adapter stopped")
            raise

    async def __aenter__(self) -> Self:
        self._run_task = asyncio.create_task(self.run(), name=f"adapter[{self.config.name}].run")
        return self

    # ------------------------------------------------------------------ connection

    async def _connect_once(self) -> tuple[LinkState, str]:
        """Open the transport and serve one session; classify why it ended."""
        outcome = (LinkState.TRANSIENT_DISCONNECT, "session ended")
        self._was_connected = False
        try:
            async with asyncio.timeout(self.config.command_timeout):
                reader, writer = await open_pei_stream(self._endpoint)
            await self._serve(reader, writer)
        except* PermissionError as group:
            outcome = (LinkState.BAD_CREDENTIALS, _first_reason(group))
            self._log.error("pei_access_denied", reason=outcome[1])
        except* OSError as group:
            outcome = (LinkState.TRANSIENT_DISCONNECT, _first_reason(group))
            self._log.warning("pei_link_lost", reason=outcome[1])
        except* Exception as group:
            outcome = (LinkState.UNKNOWN_ERROR, _first_reason(group))
            self._log.error("pei_session_failed", reason=outcome[1], exc_info=group)
        return outcome

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = self.config.name
        self._max_pdu_bits = self.config.max_pdu_bits
        channel = PeiChannel(
            PeiConnection(own_identity=self.config.radio_issi),
            writer,
            name=name,
            command_timeout=self.config.command_timeout,
            send_timeout=self.config.send_timeout,
            log=self._log,
        )
        tg = asyncio.TaskGroup()
        session = self._session = _Session(channel, tg)
        try:
            async with tg:
                tg.create_task(self._read_loop(session, reader), name=f"adapter[{name}].read_loop")
                tg.create_task(channel.watch(), name=f"adapter[{name}].watchdog")
                await self._initialise(channel)
                tg.create_task(self._keepalive_loop(channel), name=f"adapter[{name}].keepalive")
                tg.create_task(self._timer_loop(session), name=f"adapter[{name}].reassembly_timer")
                self._was_connected = True
                await self._set_state(LinkState.CONNECTED, "")
        finally:
            self._session = None
            channel.close(LinkError(f"PEI link of adapter {name} went down."))
            await self._close(writer)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError as exc:
            self._log.debug("pei_close_error", error=repr(exc))

    async def _initialise(self, channel: PeiChannel) -> None:
        """Run the PEI initialisation sequence (EN 300 392-5 6.14)."""
        await channel.expect_ok(RawCommand(line="AT"), fatal=True)
        for profile in self.config.service_profiles:
            await channel.expect_ok(profile, fatal=False)
        await channel.select_service(AiService.SDS_TYPE_4)
        exchange = await channel.command(QuerySendCapability())
        if exchange.capability is not None:
            self._max_pdu_bits = max(16, min(exchange.capability.max_pdu_bits, MAX_TYPE4_BITS))
        self._log.info("pei_initialised", max_pdu_bits=self._max_pdu_bits)

    async def _keepalive_loop(self, channel: PeiChannel) -> None:
        while True:
            await asyncio.sleep(self.config.keepalive_interval)
            await channel.expect_ok(RawCommand(line="AT"), fatal=False)

    # ------------------------------------------------------------------ commands

    def _require_connected(self) -> _Session:
        session = self._session
        if session is None or self._state is not LinkState.CONNECTED:
            raise LinkError(f"Adapter {self.config.name} cannot send in state {self._state.name}.")
        return session

    @staticmethod
    def _service_for(content: SdsContent) -> int:
        if isinstance(content, StatusSds | ShortReport):
            return AiService.STATUS
        return AiService.SDS_TYPE_4

    def _encode_pdus(
        self, destination: str, content: SdsContent
    ) -> list[tuple[SdsContent, bytes, int]]:
        try:
            payload, bits = encode_sds(content)
        except LocalProtocolError as exc:
            if (
                not isinstance(content, TextSds)
                or exc.reason_code != DeliveryStatus.MESSAGE_TOO_LONG
            ):
                raise
            bits = MAX_TYPE4_BITS + 1
        else:
            if bits <= self._max_pdu_bits:
                return [(content, payload, bits)]
        if not isinstance(content, TextSds):
            raise LocalProtocolError(
                f"{type(content).__name__} of {bits} bits exceeds the radio's maximum "
                f"of {self._max_pdu_bits} bits.",
                reason_code=DeliveryStatus.MESSAGE_TOO_LONG,
            )
        start = content.message_reference
        if start is None:
            start = self.allocate_reference(destination)
        parts = split_text(
            content.text,
            destination_max_bits=self._max_pdu_bits,
            message_reference_start=start,
            coding_scheme=content.coding_scheme,
            delivery_report_request=content.delivery_report_request,
            immediate=content.immediate,
            timestamp=content.timestamp,
        )
        if self._references.get(destination) in (None, (start + 1) % 256):
            self._references[destination] = (start + len(parts)) % 256
        return [(part, *encode_sds(part)) for part in parts]

    @staticmethod
    async def _send_pdus(
        channel: PeiChannel, destination: str, pdus: list[tuple[SdsContent, bytes, int]]
    ) -> SendOutcome:
        references: list[int] = []
        outcome = SendOutcome(ok=False, reason="nothing to send")
        for content, payload, bits in pdus:
            reference = getattr(content, "message_reference", None)
            if isinstance(reference, int):
                references.append(reference)
            command = SendSds(destination=Identity(destination), payload=payload, bits=bits)
            outcome = await channel.send_pdu(command, references)
            if not outcome.ok:
                break
        return outcome

    # ------------------------------------------------------------------ inbound

    async def _read_loop(self, session: _Session, reader: asyncio.StreamReader) -> None:
        while True:
            data = await reader.read(_READ_SIZE)
            session.channel.conn.receive_data(data)
            await self._drain_events(session)
            if not data:
                raise LinkError("Radio closed the PEI connection (EOF).")

    async def _drain_events(self, session: _Session) -> None:
        while True:
            try:
                event = session.channel.conn.next_event()
            except RemoteProtocolError as exc:
                raise LinkError(f"PEI stream from the radio is unreadable: {exc}") from exc
            if event is NEED_DATA:
                return
            await self._dispatch(session, event)

    async def _dispatch(self, session: _Session, event: object) -> None:
        match event:
            case SdsReceived():
                await self._on_sds(session, event)
            case SdsRejected():
                await self._on_rejected(session, event)
            case SendResult():
                session.channel.on_send_result(event)
            case CommandCompleted():
                session.channel.on_completed(event)
            case SendCapability():
                session.channel.on_capability(event)
            case UnsolicitedResult():
                self._log.debug("pei_unsolicited", name=event.name)
            case _:
                self._log.error("pei_unexpected_event", event_type=type(event).__name__)
                raise RemoteProtocolError(f"Unexpected PEI event {type(event).__name__}.")

    async def _on_sds(self, session: _Session, event: SdsReceived) -> None:
        self.counters["sds_in"] += 1
        content = event.content
        # Per message: debug only (the gateway's audit trail records each message).
        self._log.debug(
            "sds_received",
            source=event.source,
            destination=event.destination,
            content_type=type(content).__name__,
            message_reference=getattr(content, "message_reference", None),
        )
        if isinstance(content, SdsReport) and content.ack_required:
            ack = SdsAck(
                protocol_id=content.protocol_id,
                delivery_status=_ack_status(content.delivery_status),
                message_reference=content.message_reference,
            )
            self._spawn_send(session, event.source, ack, "sds_ack")
        now = asyncio.get_running_loop().time()
        retransmission = self._duplicates.check(event.source, content, now)
        if retransmission is not None:
            self._on_retransmission(session, event, retransmission)
            return
        if isinstance(content, TextSds) and content.concat is not None:
            parts = self._reassembler.add_part(event.source, event.destination, content, now)
            self._timer_changed.set()
            if _part_ack_due(content) and content.message_reference is not None:
                # The gateway reports on the whole text under part 1's reference; every
                # other part that asks is acknowledged on receipt (0x06), or its sender
                # would send it again and finally give the text up.
                self._report(
                    session,
                    event.source,
                    protocol_id=content.protocol_id,
                    status=DeliveryStatus.CONCATENATION_PART_ACK,
                    reference=content.message_reference,
                    purpose="part_ack",
                )
            if parts is None:
                return
            # Parts are remembered only now: a text given up can still be completed.
            for part in parts:
                self._duplicates.remember(event.source, part, now)
                if _part_ack_due(part) and part.message_reference is not None:
                    self._duplicates.note_report(  # its retransmission gets the same answer
                        event.source,
                        part.protocol_id,
                        part.message_reference,
                        DeliveryStatus.CONCATENATION_PART_ACK,
                    )
            event = dataclasses.replace(event, content=Reassembler.join(parts))
        else:
            self._duplicates.remember(event.source, content, now)
        await self._emit(event)

    def _on_retransmission(
        self, session: _Session, event: SdsReceived, retransmission: Retransmission
    ) -> None:
        """Discard an SDS-TL retransmission; answer it like the original if it asks."""
        self.counters["sds_duplicate"] += 1
        self._log.info(
            "sds_retransmission_discarded",
            source=event.source,
            protocol_id=retransmission.protocol_id,
            message_reference=retransmission.message_reference,
            report_status=retransmission.report_status,
        )
        if retransmission.report_status is not None:
            self._report(
                session,
                event.source,
                protocol_id=retransmission.protocol_id,
                status=retransmission.report_status,
                reference=retransmission.message_reference,
                purpose="retransmission_report",
            )

    async def _on_rejected(self, session: _Session, event: SdsRejected) -> None:
        self.counters["rejected"] += 1
        self._log.warning(
            "sds_rejected",
            source=event.source,
            destination=event.destination,
            protocol_id=event.protocol_id,
            message_reference=event.message_reference,
            reason=event.reason,
            reason_code=event.reason_code,
        )
        # The codec keeps a message reference for a corrupt SDS-TRANSFER only: a report,
        # an ack or a reserved message type is never answered with a report.
        if event.source is not None and event.message_reference is not None:
            protocol_id = event.protocol_id
            if protocol_id is None or protocol_id < 0x80:
                protocol_id = 0x82
            report = SdsReport(
                protocol_id=protocol_id,
                delivery_status=event.reason_code,
                message_reference=event.message_reference,
            )
            self._spawn_send(session, event.source, report, "negative_report")
        await self._emit(event)

    async def _timer_loop(self, session: _Session) -> None:
        """Drive the reassembler's timer with ``loop.time()`` and report expired texts."""
        loop = asyncio.get_running_loop()
        while True:
            self._timer_changed.clear()
            deadline = self._reassembler.get_timer()
            if deadline is None:
                await self._timer_changed.wait()
                continue
            if deadline > loop.time():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await self._timer_changed.wait()
                continue
            for expired in self._reassembler.handle_timer(loop.time()):
                self._on_expired(session, expired)

    def _on_expired(self, session: _Session, expired: IncompleteMessage) -> None:
        """Answer a given-up concatenated text with a negative report (0x5D)."""
        self._log.warning(
            "concatenation_incomplete",
            source=expired.source,
            reference=expired.reference,
            total=expired.total,
            received=len(expired.received),
            message_reference=expired.message_reference,
        )
        if expired.message_reference is not None:
            self._report(
                session,
                expired.source,
                protocol_id=expired.protocol_id,
                status=expired.reason_code,
                reference=expired.message_reference,
                purpose="negative_report",
            )

    def _report(
        self,
        session: _Session,
        destination: str,
        *,
        protocol_id: int,
        status: int,
        reference: int,
        purpose: str,
    ) -> None:
        """Send an SDS-REPORT in the background (see :meth:`_spawn_send`)."""
        report = SdsReport(
            protocol_id=protocol_id, delivery_status=status, message_reference=reference
        )
        self._spawn_send(session, destination, report, purpose)

    def _spawn_send(
        self, session: _Session, destination: str, content: SdsContent, purpose: str
    ) -> None:
        """Send a control SDS (SDS-ACK, report) in the session's task group.

        It lives and dies with the PEI session: one that cannot be started, is
        cancelled when the session ends (link lost, adapter stopped) or fails on
        the link is lost for good; :meth:`_lost` logs and counts it.
        """
        name = f"adapter[{self.config.name}].{purpose}[{destination}]"
        coroutine = self._background_send(destination, content, purpose)
        try:
            task = session.tg.create_task(coroutine, name=name)
        except RuntimeError as exc:  # the session's task group is already shutting down
            coroutine.close()
            self._lost(purpose, destination, content, f"not started: {exc}")
            return
        # A task cancelled before its first step never runs its body: watch it from outside.
        task.add_done_callback(functools.partial(self._on_sent, purpose, destination, content))

    def _on_sent(
        self, purpose: str, destination: str, content: SdsContent, task: asyncio.Task[None]
    ) -> None:
        if task.cancelled():
            self._lost(purpose, destination, content, "cancelled: PEI session ended")

    def _lost(self, purpose: str, destination: str, content: SdsContent, why: str) -> None:
        self.counters["control_sds_lost"] += 1
        self._log.warning(
            "control_sds_lost",
            purpose=purpose,
            destination=destination,
            content_type=type(content).__name__,
            message_reference=getattr(content, "message_reference", None),
            reason=why,
        )

    async def _background_send(self, destination: str, content: SdsContent, purpose: str) -> None:
        try:
            outcome = await self.send(destination, content)
        except (LinkError, LocalProtocolError) as exc:
            self._lost(purpose, destination, content, f"not sent: {exc}")
            return
        if outcome.ok:
            self._log.debug(f"{purpose}_sent", destination=destination)
        else:
            self._log.warning(f"{purpose}_refused", destination=destination, reason=outcome.reason)

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
        changed = LinkStateChanged(
            adapter=self.config.name, state=state, reason=reason, at=time.time()
        )
        await self._emit(changed)

    async def _emit(self, event: AdapterEvent) -> None:
        try:
            await self._sink(event)
        except Exception:
            self._log.exception("sink_failed", event_type=type(event).__name__)


def _raise_if_cancelling() -> None:
    """Re-raise a cancellation of this task that its session task swallowed.

    Each session runs in its own task because a Python 3.11 TaskGroup whose child
    fails while the group is exiting leaves the parent's cancel count raised, so
    ``cancelling()`` of the session task is not trustworthy; that of ``run`` is.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _first_reason(group: BaseExceptionGroup[BaseException]) -> str:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    return str(leaf) or type(leaf).__name__


def _part_ack_due(content: TextSds) -> bool:
    """A part other than the first of a concatenated text, asking for a report."""
    return (
        content.concat is not None
        and content.concat.sequence != 1
        and content.delivery_report_request != 0
    )
