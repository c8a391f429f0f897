from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from gateway._toml import Table
from gateway.presence import (
    MAX_GROUPS_PER_UNIT,
    REMOTE_VALIDITY_FACTOR,
    Availability,
    EmergencyLedger,
    Location,
    PresenceFull,
    PresenceRegistry,
    PresenceSettings,
    PresenceUpdate,
    parse_presence,
)
from protocols.errors import ConfigError
from protocols.schema import v1

U1 = "de.polizei.2001"
U2 = "de.polizei.2002"
FR_UNIT = "fr.sdis67.vsav-1"
SETTINGS = PresenceSettings(lease=300.0, offline_after=600.0, coalesce_interval=1.0)


def _registry(epoch: int = 1, **kw: float) -> PresenceRegistry:
    base = {"lease": 300.0, "offline_after": 600.0, "coalesce_interval": 1.0}
    base.update(kw)
    settings = PresenceSettings(
        lease=base["lease"],
        offline_after=base["offline_after"],
        coalesce_interval=base["coalesce_interval"],
        max_units=int(base.get("max_units", 100_000)),
    )
    return PresenceRegistry(gateway="gw-de-1", nation="DE", epoch=epoch, settings=settings)


def _remote(
    seq: int,
    availability: Availability = Availability.ONLINE,
    *,
    epoch: int = 7,
    gateway: str = "gw-fr-1",
    valid_for: float = 300.0,
    groups: tuple[str, ...] = (),
    sent_at: float = 0.0,
    last_heard: float | None = None,
    location: Location | None = None,
) -> PresenceUpdate:
    return PresenceUpdate(
        unit=FR_UNIT,
        nation="FR",
        gateway=gateway,
        epoch=epoch,
        seq=seq,
        availability=availability,
        groups=groups,
        valid_for=valid_for,
        sent_at=sent_at,
        last_heard=last_heard,
        location=location,
    )


# ---------------------------------------------------------------- availability


def test_availability_values_match_the_schema() -> None:
    assert int(Availability.UNKNOWN) == int(v1.AVAILABILITY_UNKNOWN)
    assert int(Availability.ONLINE) == int(v1.AVAILABILITY_ONLINE)
    assert int(Availability.STALE) == int(v1.AVAILABILITY_STALE)
    assert int(Availability.OFFLINE) == int(v1.AVAILABILITY_OFFLINE)


def test_lease_passes_to_stale_then_offline() -> None:
    reg = _registry()
    event = reg.heard(U1, 100.0)
    assert event.availability is Availability.ONLINE
    assert event.previous is Availability.UNKNOWN
    assert not event.came_back  # never known before
    assert reg.tick(399.9) == []
    assert reg.availability(U1) is Availability.ONLINE
    reg.drain(100.0)
    assert reg.next_deadline() == 400.0
    changes = reg.tick(400.0)
    assert [(c.unit, c.previous, c.availability, c.at) for c in changes] == [
        (U1, Availability.ONLINE, Availability.STALE, 400.0)
    ]
    reg.drain(400.0)
    assert reg.next_deadline() == 1000.0
    assert reg.tick(999.0) == []
    changes = reg.tick(1000.0)
    assert [(c.previous, c.availability) for c in changes] == [
        (Availability.STALE, Availability.OFFLINE)
    ]
    reg.drain(1000.0)
    assert reg.next_deadline() is None  # offline is final: no ghost, no timer
    snapshot = reg.get(U1)
    assert snapshot is not None
    assert snapshot.changed_at == 1000.0
    assert snapshot.last_heard == 100.0


def test_late_tick_performs_both_transitions_at_their_due_times() -> None:
    reg = _registry(offline_after=0.0)
    reg.heard(U1, 0.0)
    changes = reg.tick(10_000.0)
    assert [(c.availability, c.at) for c in changes] == [
        (Availability.STALE, 300.0),
        (Availability.OFFLINE, 300.0),
    ]


def test_heard_renews_the_lease_without_growing_the_heap() -> None:
    reg = _registry()
    for t in range(0, 1000):
        reg.heard(U1, float(t))
    assert reg.tick(1200.0) == []  # last heard at 999: stale at 1299
    assert reg.availability(U1) is Availability.ONLINE
    assert len(reg._lease_heap) <= 2
    reg.drain(1200.0)
    assert reg.next_deadline() is not None
    assert reg.next_deadline() <= 1299.0  # type: ignore[operator]
    assert [c.availability for c in reg.tick(1299.0)] == [Availability.STALE]


def test_deregistered_goes_offline_at_once_and_clears_affiliations() -> None:
    reg = _registry()
    reg.heard(U1, 0.0)
    reg.affiliate(U1, "xb.rhine.fire", 0.0)
    assert reg.affiliated("xb.rhine.fire") == {U1}
    event = reg.deregistered(U1, 5.0)
    assert event.previous is Availability.ONLINE
    assert event.availability is Availability.OFFLINE
    assert event.groups == frozenset()
    assert reg.affiliated("xb.rhine.fire") == frozenset()
    assert reg.tick(10_000.0) == []  # the old lease no longer fires
    back = reg.heard(U1, 20.0)
    assert back.came_back


def test_restart_starts_unknown_and_seeded_units_come_back() -> None:
    before = _registry(epoch=1)
    before.heard(U1, 0.0)
    after = _registry(epoch=2)  # the restarted gateway: empty registry, larger epoch
    assert after.availability(U1) is Availability.UNKNOWN
    assert after.get(U1) is None
    assert after.seed([U1, U2], 0.0) == 2
    assert after.seed([U1], 0.0) == 0
    assert after.availability(U1) is Availability.UNKNOWN
    announced = after.drain(0.0)
    assert {(u.unit, u.availability, u.epoch, u.seq) for u in announced} == {
        (U1, Availability.UNKNOWN, 2, 1),
        (U2, Availability.UNKNOWN, 2, 1),
    }
    event = after.heard(U1, 1.0)
    assert event.came_back  # known before the restart
    assert not after.heard("de.polizei.9999", 1.0).came_back  # never known


