from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._toml import Table
from gateway.policy import (
    PeerLimits,
    Policy,
    RateLimiter,
    RateLimitSettings,
    Rule,
    TokenBucket,
    parse_policy,
    parse_rate_limits,
)
from protocols.errors import ConfigError, DeliveryRefused
from protocols.schema import v1
from protocols.tetra import DeliveryStatus

EMERGENCY = int(v1.PRIORITY_EMERGENCY)
PERIL = int(v1.PRIORITY_IMMINENT_PERIL)
HIGH = int(v1.PRIORITY_HIGH)
ROUTINE = int(v1.PRIORITY_ROUTINE)

POLICY = """
[policy]

[[policy.rules]]
name = "kehl-strasbourg"
nation = "FR"
organisation = "*"
groups = ["kehl-strasbourg-*"]
units = ["de.*"]
emergency = true

[[policy.rules]]
nation = "CH"
organisation = "polizei-*"
groups = ["basel-*"]

[[policy.rules]]
name = "no-lux-secret"
action = "deny"
nation = "LU"
groups = ["*-secret"]

[[policy.rules]]
nation = "LU"
groups = ["*"]
broadcast = true
"""


def _root(text: str) -> Table:
    return Table(tomllib.loads(text), "")


def _policy(text: str) -> Policy:
    return parse_policy(_root(text).table("policy"))


def _rates(text: str) -> RateLimitSettings:
    return parse_rate_limits(_root(text).table("rate_limits"))


# ------------------------------------------------------------------ policy


def test_globs_allow_and_default_deny() -> None:
    policy = _policy(POLICY)
    ok = policy.check("FR", "sdis67", "group", "kehl-strasbourg-fire", False)
    assert ok.allowed
    assert ok.rule == "kehl-strasbourg"
    assert "kehl-strasbourg" in ok.reason
    assert ok.reason_code is None
    assert policy.check("FR", "police", "unit", "de.polizei.2001", False).allowed
    assert policy.check("fr", "police", "unit", "de.polizei.2001", False).allowed  # nation case

    other_group = policy.check("FR", "sdis67", "group", "basel-fire", False)
    assert not other_group.allowed
    assert other_group.reason_code == DeliveryStatus.DESTINATION_PROHIBITED
    assert "no rule allows FR/sdis67" in other_group.reason
    assert "group 'basel-fire'" in other_group.reason

    unknown_origin = policy.check("IT", "x", "group", "kehl-strasbourg-fire", False)
    assert not unknown_origin.allowed
    assert unknown_origin.reason_code == DeliveryStatus.SOURCE_NOT_AUTHORIZED
    assert unknown_origin.rule is None

    # Organisation globs are matched too.
    assert policy.check("CH", "polizei-bs", "group", "basel-1", False).allowed
    assert not policy.check("CH", "feuerwehr", "group", "basel-1", False).allowed
    # A unit glob does not grant groups.
    assert not policy.check("FR", "x", "group", "de.polizei.2001", False).allowed


def test_emergency_needs_permission() -> None:
    policy = _policy(POLICY)
    assert policy.check("FR", "sdis67", "group", "kehl-strasbourg-fire", True).allowed
    refused = policy.check("CH", "polizei-bs", "group", "basel-1", True)
    assert not refused.allowed
    assert refused.reason_code == DeliveryStatus.SOURCE_NOT_AUTHORIZED
    assert "not emergencies" in refused.reason
    assert "policy.rules[1]" in refused.reason


def test_later_rule_may_grant_emergency() -> None:
    policy = Policy(
        [
            Rule(name="routine", nation="FR", groups=("*",)),
            Rule(
                name="sdis-emergency",
                nation="FR",
                organisation="sdis*",
                groups=("*",),
                emergency=True,
            ),
        ]
    )
    decision = policy.check("FR", "sdis67", "group", "g", True)
    assert decision.allowed
    assert decision.rule == "sdis-emergency"
    assert not policy.check("FR", "police", "group", "g", True).allowed
    assert policy.check("FR", "police", "group", "g", False).rule == "routine"


def test_deny_rule_wins_when_first() -> None:
    policy = _policy(POLICY)
    denied = policy.check("LU", "police", "group", "ops-secret", False)
    assert not denied.allowed
    assert denied.rule == "no-lux-secret"
    assert denied.reason_code == DeliveryStatus.DESTINATION_PROHIBITED
    assert "denies" in denied.reason
    assert policy.check("LU", "police", "group", "ops", False).allowed
    assert policy.check("LU", "police", "broadcast", "", False).allowed


