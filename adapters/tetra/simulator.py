"""A scriptable simulated TETRA network segment that speaks PEI like a real radio.

:class:`TetraNetworkSimulator` listens on TCP and plays the mobile terminal (MT)
side of the PEI (EN 300 392-5) for one gateway connection, using the radio-side
codec :class:`protocols.tetra.RadioPei`: it answers AT commands, accepts
``AT+CMGS`` submissions, delivers them to simulated field radios and sends
``+CTSDSR`` records on their behalf. Tests and demos script it through
``send_text``/``send_status``/``send_location``/``send_raw`` and inject faults
(``fail_next_cmgs``, ``set_reachable``, ``drop_connection``, ``set_silent``).

It must not parse PEI bytes itself (the codec does) and must not log message
text. Run standalone with :func:`main`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence

import structlog

from adapters._service import ListeningService
from adapters.tetra._control import TetraControl
from adapters.tetra._field_radios import FieldRadios
from protocols.errors import LinkError, LocalProtocolError, RemoteProtocolError
from protocols.tetra import (
    NEED_DATA,
    AiService,
    CommandReceived,
    DeliveryStatus,
    LocationReport,
    RadioPei,
    SdsContent,
    SdsReport,
    SdsSubmissionFailed,
    SdsSubmitted,
    StatusSds,
    TextSds,
    decode_sds,
    encode_sds,
    split_text,
)

__all__ = ["TetraNetworkSimulator", "main"]

_log = structlog.get_logger(__name__)

#: Commands the simulated radio accepts with a plain ``OK``.
_ACCEPTED = frozenset({"", "+CTSP", "+CTOM", "+CTSDC", "+CTGS", "+CSCS", "E0", "E1", "+CMEE"})
_SYNTAX_ERROR = 35


class TetraNetworkSimulator(ListeningService):
    """Simulated SwMI segment: one PEI radio (the gateway's) and N field radios.

    Args:
        radio_issi: ISSI of the radio whose PEI the gateway drives.
        units: ISSIs of the simulated field radios.
        groups: GSSI -> member ISSIs: an SDS to a GSSI reaches every reachable member.
        host: Address to listen on.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        max_pdu_bits: Largest type-4 PDU announced in the ``AT+CMGS=?`` answer.
        delivery_latency: Seconds between ``+CMGS: <i>`` and ``+CMGS: <i>,4,<mr>``.
        reassembly_timeout: Seconds a field radio waits for missing text parts.
        control_port: Port of the HTTP control interface (:mod:`adapters.tetra._control`);
            None: no control interface, 0: a free port (see :attr:`control`).
        control_host: Address the control interface listens on (loopback by default).
    """

    _label = "tetra_sim"

    def __init__(
        self,
        *,
        radio_issi: str = "1000",
        units: Sequence[str] = ("2001", "2002"),
        groups: Mapping[str, Sequence[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_pdu_bits: int = 2047,
        delivery_latency: float = 0.01,
        reassembly_timeout: float = 60.0,
        control_port: int | None = None,
        control_host: str = "127.0.0.1",
        instances: int = 256,
    ) -> None:
        self.radio_issi = radio_issi
        #: SDS instance numbers the radio hands out in turn (1 reuses one number for every
        #: send, as some radios do).
        self.instances = instances
        #: The HTTP control interface, if one was asked for.
        self.control = (
            None
            if control_port is None
            else TetraControl(self, host=control_host, port=control_port)
        )
        self.host = host
        self.port = port
        self.max_pdu_bits = max_pdu_bits
        self.delivery_latency = delivery_latency
        self.radios = FieldRadios(list(units), reassembly_timeout=reassembly_timeout)
        #: GSSI -> field radios that listen to the group.
        self.groups: dict[str, list[str]] = {g: list(m) for g, m in (groups or {}).items()}
        #: Every AT command received, in order, over all connections.
        self.commands: list[CommandReceived] = []
        #: Every ``AT+CMGS`` submission received, in order.
        self.submitted: list[SdsSubmitted] = []
        #: Number of PEI connections accepted so far.
        self.connection_count = 0
        self._fail_next: list[int] = []
        self._drop_next = False
        self._refused_services: set[int] = set()
        self._silent = False
        self._black_hole = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._instance = 0
        self._ai_service = int(AiService.SDS_TYPE_4)
        self._pei: RadioPei | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Condition()
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def gateway_connected(self) -> bool:
        """True while a gateway is connected to the simulated radio's PEI."""
        return self._writer is not None

    @property
    def received(self) -> dict[str, list[tuple[str, SdsContent]]]:
        """Per field radio, ``(source, content)`` of every non-report SDS it received."""
        return self.radios.received

    @property
    def reports(self) -> dict[str, list[tuple[str, SdsContent]]]:
        """Per field radio, ``(source, content)`` of every report or ack it received."""
        return self.radios.reports

    @property
    def retransmissions(self) -> dict[str, int]:
        """Per field radio, SDS-TL retransmissions it recognised and did not show again."""
        return self.radios.retransmissions

    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            server = await asyncio.start_server(self._accept, self.host, self.port)
            async with server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set_result(None)
                await server.serve_forever()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tg is None:
            writer.close()
            return
        self.connection_count += 1
        name = f"tetra_sim.connection[{self.connection_count}]"
        self._tg.create_task(self._serve_connection(reader, writer), name=name)

    # ------------------------------------------------------------------ script API

    async def send_text(
        self,
        from_issi: str,
        to_issi: str,
        text: str,
        *,
        report_request: int = 1,
        immediate: bool = False,
        coding: int = 1,
    ) -> int:
        """Deliver an SDS-TL text from a field radio to the gateway radio.

        Args:
            from_issi: Sending field radio.
            to_issi: Addressed identity (usually :attr:`radio_issi`).
            text: The message text (split into 0x8A parts if too long).
            report_request: SDS-TL delivery report request (0..3).
            immediate: Use PID 0x89 (immediate text) instead of 0x82.
            coding: Text coding scheme (1 = ISO-8859-1, 26 = UCS-2).

        Returns:
            The message reference of the (first part of the) transfer.
        """
        pid = 0x89 if immediate else 0x82
        reference = self.radios.next_reference(from_issi)
        whole = TextSds(
            protocol_id=pid,
            text=text,
            coding_scheme=coding,
            immediate=immediate,
            message_reference=reference,
            delivery_report_request=report_request,
        )
        parts: list[SdsContent] = [whole]
        if self._too_long(whole):
            parts = list(
                split_text(
                    text,
                    destination_max_bits=self.max_pdu_bits,
                    message_reference_start=reference,
                    coding_scheme=coding,
                    delivery_report_request=report_request,
                )
            )
            self.radios.next_reference(from_issi, len(parts) - 1)
        for part in parts:
            await self._deliver(from_issi, to_issi, AiService.SDS_TYPE_4, part)
        return reference

    def _too_long(self, content: TextSds) -> bool:
        try:
            return encode_sds(content)[1] > self.max_pdu_bits
        except LocalProtocolError as exc:
            if exc.reason_code != DeliveryStatus.MESSAGE_TOO_LONG:
                raise
            return True

    async def send_status(self, from_issi: str, to_issi: str, value: int) -> None:
        """Deliver a pre-coded status (AI service 13) from a field radio."""
        await self._deliver(from_issi, to_issi, AiService.STATUS, StatusSds(status=value))

    async def send_location(
        self,
        from_issi: str,
        to_issi: str,
        lat: float,
        lon: float,
        *,
        reason: int = 0,
        velocity: float | None = None,
        direction: float | None = None,
    ) -> None:
        """Deliver a LIP short location report (PID 0x0A) from a field radio."""
        report = LocationReport(
            latitude=lat,
            longitude=lon,
            reason=reason,
            velocity_kmh=velocity,
            direction_deg=direction,
            time_elapsed=0,
        )
        await self._deliver(from_issi, to_issi, AiService.SDS_TYPE_4, report)

    async def send_report(
        self,
        from_issi: str,
        to_issi: str,
        *,
        message_reference: int,
        delivery_status: int = 0,
        ack_required: bool = False,
        protocol_id: int = 0x82,
    ) -> None:
        """Deliver an SDS-REPORT from a field radio (e.g. one that requires an SDS-ACK)."""
        report = SdsReport(
            protocol_id=protocol_id,
            delivery_status=delivery_status,
            message_reference=message_reference,
            ack_required=ack_required,
        )
        await self._deliver(from_issi, to_issi, AiService.SDS_TYPE_4, report)

    async def send_raw(self, data: bytes) -> None:
        """Write arbitrary (possibly malformed) bytes to the gateway's PEI."""
        await self._write(data)

    def set_reachable(self, issi: str, reachable: bool) -> None:
        """Switch a field radio on or off (off: sends to it end with status 5)."""
        self.radios.set_reachable(issi, reachable)

    def fail_next_cmgs(self, cme: int = 31) -> None:
        """Answer the next ``AT+CMGS`` with ``+CME ERROR: <cme>``."""
        self._fail_next.append(cme)

    def drop_after_next_cmgs(self) -> None:
        """Accept the next ``AT+CMGS``, deliver nothing, and abort the connection.

        The radio answers ``+CMGS: <i>`` and ``OK``, then the gateway's connection is
        aborted before the final status: the gateway cannot know whether that SDS went out.
        """
        self._drop_next = True

    def refuse_ai_service(self, service: int) -> None:
        """Answer ``AT+CTSDS`` selecting ``service`` with ``+CME ERROR`` from now on."""
        self._refused_services.add(service)

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) answering anything, like a hung radio."""
        self._silent = silent

    def set_stalled(self, stalled: bool) -> None:
        """Stop (or resume) reading from the gateway at all: TCP backpressure builds up."""
        if stalled:
            self._reading.clear()
        else:
            self._reading.set()

    def set_black_hole(self, black_hole: bool) -> None:
        """Accept every SDS as sent (``+CMGS: <i>,4``) but deliver none of them."""
        self._black_hole = black_hole

    def drop_connection(self) -> None:
        """Abort the gateway's PEI connection (it may reconnect)."""
        if self._writer is not None:
            self._writer.transport.abort()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every simulator event.

        Wrap the call in ``asyncio.timeout`` to bound the wait.
        """
        async with self._changed:
            await self._changed.wait_for(predicate)

    # ------------------------------------------------------------------ PEI side

    async def _deliver(
        self, source: str, destination: str, ai_service: int, content: SdsContent
    ) -> None:
        pei = self._pei
        if pei is None:
            raise LinkError("No gateway is connected to the simulated radio's PEI.")
        payload, bits = encode_sds(content)
        _log.debug(
            "tetra_sim_deliver",
            source=source,
            destination=destination,
            content_type=type(content).__name__,
            bits=bits,
        )
        await self._write(pei.deliver(source, destination, ai_service, payload, bits))

    async def _write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None:
            raise LinkError("No gateway is connected to the simulated radio's PEI.")
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError as exc:
            if isinstance(exc, LinkError):
                raise
            # The gateway's connection went away under the write: as if none were connected.
            raise LinkError(f"The gateway's PEI connection was lost: {exc}") from exc

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        pei = RadioPei()
        self._pei, self._writer = pei, writer
        await self._notify()
        try:
            await self._read_loop(pei, reader, writer)
        except (OSError, RemoteProtocolError) as exc:
            _log.warning("tetra_sim_connection_failed", error=str(exc))
        finally:
            if self._writer is writer:
                self._pei, self._writer = None, None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            await self._notify()

    async def _read_loop(
        self, pei: RadioPei, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await self._reading.wait() and (data := await reader.read(4096)):
            if self._silent:
                continue
            pei.receive_data(data)
            while (event := pei.next_event()) is not NEED_DATA:
                match event:
                    case CommandReceived():
                        writer.write(self._answer_command(pei, event))
                    case SdsSubmitted():
                        writer.write(self._answer_submission(pei, event))
                    case SdsSubmissionFailed():
                        _log.warning("tetra_sim_submission_refused", reason=event.reason)
                        writer.write(pei.error(event.cme_error))
                    case _:
                        raise RemoteProtocolError(f"Unexpected PEI event {event!r}.")
                await writer.drain()
                await self._notify()

    def _answer_command(self, pei: RadioPei, command: CommandReceived) -> bytes:
        self.commands.append(command)
        name = command.name.upper()
        if name == "+CMGS" and command.test:
            return pei.capability(self.max_pdu_bits) + pei.ok()
        if name == "+CNUMF" and command.query:
            return pei.unsolicited(f"+CNUMF: 6,{self.radio_issi}") + pei.ok()
        if name == "+CTSDS" and not command.query and not command.test:
            service = command.args.split(",", 1)[0].strip()
            if not service.isdigit() or int(service[:9]) in self._refused_services:
                return pei.error(_SYNTAX_ERROR)
            self._ai_service = int(service)
            return pei.ok()
        if name in _ACCEPTED and not command.test:
            return pei.ok()
        return pei.error(_SYNTAX_ERROR)

    def _answer_submission(self, pei: RadioPei, sds: SdsSubmitted) -> bytes:
        self.submitted.append(sds)
        if self._fail_next:
            return pei.error(self._fail_next.pop(0))
        self._instance = (self._instance + 1) % self.instances
        instance = self._instance
        if self._drop_next:
            self._drop_next = False
            asyncio.get_running_loop().call_later(0.05, self.drop_connection)
        elif self._tg is not None:
            name = f"tetra_sim.delivery[{instance}]"
            delivery = self._guarded_delivery(pei, instance, sds, self._ai_service)
            self._tg.create_task(delivery, name=name)
        return pei.send_result(instance) + pei.ok()

    async def _guarded_delivery(
        self, pei: RadioPei, instance: int, sds: SdsSubmitted, ai_service: int
    ) -> None:
        """Run :meth:`_complete_delivery`; a gateway that went away only ends this delivery."""
        try:
            await self._complete_delivery(pei, instance, sds, ai_service)
        except OSError as exc:  # includes LinkError: no gateway connected any more
            _log.warning("tetra_sim_delivery_aborted", instance=instance, error=str(exc))

    async def _complete_delivery(
        self, pei: RadioPei, instance: int, sds: SdsSubmitted, ai_service: int
    ) -> None:
        """After the latency, report the outcome and let the field radio react."""
        await asyncio.sleep(self.delivery_latency)
        destination = str(sds.destination)
        try:
            content = decode_sds(sds.payload, sds.bits, ai_service)
        except RemoteProtocolError as exc:
            _log.warning("tetra_sim_undecodable_sds", destination=destination, error=str(exc))
            await self._write_if_current(pei, pei.send_result(instance, 5))
            return
        reference = getattr(content, "message_reference", None)
        if self._black_hole:
            # The network claims success and delivers nothing: what canaries are for.
            await self._write_if_current(pei, pei.send_result(instance, 4, reference))
            return
        if destination == self.radio_issi:
            # Loopback through the network to the sending radio itself.
            await self._write_if_current(pei, pei.send_result(instance, 4, reference))
            await asyncio.sleep(self.delivery_latency)
            await self._deliver(self.radio_issi, self.radio_issi, ai_service, content)
            return
        if destination in self.groups:
            # A group call: every reachable member gets it; nobody acknowledges.
            await self._write_if_current(pei, pei.send_result(instance, 4, reference))
            now = asyncio.get_running_loop().time()
            for member in self.groups[destination]:
                if self.radios.is_reachable(member):
                    self.radios.accept(self.radio_issi, member, content, now)
            await self._notify()
            return
        if not self.radios.is_reachable(destination):
            await self._write_if_current(pei, pei.send_result(instance, 5, reference))
            return
        await self._write_if_current(pei, pei.send_result(instance, 4, reference))
        now = asyncio.get_running_loop().time()
        self.radios.accept(self.radio_issi, destination, content, now)
        await self._notify()
        for report in self.radios.reports_for(content):
            await asyncio.sleep(self.delivery_latency)
            await self._deliver(destination, self.radio_issi, AiService.SDS_TYPE_4, report)

    async def _write_if_current(self, pei: RadioPei, data: bytes) -> None:
        if self._pei is pei:
            await self._write(data)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process until interrupted (``euccs-gw simulate tetra``).

    Args:
        argv: Command-line arguments without the program name.

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="euccs-gw simulate tetra",
        description="Simulated TETRA radio network (PEI over TCP).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--radio-issi", default="1000")
    parser.add_argument("--units", default="2001,2002", help="comma-separated field radio ISSIs")
    parser.add_argument("--max-pdu-bits", type=int, default=2047)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument(
        "--control-port", type=int, default=None, help="HTTP control interface port (0: free)"
    )
    parser.add_argument("--control-host", default="127.0.0.1")
    args = parser.parse_args(argv)
    units = [unit.strip() for unit in args.units.split(",") if unit.strip()]
    simulator = TetraNetworkSimulator(
        radio_issi=args.radio_issi,
        units=units,
        host=args.host,
        port=args.port,
        max_pdu_bits=args.max_pdu_bits,
        delivery_latency=args.latency,
        control_port=args.control_port,
        control_host=args.control_host,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(simulator))
    return 0


async def _serve_forever(simulator: TetraNetworkSimulator) -> None:
    async with simulator:
        print(f"TETRA simulator listening on {simulator.host}:{simulator.port}", flush=True)
        if simulator.control is not None:
            print(f"TETRA simulator control interface on {simulator.control.url}", flush=True)
        await asyncio.Event().wait()
