"""One national gateway: adapters in, federation out, receipts back. The asyncio shell.

Data flow for a message from one of our radios to a partner's unit::

    radio --PEI--> TetraAdapter --SdsReceived--> Gateway._on_sds
        -> interworking.envelope_from_tetra (refused: negative SDS-REPORT)
        -> egress queue of the destination nation (emergency first)
        -> FederationLink.send(serialized Envelope)

and at the partner::

    FederationLink inbox -> Gateway._on_federation -> plan_tetra_delivery
        -> delivery queue of the adapter (emergency first) -> TetraAdapter.send
        -> SDS-REPORT from the unit (or the far network's +CMGS outcome)
        -> DeliveryReceipt envelope back to the origin gateway
        -> origin radio gets its SDS-REPORT.

Decisions (mapping, routing, tracking, queue order) live in pure modules; this
module only wires tasks, queues and sockets together. Every refusal gets a log
line, a counter and, where the protocol has one, a negative report.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from google.protobuf.message import DecodeError

from adapters import LinkState, LinkStateChanged
from adapters.tetra import AdapterEvent, SendOutcome, TetraAdapter, TetraAdapterConfig
from gateway.codebooks import Codebook
from gateway.config import AdapterConfig, GatewayConfig
from gateway.federation import FederationLink, LocalLink
from gateway.identity import Directory
from gateway.interworking import TetraDelivery, envelope_from_tetra, plan_tetra_delivery
from gateway.queues import AsyncPriorityQueue, QueueFull
from gateway.tracking import AwaitingReport, OriginRecord, Tracker
from protocols.errors import DeliveryRefused, GatewayError
from protocols.schema import SCHEMA_VERSION, v1
from protocols.tetra import (
    DeliveryStatus,
    SdsReceived,
    SdsRejected,
    SdsReport,
    ShortReport,
    StatusSds,
    TextSds,
    choose_coding_scheme,
)

__all__ = ["Gateway", "Observation"]

log = structlog.get_logger(__name__)

#: SDS-TL protocol identifiers used for text we deliver.
_PID_TEXT = 0x82
_PID_TEXT_IMMEDIATE = 0x89
#: +CMGS final status meaning "sent" (EN 300 392-5; svxlink SdsSentState).
_RETRY_DELAY = 0.5
_RECEIPT_STATE_NAMES: dict[int, str] = {
    v1.DELIVERY_STATE_DELIVERED: "delivered",
    v1.DELIVERY_STATE_READ: "read",
    v1.DELIVERY_STATE_FAILED: "failed",
}


@dataclass(frozen=True, kw_only=True)
class Observation:
    """Something a person watching the gateway may want to see (demo, console, audit)."""

    kind: str
    gateway: str
    message_id: bytes | None = None
    fields: dict[str, Any] = field(default_factory=dict)


Observer = Callable[[Observation], None]


def _new_id() -> bytes:
    return uuid.uuid4().bytes


class Gateway:
    """A national gateway. Use ``async with gateway.running():`` or ``await gateway.run()``."""

    def __init__(
        self,
        config: GatewayConfig,
        link: FederationLink,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self.nation = config.nation
        self.directory = Directory(config)
        self.link = link
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self.tracker = Tracker()
        self.observers: list[Observer] = []
        self._adapter_configs = {a.name: a for a in config.adapters}
        self._codebooks: dict[str, Codebook] = config.codebooks
        self.adapters: dict[str, TetraAdapter] = {
            a.name: TetraAdapter(_adapter_settings(a), sink=self._sink_for(a.name))
            for a in config.adapters
        }
        limit = config.delivery.queue_max_messages
        self.egress: dict[str, AsyncPriorityQueue[v1.Envelope]] = {
            nation: AsyncPriorityQueue(max_items=limit) for nation in config.federation.partners
        }
        self.local: dict[str, AsyncPriorityQueue[tuple[v1.Envelope, TetraDelivery]]] = {
            name: AsyncPriorityQueue(max_items=limit) for name in self.adapters
        }
        self._timer_wakeup = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.log = log.bind(gateway=self.name, nation=self.nation)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run every task of this gateway until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for name, adapter in self.adapters.items():
                tasks.create_task(adapter.run(), name=f"gateway[{self.name}].adapter[{name}]")
                tasks.create_task(
                    self._delivery_loop(name), name=f"gateway[{self.name}].deliver[{name}]"
                )
            for nation in self.egress:
                tasks.create_task(
                    self._egress_loop(nation), name=f"gateway[{self.name}].egress[{nation}]"
                )
            if isinstance(self.link, LocalLink):
                tasks.create_task(
                    self.link.serve(self._on_federation), name=f"gateway[{self.name}].inbox"
                )
            tasks.create_task(self._report_timer_loop(), name=f"gateway[{self.name}].report_timer")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Run the gateway in a background task for the duration of the block."""
        task = asyncio.create_task(self.run(), name=f"gateway[{self.name}]")
        try:
            yield self
        finally:
            for pending in (task, *self._background):
                pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.gather(*self._background, return_exceptions=True)

    async def wait_ready(self, seconds: float = 10.0) -> None:
        """Wait until every adapter's link is connected (TimeoutError after ``seconds``)."""
        for adapter in self.adapters.values():
            await adapter.wait_connected(seconds)

    def _observe(self, kind: str, message_id: bytes | None = None, **fields: Any) -> None:
        observation = Observation(
            kind=kind, gateway=self.name, message_id=message_id, fields=fields
        )
        for observer in self.observers:
            observer(observation)

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    # ------------------------------------------------------------------ inbound from radios

    def _sink_for(self, adapter: str) -> Callable[[AdapterEvent], Any]:
        async def sink(event: AdapterEvent) -> None:
            await self._on_adapter_event(adapter, event)

        return sink

    async def _on_adapter_event(self, adapter: str, event: AdapterEvent) -> None:
        match event:
            case LinkStateChanged():
                self.counters[f"link_{event.state.name.lower()}"] += 1
                self.log.info(
                    "adapter.link", adapter=adapter, state=event.state.name, reason=event.reason
                )
                self._observe("link", adapter=adapter, state=event.state.name, reason=event.reason)
            case SdsRejected():
                self.counters["rejected_input"] += 1
                self._observe("rejected", adapter=adapter, reason=event.reason, source=event.source)
            case SdsReceived(content=SdsReport() | ShortReport()):
                await self._on_unit_report(adapter, event)
            case SdsReceived():
                await self._on_sds(adapter, event)

    async def _on_sds(self, adapter_name: str, event: SdsReceived) -> None:
        adapter = self._adapter_configs[adapter_name]
        message_id = _new_id()
        try:
            envelope = envelope_from_tetra(
                event,
                adapter=adapter,
                directory=self.directory,
                codebook=self._codebooks[adapter.codebook],
                delivery=self.config.delivery,
                message_id=message_id,
                now_us=self._now_us(),
            )
            nation = self._destination_nation(envelope)
            self._enqueue_egress(nation, envelope)
        except DeliveryRefused as exc:
            await self._refuse_inbound(adapter_name, event, exc)
            return
        text = event.content if isinstance(event.content, TextSds) else None
        self.tracker.add_origin(
            OriginRecord(
                message_id=message_id,
                adapter=adapter_name,
                source_issi=event.source,
                protocol_id=text.protocol_id if text else None,
                message_reference=text.message_reference if text else None,
                report_request=text.delivery_report_request if text else 0,
                priority=envelope.priority,
            )
        )
        self.counters["accepted"] += 1
        self._observe(
            "accepted",
            message_id,
            origin=envelope.origin.unit,
            destination=_describe_destination(envelope),
            body=envelope.WhichOneof("body"),
            priority=v1.Priority.Name(envelope.priority),
            summary=_summary(envelope),
        )

    def _destination_nation(self, envelope: v1.Envelope) -> str:
        which = envelope.destination.WhichOneof("target")
        if which == "unit":
            nation = envelope.destination.unit.nation
        else:
            group = self.directory.group_by_name(envelope.destination.group.group)
            nations = [n for n in group.nations if n != self.nation] if group else []
            if len(nations) != 1:
                raise DeliveryRefused(
                    "group destinations need exactly one partner nation in this release",
                    reason_code=DeliveryStatus.UNKNOWN_DESTINATION,
                )
            nation = nations[0]
        if nation not in self.egress:
            raise DeliveryRefused(
                f"{nation} is not a partner of this gateway",
                reason_code=DeliveryStatus.DESTINATION_PROHIBITED,
            )
        return nation

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run radio I/O outside the caller (never inside an adapter's read loop), tracked."""
        task = asyncio.get_running_loop().create_task(coro, name=f"gateway[{self.name}].{what}")
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters["background_failed"] += 1
            self.log.error("background.failed", task=task.get_name(), error=repr(task.exception()))

    def _enqueue_egress(self, nation: str, envelope: v1.Envelope) -> None:
        queue = self.egress[nation]
        if envelope.HasField("receipt"):
            # Receipts are small and owed to a radio: never refused, never shed.
            queue.force(envelope, envelope.priority)
            return
        evicted = queue.offer(envelope, envelope.priority)
        if evicted is not None and evicted.item.HasField("receipt"):
            queue.force(evicted.item, evicted.priority)
        elif evicted is not None:
            self.counters["shed"] += 1
            self._fail_origin(
                evicted.item.message_id,
                DeliveryStatus.DESTINATION_QUEUE_FULL,
                "shed: queue full of more urgent traffic",
            )

    async def _refuse_inbound(self, adapter: str, event: SdsReceived, exc: DeliveryRefused) -> None:
        reason_code = (
            exc.reason_code if exc.reason_code is not None else DeliveryStatus.DELIVERY_FAILED
        )
        self.counters[f"refused_{reason_code:#04x}"] += 1
        self.log.warning(
            "sds.refused",
            adapter=adapter,
            source=event.source,
            destination=event.destination,
            reason=str(exc),
            code=reason_code,
        )
        self._observe("refused", adapter=adapter, source=event.source, reason=str(exc))
        content = event.content
        if isinstance(content, TextSds) and content.message_reference is not None:
            report = self._report_to_radio(
                adapter, event.source, content.protocol_id, content.message_reference, reason_code
            )
            self._spawn(report, "negative_report")

    async def _report_to_radio(
        self, adapter: str, issi: str, pid: int, reference: int, status: int
    ) -> None:
        try:
            await self.adapters[adapter].send_report(
                issi, protocol_id=pid, message_reference=reference, delivery_status=status
            )
            self.counters["reports_sent"] += 1
        except GatewayError as exc:
            self.counters["reports_failed"] += 1
            self.log.warning(
                "report.failed", adapter=adapter, issi=issi, reference=reference, error=str(exc)
            )

    # ------------------------------------------------------------------ federation egress

    async def _egress_loop(self, nation: str) -> None:
        queue = self.egress[nation]
        while True:
            queued = await queue.get()
            envelope = queued.item
            if 0 < envelope.expires_at_us < self._now_us():
                self._expired(envelope)
                continue
            if envelope.origin.nation == self.nation and not envelope.HasField("receipt"):
                envelope.trace.add(
                    gateway=self.name,
                    nation=self.nation,
                    received_at_us=envelope.created_at_us,
                    forwarded_at_us=self._now_us(),
                )
            try:
                await self.link.send(nation, envelope.SerializeToString())
            except GatewayError as exc:
                queue.push_front(envelope, queued.priority)
                self.counters[f"federation_retry_{nation}"] += 1
                self.log.warning("federation.send_failed", partner=nation, error=str(exc))
                await asyncio.sleep(_RETRY_DELAY)
                continue
            self.counters["forwarded"] += 1
            self._observe("forwarded", envelope.message_id, partner=nation)

    def _expired(self, envelope: v1.Envelope) -> None:
        self.counters["expired"] += 1
        if envelope.HasField("receipt"):
            return
        self.log.warning("message.expired", message_id=envelope.message_id.hex())
        if envelope.origin.nation == self.nation:
            self._fail_origin(
                envelope.message_id, DeliveryStatus.VALIDITY_EXPIRED_NOT_RECEIVED, "expired"
            )
        else:
            self._send_receipt(
                envelope,
                v1.DELIVERY_STATE_FAILED,
                tetra_status=DeliveryStatus.VALIDITY_EXPIRED_NOT_RECEIVED,
                reason="expired",
            )

    def _fail_origin(self, message_id: bytes, status: int, reason: str) -> None:
        """A message of ours failed before leaving: tell its radio as a receipt would."""
        receipt = v1.DeliveryReceipt(
            message_id=message_id,
            state=v1.DELIVERY_STATE_FAILED,
            tetra_status=status,
            reason=reason,
        )
        self._spawn(self._apply_receipt(receipt), "fail_origin")

    # ------------------------------------------------------------------ federation inbound

    async def _on_federation(self, sender: str, payload: bytes) -> None:
        envelope = v1.Envelope()
        try:
            envelope.ParseFromString(payload)
        except DecodeError as exc:
            self.counters["federation_malformed"] += 1
            self.log.warning(
                "federation.malformed", sender=sender, size=len(payload), error=str(exc)
            )
            return
        if envelope.origin.nation != sender:
            self.counters["federation_misattributed"] += 1
            self.log.warning(
                "federation.misattributed", sender=sender, origin=envelope.origin.nation
            )
            return
        if envelope.HasField("receipt"):
            await self._apply_receipt(envelope.receipt)
            return
        envelope.trace.add(gateway=self.name, nation=self.nation, received_at_us=self._now_us())
        try:
            deliveries = plan_tetra_delivery(
                envelope,
                adapters=self._adapter_configs,
                directory=self.directory,
                codebooks=self._codebooks,
            )
        except GatewayError as exc:  # refused, or a partner value our radios cannot carry
            self.counters["refused_from_partner"] += 1
            self.log.warning(
                "federation.refused", message_id=envelope.message_id.hex(), reason=str(exc)
            )
            self._send_receipt(
                envelope,
                v1.DELIVERY_STATE_FAILED,
                tetra_status=exc.reason_code or DeliveryStatus.DELIVERY_FAILED,
                reason=str(exc),
            )
            return
        for delivery in deliveries:
            try:
                evicted = self.local[delivery.target.adapter].offer(
                    (envelope, delivery), envelope.priority
                )
            except QueueFull as exc:
                self._send_receipt(
                    envelope,
                    v1.DELIVERY_STATE_FAILED,
                    tetra_status=DeliveryStatus.DESTINATION_QUEUE_FULL,
                    reason=str(exc),
                )
                continue
            if evicted is not None:
                dropped, _ = evicted.item
                self._send_receipt(
                    dropped,
                    v1.DELIVERY_STATE_FAILED,
                    tetra_status=DeliveryStatus.DESTINATION_QUEUE_FULL,
                    reason="shed: queue full of more urgent traffic",
                )

    # ------------------------------------------------------------------ local delivery

    async def _delivery_loop(self, adapter_name: str) -> None:
        queue = self.local[adapter_name]
        adapter = self.adapters[adapter_name]
        while True:
            queued = await queue.get()
            envelope, delivery = queued.item
            if 0 < envelope.expires_at_us < self._now_us():
                self._expired(envelope)
                continue
            if adapter.state is not LinkState.CONNECTED:
                queue.push_front(queued.item, queued.priority)
                with contextlib.suppress(TimeoutError):
                    await adapter.wait_connected(_RETRY_DELAY * 4)
                continue
            await self._deliver(adapter_name, envelope, delivery)

    async def _deliver(
        self, adapter_name: str, envelope: v1.Envelope, delivery: TetraDelivery
    ) -> None:
        adapter = self.adapters[adapter_name]
        issi = delivery.target.issi
        content = self._content_for(adapter, delivery)
        try:
            outcome = await adapter.send(issi, content)
        except Exception as exc:  # a failed send must become a FAILED receipt, never a dead loop
            if not isinstance(exc, GatewayError):
                self.log.exception("delivery.send_crashed", adapter=adapter_name, issi=issi)
            outcome = SendOutcome(
                ok=False, message_references=[], sds_status=None, cme_error=None, reason=str(exc)
            )
        if not outcome.ok:
            self.counters["delivery_failed"] += 1
            self._send_receipt(
                envelope,
                v1.DELIVERY_STATE_FAILED,
                tetra_status=DeliveryStatus.DELIVERY_FAILED,
                reason=outcome.reason,
            )
            return
        self.counters["delivered_to_network"] += 1
        if delivery.follow_up is not None:
            await self._best_effort(adapter, issi, delivery.follow_up)
        if (
            isinstance(content, TextSds)
            and content.delivery_report_request
            and not delivery.target.is_group
        ):
            record = AwaitingReport(
                message_id=envelope.message_id,
                origin_nation=envelope.origin.nation,
                origin_unit=envelope.origin.unit,
                priority=envelope.priority,
                adapter=adapter_name,
                issi=issi,
                references=set(outcome.message_references),
                want_read=delivery.report_request in (2, 3),
                deadline=self.clock() + self.config.delivery.report_timeout,
            )
            self.tracker.add_awaiting(record)
            self._timer_wakeup.set()
            for reference in outcome.message_references:
                key = (adapter_name, issi, reference)
                parked = self.tracker.take_parked(key, self.clock())
                if parked is not None:
                    self._settle(record, key, parked)
            return
        self._send_receipt(
            envelope, v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_END_SYSTEM
        )

    def _content_for(
        self, adapter: TetraAdapter, delivery: TetraDelivery
    ) -> TextSds | StatusSds | Any:
        if delivery.text is not None:
            want = 3 if delivery.report_request in (2, 3) else 1
            return TextSds(
                protocol_id=_PID_TEXT_IMMEDIATE if delivery.immediate else _PID_TEXT,
                text=delivery.text,
                coding_scheme=choose_coding_scheme(delivery.text),
                immediate=delivery.immediate,
                message_reference=adapter.allocate_reference(delivery.target.issi),
                delivery_report_request=0 if delivery.target.is_group else want,
            )
        if delivery.status is not None:
            return StatusSds(status=delivery.status)
        return delivery.location

    async def _best_effort(self, adapter: TetraAdapter, issi: str, content: Any) -> None:
        try:
            outcome = await adapter.send(issi, content)
        except GatewayError as exc:
            self.log.warning("delivery.follow_up_failed", issi=issi, error=str(exc))
            return
        if not outcome.ok:
            self.log.warning("delivery.follow_up_failed", issi=issi, error=outcome.reason)

    async def _on_unit_report(self, adapter: str, event: SdsReceived) -> None:
        content = event.content
        status: int
        if isinstance(content, ShortReport):
            status = {2: DeliveryStatus.RECEIVED, 3: DeliveryStatus.CONSUMED}.get(
                content.report_type, DeliveryStatus.DELIVERY_FAILED
            )
            reference = content.message_reference
        else:
            assert isinstance(content, SdsReport)
            status, reference = content.delivery_status, content.message_reference
        key = (adapter, event.source, reference)
        record = self.tracker.match_report(key)
        if record is None:
            self.counters["reports_early_or_unmatched"] += 1
            self.log.info(
                "report.unmatched", adapter=adapter, source=event.source, reference=reference
            )
            self.tracker.park_report(key, status, self.clock())
            return
        self._settle(record, key, status)

    def _settle(self, record: AwaitingReport, key: tuple[str, str, int], status: int) -> None:
        if status >= 0x40:
            self.tracker.forget(record)
            self._receipt_for(
                record,
                v1.DELIVERY_STATE_FAILED,
                tetra_status=status,
                reason="unit reported failure",
            )
        elif status == DeliveryStatus.CONSUMED:
            self.tracker.forget(record)
            if not record.delivered:
                self._receipt_for(
                    record, v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_UNIT
                )
            self._receipt_for(record, v1.DELIVERY_STATE_READ, confirmation=v1.CONFIRMATION_UNIT)
        elif status == DeliveryStatus.RECEIVED and self.tracker.settle_part(key):
            record.delivered = True
            self._receipt_for(
                record, v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_UNIT
            )
            if not record.want_read:
                self.tracker.forget(record)

    async def _report_timer_loop(self) -> None:
        while True:
            deadline = self.tracker.next_deadline()
            self._timer_wakeup.clear()
            delay = 3600.0 if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._timer_wakeup.wait()
            for record in self.tracker.expired(self.clock()):
                self.counters["report_timeouts"] += 1
                if not record.delivered:
                    self._receipt_for(
                        record, v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_END_SYSTEM
                    )

    # ------------------------------------------------------------------ receipts

    def _receipt_for(
        self,
        record: AwaitingReport,
        state: int,
        *,
        confirmation: int = 0,
        tetra_status: int = 0,
        reason: str = "",
    ) -> None:
        shell = v1.Envelope(message_id=record.message_id, priority=record.priority)  # type: ignore[arg-type]
        shell.origin.nation = record.origin_nation
        shell.origin.unit = record.origin_unit
        self._send_receipt(
            shell, state, confirmation=confirmation, tetra_status=tetra_status, reason=reason
        )

    def _send_receipt(
        self,
        about: v1.Envelope,
        state: int,
        *,
        confirmation: int = 0,
        tetra_status: int = 0,
        reason: str = "",
    ) -> None:
        """Queue a receipt for ``about`` towards its origin gateway."""
        receipt = v1.Envelope(
            schema_version=SCHEMA_VERSION,
            message_id=_new_id(),
            priority=about.priority,
            created_at_us=self._now_us(),
        )
        receipt.origin.nation = self.nation
        receipt.origin.unit = f"{self.nation.lower()}.gateway.{self.name}"
        receipt.origin.system = v1.SYSTEM_TYPE_GATEWAY
        receipt.destination.unit.nation = about.origin.nation
        receipt.destination.unit.unit = about.origin.unit
        receipt.receipt.message_id = about.message_id
        receipt.receipt.state = state  # type: ignore[assignment]
        receipt.receipt.confirmation = confirmation  # type: ignore[assignment]
        receipt.receipt.tetra_status = tetra_status
        receipt.receipt.reason = reason
        self.counters[f"receipts_sent_{_RECEIPT_STATE_NAMES.get(state, str(state))}"] += 1
        self._observe(
            "delivered" if state != v1.DELIVERY_STATE_FAILED else "delivery_failed",
            about.message_id,
            state=v1.DeliveryState.Name(v1.DeliveryState.ValueType(state)),
            reason=reason,
            confirmation=v1.Confirmation.Name(v1.Confirmation.ValueType(confirmation)),
        )
        nation = about.origin.nation
        if nation not in self.egress:
            self.log.warning("receipt.no_route", nation=nation)
            return
        self._enqueue_egress(nation, receipt)

    async def _apply_receipt(self, receipt: v1.DeliveryReceipt) -> None:
        record = self.tracker.origins.get(receipt.message_id)
        state_name = _RECEIPT_STATE_NAMES.get(receipt.state, str(receipt.state))
        self.counters[f"receipts_{state_name}"] += 1
        if record is None:
            self.counters["receipts_unmatched"] += 1
            self.log.info(
                "receipt.unmatched", message_id=receipt.message_id.hex(), state=state_name
            )
            return
        record.states.append(receipt.state)
        self._observe(
            "receipt",
            receipt.message_id,
            state=_enum_name(v1.DeliveryState, receipt.state),
            confirmation=_enum_name(v1.Confirmation, receipt.confirmation),
            reason=receipt.reason,
        )
        status = _radio_status(receipt, record.report_request)
        if (
            status is not None
            and record.message_reference is not None
            and record.protocol_id is not None
        ):
            report = self._report_to_radio(
                record.adapter,
                record.source_issi,
                record.protocol_id,
                record.message_reference,
                status,
            )
            self._spawn(report, "report")
        if receipt.state in (v1.DELIVERY_STATE_FAILED, v1.DELIVERY_STATE_READ) or (
            receipt.state == v1.DELIVERY_STATE_DELIVERED and record.report_request not in (2, 3)
        ):
            self.tracker.origins.pop(receipt.message_id, None)


def _radio_status(receipt: v1.DeliveryReceipt, report_request: int) -> int | None:
    """Return the SDS-REPORT delivery status owed to the origin radio, if any."""
    if receipt.state == v1.DELIVERY_STATE_FAILED:
        return receipt.tetra_status or DeliveryStatus.DELIVERY_FAILED
    if receipt.state == v1.DELIVERY_STATE_DELIVERED and report_request in (1, 3):
        if receipt.confirmation == v1.CONFIRMATION_UNIT:
            return DeliveryStatus.RECEIVED
        # Only the far network accepted it: say so, do not claim the unit received it.
        return DeliveryStatus.FORWARDED_EXTERNAL
    if receipt.state == v1.DELIVERY_STATE_READ and report_request in (2, 3):
        return DeliveryStatus.CONSUMED
    return None


def _enum_name(enum: Any, value: int) -> str:
    """Name of a protobuf enum value; a value from a newer schema stays a number."""
    try:
        return str(enum.Name(value))
    except ValueError:
        return str(value)


def _adapter_settings(adapter: AdapterConfig) -> TetraAdapterConfig:
    return TetraAdapterConfig(
        name=adapter.name,
        url=adapter.url,
        radio_issi=adapter.radio_issi,
        keepalive_interval=adapter.keepalive_interval,
        command_timeout=adapter.command_timeout,
    )


def _describe_destination(envelope: v1.Envelope) -> str:
    if envelope.destination.WhichOneof("target") == "group":
        return f"group {envelope.destination.group.group}"
    return envelope.destination.unit.unit


def _summary(envelope: v1.Envelope) -> str:
    body = envelope.WhichOneof("body")
    if body == "text":
        return f"text ({len(envelope.text.text)} chars)"
    if body == "status":
        return f"status {envelope.status.code}"
    if body == "location":
        loc = envelope.location.location
        return f"location {loc.latitude:.4f},{loc.longitude:.4f}"
    if body == "emergency":
        return "emergency alert"
    return str(body)