def test_deny_rule_for_every_target_refuses_the_source() -> None:
    policy = Policy([Rule(name="ban", action="deny", nation="XX", units=("*",))], default="allow")
    decision = policy.check("XX", "o", "unit", "de.a.b", False)
    assert not decision.allowed
    assert decision.reason_code == DeliveryStatus.SOURCE_NOT_AUTHORIZED
    assert policy.check("XX", "o", "group", "g", False).allowed  # default allow


def test_broadcast_needs_a_rule() -> None:
    policy = _policy(POLICY)
    refused = policy.check("FR", "sdis67", "broadcast", "", False)
    assert not refused.allowed
    assert refused.reason_code == DeliveryStatus.SOURCE_NOT_AUTHORIZED
    assert "broadcast" in refused.reason


def test_default_allow_and_absent_policy() -> None:
    deny = _policy(POLICY)
    assert not deny.check("IT", "x", "group", "g", False).allowed  # rules exist: deny
    with_default = _policy(POLICY.replace("[policy]\n", '[policy]\ndefault = "allow"\n'))
    decision = with_default.check("IT", "x", "group", "g", True)
    assert decision.allowed
    assert "default allow" in decision.reason
    absent = _policy("")
    assert absent.default == "allow"
    assert absent.rules == ()
    assert absent.check("IT", "x", "unit", "de.a.b", True).allowed
    deny_all = _policy('[policy]\ndefault = "deny"\n')
    assert not deny_all.check("FR", "x", "group", "g", False).allowed