def test_seed_without_announce_sends_nothing() -> None:
    reg = _registry()
    reg.seed([U1], 0.0, announce=False)
    assert reg.drain(0.0) == []
    assert reg.next_deadline() is None


# ------------------------------------------------------------------ coalescing


def test_flapping_unit_is_coalesced_to_one_update_per_interval() -> None:
    reg = _registry(coalesce_interval=1.0)
    reg.heard(U1, 0.0)
    first = reg.drain(0.0)
    assert [(u.availability, u.seq) for u in first] == [(Availability.ONLINE, 1)]
    # Flaps within the coalescing window.
    reg.deregistered(U1, 0.2)
    reg.heard(U1, 0.4)
    reg.deregistered(U1, 0.6)
    assert reg.drain(0.7) == []
    assert reg.next_deadline() == 1.0
    second = reg.drain(1.0)
    assert [(u.availability, u.seq) for u in second] == [(Availability.OFFLINE, 2)]
    reg.heard(U1, 1.5)
    assert reg.drain(1.9) == []
    third = reg.drain(2.0)
    assert [(u.availability, u.seq) for u in third] == [(Availability.ONLINE, 3)]
    assert third[0].valid_for == pytest.approx(299.5)
    assert reg.drain(100.0) == []


def test_update_carries_latest_state() -> None:
    reg = _registry()
    reg.heard(U1, 10.0)
    reg.affiliate(U1, "b", 10.0)
    reg.affiliate(U1, "a", 10.0)
    reg.location(U1, 48.57, 7.75, at=9.0, now=10.0, accuracy=5.0)
    (update,) = reg.drain(10.0)
    assert update.unit == U1
    assert update.nation == "DE"
    assert update.gateway == "gw-de-1"
    assert update.epoch == 1
    assert update.groups == ("a", "b")
    assert update.location == Location(lat=48.57, lon=7.75, at=9.0, accuracy=5.0)
    assert update.last_heard == 10.0
    assert update.valid_for == 300.0
    assert update.sent_at == 10.0


def test_drain_limit_keeps_the_rest_due() -> None:
    reg = _registry()
    for i in range(5):
        reg.heard(f"de.polizei.{i}", 0.0)
    assert len(reg.drain(0.0, limit=2)) == 2
    assert reg.next_deadline() == 0.0
    assert len(reg.drain(0.0)) == 3


def test_talking_unit_is_refreshed_before_partners_let_it_go_stale() -> None:
    reg = _registry(lease=100.0)
    reg.heard(U1, 0.0)
    (first,) = reg.drain(0.0)
    assert first.valid_for == 100.0
    reg.heard(U1, 50.0)  # lease now ends at 150, partners were told 100
    assert reg.drain(50.0) == []
    assert reg.next_deadline() == 90.0  # a tenth of the lease ahead
    (refresh,) = reg.drain(90.0)
    assert refresh.availability is Availability.ONLINE
    assert refresh.seq == 2
    assert refresh.valid_for == 60.0


def test_silent_unit_is_not_refreshed() -> None:
    reg = _registry(lease=100.0)
    reg.heard(U1, 0.0)
    reg.drain(0.0)
    assert reg.next_deadline() == 100.0  # only the lease, no refresh
    reg.tick(100.0)
    (stale,) = reg.drain(100.0)
    assert stale.availability is Availability.STALE
    assert stale.valid_for == 600.0


def test_location_ignores_older_fixes_and_rejects_bad_coordinates() -> None:
    reg = _registry()
    assert reg.location(U1, 1.0, 2.0, at=10.0, now=10.0).changed
    assert not reg.location(U1, 3.0, 4.0, at=5.0, now=11.0).changed
    snapshot = reg.get(U1)
    assert snapshot is not None
    assert snapshot.location == Location(lat=1.0, lon=2.0, at=10.0)
    with pytest.raises(ValueError, match="out of range"):
        reg.location(U1, 91.0, 0.0, at=12.0, now=12.0)
    with pytest.raises(ValueError, match="out of range"):
        reg.location(U1, float("nan"), 0.0, at=12.0, now=12.0)


def test_affiliate_reports_only_new_groups() -> None:
    reg = _registry()
    assert reg.affiliate(U1, "g", 0.0).newly_affiliated == {"g"}
    again = reg.affiliate(U1, "g", 1.0)
    assert again.newly_affiliated == frozenset()
    assert not again.changed
    assert reg.deaffiliate(U1, "g", 2.0).changed
    assert not reg.deaffiliate(U1, "g", 3.0).changed
    assert not reg.deaffiliate("de.x.unknown", "g", 3.0).changed


# ------------------------------------------------------------------ remote


def test_remote_updates_need_a_newer_epoch_and_seq() -> None:
    reg = _registry()
    assert reg.apply_remote(_remote(5), 0.0)
    assert not reg.apply_remote(_remote(5), 0.0)  # duplicate
    assert not reg.apply_remote(_remote(4, Availability.OFFLINE), 0.0)  # reordered, older
    assert reg.availability(FR_UNIT) is Availability.ONLINE
    assert not reg.apply_remote(_remote(99, Availability.OFFLINE, epoch=6), 0.0)  # older epoch
    assert reg.availability(FR_UNIT) is Availability.ONLINE
    # The partner restarted: a newer epoch wins even with a small seq.
    assert reg.apply_remote(_remote(1, Availability.UNKNOWN, epoch=8), 1.0)
    assert reg.availability(FR_UNIT) is Availability.UNKNOWN
    assert not reg.apply_remote(_remote(6, Availability.ONLINE, epoch=7), 2.0)
    snapshot = reg.get(FR_UNIT)
    assert snapshot is not None
    assert snapshot.gateway == "gw-fr-1"
    assert snapshot.nation == "FR"
    assert not snapshot.local


