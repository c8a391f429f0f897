"""TETRA adapter: drives one radio's PEI (EN 300 392-5) over TCP or a serial line.

What it does: open the transport, feed every byte to the sans-IO
:class:`protocols.tetra.PeiConnection`, forward the decoded events to the
gateway's sink, and turn the gateway's send requests into PEI commands. It keeps
the link alive (periodic ``AT``), reconnects with exponential backoff and full
jitter, reassembles concatenated texts and answers the SDS-TL duties the gateway
cannot see (SDS-ACK for reports that require one, negative reports for corrupt or
incomplete messages).

What it must not do: parse PEI or SDS bytes (the codec does), or log message
text (privacy: only identities, references, lengths and types are logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

import structlog

from adapters._link import Backoff, LinkState, LinkStateChanged
from adapters.tetra._config import AdapterEvent, AdapterSink, SendOutcome, TetraAdapterConfig
from adapters.tetra._transport import open_pei_stream, parse_pei_url
from protocols.errors import LinkError, LinkTimeoutError, LocalProtocolError, RemoteProtocolError
from protocols.tetra import (
    MAX_TYPE4_BITS,
    NEED_DATA,
    AiService,
    CommandCompleted,
    DeliveryStatus,
    Identity,
    IncompleteMessage,
    PeiCommand,
    PeiConnection,
    QuerySendCapability,
    RawCommand,
    Reassembler,
    SdsAck,
    SdsContent,
    SdsReceived,
    SdsRejected,
    SdsReport,
    SelectSdsService,
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

#: ``+CMGS`` SDS status meaning "sent OK" / "send failed" (svxlink ``SdsSentState``).
SDS_STATUS_SENT = 4
SDS_STATUS_FAILED = 5

#: Short texts for the PEI error codes seen most often (EN 300 392-5, svxlink ``getPeiError``).
_CME_TEXT = {
    3: "not allowed in current state",
    4: "operation not supported",
    30: "out of service",
    31: "no layer 2 acknowledgement from SwMI",
    32: "user data decoding failed",
    35: "syntax error",
    36: "user data without AT+CMGS",
    37: "AT+CMGS timed out waiting for user data",
    41: "transmit inhibit",
    42: "MT busy with signalling",
}

_READ_SIZE = 4096
_T = TypeVar("_T")


def _cme_reason(command: str, completed: CommandCompleted) -> str:
    if completed.cme_error is None:
        return f"radio answered ERROR to {command}"
    text = _CME_TEXT.get(completed.cme_error, "unknown PEI error")
    return f"radio answered +CME ERROR: {completed.cme_error} ({text}) to {command}"


def _describe(command: PeiCommand) -> str:
    """Name a command for logs without its user data."""
    if isinstance(command, SendSds):
        return f"AT+CMGS={command.destination},{command.bits}"
    if isinstance(command, RawCommand):
        return command.line
    return type(command).__name__


def _ack_status(report_status: int) -> int:
    """SDS-ACK delivery status that acknowledges a report (EN 300 392-2 table 29.16)."""
    if report_status == DeliveryStatus.CONSUMED:
        return DeliveryStatus.CONSUMED_REPORT_ACK
    if report_status >= 0x40:
        return DeliveryStatus.NEGATIVE_REPORT_ACK
    return DeliveryStatus.RECEIPT_REPORT_ACK


def _mark_failed(future: asyncio.Future[_T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # the awaiting side still sees it; no "never retrieved" noise


@dataclass
class _Exchange:
    """The one outstanding AT command and what the radio said before its final result."""

    done: asyncio.Future[CommandCompleted]
    send_results: list[SendResult] = field(default_factory=list)
    capability: SendCapability | None = None


@dataclass
class _Session:
    """One connected PEI stream; replaced on every reconnect."""

    conn: PeiConnection
    writer: asyncio.StreamWriter
    tg: asyncio.TaskGroup
    failed: asyncio.Future[None]
    ai_service: int = AiService.SDS_TYPE_4
    exchange: _Exchange | None = None


class TetraAdapter:
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
        self._command_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._pending_status: dict[int, asyncio.Future[SendResult]] = {}
        self._references: dict[str, int] = {}
        self._reassembler = Reassembler(config.reassembly_timeout)
        self._timer_changed = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._was_connected = False
        #: Simple counters: sds_in, sds_out, rejected, reconnects, send_failed.
        self.counters: dict[str, int] = dict.fromkeys(
            ("sds_in", "sds_out", "rejected", "reconnects", "send_failed"), 0
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

    async def send(
        self, destination: str, content: SdsContent, *, ai_service: int | None = None
    ) -> SendOutcome:
        """Send one SDS through the radio and wait for its final ``+CMGS`` status.

        A text longer than the radio's maximum PDU is split into 0x8A parts whose
        message references come from :meth:`allocate_reference`; other content is
        sent verbatim (an SDS-TL caller sets its own message reference).

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
        service = ai_service if ai_service is not None else self._service_for(content)
        pdus = self._encode_pdus(destination, content)
        async with self._send_lock:
            await self._select_service(service)
            outcome = await self._send_pdus(destination, pdus)
        if outcome.ok:
            self.counters["sds_out"] += 1
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
                state, reason = await self._connect_once()
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop the task started by ``async with`` and wait for it to finish."""
        task, self._run_task = self._run_task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            self._log.error("adapter_run_failed", exc_info=task.exception())

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
        loop = asyncio.get_running_loop()
        name = self.config.name
        self._max_pdu_bits = self.config.max_pdu_bits
        tg = asyncio.TaskGroup()
        session = _Session(PeiConnection(), writer, tg, loop.create_future())
        self._session = session
        try:
            async with tg:
                tg.create_task(self._read_loop(session, reader), name=f"adapter[{name}].read_loop")
                tg.create_task(self._watch(session), name=f"adapter[{name}].watchdog")
                await self._initialise(session)
                tg.create_task(self._keepalive_loop(), name=f"adapter[{name}].keepalive")
                tg.create_task(self._timer_loop(session), name=f"adapter[{name}].reassembly_timer")
                self._was_connected = True
                await self._set_state(LinkState.CONNECTED, "")
        finally:
            self._session = None
            self._fail_pending(session, LinkError(f"PEI link of adapter {name} went down."))
            await self._close(writer)

    async def _watch(self, session: _Session) -> None:
        """Turn an abort requested from outside the task group into a session failure."""
        await session.failed

    def _abort(self, session: _Session, exc: LinkError) -> None:
        if not session.failed.done():
            session.failed.set_exception(exc)

    def _fail_pending(self, session: _Session, exc: LinkError) -> None:
        if session.exchange is not None:
            _mark_failed(session.exchange.done, exc)
        for future in self._pending_status.values():
            _mark_failed(future, exc)
        if not session.failed.done():
            session.failed.cancel()

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError as exc:
            self._log.debug("pei_close_error", error=repr(exc))

    async def _initialise(self, session: _Session) -> None:
        """Run the PEI initialisation sequence (EN 300 392-5 6.14)."""
        await self._expect_ok(RawCommand(line="AT"), fatal=True)
        for profile in self.config.service_profiles:
            await self._expect_ok(profile, fatal=False)
        await self._expect_ok(SelectSdsService(ai_service=AiService.SDS_TYPE_4), fatal=True)
        session.ai_service = AiService.SDS_TYPE_4
        exchange = await self._command(QuerySendCapability())
        if exchange.capability is not None:
            self._max_pdu_bits = max(16, min(exchange.capability.max_pdu_bits, 2047))
        self._log.info("pei_initialised", max_pdu_bits=self._max_pdu_bits)

    async def _expect_ok(self, command: PeiCommand, *, fatal: bool) -> None:
        exchange = await self._command(command)
        completed = exchange.done.result()
        if completed.ok:
            return
        reason = _cme_reason(_describe(command), completed)
        if fatal:
            raise LinkError(f"Initialisation failed: {reason}.", reason_code=completed.cme_error)
        self._log.warning("pei_init_command_refused", reason=reason)

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.keepalive_interval)
            exchange = await self._command(RawCommand(line="AT"))
            if not exchange.done.result().ok:
                self._log.warning("pei_keepalive_refused")

    # ------------------------------------------------------------------ commands

    def _require_connected(self) -> None:
        if self._session is None or self._state is not LinkState.CONNECTED:
            raise LinkError(f"Adapter {self.config.name} cannot send in state {self._state.name}.")

    def _current_session(self) -> _Session:
        session = self._session
        if session is None:
            raise LinkError(f"Adapter {self.config.name} has no PEI session ({self._state.name}).")
        return session

    async def _command(self, command: PeiCommand) -> _Exchange:
        """Send one command and wait for its final result (one outstanding at a time)."""
        async with self._command_lock:
            session = self._current_session()
            exchange = _Exchange(asyncio.get_running_loop().create_future())
            session.exchange = exchange
            try:
                session.writer.write(session.conn.send(command))
                async with asyncio.timeout(self.config.command_timeout):
                    await session.writer.drain()
                    await exchange.done
            except TimeoutError as exc:
                error = LinkTimeoutError(
                    f"Radio did not answer {_describe(command)} within "
                    f"{self.config.command_timeout}s; declaring the PEI link dead."
                )
                self._abort(session, error)
                raise error from exc
            finally:
                session.exchange = None
        return exchange

    async def _select_service(self, service: int) -> None:
        session = self._current_session()
        if session.ai_service == service:
            return
        command = SelectSdsService(ai_service=service)
        if service == AiService.STATUS:
            command = SelectSdsService(ai_service=service, identity_type=0)
        await self._expect_ok(command, fatal=True)
        session.ai_service = service

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
        self._references[destination] = (start + len(parts)) % 256
        return [(part, *encode_sds(part)) for part in parts]

    async def _send_pdus(
        self, destination: str, pdus: list[tuple[SdsContent, bytes, int]]
    ) -> SendOutcome:
        references: list[int] = []
        outcome = SendOutcome(ok=False, reason="nothing to send")
        for content, payload, bits in pdus:
            reference = getattr(content, "message_reference", None)
            if isinstance(reference, int):
                references.append(reference)
            command = SendSds(destination=Identity(destination), payload=payload, bits=bits)
            outcome = await self._send_pdu(command, references)
            if not outcome.ok:
                break
        return outcome

    async def _send_pdu(self, command: SendSds, references: list[int]) -> SendOutcome:
        exchange = await self._command(command)
        instances = [result.sds_instance for result in exchange.send_results]
        try:
            return await self._await_final_status(command, exchange, list(references))
        finally:
            for instance in instances:
                self._pending_status.pop(instance, None)

    async def _await_final_status(
        self, command: SendSds, exchange: _Exchange, refs: list[int]
    ) -> SendOutcome:
        completed = exchange.done.result()
        if not completed.ok:
            return SendOutcome(
                ok=False,
                message_references=refs,
                cme_error=completed.cme_error,
                reason=_cme_reason(_describe(command), completed),
            )
        if not exchange.send_results:
            return SendOutcome(ok=False, message_references=refs, reason="no +CMGS set result")
        future = self._pending_status[exchange.send_results[-1].sds_instance]
        try:
            async with asyncio.timeout(self.config.send_timeout):
                final = await future
        except TimeoutError:
            return SendOutcome(
                ok=False,
                message_references=refs,
                reason=f"no final +CMGS status within {self.config.send_timeout}s",
            )
        if final.sds_status != SDS_STATUS_SENT:
            return SendOutcome(
                ok=False,
                message_references=refs,
                sds_status=final.sds_status,
                reason=f"radio reported SDS status {final.sds_status} (send failed)",
            )
        return SendOutcome(ok=True, message_references=refs, sds_status=final.sds_status)

    # ------------------------------------------------------------------ inbound

    async def _read_loop(self, session: _Session, reader: asyncio.StreamReader) -> None:
        while True:
            data = await reader.read(_READ_SIZE)
            session.conn.receive_data(data)
            await self._drain_events(session)
            if not data:
                raise LinkError("Radio closed the PEI connection (EOF).")

    async def _drain_events(self, session: _Session) -> None:
        while True:
            try:
                event = session.conn.next_event()
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
                self._on_send_result(session, event)
            case CommandCompleted():
                self._on_completed(session, event)
            case SendCapability():
                if session.exchange is not None:
                    session.exchange.capability = event
            case UnsolicitedResult():
                self._log.debug("pei_unsolicited", name=event.name)
            case _:
                self._log.error("pei_unexpected_event", event_type=type(event).__name__)
                raise RemoteProtocolError(f"Unexpected PEI event {type(event).__name__}.")

    def _on_completed(self, session: _Session, event: CommandCompleted) -> None:
        exchange = session.exchange
        if exchange is None or exchange.done.done():
            self._log.warning("pei_unexpected_final_result", command=event.command, ok=event.ok)
            return
        exchange.done.set_result(event)

    def _on_send_result(self, session: _Session, event: SendResult) -> None:
        if event.sds_status is None:
            if session.exchange is None:
                self._log.warning("pei_unexpected_set_result", instance=event.sds_instance)
                return
            session.exchange.send_results.append(event)
            loop = asyncio.get_running_loop()
            self._pending_status[event.sds_instance] = loop.create_future()
            return
        future = self._pending_status.get(event.sds_instance)
        if future is None or future.done():
            self._log.warning(
                "pei_unmatched_send_status",
                instance=event.sds_instance,
                sds_status=event.sds_status,
            )
            return
        future.set_result(event)

    async def _on_sds(self, session: _Session, event: SdsReceived) -> None:
        self.counters["sds_in"] += 1
        content = event.content
        self._log.info(
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
        if isinstance(content, TextSds) and content.concat is not None:
            loop = asyncio.get_running_loop()
            whole = self._reassembler.add(event.source, event.destination, content, loop.time())
            self._timer_changed.set()
            if whole is None:
                return
            event = dataclasses.replace(event, content=whole)
        await self._emit(event)

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
        if expired.message_reference is None:
            return
        report = SdsReport(
            protocol_id=expired.protocol_id,
            delivery_status=expired.reason_code,
            message_reference=expired.message_reference,
        )
        self._spawn_send(session, expired.source, report, "negative_report")

    def _spawn_send(
        self, session: _Session, destination: str, content: SdsContent, purpose: str
    ) -> None:
        name = f"adapter[{self.config.name}].{purpose}[{destination}]"
        coroutine = self._background_send(destination, content, purpose)
        try:
            session.tg.create_task(coroutine, name=name)
        except RuntimeError as exc:  # the session's task group is already shutting down
            coroutine.close()
            self._log.warning(f"{purpose}_not_sent", destination=destination, error=str(exc))

    async def _background_send(self, destination: str, content: SdsContent, purpose: str) -> None:
        try:
            outcome = await self.send(destination, content)
        except (LinkError, LocalProtocolError) as exc:
            self._log.warning(f"{purpose}_not_sent", destination=destination, error=str(exc))
            return
        self._log.info(f"{purpose}_sent", destination=destination, ok=outcome.ok)

    # ------------------------------------------------------------------ events

    async def _set_state(self, state: LinkState, reason: str) -> None:
        if state is self._state:
            return
        self._state = state
        if state is LinkState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        self._log.info("link_state_changed", state=state.name, reason=reason)
        changed = LinkStateChanged(
            adapter=self.config.name, state=state, reason=reason, at=time.time()
        )
        await self._emit(changed)

    async def _emit(self, event: AdapterEvent) -> None:
        try:
            await self._sink(event)
        except Exception:
            self._log.exception("sink_failed", event_type=type(event).__name__)


def _first_reason(group: BaseExceptionGroup[BaseException]) -> str:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
        leaf = leaf.exceptions[0]
    return str(leaf) or type(leaf).__name__