def test_enforce_raises_delivery_refused() -> None:
    policy = _policy(POLICY)
    assert policy.enforce("FR", "x", "group", "kehl-strasbourg-1", False).allowed
    with pytest.raises(DeliveryRefused) as info:
        policy.enforce("IT", "x", "group", "kehl-strasbourg-1", False)
    assert info.value.reason_code == 0x43 == int(DeliveryStatus.SOURCE_NOT_AUTHORIZED)
    assert "IT/x" in str(info.value)
    with pytest.raises(ValueError, match="target_kind"):
        policy.check("FR", "x", "channel", "g", False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('default = "maybe"', "policy.default: 'maybe' is not 'allow' or 'deny'"),
        ("default = true", "policy.default: expected a string"),
        ('defualt = "deny"', "policy.defualt: unknown key. Did you mean 'default'?"),
        ('[[policy.rules]]\ngrups = ["a"]', "policy.rules[0].grups: unknown key"),
        ('[[policy.rules]]\nnation = "FR"', "policy.rules[0].groups: the rule names no"),
        ('[[policy.rules]]\ngroups = "a"', "policy.rules[0].groups: expected a list of strings"),
        ('[[policy.rules]]\ngroups = [""]', "policy.rules[0].groups: patterns must not be empty"),
        ('[[policy.rules]]\nnation = "F.R"\ngroups = ["a"]', "policy.rules[0].nation:"),
        ('[[policy.rules]]\naction = "drop"\ngroups = ["a"]', "policy.rules[0].action:"),
        (
            '[[policy.rules]]\naction = "deny"\nemergency = true\ngroups = ["a"]',
            "policy.rules[0].emergency: only allow rules",
        ),
        (
            '[[policy.rules]]\ngroups = ["a"]\n[[policy.rules]]\nunits = ["a"]\nemergncy = true',
            "policy.rules[1].emergncy: unknown key. Did you mean 'emergency'?",
        ),
        ("rules = 3", "policy.rules: expected an array of tables"),
    ],
)
def test_parse_policy_errors_name_the_key_path(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _policy(f"[policy]\n{body}\n")
    assert message in str(info.value)


def test_parse_policy_reads_every_field() -> None:
    policy = _policy(POLICY)
    assert policy.default == "deny"
    assert policy.rules[0] == Rule(
        name="kehl-strasbourg",
        nation="FR",
        organisation="*",
        groups=("kehl-strasbourg-*",),
        units=("de.*",),
        emergency=True,
    )
    assert policy.rules[1].name == "policy.rules[1]"
    assert policy.rules[2].action == "deny"
    assert policy.rules[3].broadcast


# ------------------------------------------------------------------ rate limits

SMALL = PeerLimits(
    messages_per_second=10.0,
    burst=5.0,
    bytes_per_second=1000.0,
    bytes_burst=2000.0,
    emergency_messages_per_second=2.0,
    emergency_burst=3.0,
)


def _limiter(limits: PeerLimits = SMALL, **kw: int) -> RateLimiter:
    return RateLimiter(RateLimitSettings(defaults=limits, **kw))  # type: ignore[arg-type]


def test_burst_then_refill() -> None:
    limiter = _limiter()
    assert all(limiter.admit("FR", ROUTINE, 10, 0.0).allowed for _ in range(5))
    refused = limiter.admit("FR", ROUTINE, 10, 0.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.1)
    assert refused.reason_code == 0x40 == int(DeliveryStatus.NETWORK_OVERLOAD)
    assert "'FR'" in refused.reason
    assert "10 msg/s" in refused.reason
    assert not limiter.admit("FR", HIGH, 10, 0.05).allowed  # half a token
    assert limiter.admit("FR", HIGH, 10, 0.1).allowed
    assert not limiter.admit("FR", HIGH, 10, 0.1).allowed
    # A long pause refills to the burst, not beyond.
    admitted = sum(limiter.admit("FR", ROUTINE, 1, 100.0).allowed for _ in range(20))
    assert admitted == 5


def test_peers_have_their_own_buckets() -> None:
    limiter = _limiter()
    for _ in range(5):
        limiter.admit("FR", ROUTINE, 1, 0.0)
    assert not limiter.admit("FR", ROUTINE, 1, 0.0).allowed
    assert limiter.admit("CH", ROUTINE, 1, 0.0).allowed


def test_bytes_limit() -> None:
    limiter = _limiter()
    assert limiter.admit("FR", ROUTINE, 1500, 0.0).allowed
    refused = limiter.admit("FR", ROUTINE, 1000, 0.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.5)
    assert "B/s" in refused.reason
    assert "msg/s" not in refused.reason
    assert limiter.admit("FR", ROUTINE, 1000, 0.5).allowed
    too_big = limiter.admit("FR", ROUTINE, 2001, 1000.0)
    assert not too_big.allowed
    assert math.isinf(too_big.retry_after)
    assert too_big.reason_code == DeliveryStatus.MESSAGE_TOO_LONG


def test_refused_messages_consume_nothing() -> None:
    limiter = _limiter()
    assert limiter.admit("FR", ROUTINE, 1999, 0.0).allowed
    for _ in range(10):
        assert not limiter.admit("FR", ROUTINE, 1000, 0.0).allowed
    assert limiter.admit("FR", ROUTINE, 1, 0.0).allowed  # message tokens were not taken


def test_emergency_is_exempt_from_normal_buckets_up_to_its_cap() -> None:
    limiter = _limiter()
    for _ in range(5):
        assert limiter.admit("FR", ROUTINE, 1, 0.0).allowed
    assert not limiter.admit("FR", ROUTINE, 1, 0.0).allowed  # normal budget exhausted
    for priority in (EMERGENCY, PERIL, EMERGENCY):
        decision = limiter.admit("FR", priority, 1, 0.0)
        assert decision.allowed
        assert decision.emergency_budget
    capped = limiter.admit("FR", EMERGENCY, 1, 0.0)  # own cap of 3 reached, normal empty
    assert not capped.allowed
    assert capped.reason_code == DeliveryStatus.NETWORK_OVERLOAD
    assert "emergency 2 msg/s" in capped.reason
    assert capped.retry_after == pytest.approx(0.1)  # the normal bucket refills first
    assert limiter.admit("FR", EMERGENCY, 1, 0.5).emergency_budget  # 1 emergency token back


def test_emergency_spills_into_normal_budget_but_not_the_reverse() -> None:
    limiter = _limiter()
    for _ in range(3):
        assert limiter.admit("FR", EMERGENCY, 1, 0.0).emergency_budget
    spilled = limiter.admit("FR", EMERGENCY, 1, 0.0)
    assert spilled.allowed
    assert not spilled.emergency_budget
    assert "normal budget" in spilled.reason
    # Emergencies never draw routine traffic's budget away beyond the normal burst.
    admitted = sum(limiter.admit("FR", EMERGENCY, 1, 0.0).allowed for _ in range(100))
    assert admitted == 4  # 5 normal tokens, one already used by the spill
    assert not limiter.admit("FR", ROUTINE, 1, 0.0).allowed


def test_emergency_flood_does_not_starve_routine() -> None:
    limiter = _limiter()
    for _ in range(3):
        limiter.admit("FR", EMERGENCY, 1, 0.0)
    assert limiter.admit("FR", ROUTINE, 1, 0.0).allowed


def test_peer_state_is_bounded() -> None:
    limiter = _limiter(max_peers=3)
    for peer in ("a", "b", "c", "d", "e"):
        limiter.admit(peer, ROUTINE, 1, 0.0)
    assert len(limiter) == 3
    assert limiter.evicted == 2


def test_per_peer_override() -> None:
    settings_ = RateLimitSettings(defaults=SMALL, peers={"FR": PeerLimits(burst=1.0)})
    limiter = RateLimiter(settings_)
    assert limiter.admit("FR", ROUTINE, 1, 0.0).allowed
    assert not limiter.admit("FR", ROUTINE, 1, 0.0).allowed
    assert sum(limiter.admit("CH", ROUTINE, 1, 0.0).allowed for _ in range(10)) == 5


def test_time_going_backwards_does_not_refill() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=10.0)
    bucket.take(2)
    assert bucket.wait(1, 5.0) == pytest.approx(1.0)
    assert bucket.wait(1, 11.0) == 0.0
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0.0, burst=1.0, now=0.0)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.floats(min_value=1, max_value=1000),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=50)),
        max_size=200,
    ),
)
def test_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: float, steps: list[tuple[float, int]]
) -> None:
    limits = PeerLimits(
        messages_per_second=rate,
        burst=burst,
        bytes_per_second=rate * 100,
        bytes_burst=burst * 100,
        emergency_messages_per_second=rate / 2,
        emergency_burst=max(1.0, burst / 2),
    )
    limiter = RateLimiter(RateLimitSettings(defaults=limits))
    now = 0.0
    messages = size_total = emergency = 0
    for dt, size in steps:
        now += dt
        priority = EMERGENCY if size % 7 == 0 else ROUTINE
        decision = limiter.admit("p", priority, size, now)
        if decision.allowed:
            if decision.emergency_budget:
                emergency += 1
            else:
                messages += 1
                size_total += size
        else:
            assert decision.retry_after > 0
        tolerance = 1e-6 * (1 + now * rate)
        assert messages <= burst + rate * now + tolerance
        assert size_total <= burst * 100 + rate * 100 * now + tolerance * 100
        assert emergency <= max(1.0, burst / 2) + rate / 2 * now + tolerance


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=100),
)
def test_refused_retry_after_is_honest(times: list[float]) -> None:
    bucket_limits = PeerLimits(messages_per_second=3.0, burst=2.0)
    limiter = RateLimiter(RateLimitSettings(defaults=bucket_limits))
    for now in sorted(times):
        decision = limiter.admit("p", ROUTINE, 1, now)
        if not decision.allowed:
            # Retrying after the advertised delay succeeds (nothing else consumed meanwhile),
            # and not noticeably earlier.
            if decision.retry_after > 1e-6:
                assert not limiter.admit("p", ROUTINE, 1, now + decision.retry_after / 2).allowed
            assert limiter.admit("p", ROUTINE, 1, now + decision.retry_after + 1e-9).allowed
            return