def test_remote_units_are_leased_and_not_refederated() -> None:
    reg = _registry(offline_after=50.0)
    reg.apply_remote(_remote(1, valid_for=30.0, groups=("xb.rhine.fire",)), 100.0)
    assert reg.affiliated("xb.rhine.fire") == {FR_UNIT}
    assert reg.drain(100.0) == []  # never echoed back into the federation
    assert reg.next_deadline() == 130.0
    changes = reg.tick(130.0)
    assert [(c.availability, c.local) for c in changes] == [(Availability.STALE, False)]
    assert reg.next_deadline() == 180.0
    assert [c.availability for c in reg.tick(180.0)] == [Availability.OFFLINE]
    assert reg.drain(200.0) == []


def test_remote_stale_update_goes_offline_after_valid_for() -> None:
    reg = _registry()
    reg.apply_remote(_remote(1, Availability.STALE, valid_for=20.0), 0.0)
    assert reg.availability(FR_UNIT) is Availability.STALE
    assert [c.availability for c in reg.tick(20.0)] == [Availability.OFFLINE]


def test_remote_times_are_rebased_onto_our_clock() -> None:
    reg = _registry()
    loc = Location(lat=48.5, lon=7.7, at=990.0)
    reg.apply_remote(_remote(1, sent_at=1000.0, last_heard=995.0, location=loc), 50.0)
    snapshot = reg.get(FR_UNIT)
    assert snapshot is not None
    assert snapshot.last_heard == 45.0
    assert snapshot.location is not None
    assert snapshot.location.at == 40.0


def test_former_gateway_cannot_take_an_online_unit_offline() -> None:
    reg = _registry()
    reg.apply_remote(_remote(1, gateway="gw-fr-2"), 0.0)
    assert not reg.apply_remote(_remote(3, Availability.OFFLINE, gateway="gw-fr-1"), 1.0)
    assert reg.availability(FR_UNIT) is Availability.ONLINE
    assert reg.apply_remote(_remote(2, Availability.OFFLINE, gateway="gw-fr-2"), 2.0)
    assert reg.availability(FR_UNIT) is Availability.OFFLINE


def test_updates_claiming_to_be_ours_are_ignored() -> None:
    reg = _registry()
    assert not reg.apply_remote(_remote(1, gateway="gw-de-1"), 0.0)
    assert FR_UNIT not in reg


def test_round_trip_between_two_registries() -> None:
    de = _registry(epoch=3)
    fr = PresenceRegistry(gateway="gw-fr-1", nation="FR", epoch=9, settings=SETTINGS)
    de.heard(U1, 0.0)
    de.affiliate(U1, "xb.rhine.fire", 0.0)
    for update in de.drain(0.0):
        assert fr.apply_remote(update, 1000.0)
    snapshot = fr.get(U1)
    assert snapshot is not None
    assert snapshot.availability is Availability.ONLINE
    assert snapshot.groups == {"xb.rhine.fire"}
    assert snapshot.last_heard == 1000.0


# ------------------------------------------------------------------ bounds


def test_full_registry_evicts_offline_units_first() -> None:
    reg = _registry(max_units=2)
    reg.heard(U1, 0.0)
    reg.deregistered(U1, 0.0)
    reg.drain(0.0)
    reg.heard(U2, 0.0)
    reg.heard("de.polizei.3", 1.0)
    assert U1 not in reg
    assert reg.evicted == 1
    assert len(reg) == 2
    with pytest.raises(PresenceFull):
        reg.heard("de.polizei.4", 2.0)
    assert not reg.apply_remote(_remote(1), 2.0)  # remote updates are dropped, not raised


def test_unit_with_unsent_update_is_not_evicted() -> None:
    reg = _registry(max_units=1)
    reg.deregistered(U1, 0.0)  # OFFLINE, but the OFFLINE update is not drained yet
    with pytest.raises(PresenceFull):
        reg.heard(U2, 0.0)
    reg.drain(0.0)
    reg.heard(U2, 0.0)
    assert U2 in reg


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="lease"):
        PresenceSettings(lease=0.0)
    with pytest.raises(ValueError, match="offline_after"):
        PresenceSettings(offline_after=-1.0)
    with pytest.raises(ValueError, match="epoch"):
        PresenceRegistry(gateway="g", nation="DE", epoch=0)


# ------------------------------------------------------------------ emergencies


def test_replay_on_new_affiliation_once_per_pair() -> None:
    reg = _registry()
    ledger = EmergencyLedger()
    ledger.raise_alert(b"a1", group="xb.fire", raised_at=0.0, expires_at=100.0, payload_ref="j1")
    ledger.raise_alert(b"a2", group="xb.police", raised_at=0.0, expires_at=100.0)
    reg.heard(U1, 1.0)
    replays = ledger.replays(reg.affiliate(U1, "xb.fire", 2.0), 2.0)
    assert [(a.alert_id, a.payload_ref) for a in replays] == [(b"a1", "j1")]
    reg.deaffiliate(U1, "xb.fire", 3.0)
    assert ledger.replays(reg.affiliate(U1, "xb.fire", 4.0), 4.0) == []  # already had it
    assert [a.alert_id for a in ledger.replays(reg.affiliate(U1, "xb.police", 5.0), 5.0)] == [b"a2"]
    # Another unit gets its own copy.
    reg.heard(U2, 5.0)
    assert [a.alert_id for a in ledger.replays(reg.affiliate(U2, "xb.fire", 5.0), 5.0)] == [b"a1"]


