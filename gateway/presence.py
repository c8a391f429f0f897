"""Presence registry: availability leases, affiliations, locations and coalesced updates.

Pure decision code: no I/O, no asyncio, no clock. Every method that depends on time
takes ``now`` (seconds, any monotonic clock the caller likes); the asyncio gateway
sleeps until :meth:`PresenceRegistry.next_deadline` and then calls
:meth:`PresenceRegistry.tick` and :meth:`PresenceRegistry.drain`.

Availability of one unit (field notes §3.3: server-side liveness owns offline
detection, an explicit ``stale`` state, ``unknown`` after a restart, epochs)::

    UNKNOWN --heard--> ONLINE --lease passes--> STALE --offline_after passes--> OFFLINE
       ^                  ^                                                        |
       |                  +------------------------ heard -------------------------+
    (restart / seed)      deregistered() -> OFFLINE at once (affiliations cleared)

Only :meth:`PresenceRegistry.heard` (and a partner's update) makes a unit ONLINE;
time only moves it ONLINE -> STALE -> OFFLINE. Affiliation and location reports
do not touch availability: call ``heard()`` too when they came over the air.

Local and remote units. A unit whose serving gateway is this registry's gateway
is *local*: its changes are coalesced and federated by :meth:`drain`. Units learnt
from partners with :meth:`PresenceRegistry.apply_remote` are *remote*: they are
never re-federated (no loops), but they get leases from the update's
``valid_for``, so a partner that goes silent cannot leave ghosts.

Federated updates (:class:`PresenceUpdate`) carry ``(epoch, seq)``: the epoch is
this gateway's, set at construction (a restarted gateway must use a larger one,
e.g. a persisted counter or the start time in microseconds); ``seq`` counts the
updates of one unit within an epoch. Times in an update are in the sender's
clock; ``sent_at`` lets the receiver rebase them, so the two gateways' clocks
never need to agree. ``valid_for`` is how long the stated availability holds:
for ONLINE the remaining lease, for STALE the time until OFFLINE. A unit that
keeps talking is re-announced shortly (a tenth of the lease) before its last
advertised validity runs out, so partners never see it go STALE while it is
ONLINE here, at the cost of about one update per unit and lease.

The protobuf ``PresenceUpdate`` of ``euccs.v1`` has no ``seq`` nor ``valid_for``
field yet; the integrator must add them (new field numbers) to carry this
dataclass losslessly.

Emergency replay (3GPP TS 24.379 §12.1.3.4): outstanding emergency alerts are
re-sent to a unit that newly affiliates to the alert's group or comes back from
out of coverage. Mutators return a :class:`PresenceEvent` with ``came_back`` and
``newly_affiliated``; pass it to :meth:`EmergencyLedger.replays`::

    event = registry.heard(unit, now)
    for alert in ledger.replays(event, now):
        resend(alert.payload_ref, to=unit)

Memory is bounded: ``max_units`` records and ``max_alerts`` outstanding alerts
(the one expiring soonest is evicted). Our own units come first: a partner's
update may only evict a partner's unit that is OFFLINE or UNKNOWN (else
``apply_remote`` returns False), so a flood of partner presence never pushes out
our radios. A unit of ours evicts, in this order, a partner's OFFLINE or UNKNOWN
unit, the partner's unit updated longest ago, then one of ours that is OFFLINE or
UNKNOWN with nothing left to federate; only when all ``max_units`` are our own
live units do local mutators raise :class:`PresenceFull`. A partner's update
carries at most ``MAX_GROUPS_PER_UNIT`` groups and a validity of at most
``REMOTE_VALIDITY_FACTOR`` times our own lease (or ``offline_after``).
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway._toml import Table
from gateway.members import is_member
from protocols.errors import GatewayError

__all__ = [
    "MAX_GROUPS_PER_UNIT",
    "REMOTE_VALIDITY_FACTOR",
    "Availability",
    "EmergencyLedger",
    "Location",
    "OutstandingAlert",
    "PresenceChange",
    "PresenceEvent",
    "PresenceFull",
    "PresenceRegistry",
    "PresenceSettings",
    "PresenceUpdate",
    "UnitPresence",
    "parse_presence",
]

#: How many gateways' (epoch, seq) high-water marks one unit keeps.
_MAX_VERSIONS_PER_UNIT = 8

#: Most groups a partner's update may affiliate one unit to (the rest are dropped).
MAX_GROUPS_PER_UNIT = 64

#: A partner's ``valid_for`` is capped at this many of our own leases (or ``offline_after``).
REMOTE_VALIDITY_FACTOR = 4.0

#: A lease renewal is saved once it moved the saved lease end by this share of a lease.
_SAVE_RENEWAL_SHARE = 0.25


class Availability(enum.IntEnum):
    """Availability of a unit; the values equal ``euccs.v1.Availability``."""

    #: Not heard since this gateway started (or never).
    UNKNOWN = 0
    #: Heard within its lease.
    ONLINE = 1
    #: The lease passed without traffic; probably out of coverage.
    STALE = 2
    #: Deregistered, or stale for ``offline_after`` seconds.
    OFFLINE = 3


class PresenceFull(GatewayError):
    """The registry holds ``max_units`` units and none can be evicted."""


@dataclass(frozen=True, kw_only=True)
class PresenceSettings:
    """Tuning of the presence registry (TOML table ``[presence]``).

    Attributes:
        lease: Seconds a unit stays ONLINE after it was last heard.
        offline_after: Seconds a unit stays STALE before it becomes OFFLINE.
        coalesce_interval: Minimum seconds between two federated updates of one unit.
        max_units: Most units (local and remote) the registry holds.
        max_alerts: Most outstanding emergency alerts the ledger holds.
    """

    lease: float = 300.0
    offline_after: float = 600.0
    coalesce_interval: float = 1.0
    max_units: int = 100_000
    max_alerts: int = 10_000

    def __post_init__(self) -> None:
        if not self.lease > 0 or math.isinf(self.lease):
            raise ValueError(f"lease must be a positive finite number, got {self.lease}")
        if not self.offline_after >= 0 or math.isinf(self.offline_after):
            raise ValueError(f"offline_after must be >= 0, got {self.offline_after}")
        if not self.coalesce_interval >= 0 or math.isinf(self.coalesce_interval):
            raise ValueError(f"coalesce_interval must be >= 0, got {self.coalesce_interval}")
        if self.max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {self.max_units}")
        if self.max_alerts < 1:
            raise ValueError(f"max_alerts must be >= 1, got {self.max_alerts}")


def parse_presence(table: Table) -> PresenceSettings:
    """Read a ``[presence]`` table; raise :class:`ConfigError` naming the key.

    Keys (all optional): ``lease`` (> 0, default 300), ``offline_after`` (>= 0,
    default 600), ``coalesce_interval`` (>= 0, default 1.0), ``max_units``
    (integer >= 1, default 100000), ``max_alerts`` (integer >= 1, default 10000).

    Args:
        table: The ``[presence]`` table (an empty one when absent).

    Returns:
        The validated settings.
    """
    defaults = PresenceSettings()
    settings = PresenceSettings(
        lease=_seconds(table, "lease", defaults.lease, positive=True),
        offline_after=_seconds(table, "offline_after", defaults.offline_after),
        coalesce_interval=_seconds(table, "coalesce_interval", defaults.coalesce_interval),
        max_units=_count(table, "max_units", defaults.max_units),
        max_alerts=_count(table, "max_alerts", defaults.max_alerts),
    )
    table.finish()
    return settings


def _seconds(table: Table, key: str, default: float, *, positive: bool = False) -> float:
    value: float = table.number(key, default)
    if not math.isfinite(value):
        raise table.error(key, f"expected a finite number of seconds, got {value}.")
    if positive and value <= 0:
        raise table.error(key, "must be a positive number of seconds.")
    return value


def _count(table: Table, key: str, default: int) -> int:
    value: float = table.number(key, float(default), minimum=1)
    if not math.isfinite(value) or not value.is_integer():
        raise table.error(key, f"expected a whole number, got {value}.")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class Location:
    """A unit's last known position.

    Attributes:
        lat: WGS84 latitude in degrees, north positive.
        lon: WGS84 longitude in degrees, east positive.
        at: When the fix was taken (the registry's clock).
        accuracy: Upper bound of the horizontal error in metres, if known.
    """

    lat: float
    lon: float
    at: float
    accuracy: float | None = None


@dataclass(frozen=True, kw_only=True)
class UnitPresence:
    """A read-only snapshot of one unit's presence.

    Attributes:
        unit: Federation identity, e.g. ``"de.polizei.2001"``.
        nation: Nation of the serving gateway.
        gateway: Name of the serving gateway.
        availability: Current availability.
        groups: Affiliated cross-border groups.
        location: Last known location, if any.
        last_heard: When the unit was last heard (None: never).
        changed_at: When availability last changed.
        local: True if this registry's gateway serves the unit.
        member: The federation member of the serving gateway where its country is split
            over several gateways (``DE-2``); "": the one named like the country.
    """

    unit: str
    nation: str
    gateway: str
    availability: Availability
    groups: frozenset[str]
    location: Location | None
    last_heard: float | None
    changed_at: float
    local: bool
    member: str = ""


@dataclass(frozen=True, kw_only=True)
class PresenceEvent:
    """What one mutator call did to a unit.

    Attributes:
        unit: The unit.
        previous: Availability before the call.
        availability: Availability after the call.
        groups: Affiliations after the call.
        came_back: The unit became ONLINE from STALE or OFFLINE, or from UNKNOWN
            while it was known before (seeded after a restart, or seen earlier).
            Outstanding alerts for its groups and for itself are due again.
        newly_affiliated: Groups this call added to the unit's affiliations.
        changed: Something a partner would see changed (availability, groups,
            location or serving gateway).
        at: The ``now`` of the call.
    """

    unit: str
    previous: Availability
    availability: Availability
    groups: frozenset[str]
    came_back: bool = False
    newly_affiliated: frozenset[str] = frozenset()
    changed: bool = False
    at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PresenceChange:
    """An availability transition made by :meth:`PresenceRegistry.tick`.

    Attributes:
        unit: The unit.
        previous: Availability before.
        availability: Availability after.
        at: When the transition was due (not necessarily the tick's ``now``).
        local: True if this registry's gateway serves the unit.
    """

    unit: str
    previous: Availability
    availability: Availability
    at: float
    local: bool


@dataclass(frozen=True, kw_only=True)
class PresenceUpdate:
    """One unit's presence as federated between gateways.

    Attributes:
        unit: Federation identity.
        nation: Nation of the serving gateway.
        gateway: Name of the serving gateway (the sender).
        epoch: The serving gateway's epoch; larger after each restart.
        seq: Per-unit sequence number within the epoch, from 1.
        availability: Availability at ``sent_at``.
        groups: Affiliated groups, sorted.
        location: Last location (``at`` in the sender's clock), if any.
        last_heard: When the unit was last heard, in the sender's clock.
        valid_for: Seconds the availability holds without a refresh (ONLINE: the
            remaining lease; STALE: time until OFFLINE; otherwise 0).
        sent_at: The sender's clock when the update was made.
        member: The federation member that sent it, where its country is split over
            several gateways (``DE-2``); "": the one named like the country.
    """

    unit: str
    nation: str
    gateway: str
    epoch: int
    seq: int
    availability: Availability
    groups: tuple[str, ...] = ()
    location: Location | None = None
    last_heard: float | None = None
    valid_for: float = 0.0
    sent_at: float = 0.0
    member: str = ""


@dataclass(slots=True, kw_only=True)
class _Record:
    unit: str
    nation: str
    gateway: str
    member: str = ""
    availability: Availability = Availability.UNKNOWN
    groups: set[str] = field(default_factory=set)
    location: Location | None = None
    last_heard: float | None = None
    changed_at: float = 0.0
    known: bool = False
    # Lease: when the current availability degrades, and the live heap entry.
    stale_at: float | None = None
    offline_at: float | None = None
    lease_token: int = 0
    lease_entry: float | None = None
    # Emission of local units.
    seq: int = 0
    last_emit: float | None = None
    pending_since: float | None = None
    advertised_until: float | None = None
    emit_token: int = 0
    emit_entry: float | None = None
    # Remote units: (epoch, seq) high-water mark per sending gateway.
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Persistence: the lease end last saved (renewals are saved coarsely).
    saved_stale_at: float | None = None


_Entry = tuple[float, int, str, int]
_DueOf = Callable[[_Record], float | None]


class PresenceRegistry:
    """Presence of local and remote units, with leases, coalescing and epochs.

    Args:
        gateway: This gateway's name; units it serves are federated by :meth:`drain`.
        nation: This gateway's nation.
        epoch: This gateway's epoch (>= 1); a restarted gateway must use a larger one.
        settings: Tuning; defaults when omitted.
    """

    def __init__(
        self, *, gateway: str, nation: str, epoch: int, settings: PresenceSettings | None = None
    ) -> None:
        if epoch < 1:
            raise ValueError(f"epoch must be >= 1, got {epoch}")
        self.gateway = gateway
        self.nation = nation
        self.epoch = epoch
        self.settings = settings if settings is not None else PresenceSettings()
        self._records: dict[str, _Record] = {}
        self._members: dict[str, set[str]] = {}
        #: OFFLINE or UNKNOWN units, least recently changed first; ours and partners' apart.
        self._evictable: dict[bool, dict[str, None]] = {True: {}, False: {}}
        #: Partners' units, the one updated longest ago first.
        self._remote: dict[str, None] = {}
        self._lease_heap: list[_Entry] = []
        self._emit_heap: list[_Entry] = []
        self._order = itertools.count()
        self._unsaved: dict[str, None] = {}
        #: Units evicted to make room (a metric).
        self.evicted = 0
        #: Partners' updates refused because the registry was full of our own units (a metric).
        self.refused = 0

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, unit: object) -> bool:
        return unit in self._records

    def get(self, unit: str) -> UnitPresence | None:
        """Return a snapshot of ``unit``, or None if the registry does not hold it."""
        rec = self._records.get(unit)
        return None if rec is None else self._snapshot(rec)

    def availability(self, unit: str) -> Availability:
        """Return the availability of ``unit`` (UNKNOWN when not held)."""
        rec = self._records.get(unit)
        return Availability.UNKNOWN if rec is None else rec.availability

    def units(self) -> Iterator[UnitPresence]:
        """Iterate snapshots of every unit held."""
        for rec in self._records.values():
            yield self._snapshot(rec)

    def affiliated(self, group: str) -> frozenset[str]:
        """Return the units affiliated to ``group`` (local and remote)."""
        return frozenset(self._members.get(group, ()))

    def next_deadline(self) -> float | None:
        """Return when :meth:`tick` or :meth:`drain` next has work, or None.

        The value may be in the past (an update is ready to drain now); it is
        never later than any due transition or pending update.
        """
        times = [
            t
            for t in (
                self._peek(self._lease_heap, self._lease_due, lease=True),
                self._peek(self._emit_heap, self._emit_due, lease=False),
            )
            if t is not None
        ]
        return min(times) if times else None

    # ---------------------------------------------------------------- mutators

    def seed(self, units: Iterable[str], now: float, *, announce: bool = True) -> int:
        """Register configured units as UNKNOWN after a (re)start.

        Seeded units count as *known*: when heard they ``came_back``. With
        ``announce`` their UNKNOWN state is federated under the new epoch, so
        partners drop what they held from our previous epoch.

        Args:
            units: Federation identities of our configured units.
            now: Current time.
            announce: Queue an UNKNOWN update for each newly seeded unit.

        Returns:
            How many units were added (units already held are left alone).

        Raises:
            PresenceFull: ``max_units`` is reached and nothing can be evicted.
        """
        added = 0
        for unit in units:
            if unit in self._records:
                continue
            rec = self._create(unit, now, nation=self.nation, gateway=self.gateway)
            rec.known = True
            if announce:
                self._mark_changed(rec, now)
            added += 1
        return added

    def heard(
        self, unit: str, now: float, *, gateway: str | None = None, nation: str | None = None
    ) -> PresenceEvent:
        """Record traffic from (or a registration of) ``unit``: ONLINE, lease renewed.

        Args:
            unit: Federation identity.
            now: Current time.
            gateway: Serving gateway; this registry's gateway when omitted.
            nation: Nation of the serving gateway; this registry's nation when omitted.

        Returns:
            The event; ``came_back`` says whether outstanding alerts are due again.

        Raises:
            PresenceFull: A new unit does not fit and nothing can be evicted.
        """
        gateway = self.gateway if gateway is None else gateway
        nation = self.nation if nation is None else nation
        rec = self._records.get(unit)
        if rec is None:
            rec = self._create(unit, now, nation=nation, gateway=gateway)
        previous = rec.availability
        # A lease that ran out before the tick got to it still means out of reach meanwhile.
        lapsed = (
            previous is Availability.ONLINE and rec.stale_at is not None and rec.stale_at <= now
        )
        came_back = (
            lapsed
            or previous in (Availability.STALE, Availability.OFFLINE)
            or (previous is Availability.UNKNOWN and rec.known)
        )
        changed = previous is not Availability.ONLINE
        if rec.gateway != gateway or rec.nation != nation:
            self._move(rec, gateway, nation)
            rec.pending_since = None  # a different emitter now; reset below if local
            changed = True
        rec.known = True
        rec.last_heard = now
        rec.stale_at = now + self.settings.lease
        rec.offline_at = None
        self._set_availability(rec, Availability.ONLINE, now)
        self._schedule_lease(rec)
        if (
            changed
            or rec.saved_stale_at is None
            or rec.stale_at - rec.saved_stale_at >= self.settings.lease * _SAVE_RENEWAL_SHARE
        ):
            self._unsaved[unit] = None
        if changed:
            self._mark_changed(rec, now)
        else:
            self._schedule_emit(rec)  # the lease may now outlive what partners were told
        return self._event(rec, previous, now, came_back=came_back, changed=changed)

    def deregistered(self, unit: str, now: float) -> PresenceEvent:
        """Record an explicit deregistration: OFFLINE at once, affiliations cleared.

        Args:
            unit: Federation identity.
            now: Current time.

        Returns:
            The event.

        Raises:
            PresenceFull: A new unit does not fit and nothing can be evicted.
        """
        rec = self._local(unit, now)
        previous = rec.availability
        changed = previous is not Availability.OFFLINE or bool(rec.groups)
        rec.known = True
        for group in list(rec.groups):
            self._leave(rec, group)
        rec.stale_at = rec.offline_at = None
        self._set_availability(rec, Availability.OFFLINE, now)
        self._schedule_lease(rec)
        if changed:
            self._unsaved[unit] = None
            self._mark_changed(rec, now)
        return self._event(rec, previous, now, changed=changed)

    def affiliate(self, unit: str, group: str, now: float) -> PresenceEvent:
        """Record that ``unit`` affiliated to ``group`` (availability unchanged).

        Args:
            unit: Federation identity.
            group: Cross-border group name.
            now: Current time.

        Returns:
            The event; ``newly_affiliated`` is ``{group}`` unless it already was.

        Raises:
            PresenceFull: A new unit does not fit and nothing can be evicted.
        """
        rec = self._local(unit, now)
        previous = rec.availability
        new = group not in rec.groups
        if new:
            self._join(rec, group)
            self._unsaved[unit] = None
            self._mark_changed(rec, now)
        return self._event(
            rec, previous, now, newly=frozenset({group}) if new else frozenset(), changed=new
        )

    def deaffiliate(self, unit: str, group: str, now: float) -> PresenceEvent:
        """Record that ``unit`` left ``group``.

        Args:
            unit: Federation identity.
            group: Cross-border group name.
            now: Current time.

        Returns:
            The event (``changed`` is False if it was not affiliated).
        """
        rec = self._records.get(unit)
        if rec is None:
            return PresenceEvent(
                unit=unit,
                previous=Availability.UNKNOWN,
                availability=Availability.UNKNOWN,
                groups=frozenset(),
                at=now,
            )
        was = group in rec.groups
        if was:
            self._leave(rec, group)
            self._unsaved[unit] = None
            self._mark_changed(rec, now)
        return self._event(rec, rec.availability, now, changed=was)

    def location(
        self,
        unit: str,
        lat: float,
        lon: float,
        at: float,
        now: float,
        *,
        accuracy: float | None = None,
    ) -> PresenceEvent:
        """Record a location fix of ``unit`` taken at ``at`` (older fixes are ignored).

        Args:
            unit: Federation identity.
            lat: WGS84 latitude in degrees (-90..90).
            lon: WGS84 longitude in degrees (-180..180).
            at: When the fix was taken.
            now: Current time.
            accuracy: Horizontal error bound in metres, if known.

        Returns:
            The event (``changed`` is False for a fix older than the one held).

        Raises:
            ValueError: Coordinates out of range or not finite.
            PresenceFull: A new unit does not fit and nothing can be evicted.
        """
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"location ({lat}, {lon}) is out of range")
        if accuracy is not None and not accuracy >= 0:
            raise ValueError(f"accuracy {accuracy} must be >= 0")
        rec = self._local(unit, now)
        newer = rec.location is None or at >= rec.location.at
        if newer:
            rec.location = Location(lat=lat, lon=lon, at=at, accuracy=accuracy)
            self._unsaved[unit] = None
            self._mark_changed(rec, now)
        return self._event(rec, rec.availability, now, changed=newer)

    def tick(self, now: float) -> list[PresenceChange]:
        """Perform the lease transitions due at ``now``.

        Args:
            now: Current time.

        Returns:
            The transitions, in the order they were due.
        """
        changes: list[PresenceChange] = []
        heap = self._lease_heap
        while heap and heap[0][0] <= now:
            _, _, unit, token = heapq.heappop(heap)
            rec = self._records.get(unit)
            if rec is None or token != rec.lease_token:
                continue
            rec.lease_entry = None
            due = self._lease_due(rec)
            if due is None:
                continue
            if due > now:
                self._push_lease(rec, due)
                continue
            previous = rec.availability
            if previous is Availability.ONLINE:
                rec.stale_at = None
                rec.offline_at = due + self.settings.offline_after
                self._set_availability(rec, Availability.STALE, due)
            else:
                rec.offline_at = None
                self._set_availability(rec, Availability.OFFLINE, due)
            self._schedule_lease(rec)
            self._unsaved[unit] = None
            self._mark_changed(rec, due)
            changes.append(
                PresenceChange(
                    unit=unit,
                    previous=previous,
                    availability=rec.availability,
                    at=due,
                    local=rec.gateway == self.gateway,
                )
            )
        self._compact()
        return changes

    def drain(self, now: float, *, limit: int | None = None) -> list[PresenceUpdate]:
        """Return the federated updates due at ``now`` (coalesced per unit).

        A local unit whose state changed is emitted with its latest state once its
        previous update is at least ``coalesce_interval`` old; later ones stay
        pending and :meth:`next_deadline` accounts for them. Call :meth:`tick`
        first so lease transitions are included.

        Args:
            now: Current time.
            limit: Most updates to return (the rest stay due); None for all.

        Returns:
            The updates, each with the next ``seq`` of its unit.
        """
        out: list[PresenceUpdate] = []
        heap = self._emit_heap
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            _, _, unit, token = heapq.heappop(heap)
            rec = self._records.get(unit)
            if rec is None or token != rec.emit_token:
                continue
            rec.emit_entry = None
            due = self._emit_due(rec)
            if due is None:
                continue
            if due > now:
                self._push_emit(rec, due)
                continue
            out.append(self._emit(rec, now))
        self._compact()
        return out

    def apply_remote(self, update: PresenceUpdate, now: float) -> bool:
        """Apply a partner gateway's update; return True if it changed our view.

        Accepted only if ``(epoch, seq)`` is newer than the last one held for the
        unit from the same gateway (a restarted gateway's larger epoch wins over
        any seq of its previous epoch). An update from a gateway other than the
        current server that does not say ONLINE does not override an ONLINE unit
        (a late OFFLINE from the unit's former gateway). Updates claiming to come
        from this gateway are ignored. The remote unit gets a lease of
        ``valid_for`` seconds, then ``offline_after`` seconds of STALE.

        Args:
            update: The partner's update.
            now: Current time (the sender's times are rebased onto it).

        Returns:
            True if applied; False if stale, ignored, or the registry is full.
        """
        if update.gateway == self.gateway or not (update.unit and update.gateway and update.nation):
            return False
        availability = Availability(update.availability)
        version = (update.epoch, update.seq)
        rec = self._records.get(update.unit)
        if rec is None:
            try:
                rec = self._create(
                    update.unit,
                    now,
                    nation=update.nation,
                    gateway=update.gateway,
                    member=update.member,
                )
            except PresenceFull:
                self.refused += 1
                return False
        else:
            held = rec.versions.get(update.gateway)
            if held is not None and version <= held:
                return False
        rec.versions.pop(update.gateway, None)
        rec.versions[update.gateway] = version
        while len(rec.versions) > _MAX_VERSIONS_PER_UNIT:
            oldest = next(g for g in rec.versions if g != update.gateway)
            del rec.versions[oldest]
        self._unsaved[rec.unit] = None  # the version moved, applied or not
        if (
            rec.gateway != update.gateway
            and rec.availability is Availability.ONLINE
            and availability is not Availability.ONLINE
        ):
            return False
        offset = now - update.sent_at
        self._move(rec, update.gateway, update.nation, update.member)
        self._remote.pop(rec.unit, None)
        self._remote[rec.unit] = None  # updated last: evicted last among partners' units
        rec.pending_since = None  # remote units are not re-federated
        rec.known = True
        groups = set(sorted(set(update.groups))[:MAX_GROUPS_PER_UNIT])
        for group in rec.groups - groups:
            self._leave(rec, group)
        for group in groups:
            if group not in rec.groups:
                self._join(rec, group)
        loc = update.location
        if loc is not None and _plausible(loc):
            rec.location = Location(
                lat=loc.lat, lon=loc.lon, at=loc.at + offset, accuracy=loc.accuracy
            )
        if update.last_heard is not None and math.isfinite(update.last_heard):
            rec.last_heard = update.last_heard + offset
        valid_for = max(update.valid_for, 0.0) if math.isfinite(update.valid_for) else 0.0
        rec.stale_at = rec.offline_at = None
        if availability is Availability.ONLINE:
            rec.stale_at = now + min(valid_for, self.settings.lease * REMOTE_VALIDITY_FACTOR)
        elif availability is Availability.STALE:
            longest = self.settings.offline_after * REMOTE_VALIDITY_FACTOR
            rec.offline_at = now + min(valid_for, longest)
        self._set_availability(rec, availability, now)
        self._schedule_lease(rec)
        self._unsaved[rec.unit] = None
        return True

    # ------------------------------------------------------------- persistence

    def unsaved(
        self, now: float, *, limit: int | None = None
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """Return what changed since the last call, in the form :meth:`restore` takes.

        A gateway stores these rows (with the wall-clock time they were taken) so that
        a restarted gateway, or another instance taking over, resumes presence instead
        of starting every unit UNKNOWN. Times are relative to ``now``; lease renewals
        of a unit that keeps talking are included only once they moved its lease end
        by a quarter of a lease (a restored unit may go STALE that much early, never
        late). A unit only seeded (UNKNOWN, nothing known) and a unit no longer held
        come out as ``(unit, None)``: nothing to keep.

        Args:
            now: Current time.
            limit: Return at most this many (the rest stay unsaved); None for all.

        Returns:
            ``(unit, state)`` pairs; ``state`` is None when there is nothing to keep.
        """
        out: list[tuple[str, dict[str, Any] | None]] = []
        units = list(self._unsaved) if limit is None else list(self._unsaved)[:limit]
        for unit in units:
            del self._unsaved[unit]
            rec = self._records.get(unit)
            if rec is None or (
                rec.availability is Availability.UNKNOWN
                and not rec.groups
                and rec.location is None
                and not rec.versions
            ):
                out.append((unit, None))
                continue
            rec.saved_stale_at = rec.stale_at
            out.append((unit, _saved_form(rec, now)))
        return out

    def mark_unsaved(self, units: Iterable[str]) -> None:
        """Have :meth:`unsaved` return ``units`` again (their save failed)."""
        for unit in units:
            self._unsaved[unit] = None
            rec = self._records.get(unit)
            if rec is not None:
                rec.saved_stale_at = None

    def restore(self, state: Mapping[str, Any], then: float, now: float) -> PresenceEvent:
        """Resume one unit from a row :meth:`unsaved` returned at time ``then``.

        Lease ends, last-heard and location times are rebased from ``then``; a lease
        that ran out meanwhile moves the unit to STALE or OFFLINE at the next
        :meth:`tick`, as if the registry had never stopped. A local unit is federated
        again under this registry's epoch; a remote unit keeps its sender's
        ``(epoch, seq)`` high-water mark, so an update older than the saved state is
        still refused. Call before :meth:`seed`.

        Args:
            state: The saved form of the unit.
            then: When it was saved, on this registry's clock (at most ``now``).
            now: Current time.

        Returns:
            The event (``changed`` is True).

        Raises:
            ValueError: ``state`` is not a saved form (missing or malformed fields).
            PresenceFull: The unit does not fit and nothing can be evicted.
        """
        try:
            if not isinstance(state, Mapping):
                raise TypeError(f"expected an object, got {type(state).__name__}")
            unit, rec = _restored_record(state, then)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved presence state: {exc!r}") from exc
        if unit in self._records:
            raise ValueError(f"{unit} is already held")
        local = rec.gateway == self.gateway
        if len(self._records) >= self.settings.max_units:
            self._evict_one(local=local)
        self._records[unit] = rec
        for group in rec.groups:
            self._members.setdefault(group, set()).add(unit)
        if not local:
            self._remote[unit] = None
        if rec.availability in (Availability.OFFLINE, Availability.UNKNOWN):
            self._evictable[local][unit] = None
        rec.saved_stale_at = rec.stale_at
        self._schedule_lease(rec)
        self._mark_changed(rec, now)
        return self._event(rec, rec.availability, now, changed=True)

    # ----------------------------------------------------------------- helpers

    def _snapshot(self, rec: _Record) -> UnitPresence:
        return UnitPresence(
            unit=rec.unit,
            nation=rec.nation,
            gateway=rec.gateway,
            availability=rec.availability,
            groups=frozenset(rec.groups),
            location=rec.location,
            last_heard=rec.last_heard,
            changed_at=rec.changed_at,
            local=rec.gateway == self.gateway,
            member=rec.member,
        )

    def _event(
        self,
        rec: _Record,
        previous: Availability,
        now: float,
        *,
        came_back: bool = False,
        newly: frozenset[str] = frozenset(),
        changed: bool = False,
    ) -> PresenceEvent:
        return PresenceEvent(
            unit=rec.unit,
            previous=previous,
            availability=rec.availability,
            groups=frozenset(rec.groups),
            came_back=came_back,
            newly_affiliated=newly,
            changed=changed,
            at=now,
        )

    def _local(self, unit: str, now: float) -> _Record:
        rec = self._records.get(unit)
        if rec is None:
            rec = self._create(unit, now, nation=self.nation, gateway=self.gateway)
        return rec

    def _create(
        self, unit: str, now: float, *, nation: str, gateway: str, member: str = ""
    ) -> _Record:
        local = gateway == self.gateway
        if len(self._records) >= self.settings.max_units:
            self._evict_one(local=local)
        rec = _Record(unit=unit, nation=nation, gateway=gateway, member=member, changed_at=now)
        self._records[unit] = rec
        self._evictable[local][unit] = None
        if not local:
            self._remote[unit] = None
        return rec

    def _evict_one(self, *, local: bool) -> None:
        """Make room for one unit: ours may evict a partner's, a partner's never ours."""
        victim = next(iter(self._evictable[False]), None)
        if victim is None and local:
            victim = next(iter(self._remote), None)
        if victim is None and local:
            victim = next(
                (u for u in self._evictable[True] if self._records[u].pending_since is None), None
            )
        if victim is None:
            raise PresenceFull(
                f"presence registry is full ({self.settings.max_units} units) and no "
                "unit can be evicted for this one",
                reply_hint="presence registry full",
            )
        rec = self._records.pop(victim)
        for index in (self._evictable[True], self._evictable[False], self._remote):
            index.pop(victim, None)
        self._unsaved[victim] = None
        for group in rec.groups:
            self._drop_member(group, victim)
        self.evicted += 1

    def _move(self, rec: _Record, gateway: str, nation: str, member: str = "") -> None:
        """Change the gateway serving ``rec``, keeping the eviction indexes right."""
        was_local = rec.gateway == self.gateway
        rec.gateway, rec.nation, rec.member = gateway, nation, member
        local = gateway == self.gateway
        if local == was_local:
            return
        if local:
            self._remote.pop(rec.unit, None)
        else:
            self._remote[rec.unit] = None
        if self._evictable[was_local].pop(rec.unit, 0) is None:
            self._evictable[local][rec.unit] = None

    def _set_availability(self, rec: _Record, new: Availability, at: float) -> None:
        if new is not rec.availability:
            rec.availability = new
            rec.changed_at = at
        evictable = self._evictable[rec.gateway == self.gateway]
        evictable.pop(rec.unit, None)
        if new in (Availability.OFFLINE, Availability.UNKNOWN):
            # Re-insert at the end: eviction takes the least recently changed first.
            evictable[rec.unit] = None

    def _join(self, rec: _Record, group: str) -> None:
        rec.groups.add(group)
        self._members.setdefault(group, set()).add(rec.unit)

    def _leave(self, rec: _Record, group: str) -> None:
        rec.groups.discard(group)
        self._drop_member(group, rec.unit)

    def _drop_member(self, group: str, unit: str) -> None:
        members = self._members.get(group)
        if members is not None:
            members.discard(unit)
            if not members:
                del self._members[group]

    # Lease timers: one live heap entry per unit (token), never later than the due time.

    @staticmethod
    def _lease_due(rec: _Record) -> float | None:
        if rec.availability is Availability.ONLINE:
            return rec.stale_at
        if rec.availability is Availability.STALE:
            return rec.offline_at
        return None

    def _schedule_lease(self, rec: _Record) -> None:
        due = self._lease_due(rec)
        if due is None:
            rec.lease_token += 1
            rec.lease_entry = None
        elif rec.lease_entry is None or rec.lease_entry > due:
            self._push_lease(rec, due)
        # else: the live entry fires earlier and reschedules itself (no heap growth
        # for a unit that keeps talking).

    def _push_lease(self, rec: _Record, due: float) -> None:
        rec.lease_token += 1
        rec.lease_entry = due
        heapq.heappush(self._lease_heap, (due, next(self._order), rec.unit, rec.lease_token))

    # Emission timers: coalescing and lease refresh of local units.

    def _emit_due(self, rec: _Record) -> float | None:
        if rec.gateway != self.gateway:
            return None
        floor = (
            -math.inf if rec.last_emit is None else rec.last_emit + self.settings.coalesce_interval
        )
        if rec.pending_since is not None:
            return max(rec.pending_since, floor)
        if (
            rec.availability is Availability.ONLINE
            and rec.advertised_until is not None
            and rec.stale_at is not None
            and rec.stale_at > rec.advertised_until
        ):
            return max(rec.advertised_until - self.settings.lease / 10, floor)
        return None

    def _schedule_emit(self, rec: _Record) -> None:
        due = self._emit_due(rec)
        if due is None:
            rec.emit_token += 1
            rec.emit_entry = None
        elif rec.emit_entry is None or rec.emit_entry > due:
            self._push_emit(rec, due)

    def _push_emit(self, rec: _Record, due: float) -> None:
        rec.emit_token += 1
        rec.emit_entry = due
        heapq.heappush(self._emit_heap, (due, next(self._order), rec.unit, rec.emit_token))

    def _mark_changed(self, rec: _Record, now: float) -> None:
        if rec.gateway != self.gateway:
            return
        if rec.pending_since is None:
            rec.pending_since = now
        self._schedule_emit(rec)

    def _emit(self, rec: _Record, now: float) -> PresenceUpdate:
        rec.seq += 1
        rec.last_emit = now
        rec.pending_since = None
        valid_for = 0.0
        rec.advertised_until = None
        if rec.availability is Availability.ONLINE and rec.stale_at is not None:
            valid_for = max(rec.stale_at - now, 0.0)
            rec.advertised_until = rec.stale_at
        elif rec.availability is Availability.STALE and rec.offline_at is not None:
            valid_for = max(rec.offline_at - now, 0.0)
        self._schedule_emit(rec)
        return PresenceUpdate(
            unit=rec.unit,
            nation=rec.nation,
            gateway=rec.gateway,
            epoch=self.epoch,
            seq=rec.seq,
            availability=rec.availability,
            groups=tuple(sorted(rec.groups)),
            location=rec.location,
            last_heard=rec.last_heard,
            valid_for=valid_for,
            sent_at=now,
        )

    def _peek(self, heap: list[_Entry], due_of: _DueOf, *, lease: bool) -> float | None:
        """Drop dead entries and move early ones to their real time; return the top."""
        while heap:
            when, _, unit, token = heap[0]
            rec = self._records.get(unit)
            live = rec is not None and token == (rec.lease_token if lease else rec.emit_token)
            if not live or rec is None:
                heapq.heappop(heap)
                continue
            due = due_of(rec)
            if due is None:
                heapq.heappop(heap)
                if lease:
                    rec.lease_entry = None
                else:
                    rec.emit_entry = None
                continue
            if due != when:
                heapq.heappop(heap)
                (self._push_lease if lease else self._push_emit)(rec, due)
                continue
            return when
        return None

    def _compact(self) -> None:
        for lease in (True, False):
            heap = self._lease_heap if lease else self._emit_heap
            if len(heap) <= 2 * len(self._records) + 1024:
                continue
            kept = []
            for entry in heap:
                rec = self._records.get(entry[2])
                if rec is not None and entry[3] == (rec.lease_token if lease else rec.emit_token):
                    kept.append(entry)
            heapq.heapify(kept)
            if lease:
                self._lease_heap = kept
            else:
                self._emit_heap = kept


def _plausible(loc: Location) -> bool:
    """A partner's fix we can keep (finite, on the globe); a bad one is dropped, not kept."""
    return (
        -90.0 <= loc.lat <= 90.0
        and -180.0 <= loc.lon <= 180.0
        and math.isfinite(loc.at)
        and (loc.accuracy is None or (math.isfinite(loc.accuracy) and loc.accuracy >= 0))
    )


def _ago(value: float | None, now: float) -> float | None:
    return None if value is None else now - value


def _saved_form(rec: _Record, now: float) -> dict[str, Any]:
    """One record as plain data, its times relative to ``now`` (JSON-safe)."""
    loc = rec.location
    return {
        "unit": rec.unit,
        "nation": rec.nation,
        "gateway": rec.gateway,
        **({"member": rec.member} if rec.member else {}),  # a split country's gateway
        "availability": rec.availability.name,
        "groups": sorted(rec.groups),
        "location": None
        if loc is None
        else {"lat": loc.lat, "lon": loc.lon, "age": now - loc.at, "accuracy": loc.accuracy},
        "heard_ago": _ago(rec.last_heard, now),
        "changed_ago": now - rec.changed_at,
        "stale_in": None if rec.stale_at is None else rec.stale_at - now,
        "offline_in": None if rec.offline_at is None else rec.offline_at - now,
        "known": rec.known,
        "versions": {gateway: list(version) for gateway, version in rec.versions.items()},
    }


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def _optional(value: object, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: expected a non-empty string, got {value!r}")
    return value


def _member(value: object) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not is_member(value):
        raise ValueError(f"member: expected a federation member id, got {value!r}")
    return value


def _restored_record(state: Mapping[str, Any], then: float) -> tuple[str, _Record]:
    """The record a saved form describes, its times rebased from ``then``."""
    unit = _text(state["unit"], "unit")
    availability = Availability[_text(state["availability"], "availability")]
    groups = state["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ValueError(f"groups: expected a list of names, got {groups!r}")
    location = None
    if state["location"] is not None:
        loc = state["location"]
        lat, lon = _number(loc["lat"], "lat"), _number(loc["lon"], "lon")
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"location ({lat}, {lon}) is out of range")
        location = Location(
            lat=lat,
            lon=lon,
            at=then - _number(loc["age"], "location age"),
            accuracy=_optional(loc["accuracy"], "accuracy"),
        )
    versions: dict[str, tuple[int, int]] = {}
    for gateway, version in dict(state["versions"]).items():
        epoch, seq = version
        if not (isinstance(epoch, int) and isinstance(seq, int)):
            raise ValueError(f"versions: expected [epoch, seq], got {version!r}")
        versions[_text(gateway, "gateway")] = (epoch, seq)
    heard_ago = _optional(state["heard_ago"], "heard_ago")
    stale_in = _optional(state["stale_in"], "stale_in")
    offline_in = _optional(state["offline_in"], "offline_in")
    rec = _Record(
        unit=unit,
        nation=_text(state["nation"], "nation"),
        gateway=_text(state["gateway"], "gateway"),
        member=_member(state.get("member", "")),
        availability=availability,
        groups=set(groups),
        location=location,
        last_heard=None if heard_ago is None else then - heard_ago,
        changed_at=then - _number(state["changed_ago"], "changed_ago"),
        known=bool(state["known"]),
        # Only the deadline of the current availability counts (as in _lease_due).
        stale_at=None if stale_in is None else then + stale_in,
        offline_at=None if offline_in is None else then + offline_in,
        versions=versions,
    )
    return unit, rec


# -------------------------------------------------------------------- emergencies


@dataclass(frozen=True, kw_only=True)
class OutstandingAlert:
    """An emergency alert that is still active and may have to be replayed.

    Attributes:
        alert_id: Message id of the alert envelope (16 bytes in the federation).
        group: Target group, if the alert went to a group.
        unit: Target unit, if the alert went to one unit.
        raised_at: When it was raised.
        expires_at: When it stops being outstanding.
        payload_ref: Opaque reference the gateway uses to re-send it (e.g. a journal key).
        origin: Unit that raised it, if known (for :meth:`EmergencyLedger.cancel_from`).
    """

    alert_id: bytes
    group: str | None
    unit: str | None
    raised_at: float
    expires_at: float
    payload_ref: object = None
    origin: str | None = None


class EmergencyLedger:
    """Outstanding emergency alerts and which units they were replayed to.

    Replay rule (TS 24.379 §12.1.3.4): an alert is re-sent to a unit that newly
    affiliates to its group, or that comes back from out of coverage (then every
    alert for any of its groups and every alert addressed to it). Each
    (alert, unit) pair is handed out at most once per return: the delivered pairs
    of a unit are forgotten when it comes back.

    Args:
        max_alerts: Most outstanding alerts; beyond it the one expiring soonest is evicted.
    """

    def __init__(self, *, max_alerts: int = 10_000) -> None:
        if max_alerts < 1:
            raise ValueError(f"max_alerts must be >= 1, got {max_alerts}")
        self.max_alerts = max_alerts
        self._alerts: dict[bytes, OutstandingAlert] = {}
        self._by_group: dict[str, set[bytes]] = {}
        self._by_unit: dict[str, set[bytes]] = {}
        self._by_origin: dict[str, set[bytes]] = {}
        self._delivered: dict[bytes, set[str]] = {}
        self._delivered_by_unit: dict[str, set[bytes]] = {}
        self._expiry: list[tuple[float, bytes]] = []
        self._evicted_ids: list[bytes] = []
        #: Alerts evicted because the ledger was full (a metric).
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._alerts)

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._alerts

    def get(self, alert_id: bytes) -> OutstandingAlert | None:
        """Return the outstanding alert ``alert_id``, if any."""
        return self._alerts.get(alert_id)

    def raise_alert(
        self,
        alert_id: bytes,
        *,
        raised_at: float,
        expires_at: float,
        group: str | None = None,
        unit: str | None = None,
        payload_ref: object = None,
        origin: str | None = None,
        delivered_to: Iterable[str] = (),
    ) -> OutstandingAlert:
        """Record an outstanding alert (idempotent for a repeated ``alert_id``).

        Args:
            alert_id: Message id of the alert.
            raised_at: When it was raised.
            expires_at: When it stops being outstanding.
            group: Target group (exactly one of ``group`` and ``unit``).
            unit: Target unit.
            payload_ref: Opaque reference for re-sending it.
            origin: Unit that raised it.
            delivered_to: Units that already received it live (not replayed to them
                until they come back).

        Returns:
            The recorded alert.

        Raises:
            ValueError: Not exactly one target.
        """
        if (group is None) == (unit is None):
            raise ValueError("an alert needs exactly one target: group or unit")
        if alert_id in self._alerts:
            self._remove(alert_id, keep_delivered=True)
        elif len(self._alerts) >= self.max_alerts:
            self._evict_soonest()
        alert = OutstandingAlert(
            alert_id=alert_id,
            group=group,
            unit=unit,
            raised_at=raised_at,
            expires_at=expires_at,
            payload_ref=payload_ref,
            origin=origin,
        )
        self._alerts[alert_id] = alert
        if group is not None:
            self._by_group.setdefault(group, set()).add(alert_id)
        if unit is not None:
            self._by_unit.setdefault(unit, set()).add(alert_id)
        if origin is not None:
            self._by_origin.setdefault(origin, set()).add(alert_id)
        for target in delivered_to:
            self.mark_delivered(alert_id, target)
        heapq.heappush(self._expiry, (expires_at, alert_id))
        return alert

    def cancel(self, alert_id: bytes) -> OutstandingAlert | None:
        """Forget an alert (it was cancelled); return it, or None if unknown."""
        alert = self._alerts.get(alert_id)
        if alert is not None:
            self._remove(alert_id)
        return alert

    def cancel_from(self, origin: str) -> list[OutstandingAlert]:
        """Cancel every alert raised by ``origin`` (a TETRA emergency cancel names no id)."""
        return [a for a in map(self.cancel, sorted(self._by_origin.get(origin, ()))) if a]

    def expire(self, now: float) -> list[OutstandingAlert]:
        """Forget and return the alerts whose ``expires_at`` is at or before ``now``."""
        out: list[OutstandingAlert] = []
        while self._expiry and self._expiry[0][0] <= now:
            when, alert_id = heapq.heappop(self._expiry)
            alert = self._alerts.get(alert_id)
            if alert is not None and alert.expires_at == when:
                self._remove(alert_id)
                out.append(alert)
        return out

    def next_expiry(self) -> float | None:
        """Return when :meth:`expire` next has work, or None."""
        while self._expiry:
            when, alert_id = self._expiry[0]
            alert = self._alerts.get(alert_id)
            if alert is not None and alert.expires_at == when:
                return when
            heapq.heappop(self._expiry)
        return None

    def mark_delivered(self, alert_id: bytes, unit: str) -> None:
        """Record that ``unit`` received ``alert_id`` (live or replayed)."""
        if alert_id in self._alerts:
            self._delivered.setdefault(alert_id, set()).add(unit)
            self._delivered_by_unit.setdefault(unit, set()).add(alert_id)

    def take_evicted(self) -> list[bytes]:
        """Return (and forget) the ids of the alerts evicted since the last call."""
        evicted, self._evicted_ids = self._evicted_ids, []
        return evicted

    def delivered_to(self, alert_id: bytes) -> frozenset[str]:
        """Return the units that received ``alert_id`` and are not due it again."""
        return frozenset(self._delivered.get(alert_id, ()))

    def reset_unit(self, unit: str) -> None:
        """Forget what ``unit`` received: it came back and everything is due again."""
        for alert_id in self._delivered_by_unit.pop(unit, ()):
            delivered = self._delivered.get(alert_id)
            if delivered is not None:
                delivered.discard(unit)

    def due_for(
        self, unit: str, groups: Iterable[str], now: float, *, direct: bool = True
    ) -> list[OutstandingAlert]:
        """Return the unexpired alerts ``unit`` has not received yet, and mark them delivered.

        Args:
            unit: The unit.
            groups: Groups whose alerts are due (all its groups on return, the new
                one on affiliation).
            now: Current time.
            direct: Include alerts addressed to the unit itself.

        Returns:
            The alerts to re-send, oldest first.
        """
        ids: set[bytes] = set()
        for group in groups:
            ids.update(self._by_group.get(group, ()))
        if direct:
            ids.update(self._by_unit.get(unit, ()))
        due = [
            alert
            for alert in map(self._alerts.__getitem__, ids)
            if alert.expires_at > now and unit not in self._delivered.get(alert.alert_id, ())
        ]
        due.sort(key=lambda a: (a.raised_at, a.alert_id))
        for alert in due:
            self.mark_delivered(alert.alert_id, unit)
        return due

    def replays(self, event: PresenceEvent, now: float) -> list[OutstandingAlert]:
        """Return the alerts to re-send after a presence event (marks them delivered).

        ``came_back``: every alert for the unit's groups or addressed to it, after
        forgetting what it received before. ``newly_affiliated``: the alerts of the
        new groups it has not received yet. Nothing for a unit that is STALE or
        OFFLINE: it gets them when it comes back.

        Args:
            event: What a :class:`PresenceRegistry` mutator returned.
            now: Current time.

        Returns:
            The alerts to re-send, oldest first.
        """
        if event.availability in (Availability.STALE, Availability.OFFLINE):
            return []
        if event.came_back:
            self.reset_unit(event.unit)
            return self.due_for(event.unit, event.groups, now)
        if event.newly_affiliated:
            return self.due_for(event.unit, event.newly_affiliated, now, direct=False)
        return []

    def _remove(self, alert_id: bytes, *, keep_delivered: bool = False) -> None:
        alert = self._alerts.pop(alert_id)
        for index, key in (
            (self._by_group, alert.group),
            (self._by_unit, alert.unit),
            (self._by_origin, alert.origin),
        ):
            if key is not None:
                ids = index.get(key)
                if ids is not None:
                    ids.discard(alert_id)
                    if not ids:
                        del index[key]
        if not keep_delivered:
            for unit in self._delivered.pop(alert_id, ()):
                ids = self._delivered_by_unit.get(unit)
                if ids is not None:
                    ids.discard(alert_id)
                    if not ids:
                        del self._delivered_by_unit[unit]

    def _evict_soonest(self) -> None:
        while self._expiry:
            when, alert_id = heapq.heappop(self._expiry)
            alert = self._alerts.get(alert_id)
            if alert is not None and alert.expires_at == when:
                self._remove(alert_id)
                self.evicted += 1
                self._evicted_ids.append(alert_id)
                return