# ------------------------------------------------------------------ TOML


def test_parse_rate_limits_defaults_and_overrides() -> None:
    defaults = _rates("")
    assert defaults.defaults == PeerLimits(
        messages_per_second=200.0,
        burst=400.0,
        bytes_per_second=1_000_000.0,
        bytes_burst=2_000_000.0,
        emergency_messages_per_second=50.0,
        emergency_burst=100.0,
    )
    assert defaults.max_peers == 4096
    assert dict(defaults.peers) == {}
    parsed = _rates(
        "[rate_limits]\nmessages_per_second = 20\nburst = 40\nmax_peers = 10\n"
        "[rate_limits.peers.FR]\nburst = 100\nemergency_burst = 7\n"
    )
    assert parsed.defaults.messages_per_second == 20.0
    assert parsed.max_peers == 10
    fr = parsed.for_peer("FR")
    assert fr.burst == 100.0
    assert fr.emergency_burst == 7.0
    assert fr.messages_per_second == 20.0  # inherited from [rate_limits]
    assert parsed.for_peer("CH") == parsed.defaults
    # A gateway of a split country without limits of its own gets its country's.
    assert parsed.for_peer("FR-2") == fr
    assert parsed.for_peer("CH-2") == parsed.defaults


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("messages_per_second = 0", "rate_limits.messages_per_second: expected a positive"),
        ("burst = 0.5", "rate_limits.burst: 0.5 is below the minimum 1.0"),
        ("bytes_per_second = -1", "rate_limits.bytes_per_second:"),
        ("bytes_burst = inf", "rate_limits.bytes_burst: expected a finite number"),
        ('emergency_burst = "x"', "rate_limits.emergency_burst: expected a number"),
        ("max_peers = 2.5", "rate_limits.max_peers: expected a whole number"),
        ("brust = 3", "rate_limits.brust: unknown key. Did you mean 'burst'?"),
        ("[rate_limits.peers.FR]\nburts = 3", "rate_limits.peers.FR.burts: unknown key"),
        ("[rate_limits.peers.FR]\nburst = 0", "rate_limits.peers.FR.burst:"),
        ("peers = 3", "rate_limits.peers: expected a table"),
        ("[rate_limits.peers]\nFR = 3", "rate_limits.peers.FR: expected a table"),
    ],
)
def test_parse_rate_limits_errors_name_the_key_path(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _rates(f"[rate_limits]\n{body}\n")
    assert message in str(info.value)