def test_replay_on_return_from_coverage_once_per_return() -> None:
    reg = _registry(lease=10.0, offline_after=10.0)
    ledger = EmergencyLedger()
    reg.heard(U1, 0.0)
    reg.affiliate(U1, "xb.fire", 0.0)
    ledger.raise_alert(b"g", group="xb.fire", raised_at=1.0, expires_at=1000.0, delivered_to=[U1])
    ledger.raise_alert(b"d", unit=U1, raised_at=2.0, expires_at=1000.0, delivered_to=[U1])
    ledger.raise_alert(b"other", group="xb.other", raised_at=2.0, expires_at=1000.0)
    assert ledger.replays(reg.heard(U1, 5.0), 5.0) == []  # still online: nothing to replay
    reg.tick(15.0)
    assert reg.availability(U1) is Availability.STALE
    event = reg.heard(U1, 17.0)
    assert event.came_back
    assert [a.alert_id for a in ledger.replays(event, 17.0)] == [b"g", b"d"]
    assert ledger.replays(reg.heard(U1, 18.0), 18.0) == []  # same return: not again
    assert ledger.replays(reg.affiliate(U1, "xb.fire", 18.0), 18.0) == []
    reg.tick(100.0)
    assert reg.availability(U1) is Availability.OFFLINE
    back = reg.heard(U1, 101.0)
    assert back.came_back
    assert back.groups == {"xb.fire"}  # lease-based OFFLINE keeps the last affiliations
    assert [a.alert_id for a in ledger.replays(back, 101.0)] == [b"g", b"d"]


def test_no_replay_to_units_out_of_coverage() -> None:
    reg = _registry(lease=10.0)
    ledger = EmergencyLedger()
    ledger.raise_alert(b"a", group="g", raised_at=0.0, expires_at=1000.0)
    reg.heard(U1, 0.0)
    reg.tick(10.0)
    event = reg.affiliate(U1, "g", 11.0)
    assert event.availability is Availability.STALE
    assert ledger.replays(event, 11.0) == []
    assert [a.alert_id for a in ledger.replays(reg.heard(U1, 12.0), 12.0)] == [b"a"]


def test_ledger_expiry_and_cancel() -> None:
    ledger = EmergencyLedger()
    ledger.raise_alert(b"a", group="g", raised_at=0.0, expires_at=10.0)
    ledger.raise_alert(b"b", group="g", raised_at=0.0, expires_at=20.0, origin=U1)
    ledger.raise_alert(b"c", unit=U2, raised_at=0.0, expires_at=30.0, origin=U1)
    assert ledger.next_expiry() == 10.0
    assert ledger.due_for(U2, ["g"], 10.0, direct=False) == [ledger.get(b"b")]  # a has expired
    assert [a.alert_id for a in ledger.expire(10.0)] == [b"a"]
    assert b"a" not in ledger
    cancelled = ledger.cancel(b"b")
    assert cancelled is not None
    assert cancelled.alert_id == b"b"
    assert ledger.cancel(b"b") is None
    assert ledger.next_expiry() == 30.0
    assert [a.alert_id for a in ledger.cancel_from(U1)] == [b"c"]
    assert len(ledger) == 0
    assert ledger.next_expiry() is None
    assert ledger.expire(100.0) == []


def test_ledger_is_bounded_and_idempotent() -> None:
    ledger = EmergencyLedger(max_alerts=2)
    ledger.raise_alert(b"a", group="g", raised_at=0.0, expires_at=50.0)
    ledger.raise_alert(b"b", group="g", raised_at=0.0, expires_at=10.0)
    ledger.raise_alert(b"b", group="g", raised_at=0.0, expires_at=20.0)  # a repeat, no eviction
    assert len(ledger) == 2
    assert ledger.evicted == 0
    ledger.raise_alert(b"c", group="g", raised_at=0.0, expires_at=30.0)
    assert b"b" not in ledger  # expiring soonest
    assert ledger.evicted == 1
    assert {a.alert_id for a in ledger.due_for(U1, ["g"], 0.0)} == {b"a", b"c"}
    with pytest.raises(ValueError, match="exactly one target"):
        ledger.raise_alert(b"x", raised_at=0.0, expires_at=1.0)
    with pytest.raises(ValueError, match="exactly one target"):
        ledger.raise_alert(b"x", group="g", unit=U1, raised_at=0.0, expires_at=1.0)


def test_reraised_alert_keeps_its_delivered_units() -> None:
    ledger = EmergencyLedger()
    ledger.raise_alert(b"a", group="g", raised_at=0.0, expires_at=50.0, delivered_to=[U1])
    ledger.raise_alert(b"a", group="g", raised_at=0.0, expires_at=60.0)
    assert ledger.due_for(U1, ["g"], 1.0) == []
    assert ledger.next_expiry() == 60.0
    assert ledger.expire(55.0) == []


# ------------------------------------------------------------------ TOML


def _presence(text: str) -> PresenceSettings:
    root = Table(tomllib.loads(text), "")
    return parse_presence(root.table("presence"))


def test_parse_presence_defaults_and_values() -> None:
    assert _presence("") == PresenceSettings()
    parsed = _presence(
        "[presence]\nlease = 60\noffline_after = 0\ncoalesce_interval = 0.5\n"
        "max_units = 500\nmax_alerts = 20\n"
    )
    assert parsed == PresenceSettings(
        lease=60.0, offline_after=0.0, coalesce_interval=0.5, max_units=500, max_alerts=20
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("lease = 0", "presence.lease: must be a positive"),
        ("lease = -5", "presence.lease: -5 is below the minimum"),
        ("lease = inf", "presence.lease: expected a finite"),
        ("lease = nan", "presence.lease: expected a finite"),
        ('lease = "300"', "presence.lease: expected a number"),
        ("offline_after = -1", "presence.offline_after:"),
        ("coalesce_interval = -0.1", "presence.coalesce_interval:"),
        ("max_units = 0", "presence.max_units:"),
        ("max_units = 1.5", "presence.max_units: expected a whole number"),
        ("lese = 10", "presence.lese: unknown key. Did you mean 'lease'?"),
    ],
)
def test_parse_presence_errors_name_the_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _presence(f"[presence]\n{body}\n")
    assert message in str(info.value)


# ------------------------------------------------------------------ properties

LEASE = 10.0
OFFLINE_AFTER = 5.0
COALESCE = 2.0
UNITS = ("de.p.1", "de.p.2", "de.p.3")


