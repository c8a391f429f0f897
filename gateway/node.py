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
import base64
import binascii
import contextlib
import functools
import json
import math
import os
import ssl
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

import structlog
from google.protobuf.message import DecodeError

from adapters import LinkState, LinkStateChanged
from adapters.mcdata import (
    McdataAdapter,
    McdataAdapterConfig,
    McdataEvent,
    McdataGroup,
    McdataNotificationReceived,
    McdataRejected,
    McdataSdsReceived,
    McdataUser,
)
from adapters.tetra import AdapterEvent, SendOutcome, TetraAdapter, TetraAdapterConfig
from gateway.codebooks import Codebook
from gateway.config import GROUP_PATTERN, UNIT_PATTERN, AdapterConfig, GatewayConfig
from gateway.federation import FederationLink
from gateway.identity import Directory, LocalTarget
from gateway.interworking import TetraDelivery, envelope_from_tetra, plan_tetra_delivery
from gateway.interworking_mcdata import (
    McdataSds,
    envelope_from_mcdata,
    notification_for,
    payloads_not_carried,
    plan_mcdata_delivery,
)
from gateway.journal import (
    AsyncJournal,
    Bounds,
    JournalEntry,
    JournalError,
    JournalStore,
    NewEntry,
    Recovered,
    open_journal,
)
from gateway.liveness import CanaryTracker, PathState, StateChange
from gateway.members import member_nation
from gateway.ordering import HOLD_SECONDS, Chains, HeldBack, Waiting
from gateway.policy import RateLimiter
from gateway.presence import (
    Availability,
    EmergencyLedger,
    OutstandingAlert,
    PresenceEvent,
    PresenceFull,
    PresenceRegistry,
    PresenceUpdate,
)
from gateway.presence import (
    Location as PresenceLocation,
)
from gateway.scheduler import AsyncScheduler, Entry, QueueFull
from gateway.tracking import AwaitingReport, OriginRecord, ReportKey, Tracker
from protocols.errors import ConfigError, DeliveryRefused, GatewayError, LinkError
from protocols.mcdata import DispositionRequest, McdataId, NotificationType
from protocols.schema import SCHEMA_VERSION, v1
from protocols.tetra import (
    DeliveryStatus,
    LocationReport,
    SdsReceived,
    SdsRejected,
    SdsReport,
    ShortReport,
    StatusSds,
    TextSds,
    choose_coding_scheme,
)

if TYPE_CHECKING:
    from gateway.leases import Lease

__all__ = ["Gateway", "Held", "Observation"]

log = structlog.get_logger(__name__)

_R = TypeVar("_R")

#: SDS-TL protocol identifiers used for text we deliver.
_PID_TEXT = 0x82
_PID_TEXT_IMMEDIATE = 0x89
#: +CMGS final status meaning "sent" (EN 300 392-5; svxlink SdsSentState).
_RETRY_DELAY = 0.5
#: Most deliveries to one radio network whose SDS-TL references share a journal commit.
_DELIVERY_BATCH = 32
#: Most envelopes per partner handed to the federation link at once (it batches them).
_MAX_CONCURRENT_SENDS = 256
#: Acknowledgements due or on their way to one partner, at most: a partner's batch (up to
#: :data:`gateway.mqtt_link.INBOX_GROUP` envelopes) is acknowledged at once, and its acks
#: may wait a linger and a broker round trip while the next batches are taken in.
_MAX_ACKS_SENDING = 4096
#: Message ids acknowledged by one envelope, at most (16 bytes each).
_ACKS_PER_ENVELOPE = 512
#: Message ids one receipt is about, at most (``also_about``; see Gateway._send_receipt).
_RECEIPTS_PER_ENVELOPE = 512
#: The partner feature that lets one receipt speak of several envelopes.
_RECEIPTS_BATCHED = "receipts-batched"
#: Text of the loopback canary sent through a national system to our own radio.
_CANARY_TEXT = "euccs-canary"
#: Seconds between the attempts of a disposition notification while the MCX link is down.
_NOTIFY_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
#: Longest reason of a partner's receipt that we show (the rest is cut).
_MAX_REASON = 200
#: Longest unit or group name a partner's presence may carry.
_MAX_NAME = 128
#: Seconds before a failed journal write is tried again.
_JOURNAL_RETRY = 1.0
#: Seconds between expiry, retransmission and pruning passes.
_HOUSEKEEPING_INTERVAL = 0.25
#: Seconds between two saves of presence and outstanding alerts to the journal.
_STATE_SAVE_INTERVAL = 1.0
#: At most this many rows of each kind per save (the rest go in the next ones).
_STATE_SAVE_ROWS = 2000
#: Most spilled copies read back from the journal into a queue at once (or failed back
#: at once when they expired there).
_UNSPILL_BATCH = 256
#: Seconds between two looks for expired copies at the head of each spill.
_SPILL_EXPIRY_INTERVAL = 5.0
#: Pages of :data:`_UNSPILL_BATCH` rows each look reads per spilled class, at most.
_SPILL_EXPIRY_PAGES = 8
#: Origin records read into memory at a restart with spilling (the newest); the others
#: are read from the journal when a receipt needs them.
_RECOVERED_ORIGINS = 10_000
#: The reason a FAILED receipt gives for a send that crashed (the crash is in our log).
#: Seconds between two warnings about failed sends to one partner.
_SEND_FAILURE_LOG_INTERVAL = 60.0
#: Seconds a receipt waits for its partner at least (see Gateway._receipt_envelope).
_RECEIPT_MIN_LIFETIME = 24 * 3600.0
_INTERNAL_SEND_ERROR = "the gateway failed to send it (internal error)"
#: What a commit made with ``follows`` returns when that one is not in custody yet.
_GAP: list[int] = []
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
    """A random (version 4) UUID's 16 bytes, without building a UUID object."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


@dataclass(kw_only=True)
class Held:
    """A message copy in the gateway's custody, waiting in one of its queues.

    ``entry_id`` is its journal row; None for hop acknowledgements, which are
    never journaled (a lost one makes the partner send again, and the copy is
    then recognised as a duplicate and acknowledged once more).
    """

    envelope: v1.Envelope
    entry_id: int | None
    queue: str
    delivery: TetraDelivery | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: Kept in the journal only (its queue was at its bound); not journaled itself.
    spilled: bool = False

    @property
    def size(self) -> int:
        """Bytes on the wire, for the queue's byte bound."""
        return self.envelope.ByteSize()


@dataclass(kw_only=True)
class _InFlight:
    entry: Entry[Held]
    nation: str
    deadline: float


#: What receipts must share to go in one envelope, besides their partner and priority:
#: state, confirmation, SDS-TL status and reason.
_ReceiptContent = tuple[int, int, int, str]


@dataclass
class _DueReceipt:
    """A receipt waiting for the others due in the same pass (see Gateway._send_receipt)."""

    about: v1.Envelope
    content: _ReceiptContent
    remove: list[int]
    done: asyncio.Future[None]


class _ReceiptDetails(TypedDict, total=False):
    """What a receipt says besides its state (see Gateway._receipt_envelope)."""

    confirmation: int
    tetra_status: int
    reason: str


class _Change(TypedDict, total=False):
    """One change of custody (see Gateway._submit_commit)."""

    add: Sequence[Held]
    remove: Sequence[int]
    seen: bytes | None
    follows: bytes | None
    origin: OriginRecord | None
    drop_origins: Sequence[bytes]
    then: Callable[[bool], None] | None
    gap: Callable[[], None] | None