class PresenceMachine(RuleBasedStateMachine):
    """Model: when each unit was last heard, or that it was deregistered."""

    @initialize()
    def start(self) -> None:
        self.reg = PresenceRegistry(
            gateway="gw",
            nation="DE",
            epoch=1,
            settings=PresenceSettings(
                lease=LEASE, offline_after=OFFLINE_AFTER, coalesce_interval=COALESCE
            ),
        )
        self.now = 0.0
        self.heard_at: dict[str, float | None] = {}  # None = deregistered
        self.emitted: dict[str, list[tuple[float, int]]] = {}
        self.last_sent: dict[str, PresenceUpdate] = {}

    def _expected(self, unit: str) -> Availability:
        if unit not in self.heard_at:
            return Availability.UNKNOWN
        t = self.heard_at[unit]
        if t is None:
            return Availability.OFFLINE
        if self.now < t + LEASE:
            return Availability.ONLINE
        if self.now < t + LEASE + OFFLINE_AFTER:
            return Availability.STALE
        return Availability.OFFLINE

    @rule(dt=st.integers(min_value=0, max_value=8))
    def advance_and_tick(self, dt: int) -> None:
        before = {u: self.reg.availability(u) for u in UNITS}
        deadline = self.reg.next_deadline()
        self.now += dt
        changes = self.reg.tick(self.now)
        for change in changes:
            # Time only degrades: ONLINE -> STALE -> OFFLINE.
            assert (change.previous, change.availability) in {
                (Availability.ONLINE, Availability.STALE),
                (Availability.STALE, Availability.OFFLINE),
            }
            assert change.at <= self.now
            assert deadline is not None
            assert deadline <= change.at  # the deadline was never later than the transition
        for unit in UNITS:
            after = self.reg.availability(unit)
            if after != before[unit]:
                assert any(c.unit == unit for c in changes)

    @rule(unit=st.sampled_from(UNITS))
    def heard(self, unit: str) -> None:
        self.reg.tick(self.now)
        event = self.reg.heard(unit, self.now)
        assert event.availability is Availability.ONLINE
        assert self.reg.availability(unit) is Availability.ONLINE
        self.heard_at[unit] = self.now

    @rule(unit=st.sampled_from(UNITS))
    def deregister(self, unit: str) -> None:
        self.reg.tick(self.now)
        event = self.reg.deregistered(unit, self.now)
        assert event.availability is Availability.OFFLINE
        self.heard_at[unit] = None

    @rule(unit=st.sampled_from(UNITS), group=st.sampled_from(("g1", "g2")))
    def affiliate(self, unit: str, group: str) -> None:
        event = self.reg.affiliate(unit, group, self.now)
        assert group in event.groups
        assert event.availability is self.reg.availability(unit)

    @rule()
    def drain(self) -> None:
        self.reg.tick(self.now)
        for update in self.reg.drain(self.now):
            history = self.emitted.setdefault(update.unit, [])
            if history:
                last_time, last_seq = history[-1]
                assert update.seq == last_seq + 1
                assert self.now - last_time >= COALESCE  # at most one per interval
            else:
                assert update.seq == 1
            history.append((self.now, update.seq))
            self.last_sent[update.unit] = update

    @invariant()
    def availability_follows_the_leases(self) -> None:
        deadline = self.reg.next_deadline()
        for unit in UNITS:
            current = self.reg.availability(unit)
            assert current is self._expected(unit)  # every rule ticks before it acts
            t = self.heard_at.get(unit)
            if current is Availability.ONLINE and t is not None:
                assert deadline is not None
                assert deadline <= t + LEASE
            if current is Availability.STALE and t is not None:
                assert deadline is not None
                assert deadline <= t + LEASE + OFFLINE_AFTER

    @invariant()
    def no_change_is_lost(self) -> None:
        deadline = self.reg.next_deadline()
        for unit in UNITS:
            snapshot = self.reg.get(unit)
            if snapshot is None:
                continue
            sent = self.last_sent.get(unit)
            if sent is None or (sent.availability, set(sent.groups)) != (
                snapshot.availability,
                set(snapshot.groups),
            ):
                # Either a tick is due (state lags) or an update is pending.
                assert deadline is not None
                limit = self.now if sent is None else max(self.now, sent.sent_at + COALESCE)
                assert deadline <= limit


TestPresenceMachine = PresenceMachine.TestCase
TestPresenceMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ------------------------------------------------------------------ persistence


def _saved(registry: PresenceRegistry, now: float) -> dict[str, dict[str, object] | None]:
    return dict(registry.unsaved(now))


def test_unsaved_returns_each_change_once_and_deletes_what_is_not_held() -> None:
    reg = _registry(max_units=2)
    reg.seed([U1, U2], 0.0)
    assert _saved(reg, 0.0) == {}  # seeded UNKNOWN units carry nothing worth keeping
    reg.heard(U1, 10.0)
    reg.affiliate(U1, "xb.kehl", 10.0)
    saved = _saved(reg, 12.0)
    assert list(saved) == [U1]
    state = saved[U1]
    assert state is not None
    assert state["availability"] == "ONLINE"
    assert state["groups"] == ["xb.kehl"]
    assert state["heard_ago"] == 2.0
    assert state["stale_in"] == 298.0
    assert _saved(reg, 12.0) == {}
    reg.deregistered(U1, 20.0)
    assert _saved(reg, 20.0)[U1] == dict(
        state, availability="OFFLINE", groups=[], stale_in=None, changed_ago=0.0, heard_ago=10.0
    )
    reg.drain(30.0)  # a unit with an unsent update is never evicted
    reg.heard("de.polizei.2003", 30.0)  # evicts U2 (UNKNOWN, least recently changed)
    assert _saved(reg, 30.0) == {U2: None, "de.polizei.2003": _saved_now(reg, "de.polizei.2003")}


def _saved_now(reg: PresenceRegistry, unit: str) -> dict[str, object]:
    snapshot = reg.get(unit)
    assert snapshot is not None and snapshot.last_heard is not None
    return {
        "unit": unit,
        "nation": "DE",
        "gateway": "gw-de-1",
        "availability": snapshot.availability.name,
        "groups": sorted(snapshot.groups),
        "location": None,
        "heard_ago": 0.0,
        "changed_ago": 0.0,
        "stale_in": 300.0,
        "offline_in": None,
        "known": True,
        "versions": {},
    }


def test_lease_renewals_are_saved_once_they_moved_a_quarter_of_a_lease() -> None:
    reg = _registry(lease=100.0)
    reg.heard(U1, 0.0)
    assert list(_saved(reg, 0.0)) == [U1]
    reg.heard(U1, 24.0)
    assert _saved(reg, 24.0) == {}  # the saved lease end is 24 s early: not yet worth a write
    reg.heard(U1, 25.0)
    assert _saved(reg, 25.0)[U1] is not None
    reg.mark_unsaved([U1])  # the write failed: offered again
    assert list(_saved(reg, 26.0)) == [U1]


def test_a_restored_unit_resumes_its_lease_from_the_saved_times() -> None:
    before = _registry(epoch=1)
    before.heard(U1, 100.0)
    before.affiliate(U1, "xb.kehl", 100.0)
    before.location(U1, 48.57, 7.81, 99.0, 100.0, accuracy=10.0)
    before.heard(U2, 100.0)
    saved = _saved(before, 150.0)
    after = _registry(epoch=2)
    # Saved at 150 on the old clock; on the new clock that moment was 1000, it is 1200 now.
    for state in saved.values():
        assert state is not None
        event = after.restore(state, 1000.0, 1200.0)
        assert event.availability is Availability.ONLINE and not event.came_back
    after.seed([U1, U2], 1200.0)  # already held: left alone
    restored = after.get(U1)
    assert restored is not None
    assert restored.availability is Availability.ONLINE
    assert restored.groups == {"xb.kehl"}
    assert restored.last_heard == 950.0
    assert restored.location == Location(lat=48.57, lon=7.81, at=949.0, accuracy=10.0)
    assert after.affiliated("xb.kehl") == {U1}
    # Its lease ran from 950: STALE at 1250, OFFLINE 600 s later, as if never restarted.
    assert after.tick(1249.0) == []
    assert [c.availability for c in after.tick(1250.0)] == [Availability.STALE] * 2
    assert [c.at for c in after.tick(1850.0)] == [1850.0, 1850.0]
    # Restored local units are federated again under the new epoch.
    updates = after.drain(1200.0)
    assert {(u.unit, u.epoch, u.seq) for u in updates} == {(U1, 2, 1), (U2, 2, 1)}


def test_a_lease_that_ran_out_while_down_moves_on_at_the_next_tick() -> None:
    before = _registry()
    before.heard(U1, 0.0)
    state = _saved(before, 0.0)[U1]
    assert state is not None
    after = _registry(epoch=2)
    after.restore(state, 0.0, 400.0)  # down for 400 s, lease 300
    changes = after.tick(400.0)
    assert [(c.availability, c.at) for c in changes] == [(Availability.STALE, 300.0)]
    event = after.heard(U1, 401.0)
    assert event.came_back


def test_a_restored_remote_unit_keeps_refusing_older_updates() -> None:
    before = _registry()
    assert before.apply_remote(_remote(5, groups=("xb.kehl",)), 0.0)
    state = _saved(before, 0.0)[FR_UNIT]
    assert state is not None and state["versions"] == {"gw-fr-1": [7, 5]}
    after = _registry(epoch=2)
    after.restore(state, 0.0, 10.0)
    assert after.drain(10.0) == []  # remote units are never re-federated
    assert not after.apply_remote(_remote(4), 10.0)
    assert after.apply_remote(_remote(6), 10.0)
    restored = after.get(FR_UNIT)
    assert restored is not None and not restored.local


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"availability": "MAYBE"}, "MAYBE"),
        ({"unit": ""}, "unit"),
        ({"groups": "xb"}, "groups"),
        ({"stale_in": "soon"}, "stale_in"),
        ({"location": {"lat": 91.0, "lon": 0.0, "age": 0.0, "accuracy": None}}, "out of range"),
        ({"versions": {"gw-fr-1": ["7", 5]}}, "versions"),
        ({"nation": None}, "nation"),
    ],
)
def test_a_malformed_saved_state_is_refused_with_the_reason(
    change: dict[str, object], message: str
) -> None:
    reg = _registry()
    reg.heard(U1, 0.0)
    state = _saved(reg, 0.0)[U1]
    assert state is not None
    after = _registry(epoch=2)
    with pytest.raises(ValueError, match=message):
        after.restore({**state, **change}, 0.0, 0.0)
    with pytest.raises(ValueError, match="changed_ago"):
        after.restore({k: v for k, v in state.items() if k != "changed_ago"}, 0.0, 0.0)
    assert len(after) == 0
    after.restore(state, 0.0, 0.0)
    with pytest.raises(ValueError, match="already held"):
        after.restore(state, 0.0, 0.0)


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["heard", "dereg", "affiliate", "leave", "locate", "remote"]),
        st.sampled_from([U1, U2]),
        st.integers(min_value=0, max_value=50).map(float),
    ),
    max_size=25,
)