@dataclass
class _Spill:
    """A queue's copies kept in the journal only, because the queue reached its bound.

    While a queue has spilled copies every new journaled non-urgent copy for it is spilled
    too (receipts included; EMERGENCY and IMMINENT_PERIL never are), so for each priority
    the spilled copies are exactly the queue's journal rows of that priority with ids above
    ``after[priority]``: they are read back in arrival order. A priority is drained when
    the journal returns fewer rows than asked; ``counts`` is for metrics only.
    """

    counts: Counter[int] = field(default_factory=Counter)
    after: dict[int, int] = field(default_factory=dict)
    #: Per priority: where the search for expired copies goes on (see _expire_spilled).
    scan: dict[int, int] = field(default_factory=dict)
    loading: bool = False

    def add(self, priority: int, entry_id: int) -> None:
        if priority not in self.after:
            self.after[priority] = entry_id - 1
        self.counts[priority] += 1

    def drained(self, priority: int) -> None:
        self.after.pop(priority, None)
        self.counts.pop(priority, None)
        self.scan.pop(priority, None)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Gateway:
    """A national gateway. Use ``async with gateway.running():`` or ``await gateway.run()``.

    Args:
        config: The validated configuration.
        link: The federation transport.
        journal: Path of the store-and-forward journal (created if missing).
        fence: The lease under which this instance is the active one of several
            (:mod:`gateway.cluster`); every journal write checks it.
        clock: Wall clock in seconds (injectable for tests).
        monotonic: Monotonic clock in seconds for local timers (injectable for tests).
    """

    _receipts_applying: set[bytes]
    _receipt_turns: dict[str, asyncio.Future[None]]
    #: Journaled copies that can no longer go (``_cannot_resume``), with status and reason.
    _unresumable: list[tuple[Held, int, str]]
    #: When the journal last failed a commit or read, and why (``readiness``).
    journal_error: tuple[float, str] | None = None
    #: This gateway's epoch (set when the journal opens; 0 before).
    epoch: int = 0
    #: When the spills are next searched for expired copies (monotonic).
    _next_spill_expiry: float = 0.0
    #: Whether :meth:`_expire_spilled` runs.
    _expiring_spills: bool = False
    #: Per partner: failed sends not logged yet, and when the last warning went out.
    _send_failures: dict[str, tuple[int, float]]
    _probing: dict[str, bool]
    _inflight: dict[str, dict[bytes, _InFlight]]
    _window_free: dict[str, asyncio.Event]
    _members_of: dict[str, tuple[str, ...]]

    def __init__(
        self,
        config: GatewayConfig,
        link: FederationLink,
        *,
        journal: str | Path,
        fence: Lease | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.fence = fence
        self.name = config.name
        #: ``member``: our id on the federation link: the country, or e.g. ``DE-2`` where
        #: the country runs several gateways (:mod:`gateway.members`). Partner state (queues,
        #: windows, acknowledgements) is per member.
        self.nation, self.member = config.nation, config.federation_member
        self.directory = Directory(config)
        self.link = link
        #: Wall clock: timestamps that leave this process (envelopes, journal, MCData).
        self.clock = clock
        #: Monotonic clock: every local timer (queues, expiry, retransmission, leases,
        #: canaries, rate limits), so a wall-clock step never stalls or rushes them.
        self.monotonic = monotonic
        self.journal_path = Path(journal)
        self.journal: AsyncJournal | None = None
        self.counters: Counter[str] = Counter()
        self.tracker = Tracker()
        self.observers: list[Observer] = []
        self._adapter_configs = {a.name: a for a in config.adapters}
        self._codebooks: dict[str, Codebook] = config.codebooks
        self.adapters: dict[str, TetraAdapter] = {
            a.name: TetraAdapter(
                _adapter_settings(a), sink=self._sink(a.name, self._on_adapter_event)
            )
            for a in config.adapters
            if a.type == "tetra"
        }
        #: MCX systems, reached as a peer MCData server (3GPP TS 23.283 interworking function).
        self.mcdata: dict[str, McdataAdapter] = {
            a.name: McdataAdapter(
                _mcdata_settings(a), sink=self._sink(a.name, self._on_mcdata_event)
            )
            for a in config.adapters
            if a.type == "mcdata"
        }
        delivery = config.delivery
        self.queues: dict[str, AsyncScheduler[Held]] = {}
        #: Partner gateways per partner country (see :meth:`_member_for`).
        self._members_of = _members_by_nation(config.federation.partners)
        for nation in config.federation.peers:
            self.queues[_egress(nation)] = self._new_queue()
        for name in (*self.adapters, *self.mcdata):
            self.queues[_local(name)] = self._new_queue()
        self._inflight, self._window_free = (
            {nation: {} for nation in config.federation.peers},
            {nation: asyncio.Event() for nation in config.federation.peers},
        )
        #: Per queue: copies in the journal only (``[delivery] spill``, see :class:`_Spill`).
        self._spilled: dict[str, _Spill] = {}
        #: Acknowledgements being sent to each partner (bounded; see :meth:`_ack`).
        self._acks_sending: Counter[str] = Counter()
        #: Per (partner, urgent): the envelopes whose acknowledgement is due; a key is
        #: present while a task sends them (see :meth:`_ack`).
        self._acks_due: dict[tuple[str, bool], list[v1.Envelope]] = {}
        #: Receipt envelopes being applied; per partner, resolved when the receipt taken
        #: in last has been applied (see :meth:`_on_partner_receipt`).
        self._receipts_applying, self._receipt_turns = set(), {}
        #: Per (partner, priority): receipts due in this pass of the event loop, journaled
        #: together at its end (see :meth:`_send_receipt`).
        self._receipts_due: dict[tuple[str, int], list[_DueReceipt]] = {}
        #: Per partner: what each message sent follows; partners' messages held back until
        #: the one they follow is in custody (see :mod:`gateway.ordering`).
        self._chains, self._held_back = (
            {n: Chains() for n in config.federation.peers},
            HeldBack(hold_seconds=max(HOLD_SECONDS, 3 * delivery.ack_timeout)),
        )
        #: Per partner: the last send failed, so sends go one at a time until one succeeds.
        self._probing, self._send_failures = (
            dict.fromkeys(config.federation.peers, False),
            {},
        )
        self._ack_timeout, self._receipt_lifetime = (
            delivery.ack_timeout,
            max(delivery.dedup_window, _RECEIPT_MIN_LIFETIME),
        )
        self.rate_limiter = RateLimiter(config.rate_limits)
        #: Created with the epoch when the journal opens: after a restart every unit is UNKNOWN.
        self.presence = PresenceRegistry(
            gateway=self.name, nation=self.nation, epoch=1, settings=config.presence
        )
        self.alerts = EmergencyLedger(max_alerts=config.presence.max_alerts)
        #: (alert, unit) -> when it was delivered live, so a first sign of life is no "return".
        self._alert_deliveries: dict[tuple[bytes, str], float] = {}
        #: Alerts (hex ids, the journal's keys) whose saved form is out of date.
        self._unsaved_alerts: dict[str, None] = {}
        #: When presence and alerts are saved next (monotonic), and whether a save runs.
        self._next_state_save, self._saving_state = 0.0, False
        #: Presence and alerts as of this time (monotonic) are saved in the journal.
        self.state_saved_through = -math.inf
        liveness = config.liveness
        self.liveness: dict[str, CanaryTracker] = {}
        if liveness.canary_interval > 0:
            paths = [f"federation:{n}" for n in config.federation.peers]
            paths += [f"adapter:{a}" for a in self.adapters]
            self.liveness = {
                path: CanaryTracker(
                    path=path,
                    interval=liveness.canary_interval,
                    timeout=liveness.canary_timeout,
                )
                for path in paths
            }
        self._timer_wakeup = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        #: The task of :meth:`run` while :meth:`running`; it ends only on failure.
        self.task: asyncio.Task[None] | None = None
        if hasattr(link, "on_partner_restart"):  # links that see partners' epochs
            link.on_partner_restart = self._partner_restarted
        self.log = log.bind(gateway=self.name, nation=self.nation)

    def _new_queue(self) -> AsyncScheduler[Held]:
        delivery = self.config.delivery
        return AsyncScheduler(
            max_items=delivery.queue_max_messages, max_bytes=delivery.queue_max_bytes
        )

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Recover the journal, then run every task of this gateway until cancelled."""
        journal = await self._open_journal_in_thread()
        try:
            async with asyncio.TaskGroup() as tasks:
                systems: dict[str, TetraAdapter | McdataAdapter] = {**self.adapters, **self.mcdata}
                for name, system in systems.items():
                    tasks.create_task(system.run(), name=f"gateway[{self.name}].adapter[{name}]")
                    # Urgent messages have a delivery loop of their own: they wait for the
                    # send in progress on the line, never for routine work around it.
                    for urgent in (True, False):
                        tasks.create_task(
                            self._delivery_loop(name, urgent=urgent),
                            name=f"gateway[{self.name}].deliver[{name}]{'.urgent' * urgent}",
                        )
                for nation in self.config.federation.peers:
                    tasks.create_task(
                        self._egress_loop(nation), name=f"gateway[{self.name}].egress[{nation}]"
                    )
                tasks.create_task(
                    self.link.serve(self._on_federation), name=f"gateway[{self.name}].inbox"
                )
                tasks.create_task(
                    self._report_timer_loop(), name=f"gateway[{self.name}].report_timer"
                )
                tasks.create_task(self._housekeeping_loop(), name=f"gateway[{self.name}].house")
        finally:
            await self._save_state_last(journal)
            self.journal = None
            await asyncio.to_thread(journal.close)

    async def _save_state_last(self, journal: AsyncJournal) -> None:
        """On the way out: save what changed since the last save (a handover loses nothing)."""
        if self.journal is None:
            return
        presence, alerts = self._unsaved_rows(self.monotonic(), None)
        if not presence and not alerts:
            return
        try:
            await asyncio.wait_for(
                journal.submit(functools.partial(_put_state, presence, alerts)), 5.0
            )
        except Exception as exc:  # fenced, or the journal failed: the next start rebuilds it
            self.log.warning("state.last_save_failed", error=str(exc))

    def _open_journal(self) -> AsyncJournal:
        journal = open_journal(self.config, self.name, path=self.journal_path, fence=self.fence)
        return self._resume_journal(journal, journal.recover(self._recovery_bounds()))

    def _recovery_bounds(self) -> Bounds | None:
        """With spilling, read no more of a large backlog than the queues will hold."""
        delivery = self.config.delivery
        if not delivery.spill:
            return None
        return Bounds(
            per_class=delivery.queue_max_messages,
            all_from=v1.PRIORITY_IMMINENT_PERIL,  # urgent copies are never spilled
            origins=_RECOVERED_ORIGINS,
        )

    async def _open_journal_in_thread(self) -> AsyncJournal:
        """:meth:`_open_journal` with the reading on a thread.

        A large backlog must not stop the event loop (lease renewals in a cluster,
        adapters' keepalives).
        """
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(
            None,
            functools.partial(
                open_journal, self.config, self.name, path=self.journal_path, fence=self.fence
            ),
        )
        try:
            journal = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Stopped while it opens (a lease lost during start-up): close what the thread
            # still opens, or its connections would stay open for good.
            opening.add_done_callback(_close_when_opened)
            raise
        try:
            recovered = await asyncio.to_thread(journal.recover, self._recovery_bounds())
        except BaseException:
            await asyncio.to_thread(journal.close)
            raise
        return self._resume_journal(journal, recovered)

    def _resume_journal(self, journal: AsyncJournal, recovered: Recovered) -> AsyncJournal:
        self._unresumable = []
        self.epoch = recovered.epoch
        now = self.monotonic()
        resumed = Counter[str]()
        read = Counter[tuple[str, int]]()
        last_read: dict[tuple[str, int], int] = {}
        for row in recovered.entries:
            read[row.queue, row.priority] += 1
            last_read[row.queue, row.priority] = row.entry_id
            queue = self.queues.get(row.queue)
            if (
                queue is not None
                and self.config.delivery.spill
                and row.priority < v1.PRIORITY_IMMINENT_PERIL
                and (row.queue in self._spilled or _full(queue, len(row.envelope)))
            ):
                # Beyond the queue's bound: stays in the journal, read back as it drains.
                self._spilled.setdefault(row.queue, _Spill()).add(row.priority, row.entry_id)
                resumed[row.queue] += 1
                continue
            held = self._resume(row)
            if held is None:
                continue
            assert queue is not None
            queue.force(
                held, row.priority, size=held.size, now=now, expires_at=self._local(row.expires_at)
            )
            resumed[row.queue] += 1
        for (name, priority), count in recovered.counts.items():
            unread = count - read[name, priority]
            if unread <= 0 or name not in self.queues:
                continue
            # Not even read (bounded recovery): spilled, after the last copy that was read.
            spill = self._spilled.setdefault(name, _Spill())
            spill.after.setdefault(priority, last_read.get((name, priority), 0))
            spill.counts[priority] += unread
            resumed[name] += unread
        for message_id, record in recovered.origins.items():
            self.tracker.add_origin(_origin_from_row(message_id, record))
        for (adapter, unit), next_reference in recovered.refs.items():
            if adapter in self.adapters:
                self.adapters[adapter].seed_references({unit: next_reference})
        self.presence = PresenceRegistry(
            gateway=self.name,
            nation=self.nation,
            epoch=self.epoch,
            settings=self.config.presence,
        )
        saved = recovered.state.get("presence", {})
        ours = self._restore_presence(saved, now, ours=True)
        self.presence.seed([u.unit for u in self.config.units], now)
        for configured in self.config.units:
            for group in configured.groups:
                self.presence.affiliate(configured.unit, group, now)
        partners = self._restore_presence(saved, now, ours=False)
        alerts = self._restore_alerts(recovered.state.get("alert", {}), now)
        journal.start()
        self.journal = journal
        self.log.info(
            "journal.recovered",
            path=journal.location,
            epoch=self.epoch,
            resumed=dict(resumed),
            origins=len(recovered.origins),
            presence={"ours": ours, "partners": partners},
            alerts=alerts,
        )
        if resumed:
            self._observe("resumed", queues=dict(resumed), epoch=self.epoch)
        return journal

    def _saved_then(self, state: Any, now: float) -> float:
        """When a saved row was taken, on our monotonic clock (never in the future)."""
        saved_at = _finite(state["saved_at"], "saved_at")
        return now - max(self.clock() - saved_at, 0.0)

    def _restore_presence(self, rows: dict[str, Any], now: float, *, ours: bool) -> int:
        """Resume presence as the previous process (or instance) left it; return how many.

        ``ours``: restore our own units (before the configured ones are seeded), else the
        partners' units (after: what does not fit then is skipped, never ours).
        """
        configured = {u.unit for u in self.config.units}
        groups = {g.group for g in self.config.groups}
        restored = 0
        for unit, saved in rows.items():
            if ours != (isinstance(saved, dict) and saved.get("gateway") == self.name):
                continue
            state = saved
            try:
                if ours:
                    if unit not in configured:
                        raise ValueError("no longer one of our configured units")
                    if isinstance(saved["groups"], list):
                        # A group no longer configured is not kept on our units.
                        kept = [g for g in saved["groups"] if g in groups]
                        state = {**saved, "groups": kept}
                self.presence.restore(state, self._saved_then(state, now), now)
            except (ValueError, KeyError, TypeError, PresenceFull) as exc:
                self.counters["state_not_restored"] += 1
                self.log.warning("presence.not_restored", unit=unit, error=str(exc))
                self.presence.mark_unsaved([unit])  # deleted (or rewritten) at the next save
                continue
            restored += 1
        return restored

    def _restore_alerts(self, rows: dict[str, Any], now: float) -> int:
        """Resume the outstanding emergencies (replayed to units back in reach)."""
        restored = 0
        for key, state in rows.items():
            try:
                alert_id = _alert_id(key)
                if not alert_id:
                    raise ValueError("the key is not an alert id")
                then = self._saved_then(state, now)
                expires_at = then + _finite(state["expires_in"], "expires_in")
                if expires_at <= now:
                    raise _Expired(key)
                payload = base64.b64decode(state["envelope"], validate=True)
                v1.Envelope().ParseFromString(payload)  # replayable, or refused now
                delivered = state["delivered_to"]
                if not isinstance(delivered, list):
                    raise TypeError(f"delivered_to: expected a list, got {delivered!r}")
                self.alerts.raise_alert(
                    alert_id,
                    raised_at=then - _finite(state["raised_ago"], "raised_ago"),
                    expires_at=expires_at,
                    group=_name_or_none(state["group"]),
                    unit=_name_or_none(state["unit"]),
                    payload_ref=payload,
                    origin=_name_or_none(state["origin"]),
                    delivered_to=[_name(u) for u in delivered],
                )
            except (ValueError, KeyError, TypeError, binascii.Error, DecodeError) as exc:
                self._unsaved_alerts[key] = None  # deleted at the next save
                if not isinstance(exc, _Expired):
                    self.counters["state_not_restored"] += 1
                    self.log.warning("alert.not_restored", alert=key, error=str(exc))
                continue
            restored += 1
        self._alerts_evicted()
        return restored

    def _alerts_evicted(self) -> None:
        """Alerts evicted from a full ledger: their saved rows go at the next save."""
        for alert_id in self.alerts.take_evicted():
            self._unsaved_alerts[alert_id.hex()] = None

    def _save_state_soon(self, now: float) -> None:
        """Write what changed in presence and outstanding alerts, at most once a second."""
        if self.journal is None or self._saving_state or now < self._next_state_save:
            return
        presence, alerts = self._unsaved_rows(now, _STATE_SAVE_ROWS)
        if not presence and not alerts:
            self.state_saved_through = now
            return
        self._next_state_save = now + _STATE_SAVE_INTERVAL
        self._saving_state = True
        self._spawn(self._save_state(presence, alerts, now), "save_state")

    def _unsaved_rows(
        self, now: float, limit: int | None
    ) -> tuple[list[tuple[str, dict[str, Any] | None]], list[tuple[str, dict[str, Any] | None]]]:
        """Presence and alert rows changed since the last save (at most ``limit`` of each)."""
        wall = self.clock()
        presence = [
            (unit, self._storable(unit, state, wall))
            for unit, state in self.presence.unsaved(now, limit=limit)
        ]
        alerts: list[tuple[str, dict[str, Any] | None]] = []
        for key in list(self._unsaved_alerts)[:limit]:
            del self._unsaved_alerts[key]
            alert = self.alerts.get(_alert_id(key))
            row = None if alert is None else self._alert_row(alert, now)
            alerts.append((key, self._storable(key, row, wall)))
        return presence, alerts

    def _storable(self, key: str, row: dict[str, Any] | None, wall: float) -> dict[str, Any] | None:
        """``row`` stamped with the wall-clock time, or None (delete) if it is not plain JSON."""
        if row is None:
            return None
        row["saved_at"] = wall
        try:
            if "\\u0000" in json.dumps(row, allow_nan=False):
                # PostgreSQL's jsonb refuses NUL: one such row would fail every save.
                raise ValueError("a NUL character")
        except (TypeError, ValueError) as exc:
            self.counters["state_not_saved"] += 1
            self.log.warning("state.not_saved", key=key, error=str(exc))
            return None
        return row

    def _alert_row(self, alert: OutstandingAlert, now: float) -> dict[str, Any]:
        assert isinstance(alert.payload_ref, bytes)
        return {
            "group": alert.group,
            "unit": alert.unit,
            "origin": alert.origin,
            "raised_ago": now - alert.raised_at,
            "expires_in": alert.expires_at - now,
            "envelope": base64.b64encode(alert.payload_ref).decode(),
            "delivered_to": sorted(self.alerts.delivered_to(alert.alert_id)),
        }

    async def _save_state(
        self,
        presence: list[tuple[str, dict[str, Any] | None]],
        alerts: list[tuple[str, dict[str, Any] | None]],
        taken_at: float,
    ) -> None:
        assert self.journal is not None
        try:
            await self.journal.submit(functools.partial(_put_state, presence, alerts))
            self.counters["state_saved"] += len(presence) + len(alerts)
            self.state_saved_through = taken_at
        except Exception as exc:  # offered again; custody does not depend on it
            self.counters["state_save_failed"] += 1
            self.log.warning("state.save_failed", error=str(exc))
            self.presence.mark_unsaved(unit for unit, _ in presence)
            self._unsaved_alerts.update(dict.fromkeys(key for key, _ in alerts))
        finally:
            self._saving_state = False

    def _resume(self, row: JournalEntry) -> Held | None:
        """Rebuild a queued message from its journal row (None if it can no longer go)."""
        held = _held_from_row(row)
        envelope = held.envelope
        if row.queue not in self.queues:
            # Its partner or adapter is no longer configured: it fails back to its sender.
            self.counters["resume_orphaned"] += 1
            self.log.warning("journal.orphaned", queue=row.queue, entry=row.entry_id)
            self._cannot_resume(held, DeliveryStatus.UNKNOWN_DESTINATION, "no longer routed")
            return None
        if row.queue.startswith("local:"):
            adapter = row.queue.removeprefix("local:")
            try:
                deliveries = self._plan(envelope)
            except GatewayError as exc:
                self.counters["resume_unplannable"] += 1
                self.log.warning("journal.unplannable", entry=row.entry_id, error=str(exc))
                code = getattr(exc, "reason_code", None) or DeliveryStatus.DELIVERY_FAILED
                self._cannot_resume(held, code, str(exc))
                return None
            target = row.meta.get("issi")
            held.delivery = next(
                (d for d in deliveries if d.target.adapter == adapter and d.target.issi == target),
                None,
            )
            if held.delivery is None:
                self.counters["resume_unplannable"] += 1
                self._cannot_resume(held, DeliveryStatus.UNKNOWN_DESTINATION, "no longer routed")
                return None
        return held

    def _cannot_resume(self, held: Held, status: int, reason: str) -> None:
        """A journaled copy that can no longer go: FAILED to its sender, then released.

        After a configuration change (a unit, an adapter or a partner removed) it would
        otherwise stay in the journal for good, its sender never told.
        """
        self._unresumable.append((held, status, reason))

    async def _fail_unresumable(self) -> None:
        """Release what :meth:`_cannot_resume` set aside (from the running gateway's loop)."""
        while self._unresumable:
            held, status, reason = self._unresumable.pop(0)
            if held.envelope.HasField("receipt"):  # a receipt that cannot go: nobody to tell
                if held.entry_id is not None:
                    await self._commit_surely(remove=[held.entry_id])
                continue
            await self._fail(held, status, f"cannot be delivered any more: {reason}")

    def _plan(self, envelope: v1.Envelope) -> list[TetraDelivery]:
        """What our radios must send for ``envelope`` (raises GatewayError if impossible)."""
        return plan_tetra_delivery(
            envelope,
            adapters=self._adapter_configs,
            directory=self.directory,
            codebooks=self._codebooks,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Run the gateway in a background task for the duration of the block."""
        task = asyncio.create_task(self.run(), name=f"gateway[{self.name}]")
        self.task = task
        try:
            yield self
        finally:
            for running in (task, *self._background):
                running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # A commit that becomes durable while the gateway stops may start work of its
            # own (a radio's report, an MCData notification): it is cancelled too.
            while pending := [t for t in self._background if not t.done()]:
                for background in pending:
                    background.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def wait_ready(self, seconds: float = 10.0) -> None:
        """Wait until the journal is open and every adapter is connected."""
        async with asyncio.timeout(seconds):
            while self.journal is None:  # noqa: ASYNC110 - opening is synchronous and short
                await asyncio.sleep(0.01)
        for adapter in self.adapters.values():
            await adapter.wait_connected(seconds)
        for mcdata in self.mcdata.values():
            await mcdata.wait_connected(seconds)

    def _observe(self, kind: str, message_id: bytes | None = None, **fields: Any) -> None:
        observation = Observation(
            kind=kind, gateway=self.name, message_id=message_id, fields=fields
        )
        for observer in self.observers:
            observer(observation)

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def wall_time(self, monotonic: float) -> float:
        """The wall-clock time of a local (monotonic) timestamp, e.g. a unit's last-heard."""
        return monotonic - self.monotonic() + self.clock()

    def _local(self, wall: float | None) -> float | None:
        """A wall-clock deadline (from an envelope or the journal) on the monotonic clock."""
        return None if wall is None else wall - self.clock() + self.monotonic()

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

    # ------------------------------------------------------------------ custody

    async def _commit(self, **change: Unpack[_Change]) -> bool:
        """Make one change of custody durable, then queue what it added.

        ``then(added)`` runs once the commit is durable, after the copies are queued, even
        if the caller was cancelled meanwhile (``added`` is False for a duplicate): work
        that must follow custody (acknowledging it, remembering an alert) goes there.

        Returns:
            False (and changes nothing) if ``seen`` was already recorded (a duplicate),
            or if ``follows`` was not (the message waits for it: ``gap`` ran).

        Raises:
            JournalError: the journal cannot be written; nothing was taken into custody.
        """
        result = await asyncio.shield(self._submit_commit(**change))
        return result is not None and result is not _GAP

    def _submit_commit(
        self,
        *,
        add: Sequence[Held] = (),
        remove: Sequence[int] = (),
        seen: bytes | None = None,
        follows: bytes | None = None,
        origin: OriginRecord | None = None,
        drop_origins: Sequence[bytes] = (),
        then: Callable[[bool], None] | None = None,
        gap: Callable[[], None] | None = None,
    ) -> asyncio.Future[list[int] | None]:
        """Submit :meth:`_commit`'s change; the future has the new entry ids (None: a duplicate).

        With ``follows`` (a seen key), the change is made only if that one is recorded
        already; otherwise nothing changes, the future has :data:`_GAP` and ``gap()``
        runs (in commit order, before the ``then`` of later commits).

        Raises:
            JournalError: the journal is not open.
        """
        journal = self.journal
        if journal is None:
            raise JournalError("the journal is not open")
        now = self.clock()
        rows = [
            NewEntry(
                message_id=held.envelope.message_id,
                queue=held.queue,
                priority=held.envelope.priority,
                envelope=held.envelope.SerializeToString(),
                expires_at=_expires_at(held.envelope),
                meta=held.meta,
            )
            for held in add
        ]
        origin_row = _origin_row(origin) if origin is not None else None

        def op(j: JournalStore) -> list[int] | None:
            if follows is not None and not j.is_seen(follows):
                if seen is None or not j.is_seen(seen):
                    return _GAP
                return None  # a copy of one in custody already: a duplicate
            if seen is not None and not j.mark_seen(seen, now):
                return None
            if remove:
                j.remove(remove)
            if origin is not None and origin_row is not None:
                j.put_origin(origin.message_id, origin_row, now)
            for message_id in drop_origins:
                j.drop_origin(message_id)
            return j.add(rows)

        urgent = any(h.envelope.priority >= v1.PRIORITY_IMMINENT_PERIL for h in add)
        committed = journal.submit_nowait(op, urgent=urgent)
        # Queued when durable even if the caller is cancelled meanwhile (a link restart in
        # the middle of a batch): a copy in the journal but in no queue would wait for the
        # next restart. Commits settle in order, so copies are queued in custody order.
        committed.add_done_callback(functools.partial(self._committed, add, then, gap))
        return committed

    def _committed(
        self,
        add: Sequence[Held],
        then: Callable[[bool], None] | None,
        gap: Callable[[], None] | None,
        committed: asyncio.Future[list[int] | None],
    ) -> None:
        """Queue the copies a commit added, then run ``then`` (see :meth:`_commit`)."""
        if committed.cancelled() or committed.exception() is not None:
            return
        if self.journal is None:
            return  # stopping: the copies are in the journal, and queued at the next start
        ids = committed.result()
        if ids is _GAP:
            if gap is not None:
                try:
                    gap()
                except Exception:
                    self.log.exception("custody.hold_failed")
            return
        for held, entry_id in zip(add, ids or (), strict=ids is not None):
            held.entry_id = entry_id
            try:
                self._enqueue(held)
            except Exception:  # a bug must not keep the other copies out of their queues
                self.log.exception("custody.enqueue_failed", queue=held.queue)
        if then is not None:
            try:
                then(ids is not None)
            except Exception:
                self.log.exception("custody.follow_up_failed")

    async def _take_custody(
        self, envelope: v1.Envelope, nations: Sequence[str], origin: OriginRecord
    ) -> None:
        """Journal a message from one of our systems for each partner it goes to.

        Raises:
            DeliveryRefused: the journal cannot take it (0x40): nothing was accepted.
        """
        origin.nations = tuple(nations)
        copies = [Held(envelope=envelope, entry_id=None, queue=_egress(nations[0]))]
        for nation in nations[1:]:  # a group carried by several partners: one copy each
            copy = v1.Envelope()
            copy.CopyFrom(envelope)
            copies.append(Held(envelope=copy, entry_id=None, queue=_egress(nation)))

        def taken(_added: bool) -> None:
            if not all(c.spilled for c in copies):
                # A spilled message costs no memory: its record is read back from the
                # journal when a receipt comes (see _origins_for).
                self.tracker.add_origin(origin)
            self.counters["accepted"] += 1
            self._observe(
                "accepted",
                envelope.message_id,
                origin=envelope.origin.unit,
                destination=_describe_destination(envelope),
                body=envelope.WhichOneof("body"),
                priority=v1.Priority.Name(envelope.priority),
                summary=_summary(envelope),
                adapter=origin.adapter,  # control-room API: metrics per adapter
                envelope=envelope,  # control-room API: audit with payload (only when enabled)
            )

        try:
            await self._commit(add=copies, origin=origin, then=taken)
        except JournalError as exc:
            # The journal's error names its file or database: our log has it, not the
            # sender (an MCX system reads the refusal in a SIP Warning).
            self.log.error("custody.refused", error=str(exc))
            raise DeliveryRefused(
                "cannot take custody: the journal cannot be written now",
                reason_code=DeliveryStatus.NETWORK_OVERLOAD,
            ) from exc

    async def _commit_surely(
        self,
        *,
        add: Sequence[Held] = (),
        remove: Sequence[int] = (),
        seen: bytes | None = None,
        drop_origins: Sequence[bytes] = (),
        then: Callable[[bool], None] | None = None,
    ) -> bool:
        """Record something that already happened: retried until the journal takes it.

        Used after a radio send, a receipt or an acknowledgement: giving up would
        make the journal disagree with the world. While the journal cannot be
        written (disk full, I/O error), the caller waits here: that is the
        backpressure, and new custody is refused meanwhile. ``then`` runs once, after
        the commit that took it (see :meth:`_commit`).
        """
        while True:
            try:
                return await self._commit(
                    add=add, remove=remove, seen=seen, drop_origins=drop_origins, then=then
                )
            except JournalError as exc:
                await self._journal_trouble(exc)

    async def _read_surely(self, op: Callable[[JournalStore], _R]) -> _R:
        """Read what the journal holds, retried until it answers (see _commit_surely)."""
        while True:
            journal = self.journal
            if journal is None:
                raise JournalError("the journal is not open")
            try:
                return await journal.submit(op)
            except JournalError as exc:
                await self._journal_trouble(exc)

    async def _journal_trouble(self, exc: JournalError) -> None:
        self.journal_error = (self.monotonic(), str(exc))  # /readyz: not ready meanwhile
        self.counters["journal_errors"] += 1
        self.log.error("journal.write_failed", error=str(exc))
        self._observe("journal_error", reason=str(exc))
        await asyncio.sleep(_JOURNAL_RETRY)

    def _enqueue(self, held: Held) -> None:
        """Put a journaled copy (or an ack) in its queue; shed what it displaces."""
        queue = self.queues[held.queue]
        envelope = held.envelope
        now = self.monotonic()
        expires_at = self._local(_expires_at(envelope))
        if (
            held.entry_id is not None
            and held.queue in self._spilled
            and envelope.priority < v1.PRIORITY_IMMINENT_PERIL
        ):
            # The queue is spilling: every journaled non-urgent copy for it waits in the
            # journal, so the spilled rows stay exactly the newest ones of each class
            # (receipts included).
            self._spill(held.queue, envelope.priority, held)
        elif envelope.HasField("receipt"):
            # Receipts and acks are small and owed: never refused, never shed.
            queue.force(held, envelope.priority, size=held.size, now=now, expires_at=expires_at)
        elif held.entry_id is None and held.delivery is None:
            # Presence and canaries: soft state, sent again anyway. They never displace a
            # message; a full queue drops them (and a canary that is dropped says so).
            if len(queue) >= queue.max_items or queue.bytes + held.size > queue.max_bytes:
                self.counters["shed_control"] += 1
                return
            queue.offer(held, envelope.priority, size=held.size, now=now, expires_at=expires_at)
        elif self._spills(held, queue):
            self._spill(held.queue, envelope.priority, held)
        elif self.config.delivery.spill and envelope.priority >= v1.PRIORITY_IMMINENT_PERIL:
            # Urgent copies are never spilled nor shed, and displace nothing.
            queue.force(held, envelope.priority, size=held.size, now=now, expires_at=expires_at)
        else:
            try:
                evicted = queue.offer(
                    held, envelope.priority, size=held.size, now=now, expires_at=expires_at
                )
            except QueueFull as exc:
                evicted = []
                self.log.info("queue.full", queue=held.queue, error=str(exc))
                self._spawn(self._shed(held, "shed: destination queue full"), "shed")
            for victim in evicted:
                self._spawn(
                    self._shed(victim.item, "shed: queue full of more urgent traffic"), "shed"
                )
        if envelope.priority >= v1.PRIORITY_IMMINENT_PERIL and held.queue.startswith("egress:"):
            self._window_free[held.queue.removeprefix("egress:")].set()

    def _spills(self, held: Held, queue: AsyncScheduler[Held]) -> bool:
        """True if ``held`` (journaled) stays in the journal only instead of its queue."""
        if not self.config.delivery.spill or held.entry_id is None:
            return False
        if held.envelope.priority >= v1.PRIORITY_IMMINENT_PERIL:
            return False
        return _full(queue, held.size)

    def _spill(self, name: str, priority: int, held: Held) -> None:
        assert held.entry_id is not None
        spill = self._spilled.get(name)
        if spill is None:
            spill = self._spilled[name] = _Spill()
            self.log.warning("queue.spilling", queue=name, queued=len(self.queues[name]))
        spill.add(priority, held.entry_id)
        held.spilled = True
        self.counters["spilled"] += 1

    def spilled(self, name: str) -> int:
        """Copies of queue ``name`` waiting in the journal only."""
        spill = self._spilled.get(name)
        return spill.total if spill is not None else 0

    def _unspill_soon(self, name: str) -> None:
        """Read spilled copies back once the queue has drained to half its bound."""
        spill = self._spilled.get(name)
        if spill is None or spill.loading or self.journal is None:
            return
        queue = self.queues[name]
        if len(queue) > queue.max_items // 2 or queue.bytes > queue.max_bytes // 2:
            return
        spill.loading = True
        self._spawn(self._unspill(name, spill), f"unspill[{name}]")

    async def _unspill(self, name: str, spill: _Spill) -> None:
        queue = self.queues[name]
        try:
            for priority in sorted(spill.after, reverse=True):  # most urgent class first
                room = min(queue.max_items - len(queue), _UNSPILL_BATCH)
                if room <= 0:
                    break
                journal = self.journal
                if journal is None:
                    return
                rows = await journal.submit(
                    functools.partial(_entries_after, name, priority, spill.after[priority], room)
                )
                now = self.monotonic()
                full = False
                for row in rows:
                    held = self._resume(row)
                    if held is not None and _full(queue, held.size) and len(queue):
                        full = True  # no room for it after all: it stays spilled, in order
                        break
                    spill.after[priority] = row.entry_id
                    spill.counts[priority] -= 1
                    self.counters["unspilled"] += 1
                    if held is not None:
                        queue.force(
                            held,
                            row.priority,
                            size=held.size,
                            now=now,
                            expires_at=self._local(row.expires_at),
                        )
                if not full and len(rows) < room:
                    # The journal holds no more of this class. A copy committed after this
                    # read is enqueued after this decision (futures resolve in commit order)
                    # and so finds the class no longer spilling, or spills with a new cursor.
                    spill.drained(priority)
        finally:
            spill.loading = False
            if not spill.after and self._spilled.get(name) is spill:
                del self._spilled[name]
                self.log.info("queue.spill_drained", queue=name)

    async def _shed(self, held: Held, reason: str) -> None:
        """A queue had no room: fail the message back to its sender and release it."""
        if held.entry_id is None and not held.envelope.HasField("receipt"):
            self.counters["shed_control"] += 1  # presence or canary: soft state, resent anyway
            return
        self.counters["shed"] += 1
        self.log.warning(
            "message.shed", message_id=held.envelope.message_id.hex(), queue=held.queue
        )
        await self._fail(held, DeliveryStatus.DESTINATION_QUEUE_FULL, reason)

    async def _fail(self, held: Held, status: int, reason: str) -> None:
        """Give up on a copy in custody: tell its sender, then release it."""
        await self._fail_many([held], status, reason)

    async def _fail_many(
        self, helds: Sequence[Held], status: int, reason: str, *, remove: Sequence[int] = ()
    ) -> None:
        """Give up on copies in custody: tell their senders, then release them.

        ``remove``: further journal rows released in the same commit.

        Our own messages on their way out are failed back to their radios or MCX users
        right after the commit that releases them and ends their origin records; a
        partner's messages get a FAILED receipt, journaled in that same commit.
        """
        ours: list[v1.DeliveryReceipt] = []
        receipts: list[Held] = []
        for held in helds:
            envelope = held.envelope
            if envelope.origin.nation == self.nation and held.queue.startswith("egress:"):
                ours.append(
                    v1.DeliveryReceipt(
                        message_id=envelope.message_id,
                        state=v1.DELIVERY_STATE_FAILED,
                        tetra_status=status,
                        reason=reason,
                    )
                )
            elif receipt := self._receipt(
                envelope, v1.DELIVERY_STATE_FAILED, tetra_status=status, reason=reason
            ):
                receipts.append(receipt)
        removed = [held.entry_id for held in helds if held.entry_id is not None]
        if not ours:
            await self._commit_surely(add=receipts, remove=[*removed, *remove])
            return
        # Our copies, their origin records and the partners' receipts go in one commit, and
        # the reports to the radios follow it: a stop between two commits would leave
        # origin records waiting for a receipt that no copy can bring, and radios without
        # their failure reports.
        token = self.tracker.begin_read()
        try:
            records = await self._origins_for([r.message_id for r in ours], token)

            def report(_added: bool) -> None:
                final = [
                    r.message_id
                    for r in ours
                    if self._take_receipt(r, r.message_id, records, token, None)
                ]
                self.tracker.dropped(final)

            await self._commit_surely(
                add=receipts,
                remove=[*removed, *remove],
                drop_origins=[r.message_id for r in ours if r.message_id in records],
                then=report,
            )
        finally:
            self.tracker.end_read(token)

    # ------------------------------------------------------------------ inbound from radios

    def _on_link_state(self, adapter: str, event: LinkStateChanged) -> None:
        self.counters[f"link_{event.state.name.lower()}"] += 1
        self.log.info("adapter.link", adapter=adapter, state=event.state.name, reason=event.reason)
        self._observe("link", adapter=adapter, state=event.state.name, reason=event.reason)

    @staticmethod
    def _sink(
        adapter: str, handler: Callable[[str, Any], Coroutine[Any, Any, None]]
    ) -> Callable[[Any], Coroutine[Any, Any, None]]:
        """The coroutine an adapter hands its events to: ``handler(adapter, event)``."""

        async def sink(event: Any) -> None:
            await handler(adapter, event)

        return sink

    def _on_rejected(self, adapter: str, reason: str, source: str | None) -> None:
        self.counters["rejected_input"] += 1
        self._observe("rejected", adapter=adapter, reason=reason, source=source)

    async def _on_adapter_event(self, adapter: str, event: AdapterEvent) -> None:
        match event:
            case LinkStateChanged():
                self._on_link_state(adapter, event)
            case SdsRejected():
                self._on_rejected(adapter, event.reason, event.source)
            case SdsReceived() if event.source == self._adapter_configs[adapter].radio_issi:
                self._on_adapter_canary(adapter, event)
            case SdsReceived(content=SdsReport() | ShortReport()):
                self._heard(adapter, event)
                await self._on_unit_report(adapter, event)
            case SdsReceived():
                self._heard(adapter, event)
                # Custody needs an fsync: never make the radio's read loop wait for it (the
                # loop also reads the radio's answers to our commands).
                self._spawn(self._on_sds(adapter, event), "accept")

    def _heard(self, adapter: str, event: SdsReceived) -> None:
        """Presence: any SDS from one of our units renews its lease (and may affiliate it)."""
        unit = self.directory.local_unit(adapter, event.source)
        if unit is None:
            return
        now = self.monotonic()
        group = self.directory.group_by_gssi(adapter, event.destination)
        content = event.content
        try:
            events = [self.presence.heard(unit.unit, now)]
            if group is not None:
                events.append(self.presence.affiliate(unit.unit, group.group, now))
            if (
                isinstance(content, LocationReport)
                and content.latitude is not None
                and content.longitude is not None
            ):
                events.append(
                    self.presence.location(unit.unit, content.latitude, content.longitude, now, now)
                )
        except PresenceFull as exc:
            self._presence_full(unit.unit, exc)
            return
        for presence_event in events:
            self._replay_alerts(presence_event)

    def _heard_unit(self, unit: str) -> None:
        """Presence: traffic from one of our units (MCData) renews its lease."""
        try:
            event = self.presence.heard(unit, self.monotonic())
        except PresenceFull as exc:
            self._presence_full(unit, exc)
            return
        self._replay_alerts(event)

    def _presence_full(self, unit: str, exc: PresenceFull) -> None:
        """The registry has no room for one of our units: its traffic still goes through."""
        self.counters["presence_full"] += 1
        self.log.error("presence.full", unit=unit, error=str(exc))

    def _replay_alerts(self, event: PresenceEvent) -> None:
        """TS 24.379 §12.1.3.4: outstanding emergencies go again to a unit back in reach."""
        now = self.monotonic()
        for alert in self.alerts.replays(event, now):
            self._unsaved_alerts[alert.alert_id.hex()] = None  # its delivered units changed
            delivered_at = self._alert_deliveries.get((alert.alert_id, event.unit))
            if delivered_at is not None and now - delivered_at < self.config.presence.lease:
                # Delivered live within one lease: the unit cannot have been out of reach since.
                self.alerts.mark_delivered(alert.alert_id, event.unit)
                continue
            if not isinstance(alert.payload_ref, bytes):
                continue
            envelope = v1.Envelope()
            envelope.ParseFromString(alert.payload_ref)
            envelope.destination.unit.nation = self.nation
            envelope.destination.unit.unit = event.unit
            try:
                deliveries = self._plan(envelope)
            except GatewayError as exc:
                self.log.warning("alert.replay_impossible", unit=event.unit, error=str(exc))
                continue
            self.counters["alerts_replayed"] += 1
            self.log.warning(
                "alert.replay",
                unit=event.unit,
                alert=alert.alert_id.hex(),
                came_back=event.came_back,
            )
            self._observe("alert_replay", alert.alert_id, unit=event.unit)
            copies = [
                Held(
                    envelope=envelope,
                    entry_id=None,
                    queue=_local(d.target.adapter),
                    delivery=d,
                    meta={"issi": d.target.issi, "replay": True, "unit": event.unit},
                )
                for d in deliveries
            ]
            self._spawn(self._commit_quietly(copies), "replay")

    async def _commit_quietly(self, copies: list[Held]) -> None:
        await self._commit(add=copies)

    async def _on_sds(self, adapter_name: str, event: SdsReceived) -> None:
        refused = await self._accept_sds(adapter_name, event)
        if refused is not None:
            await self._refuse_inbound(adapter_name, event, refused)
            return
        text = event.content if isinstance(event.content, TextSds) else None
        if (
            self.config.delivery.stored_report
            and text is not None
            and text.message_reference is not None
            and text.delivery_report_request
        ):
            # Custody is durable: tell the radio its message is stored (SDS-TL 0x21).
            await self._report_to_radio(
                adapter_name,
                event.source,
                text.protocol_id,
                text.message_reference,
                DeliveryStatus.STORED,
            )

    async def _accept_sds(self, adapter_name: str, event: SdsReceived) -> DeliveryRefused | None:
        """Take a radio's SDS into custody; the refusal if it cannot be (nothing sent yet)."""
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
            nations = self._destination_nations(envelope)
        except DeliveryRefused as exc:
            return exc
        text = event.content if isinstance(event.content, TextSds) else None
        origin = OriginRecord(
            message_id=message_id,
            adapter=adapter_name,
            source_issi=event.source,
            protocol_id=text.protocol_id if text else None,
            message_reference=text.message_reference if text else None,
            report_request=text.delivery_report_request if text else 0,
            priority=envelope.priority,
        )
        try:
            await self._take_custody(envelope, nations, origin)
        except DeliveryRefused as exc:
            return exc
        return None

    def _destination_nations(self, envelope: v1.Envelope) -> list[str]:
        """Partners an envelope goes to: the unit's, or every one carrying the group.

        A partner is a country, or one gateway of a split country (:meth:`_member_for`).
        """
        which = envelope.destination.WhichOneof("target")
        if which == "unit":
            if envelope.destination.unit.nation == self.nation:
                raise DeliveryRefused(
                    "the destination is a unit of our own country",
                    reason_code=DeliveryStatus.DESTINATION_PROHIBITED,
                )
            nations = [self._member_for(envelope.destination.unit)]
        else:
            group = self.directory.group_by_name(envelope.destination.group.group)
            nations = [n for n in group.nations if member_nation(n) != self.nation] if group else []
            if not nations:
                raise DeliveryRefused(
                    "the group is not carried by any partner country",
                    reason_code=DeliveryStatus.UNKNOWN_DESTINATION,
                )
        for nation in nations:
            if _egress(nation) not in self.queues:
                raise DeliveryRefused(
                    f"{nation} is not a partner of this gateway",
                    reason_code=DeliveryStatus.DESTINATION_PROHIBITED,
                )
        return nations

    def _member_for(self, unit: v1.Party) -> str:
        """The partner gateway that serves ``unit``.

        A country that runs one gateway is one partner. Of a split country's gateways
        (``FR``, ``FR-2``, ...), in order: the one our configuration names for the unit (an
        alias's ``member``), the one the unit's presence last came from, the one named like
        the country.
        """
        nation = unit.nation
        members = self._members_of.get(nation, ())
        if len(members) <= 1:
            return members[0] if members else nation  # not a partner: refused by the caller
        member = self.directory.alias_member(unit.unit)
        if not member:
            # The gateway the registry holds the unit's presence from (kept with the
            # presence across restarts); it follows the registry's own choice between
            # conflicting updates.
            held = self.presence.get(unit.unit)
            if held is not None and held.nation == nation:
                member = held.member or nation
        if member and _egress(member) in self.queues:
            return member
        if _egress(nation) in self.queues:
            return nation
        raise DeliveryRefused(
            f"no gateway of {nation} is known to serve {unit.unit} (its presence has not "
            "come yet, and no alias names one)",
            reason_code=DeliveryStatus.UNKNOWN_DESTINATION,
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
            await self._report_to_radio(
                adapter, event.source, content.protocol_id, content.message_reference, reason_code
            )

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
        queue = self.queues[_egress(nation)]
        window_free = self._window_free[nation]
        window = self.config.delivery.window
        sends = asyncio.Semaphore(min(window, _MAX_CONCURRENT_SENDS))
        while True:
            inflight = self._inflight[nation]
            while len(inflight) >= window and not _urgent_waiting(queue):
                window_free.clear()
                await window_free.wait()
            entry = await queue.get(self.monotonic)
            self._unspill_soon(_egress(nation))
            held = entry.item
            envelope = held.envelope
            if self.member != self.nation:
                envelope.origin_member = self.member  # where receipts about it come back
            if envelope.origin.nation == self.nation and not envelope.HasField("receipt"):
                del envelope.trace[:]
                envelope.trace.add(
                    gateway=self.name,
                    nation=self.nation,
                    received_at_us=envelope.created_at_us,
                    forwarded_at_us=self._now_us(),
                )
            if held.entry_id is not None and not envelope.HasField("receipt"):
                envelope.after = self._follows(nation, entry)
            payload = envelope.SerializeToString()
            if held.entry_id is not None:
                # In flight from now: the partner's acknowledgement may overtake the
                # broker's PUBACK.
                inflight[envelope.message_id] = _InFlight(
                    entry=entry, nation=nation, deadline=self.monotonic() + self._ack_timeout
                )
            await sends.acquire()
            if self._probing[nation]:
                # After a failure, one send at a time until one gets through.
                await self._send_one(nation, entry, payload, sends)
                if self._probing[nation]:
                    await asyncio.sleep(_RETRY_DELAY)
            else:
                # Sends run concurrently (up to the window) so that the link can batch them.
                self._spawn(self._send_one(nation, entry, payload, sends), f"send[{nation}]")

    def _follows(self, nation: str, entry: Entry[Held]) -> bytes:
        """The message in flight to ``nation`` that ``entry``'s must follow (b"": none).

        See :mod:`gateway.ordering`; urgent messages follow nothing.
        """
        envelope = entry.item.envelope
        if envelope.priority >= v1.PRIORITY_IMMINENT_PERIL:
            return b""
        pair = (envelope.origin.unit, envelope.destination.SerializeToString(), entry.priority)
        return self._chains[nation].follow(
            pair, entry.seq, envelope.message_id, functools.partial(self._in_flight_at, nation)
        )

    def _in_flight_at(self, nation: str, message_id: bytes) -> int | None:
        """The queue order of ``message_id`` if it is in flight to ``nation``."""
        found = self._inflight[nation].get(message_id)
        return None if found is None else found.entry.seq

    async def _send_one(
        self, nation: str, entry: Entry[Held], payload: bytes, sends: asyncio.Semaphore
    ) -> None:
        """Publish one envelope; on failure queue it again where it was."""
        envelope = entry.item.envelope
        try:
            await self.link.send(nation, payload)
            self._probing[nation] = False
            if self._send_failures.pop(nation, None) is not None:
                self.log.info("federation.send_recovered", partner=nation)
            if entry.item.entry_id is not None and not envelope.HasField("receipt"):
                self.counters["forwarded"] += 1
                self._observe(
                    "forwarded",
                    envelope.message_id,
                    partner=nation,
                    priority=_enum_name(v1.Priority, envelope.priority),
                    backlog=len(self.queues[_egress(nation)]),
                )
        except GatewayError as exc:
            message_id = envelope.message_id
            inflight = self._inflight[nation].get(message_id)
            released = False
            if inflight is not None and inflight.entry is entry:
                del self._inflight[nation][message_id]
                self._window_free[nation].set()
            elif entry.item.entry_id is not None and inflight is None:
                # It was in flight and is no more: the partner's acknowledgement overtook
                # the failure (it has the copy, which we released), or a retransmission
                # took it back into the queue.
                released = True
            queue = self.queues[_egress(nation)]
            if not released and not queue.holds(entry):
                queue.push_front(entry)  # keeps its place in the order
            self._probing[nation] = True
            self.counters[f"federation_retry_{nation}"] += 1
            self._send_failed(nation, str(exc))
        finally:
            sends.release()

    def _send_failed(self, nation: str, error: str) -> None:
        """Log a failed send: the first of a run at once, then one summary a minute.

        While a partner is away the egress loop probes it again and again; a warning per
        probe would bury everything else in the log (``federation_retry_<NATION>`` counts
        every one).
        """
        now = self.monotonic()
        unlogged, warned_at = self._send_failures.get(nation, (0, -math.inf))
        if now - warned_at < _SEND_FAILURE_LOG_INTERVAL:
            self._send_failures[nation] = (unlogged + 1, warned_at)
            return
        self.log.warning(
            "federation.send_failed", partner=nation, error=error, failures_since=unlogged
        )
        self._send_failures[nation] = (0, now)

    def _partner_restarted(self, nation: str) -> None:
        """``nation``'s gateway restarted (or another instance took over): resend in order.

        What it had not acknowledged may have died with its previous process before its
        custody. Sending it again at once, ahead of anything newer, keeps the order per
        origin and destination (a retransmission after the ack timeout would come after
        newer messages); copies that did reach its custody are recognised as duplicates.
        """
        inflight = self._inflight.get(nation)
        if not inflight:
            return
        queue = self.queues[_egress(nation)]
        for message_id in list(inflight):
            queue.push_front(inflight.pop(message_id).entry)
        self.counters["resent_after_partner_restart"] += 1
        self._window_free[nation].set()
        self.log.info("federation.partner_restarted", partner=nation, resent=len(queue))

    async def _on_acks(self, sender: str, message_ids: Sequence[bytes]) -> None:
        """The partner has these messages of ours in its custody: release our copies."""
        inflight = self._inflight[sender]
        released: list[Held] = []
        for message_id in message_ids:
            found = inflight.pop(message_id, None)
            if found is None:
                self.counters["acks_unmatched"] += 1
            else:
                released.append(found.entry.item)
        if not released:
            return
        self._window_free[sender].set()
        removed = [held.entry_id for held in released if held.entry_id is not None]
        if removed:
            await self._commit_surely(remove=removed)
        self.counters["acked"] += len(released)
        for held in released:
            if not held.envelope.HasField("receipt"):
                # The partner gateway has it in custody: the message is FORWARDED.
                self._observe("custody", held.envelope.message_id, partner=sender)

    def _ack(self, sender: str, envelope: v1.Envelope, *, again: bool = False) -> None:
        """Tell the partner its message is in our custody (or was already).

        Acknowledgements bypass the egress queue and its send window: queued behind
        messages that wait for the partner's acknowledgements, they would make both
        gateways wait for each other until every window timed out. One that is lost is
        not a loss: the partner sends its message again and gets a new acknowledgement.
        Those due together (a partner's batch is taken in at once) go in one envelope;
        urgent messages' acknowledgements apart from the others. A copy received ``again``
        is acknowledged alone: its sender may not know acknowledgements of several
        (``also_accepted``) and have kept it for that reason.
        """
        if self._acks_sending[sender] >= _MAX_ACKS_SENDING:
            # A partner flooding us cannot make us hold unbounded work: it will send
            # again and be acknowledged then.
            self.counters["acks_not_sent"] += 1
            return
        self._acks_sending[sender] += 1
        if again:  # alone, and at once: many may come back together after a restart
            self._spawn(self._send_ack(sender, [envelope]), f"ack[{sender}]")
            return
        key = (sender, envelope.priority >= v1.PRIORITY_IMMINENT_PERIL)
        due = self._acks_due.get(key)
        if due is None:
            due = self._acks_due[key] = []
            self._spawn(self._send_acks(key, due), f"ack[{sender}]")
        due.append(envelope)

    async def _send_acks(self, key: tuple[str, bool], due: list[v1.Envelope]) -> None:
        """Send the acknowledgements ``due`` for ``key``, many per envelope, until none is."""
        sender, _urgent = key
        try:
            while due:
                about = due[:_ACKS_PER_ENVELOPE]
                del due[: len(about)]
                await self._send_ack(sender, about)
        finally:
            del self._acks_due[key]
            self._acks_sending[sender] -= len(due)  # left only if cancelled (a stop)

    async def _send_ack(self, sender: str, about: list[v1.Envelope]) -> None:
        """Acknowledge ``about`` to ``sender`` in one receipt."""
        ack = self._receipt_envelope(about[0], v1.DELIVERY_STATE_ACCEPTED)
        ack.receipt.also_accepted.extend(e.message_id for e in about[1:])
        try:
            await self.link.send(sender, ack.SerializeToString())
        except GatewayError as exc:
            self.counters["acks_not_sent"] += len(about)
            self.log.info("federation.ack_not_sent", partner=sender, error=str(exc))
        else:
            self.counters["acks_sent"] += len(about)
        finally:
            self._acks_sending[sender] -= len(about)

    # ------------------------------------------------------------------ federation inbound

    async def _on_federation(
        self, sender: str, payload: bytes, *, held: Waiting | None = None, follow: bool = True
    ) -> None:
        """Take in one envelope from ``sender``.

        ``held``: the message was held back for order (:mod:`gateway.ordering`) and is
        released now: it was admitted when it came. ``follow=False`` takes it in without
        waiting any longer for the one it follows (:meth:`_held_too_long`).
        """
        envelope = v1.Envelope()
        try:
            envelope.ParseFromString(payload)
        except DecodeError as exc:
            self.counters["federation_malformed"] += 1
            self.log.warning(
                "federation.malformed", sender=sender, size=len(payload), error=str(exc)
            )
            return
        origin_unit = envelope.origin.unit
        nation = member_nation(sender)
        if _egress(sender) not in self.queues and (
            nation == self.nation or nation in self._members_of
        ):
            # A gateway of our country, or of a partner's, that our file does not list.
            self.counters["federation_misattributed"] += 1
            self.log.warning(
                "federation.unlisted_gateway",
                sender=sender,
                hint=f"add {sender} to federation."
                + ("siblings" if nation == self.nation else "partners"),
            )
            return
        if (
            envelope.origin.nation != nation
            or (envelope.origin_member or nation) != sender
            or _egress(sender) not in self.queues
            or (origin_unit and not origin_unit.startswith(f"{nation.lower()}."))
        ):
            # A partner speaks for its own country's units only, and one gateway of a
            # split country for the messages it sent.
            self.counters["federation_misattributed"] += 1
            self.log.warning(
                "federation.misattributed", sender=sender, origin=envelope.origin.nation
            )
            return
        body = envelope.WhichOneof("body")
        if nation == self.nation and body not in ("presence", "canary"):
            # Another gateway of our country shares its units' presence, nothing else.
            self.counters["federation_misattributed"] += 1
            self.log.warning("federation.sibling_message_refused", sender=sender, body=body)
            return
        if body not in ("presence", "canary") and not 0 < len(envelope.message_id) <= 64:
            # Copies are told apart by their identity: without one, a message would be
            # taken for a copy of another (or make later ones look like copies of it).
            self.counters["federation_malformed"] += 1
            self.log.warning(
                "federation.malformed",
                sender=sender,
                size=len(payload),
                error=f"message identity of {len(envelope.message_id)} bytes",
            )
            return
        if body == "receipt":
            await self._on_partner_receipt(sender, envelope)
            return
        if body == "presence":
            self._on_partner_presence(sender, envelope)
            return
        if body == "canary":
            self._on_partner_canary(sender, envelope)
            return
        await self._take_in(sender, envelope, payload, held=held, follow=follow)

    async def _take_in(
        self,
        sender: str,
        envelope: v1.Envelope,
        payload: bytes,
        *,
        held: Waiting | None,
        follow: bool,
    ) -> None:
        """Take a partner's message into custody (see :meth:`_on_federation`)."""
        seen = _seen_key(sender, envelope.message_id)
        # Admitted once, when it came: released from the hold, or a copy of one held.
        admitted = held is not None or seen in self._held_back
        follows: bytes | None = None
        if (
            follow
            and envelope.after
            and envelope.after != envelope.message_id
            and envelope.priority < v1.PRIORITY_IMMINENT_PERIL  # an emergency never waits
        ):
            follows = _seen_key(sender, envelope.after)
            if held is not None:
                follows = held.follows  # the latest copy's predecessor (see HeldBack.hold)
            elif follows == self._held_back.follows_of(seen):
                # Another copy of one held back: the one it follows is still on its way.
                self._hold_back(sender, seen, follows, payload)
                return
            # A copy of one held back may name another predecessor (the first is gone at
            # the sender): the journal says whether that one is in custody already.
        envelope.ClearField("after")  # a field of this hop, not of the message
        # Time spent held back counts: it neither lengthens the validity nor hides the
        # arrival from the trace.
        held_us = 0 if held is None else round((self.monotonic() - held.arrived) * 1e6)
        self._rebase_expiry(envelope, held_us)
        envelope.trace.add(
            gateway=self.name, nation=self.nation, received_at_us=self._now_us() - held_us
        )
        if not admitted:
            refusal = self._admission(sender, envelope, len(payload))
            if refusal is not None:
                await self._refuse_from_partner(sender, envelope, refusal)
                return
        try:
            deliveries = self._plan(envelope)
        except GatewayError as exc:  # refused, or a partner value our radios cannot carry
            await self._refuse_from_partner(sender, envelope, exc)
            return
        copies = [
            Held(
                envelope=envelope,
                entry_id=None,
                queue=_local(d.target.adapter),
                delivery=d,
                meta={"issi": d.target.issi},
            )
            for d in deliveries
        ]
        body = envelope.WhichOneof("body")

        def taken(added: bool) -> None:
            if added:
                self.counters["accepted_from_partner"] += 1
                self._observe_received(sender, envelope)  # control-room API support
                if body == "emergency":
                    self._remember_alert(envelope)
            else:
                self.counters["duplicates"] += 1
                self.log.info("federation.duplicate", message_id=envelope.message_id.hex())
            self._ack(sender, envelope, again=not added)
            self._release_followers(seen)

        def gap() -> None:
            self._hold_back(sender, seen, follows or b"", payload, held)

        await self._commit(add=copies, seen=seen, follows=follows, then=taken, gap=gap)

    def _hold_back(
        self,
        sender: str,
        key: bytes,
        follows: bytes,
        payload: bytes,
        held: Waiting | None = None,
    ) -> None:
        """The message ``key`` came before the one it follows: hold it, unacknowledged.

        ``held``: it was held before and released, but what it follows is not in custody
        after all (its commit failed): it waits again, as it was.
        """
        now = self.monotonic()
        first = held is None and key not in self._held_back
        if held is not None:
            kept = self._held_back.put_back(held, now)
        else:
            kept = self._held_back.hold(sender, key, follows, payload, now)
        if not kept:
            # Not held and not acknowledged: the partner sends it again.
            self.counters["order_hold_full"] += 1
            self.log.warning("federation.order_hold_full", partner=sender)
        elif first:
            self.counters["held_for_order"] += 1
            self.log.info("federation.held_for_order", partner=sender, held=len(self._held_back))

    def _release_followers(self, key: bytes) -> None:
        """The message ``key`` is in custody: take in those held back behind it."""
        self._held_back.discard(key)  # a copy of it held back, if any: it came again
        for waiting in self._held_back.release(key):
            self._spawn(
                self._on_federation(waiting.sender, waiting.payload, held=waiting), "follow"
            )

    def _held_too_long(self, now: float) -> None:
        """Take in the messages whose predecessor did not come in time, order or not."""
        for waiting in self._held_back.due(now):
            self.counters["order_given_up"] += 1
            self.log.warning(
                "federation.order_given_up",
                partner=waiting.sender,
                waited_s=round(now - waiting.arrived, 1),
            )
            self._spawn(self._follow_late(waiting), "follow")

    async def _follow_late(self, waiting: Waiting) -> None:
        await self._on_federation(waiting.sender, waiting.payload, held=waiting, follow=False)

    def _rebase_expiry(self, envelope: v1.Envelope, held_us: int = 0) -> None:
        """Carry the remaining validity over to our clock, whatever the partner's clock says.

        The sender stamped its last hop with the time it forwarded the message; the
        validity left then (by the sender's own clock), less the ``held_us`` it has
        spent here already, is what the message has left. Clocks of two countries may
        disagree (a stepped clock, a dead NTP server): comparing one country's absolute
        expiry with another's clock would expire messages early or keep them too long.
        """
        if not envelope.expires_at_us or not envelope.trace:
            return
        forwarded = envelope.trace[-1].forwarded_at_us
        if forwarded:
            remaining = envelope.expires_at_us - forwarded - held_us
            envelope.expires_at_us = self._now_us() + max(0, remaining)

    def _admission(self, sender: str, envelope: v1.Envelope, size: int) -> DeliveryRefused | None:
        """Policy and rate limits for a partner's message; the refusal, if any."""
        which = envelope.destination.WhichOneof("target")
        kind: Any = which if which in ("unit", "group", "broadcast") else "unit"
        target = (
            envelope.destination.unit.unit
            if which == "unit"
            else envelope.destination.group.group
            if which == "group"
            else ""
        )
        urgent = envelope.priority >= v1.PRIORITY_IMMINENT_PERIL
        decision = self.config.policy.check(
            envelope.origin.nation, envelope.origin.organisation, kind, target, urgent
        )
        if not decision.allowed:
            self.counters["refused_by_policy"] += 1
            return DeliveryRefused(decision.reason, reason_code=decision.reason_code)
        rate = self.rate_limiter.admit(sender, envelope.priority, size, self.monotonic())
        if not rate.allowed:
            self.counters[f"rate_limited_{sender}"] += 1
            return DeliveryRefused(rate.reason, reason_code=rate.reason_code)
        return None

    async def _refuse_from_partner(
        self, sender: str, envelope: v1.Envelope, exc: GatewayError
    ) -> None:
        self.counters["refused_from_partner"] += 1
        self.log.warning(
            "federation.refused",
            partner=sender,
            message_id=envelope.message_id.hex(),
            reason=str(exc),
        )
        self._observe("refused_from_partner", envelope.message_id, partner=sender, reason=str(exc))
        failed = self._receipt(
            envelope,
            v1.DELIVERY_STATE_FAILED,
            tetra_status=exc.reason_code or DeliveryStatus.DELIVERY_FAILED,
            reason=str(exc),
        )

        seen = _seen_key(sender, envelope.message_id)

        def taken(added: bool) -> None:
            if not added:
                self.counters["duplicates"] += 1
            self._ack(sender, envelope, again=not added)
            self._release_followers(seen)

        await self._commit(add=[failed] if failed else [], seen=seen, then=taken)

    def _remember_alert(self, envelope: v1.Envelope) -> None:
        """Keep a partner's emergency outstanding for replay until it expires."""
        now = self.monotonic()
        expires = self._local(_expires_at(envelope)) or (
            now + self.config.delivery.expiry_seconds["emergency"]
        )
        which = envelope.destination.WhichOneof("target")
        self._unsaved_alerts[envelope.message_id.hex()] = None
        self.alerts.raise_alert(
            envelope.message_id,
            raised_at=now,
            expires_at=expires,
            group=envelope.destination.group.group if which == "group" else None,
            unit=envelope.destination.unit.unit if which == "unit" else None,
            payload_ref=envelope.SerializeToString(),
            origin=envelope.origin.unit or None,
        )
        self._alerts_evicted()

    def _on_partner_presence(self, sender: str, envelope: v1.Envelope) -> None:
        p = envelope.presence
        now = self.monotonic()
        unit = p.unit.unit
        nation = member_nation(sender)
        held = self.presence.get(unit) if nation == self.nation else None
        if (
            len(unit) > _MAX_NAME
            or not UNIT_PATTERN.match(unit)
            or unit[:2] != nation.lower()
            # Another gateway of our country: never for a unit of ours.
            or (nation == self.nation and self.directory.unit(unit) is not None)
            or (held is not None and held.local)
        ):
            # A partner speaks for its own units only: never for ours or a third nation's.
            self.counters["presence_refused"] += 1
            self.log.warning(
                "presence.refused", partner=sender, unit=unit[:_MAX_NAME], reason="not its unit"
            )
            return
        served_by = p.served_by
        if not served_by.isprintable() or len(served_by) > _MAX_NAME:
            self.counters["presence_refused"] += 1
            self.log.warning("presence.refused", partner=sender, unit=unit, reason="bad gateway")
            return
        groups = sorted(g for g in set(p.groups) if len(g) <= _MAX_NAME and GROUP_PATTERN.match(g))
        if len(groups) != len(p.groups):
            self.counters["presence_groups_dropped"] += 1
        location = None
        if p.HasField("last_location"):
            loc = p.last_location
            location = PresenceLocation(
                lat=loc.latitude, lon=loc.longitude, at=now - _age(loc.fix_time_us, self)
            )
        update = PresenceUpdate(
            unit=p.unit.unit,
            nation=nation,
            gateway=p.served_by,
            epoch=p.epoch,
            seq=p.seq,
            availability=Availability(p.availability),
            groups=tuple(groups),
            location=location,
            last_heard=now - _age(p.last_seen_us, self) if p.last_seen_us else None,
            valid_for=p.valid_for_ms / 1000,
            sent_at=now,
            member="" if sender == nation else sender,
        )
        if self.presence.apply_remote(update, now):
            self.counters["presence_applied"] += 1
            self._observe(
                "presence",
                unit=update.unit,
                availability=update.availability.name,
                gateway=update.gateway,
            )
        else:
            self.counters["presence_ignored"] += 1

    def _on_partner_canary(self, sender: str, envelope: v1.Envelope) -> None:
        canary = envelope.canary
        if canary.echo:
            tracker = self.liveness.get(f"federation:{sender}")
            if tracker is not None:
                self._path_change(tracker.returned_canary(canary.sequence, self.monotonic()))
            return
        echo = self._gateway_envelope(sender, envelope.priority, valid_for=self._canary_life())
        echo.canary.CopyFrom(canary)
        echo.canary.echo = True
        self._enqueue(Held(envelope=echo, entry_id=None, queue=_egress(sender)))

    def _on_adapter_canary(self, adapter: str, event: SdsReceived) -> None:
        content = event.content
        tracker = self.liveness.get(f"adapter:{adapter}")
        if tracker is None or not isinstance(content, TextSds):
            self.counters["radio_loopback_ignored"] += 1
            return
        prefix, _, sequence = content.text.partition(" ")
        if prefix == _CANARY_TEXT and sequence.isdigit():
            self._path_change(tracker.returned_canary(int(sequence), self.monotonic()))

    def _path_change(self, change: StateChange | None) -> None:
        if change is None:
            return
        self.counters[f"path_{change.state.value}"] += 1
        level = "warning" if change.state is PathState.DEGRADED else "info"
        getattr(self.log, level)(
            "liveness.changed",
            path=change.path,
            state=change.state.value,
            previous=change.previous.value,
            reason=change.reason,
        )
        self._observe("liveness", path=change.path, state=change.state.value, reason=change.reason)

    def _gateway_envelope(self, nation: str, priority: int, *, valid_for: float) -> v1.Envelope:
        """An envelope from this gateway to ``nation``'s gateway (control traffic).

        Control traffic is soft state: it expires after ``valid_for`` seconds, so during an
        outage it never piles up in the egress queue in front of (or instead of) messages.
        """
        now_us = self._now_us()
        envelope = v1.Envelope(
            schema_version=SCHEMA_VERSION,
            message_id=_new_id(),
            priority=priority,  # type: ignore[arg-type]
            created_at_us=now_us,
            expires_at_us=now_us + int(valid_for * 1_000_000),
        )
        envelope.origin.nation = self.nation
        envelope.origin.unit = f"{self.nation.lower()}.gateway.{self.name}"
        envelope.origin.system = v1.SYSTEM_TYPE_GATEWAY
        envelope.destination.unit.nation = member_nation(nation)
        envelope.destination.unit.unit = f"{member_nation(nation).lower()}.gateway.any"
        return envelope

    async def _on_partner_receipt(self, sender: str, envelope: v1.Envelope) -> None:
        receipt = envelope.receipt
        if receipt.state == v1.DELIVERY_STATE_ACCEPTED:
            await self._on_acks(sender, [receipt.message_id, *receipt.also_accepted])
            return
        journal = self.journal
        assert journal is not None
        message_id = _seen_key(sender, envelope.message_id)
        if message_id in self._receipts_applying:
            # A copy of a receipt still being applied (the link takes a batch in together).
            self.counters["duplicates"] += 1
            return
        # Receipts of one partner are applied in the order they came, even when an
        # earlier one waits longer for the journal (its origin records were spilled): a
        # READ must not overtake the DELIVERED before it.
        previous = self._receipt_turns.get(sender)
        turn = self._receipt_turns[sender] = asyncio.get_running_loop().create_future()

        def pass_turn(_previous: object = None) -> None:
            if not turn.done():
                turn.set_result(None)
            if self._receipt_turns.get(sender) is turn:
                del self._receipt_turns[sender]

        self._receipts_applying.add(message_id)
        token = self.tracker.begin_read()
        again = False
        try:
            again = await journal.submit(lambda j: j.is_seen(message_id))
            if again:
                self.counters["duplicates"] += 1
            else:
                # Applied before it is recorded: a crash in between repeats a report, never
                # loses one. A receipt about several envelopes (also_about) is applied to
                # each, and the origin records it ends go in the same commit as the receipt.
                about = [receipt.message_id, *receipt.also_about]
                records = await self._origins_for(about, token)
                if previous is not None:
                    await asyncio.shield(previous)
                final = [i for i in about if self._take_receipt(receipt, i, records, token, sender)]
                committed = self._commit_surely(seen=message_id, drop_origins=final)
                # The next receipt may apply now: it only wakes up after this step, and
                # awaiting the commit submits the drops within it.
                turn.set_result(None)
                await committed
                self.tracker.dropped(final)
        finally:
            self.tracker.end_read(token)
            self._receipts_applying.discard(message_id)
            # Never before the one in front (this one may have stopped early: a copy seen
            # already, an error): the next must wait for it too.
            if previous is not None and not previous.done():
                previous.add_done_callback(pass_turn)
            else:
                pass_turn()
        self._ack(sender, envelope, again=again)

    # ------------------------------------------------------------------ local delivery

    async def _delivery_loop(self, adapter_name: str, *, urgent: bool) -> None:
        """Deliver one adapter's urgent (or other) messages in scheduler order.

        Each adapter has two: the urgent loop takes only emergency and imminent-peril
        messages, one at a time and in order; the other loop the rest, batched. Both
        deliver while the adapter's system is connected, one send at a time on its line.
        """
        queue = self.queues[_local(adapter_name)]
        adapter: TetraAdapter | McdataAdapter
        if adapter_name in self.mcdata:
            adapter, deliver = self.mcdata[adapter_name], self._deliver_mcdata
        else:
            adapter, deliver = self.adapters[adapter_name], self._deliver
        while True:
            entry = await queue.get(self.monotonic, urgent=urgent)
            self._unspill_soon(_local(adapter_name))
            if adapter.state is not LinkState.CONNECTED:
                queue.push_front(entry)
                with contextlib.suppress(TimeoutError):
                    await adapter.wait_connected(_RETRY_DELAY * 4)
                continue
            batch = [entry]
            if adapter_name in self.adapters and not urgent:
                # Messages already waiting share one journal commit for their references.
                while len(batch) < _DELIVERY_BATCH and (
                    more := queue.pop(self.monotonic(), urgent=False)
                ):
                    batch.append(more)
            pending = list(batch)
            try:
                if len(batch) > 1:
                    await self._stage_references(adapter_name, [e.item for e in batch])
                while pending:
                    if len(pending) < len(batch) and _more_urgent(queue, pending[0].priority):
                        # A HIGH message arrived during a ROUTINE batch: it goes first.
                        for waiting in reversed(pending):
                            queue.push_front(waiting)
                        break
                    await deliver(adapter_name, pending[0].item)
                    pending.pop(0)
            except LinkError as exc:  # the connection broke during the send: nothing lost
                for waiting in reversed(pending):
                    queue.push_front(waiting)
                self.log.warning("delivery.link_failed", adapter=adapter_name, error=str(exc))
                await asyncio.sleep(_RETRY_DELAY)
            except JournalError as exc:
                for waiting in reversed(pending):
                    queue.push_front(waiting)
                await self._journal_trouble(exc)

    async def _stage_references(self, adapter_name: str, batch: list[Held]) -> None:
        """Allocate and journal the SDS-TL references of several deliveries in one commit.

        A message whose content cannot be prepared is left alone: its own delivery
        attempt reports the failure.
        """
        adapter = self.adapters[adapter_name]
        staged: list[tuple[Held, int]] = []
        for held in batch:
            delivery = held.delivery
            if delivery is None or "reference" in held.meta:
                continue
            try:
                content = self._content_for(adapter, delivery, None)
                prepared = adapter.prepare(delivery.target.issi, content)
            except Exception as exc:  # the message's own delivery attempt reports it
                self.log.debug("delivery.not_staged", adapter=adapter_name, error=str(exc))
                continue
            if prepared.references:
                staged.append((held, prepared.references[0]))
        if not staged:
            return
        await self._remember_references(adapter_name, staged)
        for held, reference in staged:
            held.meta["reference"] = reference

    async def _deliver(self, adapter_name: str, held: Held) -> None:
        adapter = self.adapters[adapter_name]
        envelope, delivery = held.envelope, held.delivery
        assert delivery is not None
        issi = delivery.target.issi
        try:
            content = self._content_for(adapter, delivery, held.meta.get("reference"))
            prepared = adapter.prepare(issi, content)
            if prepared.references and "reference" not in held.meta:
                # Before the radio sees it: a resend after a crash repeats these
                # references, so the far radio recognises a retransmission.
                await self._remember_references(adapter_name, [(held, prepared.references[0])])
                held.meta["reference"] = prepared.references[0]
            outcome = await adapter.send_prepared(prepared)
        except JournalError:
            raise  # nothing was sent: the delivery loop keeps the message and waits
        except LinkError:
            # The link went down before the radio's final status: whether the SDS went out
            # is unknown. The delivery loop keeps the message and sends it again once the
            # link is back, with the same journaled SDS-TL reference, so a far radio that
            # got it the first time recognises the repeat. Never a FAILED receipt.
            raise
        except Exception as exc:  # a failed send must become a FAILED receipt, never a dead loop
            reason = str(exc)
            if not isinstance(exc, GatewayError):
                # A bug's text (paths, addresses) stays in our log: the receipt goes abroad.
                self.log.exception("delivery.send_crashed", adapter=adapter_name, issi=issi)
                reason = _INTERNAL_SEND_ERROR
            outcome = SendOutcome(ok=False, reason=reason)
        if not outcome.ok:
            self.counters["delivery_failed"] += 1
            self.log.warning(
                "delivery.failed",
                adapter=adapter_name,
                issi=issi,
                message_id=envelope.message_id.hex(),
                reason=outcome.reason,
            )
            if held.meta.get("replay"):
                if held.entry_id is not None:
                    await self._commit_surely(remove=[held.entry_id])
                return
            await self._fail(held, DeliveryStatus.DELIVERY_FAILED, outcome.reason)
            return
        self.counters["delivered_to_network"] += 1
        if delivery.follow_up is not None:
            await self._best_effort(adapter, issi, delivery.follow_up)
        if delivery.follow_text is not None:
            words = TextSds(
                protocol_id=_PID_TEXT_IMMEDIATE,
                text=delivery.follow_text,
                immediate=True,
                message_reference=adapter.allocate_reference(issi),
            )
            await self._best_effort(adapter, issi, words)
        if (
            isinstance(content, TextSds)
            and content.delivery_report_request
            and not delivery.target.is_group
        ):
            record = AwaitingReport(
                message_id=envelope.message_id,
                origin_nation=envelope.origin.nation,
                origin_member=envelope.origin_member,
                origin_unit=envelope.origin.unit,
                priority=envelope.priority,
                adapter=adapter_name,
                issi=issi,
                references=set(outcome.message_references),
                want_read=delivery.report_request in (2, 3),
                deadline=self.monotonic() + self.config.delivery.report_timeout,
                entry_id=held.entry_id,
            )
            self.tracker.add_awaiting(record)
            self._timer_wakeup.set()
            for reference in outcome.message_references:
                key = (adapter_name, issi, reference)
                parked = self.tracker.take_parked(key, self.monotonic())
                if parked is not None:
                    await self._settle(record, key, parked)
            return
        await self._delivered_without_report(adapter_name, held, delivery.target)

    async def _remember_references(self, adapter_name: str, staged: list[tuple[Held, int]]) -> None:
        """Journal the reference of each staged delivery and each unit's next reference."""
        journal = self.journal
        if journal is None:
            return
        adapter = self.adapters[adapter_name]
        metas = [
            (held.entry_id, {**held.meta, "reference": reference})
            for held, reference in staged
            if held.entry_id is not None
        ]
        issis = {held.delivery.target.issi for held, _ in staged if held.delivery is not None}
        if not metas:
            return

        def op(j: JournalStore) -> None:
            for entry_id, meta in metas:
                j.update_meta(entry_id, meta)
            for issi in issis:
                # Read when the commit runs, not when it was queued: the urgent and the
                # routine delivery loop allocate references for the same unit, and their
                # commits may run in either order; the last one must not write back an
                # older value (a reference used again after a restart would make the
                # radio discard a new message as a repeat). A dict read is atomic.
                next_reference = adapter.next_reference(issi)
                if next_reference is not None:
                    j.set_ref(adapter_name, issi, next_reference)

        urgent = any(h.envelope.priority >= v1.PRIORITY_IMMINENT_PERIL for h, _ in staged)
        await journal.submit(op, urgent=urgent)

    def _content_for(
        self, adapter: TetraAdapter, delivery: TetraDelivery, reference: int | None
    ) -> TextSds | StatusSds | Any:
        if delivery.text is not None:
            want = 3 if delivery.report_request in (2, 3) else 1
            return TextSds(
                protocol_id=_PID_TEXT_IMMEDIATE if delivery.immediate else _PID_TEXT,
                text=delivery.text,
                coding_scheme=choose_coding_scheme(delivery.text),
                immediate=delivery.immediate,
                message_reference=(
                    reference
                    if reference is not None
                    else adapter.allocate_reference(delivery.target.issi)
                ),
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
            self.tracker.park_report(key, status, self.monotonic())
            return
        self._spawn(self._send_settled(record, self._settlement(record, key, status)), "settle")

    async def _settle(self, record: AwaitingReport, key: ReportKey, status: int) -> None:
        await self._send_settled(record, self._settlement(record, key, status))

    def _settlement(
        self, record: AwaitingReport, key: ReportKey, status: int
    ) -> list[tuple[int, int, int, str]]:
        """What a unit's report settles, decided at once: (state, confirmation, status, reason).

        Decided when the report is read, not when its receipts are journaled, so that a
        timeout or an eviction of the same delivery meanwhile sees it settled (see
        :meth:`_no_report`) and adds no receipt of its own.
        """
        unit = v1.CONFIRMATION_UNIT
        if status >= 0x40:
            self.tracker.forget(record)
            record.settled = True
            return [(v1.DELIVERY_STATE_FAILED, 0, status, "unit reported failure")]
        if status == DeliveryStatus.CONSUMED:
            self.tracker.forget(record)
            record.settled = True
            delivered = [] if record.delivered else [(v1.DELIVERY_STATE_DELIVERED, unit, 0, "")]
            record.delivered = True
            return [*delivered, (v1.DELIVERY_STATE_READ, unit, 0, "")]
        if status == DeliveryStatus.RECEIVED and self.tracker.settle_part(key):
            record.delivered = True
            if not record.want_read:
                self.tracker.forget(record)
            return [(v1.DELIVERY_STATE_DELIVERED, unit, 0, "")]
        return []

    async def _send_settled(
        self, record: AwaitingReport, receipts: list[tuple[int, int, int, str]]
    ) -> None:
        for state, confirmation, tetra_status, reason in receipts:
            await self._receipt_for(
                record, state, confirmation=confirmation, tetra_status=tetra_status, reason=reason
            )

    async def _report_timer_loop(self) -> None:
        while True:
            deadline = self.tracker.next_deadline()
            self._timer_wakeup.clear()
            delay = 3600.0 if deadline is None else max(0.0, deadline - self.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._timer_wakeup.wait()
            for record in self.tracker.take_evicted():
                # More deliveries wait for reports than the table holds: the oldest gets
                # the receipt of a timeout now rather than none at all.
                self.counters["reports_evicted"] += 1
                self.log.warning(
                    "report.tracker_full",
                    message_id=record.message_id.hex(),
                    adapter=record.adapter,
                    issi=record.issi,
                )
                await self._no_report(record)
            for record in self.tracker.expired(self.monotonic()):
                self.counters["report_timeouts"] += 1
                await self._no_report(record)

    async def _no_report(self, record: AwaitingReport) -> None:
        """The unit will not be heard on this delivery: delivered, as far as its network knows."""
        if not record.delivered and not record.settled:
            await self._receipt_for(
                record, v1.DELIVERY_STATE_DELIVERED, confirmation=v1.CONFIRMATION_END_SYSTEM
            )

    # ------------------------------------------------------------------ MCX systems (MCData)

    async def _on_mcdata_event(self, adapter: str, event: McdataEvent) -> None:
        match event:
            case LinkStateChanged():
                self._on_link_state(adapter, event)
            case McdataRejected():
                self._on_rejected(adapter, event.reason, event.sender)
            case McdataSdsReceived():
                # Custody before the SIP 200: returning from here is the acknowledgement.
                await self._on_mcdata_sds(adapter, event)
            case McdataNotificationReceived():
                await self._on_mcdata_notification(adapter, event)

    async def _on_mcdata_sds(self, adapter_name: str, event: McdataSdsReceived) -> None:
        adapter = self._adapter_configs[adapter_name]
        unit = self.directory.local_unit(adapter_name, event.sender)
        if unit is not None:
            self._heard_unit(unit.unit)
        sds = McdataSds(
            sender=event.sender,
            target=event.target.id,
            is_group=isinstance(event.target, McdataGroup),
            message_id=event.message_id.bytes,
            conversation_id=event.conversation_id.bytes,
            in_reply_to=event.in_reply_to.bytes if event.in_reply_to else None,
            disposition=int(event.disposition_request),
            payloads=event.payloads,
            emergency=event.emergency or event.alert,
            imminent_peril=event.imminent_peril,
        )
        try:
            envelope = envelope_from_mcdata(
                sds,
                adapter=adapter,
                directory=self.directory,
                codebook=self._codebooks[adapter.codebook],
                delivery=self.config.delivery,
                now_us=self._now_us(),
            )
            nations = self._destination_nations(envelope)
        except DeliveryRefused as exc:
            self._count_refusal(adapter_name, event.sender, exc)
            raise
        dropped = payloads_not_carried(sds)
        if dropped:
            self.counters["mcdata_payloads_dropped"] += len(dropped)
            self.log.warning(
                "mcdata.payloads_dropped",
                adapter=adapter_name,
                source=event.sender,
                content_types=dropped,
                message_id=envelope.message_id.hex(),
            )
        origin = OriginRecord(
            message_id=envelope.message_id,
            adapter=adapter_name,
            source_issi=event.sender,
            protocol_id=None,
            message_reference=None,
            report_request=int(envelope.report_request),
            priority=envelope.priority,
            conversation_id=envelope.conversation_id,
            addressed_to=event.target.id,
        )
        try:
            await self._take_custody(envelope, nations, origin)
        except DeliveryRefused as exc:
            self._count_refusal(adapter_name, event.sender, exc)
            raise

    def _count_refusal(self, adapter: str, source: str, exc: DeliveryRefused) -> None:
        code = exc.reason_code if exc.reason_code is not None else DeliveryStatus.DELIVERY_FAILED
        self.counters[f"refused_{code:#04x}"] += 1
        self.log.warning("sds.refused", adapter=adapter, source=source, reason=str(exc), code=code)
        self._observe("refused", adapter=adapter, source=source, reason=str(exc))

    async def _on_mcdata_notification(
        self, adapter: str, event: McdataNotificationReceived
    ) -> None:
        key = (adapter, event.sender, event.message_id.bytes)
        record = self.tracker.match_report(key)
        if record is None:
            # Early (before our MESSAGE's 200 OK came back) or for nothing we sent: kept a
            # minute for the delivery to claim it.
            self.counters["reports_early_or_unmatched"] += 1
            self.log.info("notification.unmatched", adapter=adapter, source=event.sender)
            self.tracker.park_report(key, int(event.notification_type), self.monotonic())
            return
        unit = self.directory.local_unit(adapter, event.sender)
        if unit is not None:
            self._heard_unit(unit.unit)
        for status in _MCDATA_STATUS.get(int(event.notification_type), []):
            await self._settle(record, key, status)

    def _notify_mcdata_origin(self, record: OriginRecord, receipt: v1.DeliveryReceipt) -> None:
        """Give the MCData sender the disposition notification its receipt stands for."""
        notification = notification_for(receipt, record.report_request)
        if notification is None or not record.conversation_id:
            return
        adapter = self._adapter_configs[record.adapter]
        sender = record.addressed_to or f"sip:unknown@{adapter.iwf_domain}"

        async def notify() -> None:
            # The MCX link may be down for a moment (a reconnect): tried again for about a
            # minute (it is not journaled: its origin record ends with this receipt).
            for attempt, delay in enumerate((*_NOTIFY_RETRY_DELAYS, None)):
                why = ""
                try:
                    outcome = await self.mcdata[record.adapter].send_notification(
                        sender,
                        record.source_issi,
                        notification,
                        conversation_id=uuid.UUID(bytes=record.conversation_id),
                        message_id=uuid.UUID(bytes=record.message_id),
                        now=self.clock(),
                    )
                except LinkError as exc:
                    why = str(exc)
                except GatewayError as exc:  # it cannot be sent at all
                    self.counters["reports_failed"] += 1
                    self.log.warning("notification.failed", adapter=record.adapter, error=str(exc))
                    return
                else:
                    if outcome.ok or outcome.status is not None:  # answered: done either way
                        self.counters["reports_sent" if outcome.ok else "reports_failed"] += 1
                        return
                    why = outcome.reason
                if delay is None:
                    break
                self.log.info("notification.retry", adapter=record.adapter, attempt=attempt + 1)
                await asyncio.sleep(delay)
            self.counters["reports_failed"] += 1
            self.log.warning("notification.failed", adapter=record.adapter, error=why)

        self._spawn(notify(), "notification")

    async def _deliver_mcdata(self, adapter_name: str, held: Held) -> None:
        envelope, target = held.envelope, held.delivery.target if held.delivery else None
        assert target is not None
        adapter_config = self._adapter_configs[adapter_name]
        try:
            plan = plan_mcdata_delivery(
                envelope,
                target,
                adapter=adapter_config,
                directory=self.directory,
                codebook=self._codebooks[adapter_config.codebook],
            )
        except DeliveryRefused as exc:
            self.counters["delivery_failed"] += 1
            await self._fail(held, exc.reason_code or DeliveryStatus.DELIVERY_FAILED, str(exc))
            return
        sent_id = _uuid(plan.message_id)
        try:
            outcome = await self.mcdata[adapter_name].send_sds(
                plan.sender,
                McdataGroup(McdataId(target.issi))
                if target.is_group
                else McdataUser(McdataId(target.issi)),
                plan.payloads,
                conversation_id=_uuid(plan.conversation_id),
                message_id=sent_id,
                in_reply_to=_uuid(plan.in_reply_to) if plan.in_reply_to else None,
                disposition_request=plan.disposition,
                emergency=plan.emergency,
                alert=plan.emergency,
                imminent_peril=plan.imminent_peril,
                now=self.clock(),
            )
        except LinkError:
            raise  # whether it went out is unknown: the delivery loop sends it again
        except Exception as exc:  # a message it cannot carry: FAILED, never a dead loop
            reason = f"cannot send over SIP: {exc}"
            if not isinstance(exc, GatewayError):
                # A bug's text (paths, addresses) stays in our log: the receipt goes abroad.
                self.log.exception("delivery.send_crashed", adapter=adapter_name, to=target.issi)
                reason = _INTERNAL_SEND_ERROR
            self.counters["delivery_failed"] += 1
            await self._fail(held, DeliveryStatus.DELIVERY_FAILED, reason)
            return
        if not outcome.ok and outcome.status is None:
            # No final answer within the SIP transaction's time (Timer F): the MCX system
            # may have it. Sent again with the same Message ID, which it recognises.
            self.counters["delivery_unanswered"] += 1
            raise LinkError(f"no final SIP response from the MCX system: {outcome.reason}")
        if not outcome.ok:
            self.counters["delivery_failed"] += 1
            if held.meta.get("replay"):
                if held.entry_id is not None:
                    await self._commit_surely(remove=[held.entry_id])
                return
            # The status only: the reason phrase and Warning name the MCX system's hosts.
            self.log.warning(
                "delivery.mcx_refused", adapter=adapter_name, to=target.issi, answer=outcome.reason
            )
            reason = f"MCX system answered {outcome.status}"
            await self._fail(held, _sip_failure_status(outcome.status), reason)
            return
        self.counters["delivered_to_network"] += 1
        if plan.disposition != DispositionRequest.NONE and not held.meta.get("replay"):
            record = AwaitingReport(
                message_id=envelope.message_id,
                origin_nation=envelope.origin.nation,
                origin_member=envelope.origin_member,
                origin_unit=envelope.origin.unit,
                priority=envelope.priority,
                adapter=adapter_name,
                issi=target.issi,
                references={sent_id.bytes},
                want_read=plan.disposition
                in (DispositionRequest.READ, DispositionRequest.DELIVERY_AND_READ),
                deadline=self.monotonic() + self.config.delivery.report_timeout,
                entry_id=held.entry_id,
            )
            self.tracker.add_awaiting(record)
            self._timer_wakeup.set()
            # The recipient's notification may have come before our MESSAGE's 200 OK.
            key = (adapter_name, target.issi, sent_id.bytes)
            parked = self.tracker.take_parked(key, self.monotonic())
            for status in _MCDATA_STATUS.get(parked, []) if parked is not None else []:
                await self._settle(record, key, status)
            return
        await self._delivered_without_report(adapter_name, held, target)

    async def _delivered_without_report(
        self, adapter_name: str, held: Held, target: LocalTarget
    ) -> None:
        """The far system took it and nobody will confirm more: receipt and release."""
        envelope = held.envelope
        if envelope.HasField("emergency"):
            unit = self.directory.local_unit(adapter_name, target.issi)
            if unit is not None:
                self.alerts.mark_delivered(envelope.message_id, unit.unit)
                self._unsaved_alerts[envelope.message_id.hex()] = None
                if len(self._alert_deliveries) >= self.config.presence.max_alerts:
                    self._alert_deliveries.pop(next(iter(self._alert_deliveries)))
                self._alert_deliveries[(envelope.message_id, unit.unit)] = self.monotonic()
        remove = [held.entry_id] if held.entry_id is not None else []
        if held.meta.get("replay"):
            await self._commit_surely(remove=remove)
            return
        await self._send_receipt(
            envelope,
            v1.DELIVERY_STATE_DELIVERED,
            confirmation=v1.CONFIRMATION_END_SYSTEM,
            # A group call carries no acknowledgements: say so (SDS-TL 0x05).
            tetra_status=DeliveryStatus.SENT_TO_GROUP if target.is_group else 0,
            remove=remove,
        )

    # ------------------------------------------------------------------ timers

    async def _housekeeping_loop(self) -> None:
        """Expiry of queued messages, retransmission of unacknowledged ones, pruning."""
        next_prune = 0.0
        while True:
            await asyncio.sleep(_HOUSEKEEPING_INTERVAL)
            try:
                next_prune = await self._housekeeping_pass(next_prune)
            except JournalError as exc:
                await self._journal_trouble(exc)

    async def _housekeeping_pass(self, next_prune: float) -> float:
        """One pass of the housekeeping loop; returns when pruning is next due."""
        delivery = self.config.delivery
        await self._fail_unresumable()
        now = self.monotonic()
        for name, queue in self.queues.items():
            expired = queue.expire(now)
            if expired:
                await self._expired([entry.item for entry in expired])
            self._unspill_soon(name)
        if now >= self._next_spill_expiry:
            self._next_spill_expiry = now + _SPILL_EXPIRY_INTERVAL
            self._expire_spilled_soon()
        for nation, inflight in self._inflight.items():
            late = [m for m, f in inflight.items() if f.deadline <= now]
            for message_id in late:
                self.counters["retransmissions"] += 1
                self.queues[_egress(nation)].push_front(inflight.pop(message_id).entry)
            if late:
                self._window_free[nation].set()
            self._chains[nation].sweep(functools.partial(self._in_flight_at, nation))
        self._held_too_long(now)
        self._presence_tick(now)
        self._canaries(now)
        if now >= next_prune and self.journal is not None:
            wall = self.clock()  # the journal's timestamps are wall-clock (they outlive us)
            await self.journal.submit(lambda j: j.prune_seen(before=wall - delivery.dedup_window))
            # A report that has not come in twice the longest lifetime will not come.
            await self.journal.submit(
                lambda j: j.prune_origins(before=wall - delivery.dedup_window)
            )
            next_prune = now + 60.0
        return next_prune

    def _presence_tick(self, now: float) -> None:
        for change in self.presence.tick(now):
            self.counters[f"presence_{change.availability.name.lower()}"] += 1
            self._observe(
                "presence",
                unit=change.unit,
                availability=change.availability.name,
                previous=change.previous.name,
            )
        for alert in self.alerts.expire(now):
            self._unsaved_alerts[alert.alert_id.hex()] = None
        updates = self.presence.drain(now)
        for update in updates:
            for nation in self.config.federation.peers:  # siblings too: presence only
                envelope = self._gateway_envelope(
                    nation, v1.PRIORITY_ROUTINE, valid_for=self.config.presence.lease
                )
                _fill_presence(envelope.presence, update, now, self._now_us())
                self._enqueue(Held(envelope=envelope, entry_id=None, queue=_egress(nation)))
        if updates:
            self.counters["presence_sent"] += len(updates)
        self._save_state_soon(now)

    def _canaries(self, now: float) -> None:
        for path, tracker in self.liveness.items():
            kind, _, name = path.partition(":")
            if kind == "adapter" and self.adapters[name].state is not LinkState.CONNECTED:
                self._path_change(tracker.reset())
                continue
            self._path_change(tracker.check(now))
            if not tracker.due(now):
                continue
            sequence = tracker.send(now)
            if kind == "federation":
                if not self.link.reachable(name):
                    continue  # it could not come back: the path shows degraded all the same
                envelope = self._gateway_envelope(
                    name, v1.PRIORITY_HIGH, valid_for=self._canary_life()
                )
                envelope.canary.sequence = sequence
                envelope.canary.sent_at_us = self._now_us()
                self._enqueue(Held(envelope=envelope, entry_id=None, queue=_egress(name)))
            else:
                self._spawn(self._adapter_canary(name, sequence), "canary")

    def _canary_life(self) -> float:
        """A canary later than its timeout is of no use: it expires then."""
        return self.config.liveness.canary_timeout

    async def _adapter_canary(self, adapter_name: str, sequence: int) -> None:
        """Loop a text through the national network back to our own radio."""
        adapter = self.adapters[adapter_name]
        own = self._adapter_configs[adapter_name].radio_issi
        canary = TextSds(
            protocol_id=_PID_TEXT,
            text=f"{_CANARY_TEXT} {sequence}",
            coding_scheme=1,
            message_reference=adapter.allocate_reference(own),
            delivery_report_request=0,
        )
        try:
            await adapter.send(own, canary)
        except GatewayError as exc:
            self.log.info("canary.send_failed", adapter=adapter_name, error=str(exc))

    async def _expired(self, helds: Sequence[Held]) -> None:
        """Give up on copies whose validity ran out, in one journal commit.

        An outage may expire thousands at once (the locations and statuses of every unit
        waiting for a partner): one commit per copy would hold up the journal, and the
        live traffic behind it, for seconds.
        """
        receipts: list[int] = []
        failing: list[Held] = []
        for held in helds:
            envelope = held.envelope
            if held.entry_id is None and held.delivery is None and not envelope.HasField("receipt"):
                self.counters["expired_control"] += 1  # a presence update or canary: soft state
                continue
            self.counters["expired"] += 1
            if envelope.HasField("receipt"):
                self.counters["receipts_expired"] += 1
                self.log.warning(
                    "receipt.expired",
                    about=envelope.receipt.message_id.hex(),
                    partner=envelope.destination.unit.nation,
                )
                if held.entry_id is not None:
                    receipts.append(held.entry_id)
                continue
            self.log.warning("message.expired", message_id=envelope.message_id.hex())
            failing.append(held)
        if failing:
            await self._fail_many(
                failing, DeliveryStatus.VALIDITY_EXPIRED_NOT_RECEIVED, "expired", remove=receipts
            )
        elif receipts:
            await self._commit_surely(remove=receipts)

    def _expire_spilled_soon(self) -> None:
        """Look for expired spilled copies in the background (:meth:`_expire_spilled`)."""
        if self._expiring_spills or not self._spilled or self.journal is None:
            return
        self._expiring_spills = True
        self._spawn(self._expire_spilled(), "expire-spilled")

    async def _expire_spilled(self) -> None:
        """Fail back spilled copies whose validity ran out, without waiting for the read-back.

        Copies kept in the journal only (``[delivery] spill``) are read back as their queue
        drains; in a long outage that is long after they expired, and their senders would
        wait for the link to learn it. Each pass reads up to :data:`_SPILL_EXPIRY_PAGES`
        pages of each spilled class, from where the last pass stopped, and fails back the
        expired copies among them wherever they are (a row that never expires, such as a
        receipt journaled by an earlier version, does not stop it). It runs beside the
        housekeeping loop, so a journal that cannot be read holds up nothing else; it
        tries again at the next pass.
        """
        try:
            wall = self.clock()
            for name, spill in list(self._spilled.items()):
                if spill.loading:
                    continue
                spill.loading = True  # no read-back meanwhile: it would take the same rows
                try:
                    for priority in sorted(spill.after, reverse=True):
                        await self._expire_spilled_class(name, spill, priority, wall)
                except JournalError as exc:
                    self.log.info("spill.expiry_deferred", queue=name, error=str(exc))
                finally:
                    spill.loading = False
        finally:
            self._expiring_spills = False

    async def _expire_spilled_class(
        self, name: str, spill: _Spill, priority: int, wall: float
    ) -> None:
        """One pass of :meth:`_expire_spilled` over one class of one spilled queue."""
        position = max(spill.scan.get(priority, 0), spill.after[priority])
        for _ in range(_SPILL_EXPIRY_PAGES):
            journal = self.journal
            if journal is None:
                return
            rows = await journal.submit(
                functools.partial(_entries_after, name, priority, position, _UNSPILL_BATCH)
            )
            if rows:
                position = rows[-1].entry_id
            expired = [r for r in rows if r.expires_at is not None and r.expires_at <= wall]
            if expired:
                # Removed from the journal: the read-back no longer finds them.
                spill.counts[priority] -= len(expired)
                self.counters["expired_spilled"] += len(expired)
                await self._expired([_held_from_row(r) for r in expired])
            if len(rows) < _UNSPILL_BATCH:
                position = 0  # the end of the spill: the next pass starts at its head
                break
        spill.scan[priority] = position

    # ------------------------------------------------------------------ receipts

    async def _receipt_for(
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
        shell.origin_member = record.origin_member
        shell.origin.unit = record.origin_unit
        first = record.entry_id
        record.entry_id = None  # the copy is released with the first receipt
        await self._send_receipt(
            shell,
            state,
            confirmation=confirmation,
            tetra_status=tetra_status,
            reason=reason,
            remove=[first] if first else [],
        )

    def _receipt_envelope(
        self,
        about: v1.Envelope,
        state: int,
        *,
        confirmation: int = 0,
        tetra_status: int = 0,
        reason: str = "",
    ) -> v1.Envelope:
        now_us = self._now_us()
        receipt = v1.Envelope(
            schema_version=SCHEMA_VERSION,
            message_id=_new_id(),
            priority=about.priority,
            created_at_us=now_us,
            # The origin gateway forgets its message after its duplicate window (its
            # origin record is pruned), and a receipt that waited longer would find
            # nothing there. Partners set that window each for itself (twice their
            # longest expiry by default): a day at least outlives any of the defaults.
            expires_at_us=now_us + int(self._receipt_lifetime * 1_000_000),
        )
        receipt.origin.nation = self.nation
        receipt.origin.unit = f"{self.nation.lower()}.gateway.{self.name}"
        receipt.origin.system = v1.SYSTEM_TYPE_GATEWAY
        if self.member != self.nation:
            receipt.origin_member = self.member
        receipt.destination.unit.nation = about.origin.nation
        receipt.destination.unit.unit = about.origin.unit
        receipt.receipt.message_id = about.message_id
        receipt.receipt.state = state  # type: ignore[assignment]
        receipt.receipt.confirmation = confirmation  # type: ignore[assignment]
        receipt.receipt.tetra_status = tetra_status
        receipt.receipt.reason = reason
        return receipt

    def _receipt(
        self,
        about: v1.Envelope,
        state: int,
        *,
        confirmation: int = 0,
        tetra_status: int = 0,
        reason: str = "",
    ) -> Held | None:
        """Make the receipt for ``about`` towards its origin gateway (None if no route)."""
        receipt = self._receipt_envelope(
            about, state, confirmation=confirmation, tetra_status=tetra_status, reason=reason
        )
        self._note_receipt(about.message_id, state, confirmation, reason)
        queue = _egress(_origin_member(about))
        if queue not in self.queues:
            self.log.warning("receipt.no_route", nation=_origin_member(about))
            return None
        return Held(envelope=receipt, entry_id=None, queue=queue)

    def _note_receipt(self, message_id: bytes, state: int, confirmation: int, reason: str) -> None:
        self.counters[f"receipts_sent_{_RECEIPT_STATE_NAMES.get(state, str(state))}"] += 1
        self._observe(
            "delivered" if state != v1.DELIVERY_STATE_FAILED else "delivery_failed",
            message_id,
            state=_enum_name(v1.DeliveryState, state),
            reason=reason,
            confirmation=_enum_name(v1.Confirmation, confirmation),
        )

    async def _send_receipt(
        self,
        about: v1.Envelope,
        state: int,
        *,
        remove: list[int],
        **details: Unpack[_ReceiptDetails],
    ) -> None:
        """Journal the receipt for ``about`` towards its origin, releasing ``remove`` with it.

        Receipts due to one partner in the same pass of the event loop (a radio's reports
        are read together) are journaled together at its end, those with the same content
        in one envelope (``also_about``, at most :data:`_RECEIPTS_PER_ENVELOPE`): one
        envelope costs both gateways one journal entry, one custody acknowledgement and
        one commit for all of them. Nothing waits for company longer than that pass, and
        the commit is submitted from a callback, not a task, so a stop cannot leave a
        receipt behind that its caller had handed over. Receipts go one per envelope to a
        partner that is not online or did not announce the feature. Returns once the
        receipt is durable and queued. ``details``: as for :meth:`_receipt`.
        """
        nation = _origin_member(about)
        if (
            _egress(nation) not in self.queues
            or not self.link.reachable(nation)
            or not self.link.supports(nation, _RECEIPTS_BATCHED)
        ):
            held = self._receipt(about, state, **details)
            await self._commit_surely(add=[held] if held else [], remove=remove)
            return
        confirmation, reason = details.get("confirmation", 0), details.get("reason", "")
        self._note_receipt(about.message_id, state, confirmation, reason)
        loop = asyncio.get_running_loop()
        key = (nation, about.priority)
        due = self._receipts_due.get(key)
        if due is None:
            due = self._receipts_due[key] = []
            loop.call_soon(self._journal_receipts, key)
        done: asyncio.Future[None] = loop.create_future()
        content = (state, confirmation, details.get("tetra_status", 0), reason)
        due.append(_DueReceipt(about=about, content=content, remove=remove, done=done))
        await done

    def _journal_receipts(self, key: tuple[str, int]) -> None:
        """Submit the receipts due for ``key`` in one commit (see :meth:`_send_receipt`)."""
        due = self._receipts_due.pop(key, [])
        if not due:
            return
        try:
            add = self._receipt_envelopes(key[0], due)
            remove = [entry for receipt in due for entry in receipt.remove]
            self.counters["receipt_envelopes_batched"] += len(add)
            try:
                committed = self._submit_commit(add=add, remove=remove)
            except JournalError as exc:
                self._receipts_not_journaled(add, remove, due, exc)
                return
        except Exception as exc:  # a bug: its callers must hear of it, not wait for ever
            self.log.exception("receipts.failed", receipts=len(due))
            _settle_receipts(due, exc)
            return
        committed.add_done_callback(functools.partial(self._receipts_journaled, add, remove, due))

    def _receipt_envelopes(self, nation: str, due: list[_DueReceipt]) -> list[Held]:
        """The envelopes of the receipts ``due``, in order.

        Those with the same content share an envelope, except that the list is cut where
        a message comes up a second time (its DELIVERED and its READ, reported together):
        each cut's envelopes come after the previous cut's.
        """
        add: list[Held] = []
        cut: dict[_ReceiptContent, list[_DueReceipt]] = {}
        about: set[bytes] = set()
        for receipt in [*due, None]:
            if receipt is None or receipt.about.message_id in about:
                for (state, confirmation, tetra_status, reason), same in cut.items():
                    for start in range(0, len(same), _RECEIPTS_PER_ENVELOPE):
                        part = same[start : start + _RECEIPTS_PER_ENVELOPE]
                        envelope = self._receipt_envelope(
                            part[0].about,
                            state,
                            confirmation=confirmation,
                            tetra_status=tetra_status,
                            reason=reason,
                        )
                        envelope.receipt.also_about.extend(r.about.message_id for r in part[1:])
                        add.append(Held(envelope=envelope, entry_id=None, queue=_egress(nation)))
                cut, about = {}, set()
            if receipt is not None:
                cut.setdefault(receipt.content, []).append(receipt)
                about.add(receipt.about.message_id)
        return add

    def _receipts_journaled(
        self,
        add: list[Held],
        remove: list[int],
        due: list[_DueReceipt],
        committed: asyncio.Future[list[int] | None],
    ) -> None:
        if committed.cancelled():  # the journal never withdraws an op: a bug
            self.log.error("receipts.commit_cancelled", receipts=len(due))
            _settle_receipts(due, asyncio.CancelledError())
            return
        exc = committed.exception()
        if isinstance(exc, JournalError):
            self._receipts_not_journaled(add, remove, due, exc)
        else:  # done, or a bug: the callers fail, as with a commit of their own
            _settle_receipts(due, exc)

    def _receipts_not_journaled(
        self, add: list[Held], remove: list[int], due: list[_DueReceipt], exc: JournalError
    ) -> None:
        """The journal refused the receipts: retry until it takes them, as any caller would.

        Not once the journal is closed (a stop): the copies delivered are still in it, and
        are delivered again, with the same SDS-TL references, after the next start.
        """
        if self.journal is None:
            self.log.info("receipts.not_journaled", receipts=len(due), error=str(exc))
            _settle_receipts(due, asyncio.CancelledError())
            return
        self.log.warning("receipts.retry", receipts=len(due), error=str(exc))

        async def retry() -> None:
            try:
                while True:
                    try:
                        await self._commit(add=add, remove=remove)
                        break
                    except JournalError as refused:
                        if self.journal is None:  # stopping: delivered again after a start
                            _settle_receipts(due, asyncio.CancelledError())
                            return
                        await self._journal_trouble(refused)
            except BaseException as failure:
                _settle_receipts(due, failure)
                raise
            _settle_receipts(due, None)

        self._spawn(retry(), "receipts")

    @staticmethod
    def _is_final(receipt: v1.DeliveryReceipt, report_request: int | None = None) -> bool:
        if receipt.state in (v1.DELIVERY_STATE_FAILED, v1.DELIVERY_STATE_READ):
            return True
        return receipt.state == v1.DELIVERY_STATE_DELIVERED and report_request not in (2, 3)

    async def _origins_for(
        self, message_ids: Sequence[bytes], token: int
    ) -> dict[bytes, OriginRecord]:
        """The origin records of ``message_ids``, from memory or in one journal read.

        Records not in memory were spilled, or evicted from a full tracker.
        ``token`` is the caller's :meth:`Tracker.begin_read`: a record that a receipt
        ends meanwhile is left out when it is applied (see :meth:`_take_receipt`).
        """
        origins = self.tracker.origins
        records = {i: origins[i] for i in message_ids if i in origins}
        missing = [i for i in message_ids if i not in records]
        if not missing or self.journal is None:
            return records
        rows = await self._read_surely(functools.partial(_get_origins, missing))
        for message_id, row in rows.items():
            if self.tracker.ended(message_id):
                # Read before the commit that drops it was durable (it may be retried):
                # a receipt ended it, and the row is stale.
                continue
            record = origins.get(message_id)
            if record is None:  # not read back by another receipt meanwhile
                record = _origin_from_row(message_id, row)
                self.tracker.add_origin(record)
                self.counters["origins_from_journal"] += 1
            records[message_id] = record
        return records

    def _take_receipt(
        self,
        receipt: v1.DeliveryReceipt,
        message_id: bytes,
        records: dict[bytes, OriginRecord],
        token: int,
        sender: str | None,
    ) -> bool:
        """Apply ``receipt`` to our message ``message_id`` (reports, console, MCData).

        ``records`` and ``token``: from :meth:`_origins_for`; a record that another
        receipt ended since is not applied again. ``sender``: the partner it came from
        (None: our own); a partner's receipt about a message we did not send it is refused.

        Returns:
            True if it ended the message's origin record, which the caller then drops from
            the journal in the same pass (no await in between: a read of the journal
            queued after it sees the record gone).
        """
        record = records.get(message_id)
        if record is not None and self.tracker.ended_since(message_id, token):
            record = None
        # A partner's value: an unknown one must not create a metric series of its own.
        state_name = _RECEIPT_STATE_NAMES.get(receipt.state, "unknown")
        self.counters[f"receipts_{state_name}"] += 1
        if record is None:
            self.counters["receipts_unmatched"] += 1
            self.log.info("receipt.unmatched", message_id=message_id.hex(), state=state_name)
            return False
        if sender is not None and record.nations and sender not in record.nations:
            self.counters["receipts_misattributed"] += 1
            self.log.warning(
                "receipt.misattributed",
                partner=sender,
                message_id=message_id.hex(),
                sent_to=",".join(record.nations),
            )
            return False
        record.states.append(receipt.state)
        self._observe(
            "receipt",
            message_id,
            state=_enum_name(v1.DeliveryState, receipt.state),
            confirmation=_enum_name(v1.Confirmation, receipt.confirmation),
            reason=_shown(receipt.reason),  # a partner's text: bounded, printable
        )
        if record.adapter in self.mcdata:
            self._notify_mcdata_origin(record, receipt)
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
        if self._is_final(receipt, record.report_request):
            self.tracker.end_origin(message_id)
            return True
        return False

    # ---- control-room API support

    async def submit(self, envelope: v1.Envelope) -> bytes:
        """Take a message from an origin without a radio (a control room) into custody.

        The control room is an origin like a radio: the envelope goes to the egress queue of
        each destination country and is journaled together with an origin record that has no
        radio (adapter ``""``, no SDS-TL reference). Its receipts update ``tracker.origins``
        and the observations like any other message's, and no SDS-REPORT is sent for them.

        Args:
            envelope: Origin (our nation), destination, priority and body. ``message_id``,
                ``schema_version``, ``created_at_us`` and ``expires_at_us`` are filled in
                when unset.

        Returns:
            The message id.

        Raises:
            DeliveryRefused: Wrong origin nation, no priority, a destination that is not
                reachable from this gateway, or a journal that cannot take custody
                (reason code 0x40); nothing was accepted then.
        """
        from gateway.interworking import PRIORITY_NAMES

        if envelope.origin.nation != self.nation:
            raise DeliveryRefused(
                f"the origin nation must be {self.nation}, not {envelope.origin.nation!r}",
                reason_code=DeliveryStatus.SOURCE_NOT_AUTHORIZED,
            )
        if envelope.priority not in PRIORITY_NAMES:
            raise DeliveryRefused(
                "the envelope has no priority class", reason_code=DeliveryStatus.DELIVERY_FAILED
            )
        nations = self._destination_nations(envelope)
        if not envelope.message_id:
            envelope.message_id = _new_id()
        if not envelope.schema_version:
            envelope.schema_version = SCHEMA_VERSION
        if not envelope.created_at_us:
            envelope.created_at_us = self._now_us()
        if not envelope.expires_at_us:
            lifetime = self.config.delivery.expiry_seconds[PRIORITY_NAMES[envelope.priority]]
            envelope.expires_at_us = envelope.created_at_us + int(lifetime * 1_000_000)
        message_id = envelope.message_id
        origin = OriginRecord(
            message_id=message_id,
            adapter="",
            source_issi="",
            protocol_id=None,
            message_reference=None,
            report_request=int(envelope.report_request),
            priority=int(envelope.priority),
        )
        await self._take_custody(envelope, nations, origin)
        self.counters["accepted_api"] += 1
        return message_id

    def in_flight(self, nation: str) -> int:
        """Messages sent to ``nation`` and not yet acknowledged (0 for a non-partner)."""
        return len(self._inflight.get(nation, {}))

    def _observe_received(self, sender: str, envelope: v1.Envelope) -> None:
        """Observation of a partner's message taken into our custody (console, audit)."""
        self._observe(
            "received",
            envelope.message_id,
            partner=sender,
            origin=envelope.origin.unit,
            destination=_describe_destination(envelope),
            body=envelope.WhichOneof("body"),
            priority=v1.Priority.Name(envelope.priority),
            summary=_summary(envelope),
            envelope=envelope,
        )


_MCDATA_STATUS: dict[int, list[int]] = {
    NotificationType.DELIVERED: [DeliveryStatus.RECEIVED],
    NotificationType.READ: [DeliveryStatus.CONSUMED],
    NotificationType.DELIVERED_AND_READ: [DeliveryStatus.RECEIVED, DeliveryStatus.CONSUMED],
    NotificationType.UNDELIVERED: [DeliveryStatus.DELIVERY_FAILED],
}


def _sip_failure_status(status: int | None) -> int:
    """SDS-TL status for a failed MCData send, from its SIP answer."""
    if status in (404, 604):
        return DeliveryStatus.UNKNOWN_DESTINATION
    if status in (403, 603):
        return DeliveryStatus.DESTINATION_NOT_AUTHORIZED
    if status in (480, 408):
        return DeliveryStatus.DESTINATION_NOT_REACHABLE
    if status in (486, 600):
        return DeliveryStatus.DESTINATION_QUEUE_FULL
    if status == 413:
        return DeliveryStatus.MESSAGE_TOO_LONG
    if status in (415, 488):
        return DeliveryStatus.PROTOCOL_NOT_SUPPORTED
    return DeliveryStatus.DELIVERY_FAILED


def _mcdata_settings(adapter: AdapterConfig) -> McdataAdapterConfig:
    listen_host, _, listen_port = adapter.listen.rpartition(":")
    peer_host, _, peer_port = adapter.peer.rpartition(":")
    tls: dict[str, Any] = {}
    if adapter.transport == "tls":
        tls = {
            "transport": "tls",
            "server_ssl": mcdata_tls_context(adapter, server=True),
            "client_ssl": mcdata_tls_context(adapter, server=False),
        }
        if adapter.tls_server_name:
            tls["peer_server_name"] = adapter.tls_server_name
    return McdataAdapterConfig(
        name=adapter.name,
        server_uri=f"sip:{adapter.iwf_domain}",
        listen_host=listen_host,
        listen_port=int(listen_port),
        peer_host=peer_host,
        peer_port=int(peer_port),
        request_timeout=adapter.request_timeout,
        **tls,
    )


def mcdata_tls_context(adapter: AdapterConfig, *, server: bool) -> ssl.SSLContext:
    """Mutual TLS with an MCX system: our certificate, and theirs checked against ``tls_ca``.

    Both directions require the other side's certificate: an MCX system (or anyone) that
    cannot present one signed by ``tls_ca`` cannot hand us SDS, emergencies included.

    Raises:
        ConfigError: A file cannot be read or does not hold what it should.
    """
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    try:
        context = ssl.create_default_context(purpose, cafile=adapter.tls_ca)
        context.load_cert_chain(adapter.tls_cert, adapter.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"adapter {adapter.name!r}: cannot set up TLS: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _fill_presence(
    message: v1.PresenceUpdate, update: PresenceUpdate, now: float, now_us: int
) -> None:
    """Federation form of a presence update: times become wall-clock microseconds."""
    message.unit.nation = update.nation
    message.unit.unit = update.unit
    message.availability = int(update.availability)  # type: ignore[assignment]
    message.groups.extend(update.groups)
    message.served_by = update.gateway
    message.epoch = update.epoch
    message.seq = update.seq
    message.valid_for_ms = int(update.valid_for * 1000)
    if update.last_heard is not None:
        message.last_seen_us = now_us - int((now - update.last_heard) * 1_000_000)
    if update.location is not None:
        message.last_location.latitude = update.location.lat
        message.last_location.longitude = update.location.lon
        message.last_location.fix_time_us = now_us - int((now - update.location.at) * 1_000_000)


def _age(time_us: int, gateway: Gateway) -> float:
    """Seconds since a partner's wall-clock timestamp (never negative)."""
    return max(0.0, (gateway._now_us() - time_us) / 1_000_000)


class _Expired(ValueError):
    """A saved alert expired while the gateway was down (not an error)."""


def _alert_id(key: str) -> bytes:
    """The alert id of a saved alert's key; b"" (no alert) when the key is not hex."""
    try:
        return bytes.fromhex(key)
    except ValueError:
        return b""


def _put_state(
    presence: list[tuple[str, dict[str, Any] | None]],
    alerts: list[tuple[str, dict[str, Any] | None]],
    journal: JournalStore,
) -> None:
    journal.put_state("presence", presence)
    journal.put_state("alert", alerts)


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a name, got {value!r}")
    return value


def _name_or_none(value: object) -> str | None:
    return None if value is None else _name(value)


def _egress(nation: str) -> str:
    return f"egress:{nation}"


def _members_by_nation(partners: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Partner gateways by country: ``{"FR": ("FR", "FR-2")}``."""
    members: dict[str, tuple[str, ...]] = {}
    for partner in partners:
        members[member_nation(partner)] = (*members.get(member_nation(partner), ()), partner)
    return members


def _origin_member(envelope: v1.Envelope) -> str:
    """The partner gateway that sent ``envelope`` in (receipts go back to it)."""
    return envelope.origin_member or envelope.origin.nation


def _local(adapter: str) -> str:
    return f"local:{adapter}"


def _settle_receipts(due: list[_DueReceipt], exc: BaseException | None) -> None:
    """Wake the callers of ``due``: done if ``exc`` is None, else failed with it.

    A :class:`asyncio.CancelledError` cancels them: nothing was journaled.
    """
    for receipt in due:
        if receipt.done.done():  # its caller was cancelled: the receipt went all the same
            continue
        if exc is None:
            receipt.done.set_result(None)
        elif isinstance(exc, asyncio.CancelledError):
            receipt.done.cancel()
        else:
            receipt.done.set_exception(exc)


def _get_origins(message_ids: Sequence[bytes], journal: JournalStore) -> dict[bytes, Any]:
    rows = {i: journal.get_origin(i) for i in message_ids}
    return {i: row for i, row in rows.items() if row is not None}


def _shown(text: str, limit: int = _MAX_REASON) -> str:
    """A partner's free text as we show and log it: printable, at most ``limit`` characters."""
    printable = "".join(c if c.isprintable() else " " for c in text[: limit + 1])
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"


def _held_from_row(row: JournalEntry) -> Held:
    """The copy a journal row holds, as it was queued (without its delivery plan)."""
    envelope = v1.Envelope()
    envelope.ParseFromString(row.envelope)
    return Held(envelope=envelope, entry_id=row.entry_id, queue=row.queue, meta=row.meta)


def _entries_after(
    queue: str, priority: int, after: int, limit: int, journal: JournalStore
) -> list[JournalEntry]:
    return journal.entries_after(queue, priority, after, limit)


def _full(queue: AsyncScheduler[Held], size: int) -> bool:
    """True if ``queue`` has no room for one more copy of ``size`` bytes."""
    return len(queue) >= queue.max_items or queue.bytes + size > queue.max_bytes


def _urgent_waiting(queue: AsyncScheduler[Held]) -> bool:
    depths = queue.depths()
    return bool(depths[v1.PRIORITY_EMERGENCY] or depths[v1.PRIORITY_IMMINENT_PERIL])


def _expires_at(envelope: v1.Envelope) -> float | None:
    return envelope.expires_at_us / 1_000_000 if envelope.expires_at_us > 0 else None


def _seen_key(sender: str, message_id: bytes) -> bytes:
    """Duplicate suppression is per partner: one cannot pre-empt another's message ids."""
    return sender.encode() + b"/" + message_id


def _close_when_opened(opening: asyncio.Future[AsyncJournal]) -> None:
    if opening.cancelled() or opening.exception() is not None:
        return
    journal = opening.result()
    asyncio.get_running_loop().run_in_executor(None, journal.close)


def _uuid(value: bytes) -> uuid.UUID:
    """A partner's 1..64-byte identity as the UUID MCData needs (its own if 16 bytes)."""
    if len(value) == 16:
        return uuid.UUID(bytes=value)
    return uuid.uuid5(uuid.NAMESPACE_OID, value.hex())


def _origin_row(record: OriginRecord) -> dict[str, Any]:
    return {
        "adapter": record.adapter,
        "source_issi": record.source_issi,
        "protocol_id": record.protocol_id,
        "message_reference": record.message_reference,
        "report_request": record.report_request,
        "priority": record.priority,
        "conversation_id": record.conversation_id.hex(),
        "addressed_to": record.addressed_to,
        "nations": list(record.nations),
    }


def _origin_from_row(message_id: bytes, row: dict[str, Any]) -> OriginRecord:
    fields = dict(row)
    fields["conversation_id"] = bytes.fromhex(fields.get("conversation_id", ""))
    fields["nations"] = tuple(fields.get("nations", ()))
    return OriginRecord(message_id=message_id, **fields)


def _radio_status(receipt: v1.DeliveryReceipt, report_request: int) -> int | None:
    """Return the SDS-REPORT delivery status owed to the origin radio, if any."""
    if receipt.state == v1.DELIVERY_STATE_FAILED:
        return receipt.tetra_status or DeliveryStatus.DELIVERY_FAILED
    if receipt.state == v1.DELIVERY_STATE_DELIVERED and report_request in (1, 3):
        if receipt.confirmation == v1.CONFIRMATION_UNIT:
            return DeliveryStatus.RECEIVED
        if receipt.tetra_status == DeliveryStatus.SENT_TO_GROUP:
            return DeliveryStatus.SENT_TO_GROUP
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


def _more_urgent(queue: AsyncScheduler[Held], priority: int) -> bool:
    """True if ``queue`` holds a non-urgent entry of a more urgent class than ``priority``.

    Urgent entries are not counted: their own delivery loop takes them.
    """
    return any(
        count and priority < cls < v1.PRIORITY_IMMINENT_PERIL
        for cls, count in queue.depths().items()
    )