def _play(
    reg: PresenceRegistry, ops: list[tuple[str, str, float]], each: Callable[[float], None]
) -> float:
    now = 0.0
    for op, unit, step in ops:
        now += step
        if op == "heard":
            reg.heard(unit, now)
        elif op == "dereg":
            reg.deregistered(unit, now)
        elif op == "affiliate":
            reg.affiliate(unit, "xb", now)
        elif op == "leave":
            reg.deaffiliate(unit, "xb", now)
        elif op == "locate":
            reg.location(unit, 48.0, 7.0, now, now)
        else:
            reg.apply_remote(_remote(int(now * 10) + 1, sent_at=now), now)
        reg.tick(now)
        reg.drain(now)
        each(now)
    return now


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, elapsed=st.integers(min_value=0, max_value=2000).map(float))
def test_restore_of_what_was_saved_gives_the_same_view(
    ops: list[tuple[str, str, float]], elapsed: float
) -> None:
    reg = _registry(lease=100.0, offline_after=200.0)
    now = _play(reg, ops, lambda _now: None)
    saved = {unit: state for unit, state in reg.unsaved(now) if state is not None}
    copy = _registry(epoch=2, lease=100.0, offline_after=200.0)
    for state in saved.values():
        copy.restore(state, 5000.0, 5000.0)
    shift = 5000.0 - now
    for unit in saved:
        original, restored = reg.get(unit), copy.get(unit)
        assert original is not None and restored is not None
        assert restored.availability is original.availability
        assert restored.groups == original.groups
        assert restored.gateway == original.gateway
    # Both move through the same transitions over the same time.
    later = reg.tick(now + elapsed)
    later_copy = copy.tick(5000.0 + elapsed)
    assert sorted((c.at + shift, c.unit, c.availability) for c in later) == sorted(
        (c.at, c.unit, c.availability) for c in later_copy
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_saving_now_and_then_keeps_every_change_and_leases_only_early(
    ops: list[tuple[str, str, float]],
) -> None:
    """Saved as a gateway saves (after every step, each unit's latest row kept)."""
    reg = _registry(lease=100.0, offline_after=200.0)
    saved: dict[str, tuple[float, dict[str, object]] | None] = {}

    def save(now: float) -> None:
        for unit, state in reg.unsaved(now):
            saved[unit] = None if state is None else (now, state)

    now = _play(reg, ops, save)
    copy = _registry(epoch=2, lease=100.0, offline_after=200.0)
    for row in saved.values():
        if row is not None:
            taken, state = row
            copy.restore(state, taken, now)  # same clock: restored at the last step
    for unit in (U1, U2, FR_UNIT):
        original, restored = reg.get(unit), copy.get(unit)
        if original is None or original.availability is Availability.UNKNOWN:
            continue  # nothing worth keeping (a seeded or never-heard unit)
        assert restored is not None, unit
        assert (restored.availability, restored.groups, restored.gateway, restored.location) == (
            original.availability,
            original.groups,
            original.gateway,
            original.location,
        )
    # A unit that keeps talking is saved coarsely: it may go STALE up to a quarter of a
    # lease early in the copy, never late.
    first: dict[str, float] = {}
    first_copy: dict[str, float] = {}
    for source, out in ((reg, first), (copy, first_copy)):
        for change in source.tick(now + 10_000.0):
            out.setdefault(change.unit, change.at)
    assert set(first_copy) == set(first)
    for unit, at in first.items():
        assert at - 25.0 <= first_copy[unit] <= at, unit


def test_a_partner_update_without_names_or_with_a_bad_fix_keeps_nothing_bad() -> None:
    reg = _registry()
    online = Availability.ONLINE
    nameless = PresenceUpdate(
        unit="", nation="FR", gateway="gw-fr-1", epoch=1, seq=1, availability=online
    )
    assert not reg.apply_remote(nameless, 0.0)
    anonymous = PresenceUpdate(
        unit=FR_UNIT, nation="FR", gateway="", epoch=1, seq=1, availability=online
    )
    assert not reg.apply_remote(anonymous, 0.0)
    nowhere = Location(lat=float("nan"), lon=7.0, at=0.0)
    assert reg.apply_remote(_remote(1, location=nowhere, last_heard=float("inf")), 0.0)
    held = reg.get(FR_UNIT)
    assert held is not None and held.location is None and held.last_heard is None
    [(_unit, state)] = reg.unsaved(0.0)
    assert state is not None
    json.dumps(state, allow_nan=False)  # storable


def test_a_late_offline_from_a_former_gateway_still_moves_the_saved_version() -> None:
    reg = _registry()
    assert reg.apply_remote(_remote(1, gateway="gw-fr-2"), 0.0)
    reg.unsaved(0.0)
    assert not reg.apply_remote(_remote(9, Availability.OFFLINE, gateway="gw-fr-1"), 1.0)
    [(_unit, state)] = reg.unsaved(1.0)
    assert state is not None and state["versions"] == {"gw-fr-2": [7, 1], "gw-fr-1": [7, 9]}


def test_the_ledger_reports_the_alerts_it_evicted() -> None:
    ledger = EmergencyLedger(max_alerts=2)
    for n, expires in enumerate((30.0, 10.0, 20.0)):
        ledger.raise_alert(bytes([n]), raised_at=0.0, expires_at=expires, group="g")
    assert ledger.take_evicted() == [b"\x01"]  # the one expiring soonest
    assert ledger.take_evicted() == []


# ------------------------------------------------------- partners' presence floods


def _partner_unit(n: int, availability: Availability = Availability.ONLINE) -> PresenceUpdate:
    return PresenceUpdate(
        unit=f"fr.sdis67.flood-{n}",
        nation="FR",
        gateway="gw-fr-1",
        epoch=1,
        seq=1,
        availability=availability,
        groups=(),
        valid_for=300.0,
        sent_at=0.0,
    )


def test_a_flood_of_partner_units_never_pushes_out_ours() -> None:
    reg = _registry(max_units=3)
    reg.seed([U1, U2], 0.0)  # our configured radios, not heard yet: UNKNOWN
    reg.drain(0.0)
    applied = [reg.apply_remote(_partner_unit(n), 1.0) for n in range(10)]
    assert applied == [True] + [False] * 9  # one free place, then refused
    assert reg.refused == 9
    assert U1 in reg
    assert U2 in reg
    # Our radio is heard: it keeps its place and comes back (alerts are replayed).
    assert reg.heard(U1, 2.0).came_back


def test_a_partner_unit_gone_offline_makes_room_for_another_partner_unit() -> None:
    reg = _registry(max_units=3)
    reg.seed([U1], 0.0)
    reg.drain(0.0)
    assert reg.apply_remote(_partner_unit(1, Availability.OFFLINE), 1.0)
    assert reg.apply_remote(_partner_unit(2), 1.0)
    assert reg.apply_remote(_partner_unit(3), 1.0)  # evicts the OFFLINE partner unit
    assert "fr.sdis67.flood-1" not in reg
    assert U1 in reg
    assert not reg.apply_remote(_partner_unit(4), 1.0)  # only ONLINE partner units left


def test_one_of_our_units_evicts_the_partner_unit_updated_longest_ago() -> None:
    reg = _registry(max_units=3)
    reg.heard(U1, 0.0)
    assert reg.apply_remote(_partner_unit(1), 1.0)
    assert reg.apply_remote(_partner_unit(2), 2.0)
    assert reg.apply_remote(replace(_partner_unit(1), seq=2), 3.0)  # flood-1 is newer now
    reg.heard(U2, 4.0)
    assert "fr.sdis67.flood-2" not in reg
    assert "fr.sdis67.flood-1" in reg
    assert reg.evicted == 1
    reg.heard("de.polizei.3", 5.0)
    assert "fr.sdis67.flood-1" not in reg
    with pytest.raises(PresenceFull):  # all places hold our own live units
        reg.heard("de.polizei.4", 6.0)


def test_a_unit_roaming_to_us_is_no_longer_evicted_as_a_partner_unit() -> None:
    reg = _registry(max_units=2)
    assert reg.apply_remote(_remote(1), 0.0)
    reg.heard(FR_UNIT, 1.0)  # the French unit now talks through our radio
    assert reg.get(FR_UNIT) is not None
    assert reg.get(FR_UNIT).local  # type: ignore[union-attr]
    reg.heard(U1, 2.0)
    assert not reg.apply_remote(_partner_unit(1), 3.0)  # would need to evict it: refused
    with pytest.raises(PresenceFull):
        reg.heard(U2, 4.0)
    assert FR_UNIT in reg


def test_a_partner_cannot_keep_a_unit_online_or_stale_for_ever() -> None:
    reg = _registry()
    assert reg.apply_remote(_remote(1, valid_for=1e12), 0.0)
    assert reg.tick(300.0 * REMOTE_VALIDITY_FACTOR - 1) == []
    assert [c.availability for c in reg.tick(300.0 * REMOTE_VALIDITY_FACTOR)] == [
        Availability.STALE
    ]
    assert reg.apply_remote(_remote(2, Availability.STALE, valid_for=1e12), 10_000.0)
    later = 10_000.0 + 600.0 * REMOTE_VALIDITY_FACTOR
    assert [c.availability for c in reg.tick(later)] == [Availability.OFFLINE]


def test_a_partner_update_affiliates_a_unit_to_a_bounded_number_of_groups() -> None:
    reg = _registry()
    groups = tuple(f"group-{n:03d}" for n in range(MAX_GROUPS_PER_UNIT * 3))
    assert reg.apply_remote(_remote(1, groups=groups), 0.0)
    held = reg.get(FR_UNIT)
    assert held is not None
    assert held.groups == frozenset(sorted(groups)[:MAX_GROUPS_PER_UNIT])


_FLOOD_OPS = st.lists(
    st.tuples(
        st.sampled_from(("heard", "deregistered", "drain", "remote", "remote_offline", "tick")),
        st.integers(min_value=0, max_value=5),
    ),
    max_size=60,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_FLOOD_OPS)
def test_partner_updates_never_take_a_place_of_ours(ops: list[tuple[str, int]]) -> None:
    reg = _registry(max_units=4, lease=10.0, offline_after=10.0)
    now = 0.0
    seq = 0
    for op, n in ops:
        now += 1.0
        ours_before = {u.unit for u in reg.units() if u.local}
        if op == "tick":
            reg.tick(now + 10.0 * n)
            now += 10.0 * n
        elif op == "drain":
            reg.drain(now)
        elif op in ("heard", "deregistered"):
            try:
                getattr(reg, op)(f"de.polizei.{n}", now)
            except PresenceFull:
                # Only when every place holds one of our units that cannot go.
                assert len(reg) == 4
                assert all(u.local for u in reg.units())
                assert ours_before == {u.unit for u in reg.units()}
        else:
            seq += 1
            availability = Availability.OFFLINE if op == "remote_offline" else Availability.ONLINE
            reg.apply_remote(replace(_partner_unit(n, availability), seq=seq), now)
            assert {u.unit for u in reg.units() if u.local} == ours_before
        assert len(reg) <= 4
        # The eviction indexes hold exactly the units they should.
        held = {u.unit: u for u in reg.units()}
        remote = {u for u, p in held.items() if not p.local}
        assert set(reg._remote) == remote
        for local in (True, False):
            assert set(reg._evictable[local]) == {
                u
                for u, p in held.items()
                if p.local == local
                and p.availability in (Availability.OFFLINE, Availability.UNKNOWN)
            }


def test_a_unit_heard_after_its_lease_ran_out_comes_back_even_before_the_tick() -> None:
    reg = _registry()
    reg.heard(U1, 0.0)
    assert not reg.heard(U1, 299.0).came_back  # within the lease
    assert reg.heard(U1, 299.0 + 300.0).came_back  # the lease ran out; no tick ran since
    assert reg.tick(600.0) == []  # nothing left to transition: it is ONLINE again
    assert reg.availability(U1) is Availability.ONLINE


def test_the_member_serving_a_partner_unit_is_kept_saved_and_restored() -> None:
    reg = _registry()
    update = dataclasses.replace(_remote(1), gateway="gw-fr-2", member="FR-2")
    assert reg.apply_remote(update, 0.0)
    held = reg.get(FR_UNIT)
    assert held is not None and held.member == "FR-2"
    [state] = _saved(reg, 1.0).values()
    assert state is not None and state["member"] == "FR-2"
    after = _registry(epoch=2)
    after.restore(state, 1.0, 2.0)
    restored = after.get(FR_UNIT)
    assert restored is not None and restored.member == "FR-2"
    # The country's gateway named like it moves the unit back, and its member with it.
    assert after.apply_remote(dataclasses.replace(_remote(1, epoch=9), member=""), 3.0)
    moved = after.get(FR_UNIT)
    assert moved is not None and (moved.gateway, moved.member) == ("gw-fr-1", "")
    with pytest.raises(ValueError, match="member"):
        _registry().restore({**state, "member": "fr-2"}, 1.0, 2.0)
