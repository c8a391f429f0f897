"""Authorization policy and per-peer rate limits for cross-border traffic.

Pure decision code: no I/O, no clock; time is always the ``now`` argument.

Authorization (TOML ``[policy]``)::

    [policy]
    default = "deny"                 # "allow" or "deny"; "deny" when omitted and rules exist

    [[policy.rules]]
    name = "kehl-strasbourg"         # optional; shown in reasons (else "policy.rules[0]")
    action = "allow"                 # "allow" (default) or "deny"
    nation = "FR"                    # origin nation glob (default "*")
    organisation = "*"               # origin organisation glob (default "*")
    groups = ["kehl-strasbourg-*"]   # target group globs
    units = ["de.*"]                 # target unit globs
    broadcast = false                # may send broadcasts
    emergency = true                 # may send EMERGENCY / IMMINENT_PERIL to these targets

Rules are tried in order; the first rule whose origin and target patterns match
decides (firewall style). An ``allow`` rule without ``emergency = true`` does not
match an emergency message, so a later rule may still grant it. When no rule
decides, ``default`` applies. Without a ``[policy]`` table (or with an empty one)
everything is allowed, as before policies existed; as soon as rules exist the
default is "deny". Patterns are :func:`fnmatch.fnmatchcase` globs; nation codes
are compared upper case, everything else case-sensitively.

Reason codes (TETRA SDS-TL delivery status, EN 300 392-2 table 29.16):
``SOURCE_NOT_AUTHORIZED`` (0x43) when the origin may not send this at all (no
rule for it, no emergency permission, broadcast, or a deny rule covering every
target of that kind); ``DESTINATION_PROHIBITED`` (0x56, "destination address
administratively prohibited") when the origin is known but this target is not
granted: it is a policy decision of ours, whereas 0x44 "destination not
authorized for SDS" describes the destination's own subscription.

Rate limits (TOML ``[rate_limits]``): token buckets per peer (partner nation or
adapter name) on messages/s and bytes/s. EMERGENCY and IMMINENT_PERIL traffic is
exempt from those and draws on its own bucket; when that is empty it may still
use the normal buckets, so a flood of fake emergencies is capped at
emergency + normal rate and genuine ones are never refused while normal budget is
left. See :func:`parse_rate_limits` for the keys.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Literal

from gateway._toml import Table
from gateway.members import is_member, member_nation
from protocols.errors import DeliveryRefused
from protocols.schema import v1
from protocols.tetra import DeliveryStatus

__all__ = [
    "Decision",
    "PeerLimits",
    "Policy",
    "RateDecision",
    "RateLimitSettings",
    "RateLimiter",
    "Rule",
    "TargetKind",
    "TokenBucket",
    "parse_policy",
    "parse_rate_limits",
]

#: What a message is addressed to.
TargetKind = Literal["unit", "group", "broadcast"]
_KINDS = ("unit", "group", "broadcast")
_NATION_GLOB = re.compile(r"^[A-Za-z*?\[\]!]{1,16}$")

#: Priorities at or above this one use the emergency bucket.
EMERGENCY_CLASS = int(v1.PRIORITY_IMMINENT_PERIL)


# ------------------------------------------------------------------ authorization


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One ``[[policy.rules]]`` entry.

    Attributes:
        name: Shown in decisions (the TOML path when not configured).
        action: ``"allow"`` grants, ``"deny"`` refuses what the rule matches.
        nation: Origin nation glob (upper case).
        organisation: Origin organisation glob.
        groups: Target group globs.
        units: Target unit globs.
        broadcast: The rule covers broadcasts.
        emergency: An allow rule also grants EMERGENCY / IMMINENT_PERIL messages.
    """

    name: str
    action: Literal["allow", "deny"] = "allow"
    nation: str = "*"
    organisation: str = "*"
    groups: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    broadcast: bool = False
    emergency: bool = False

    def matches_origin(self, nation: str, organisation: str) -> bool:
        """Return True if the origin ``(nation, organisation)`` is covered."""
        return fnmatchcase(nation.upper(), self.nation) and fnmatchcase(
            organisation, self.organisation
        )

    def matches_target(self, kind: TargetKind, target: str) -> bool:
        """Return True if the target is covered (``target`` is ignored for broadcasts)."""
        if kind == "broadcast":
            return self.broadcast
        patterns = self.units if kind == "unit" else self.groups
        return any(fnmatchcase(target, p) for p in patterns)

    def covers_every(self, kind: TargetKind) -> bool:
        """Return True if the rule covers every target of ``kind`` (a bare ``*``)."""
        if kind == "broadcast":
            return self.broadcast
        return "*" in (self.units if kind == "unit" else self.groups)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of :meth:`Policy.check`.

    Attributes:
        allowed: True if the message may pass.
        reason: Human-readable: names the deciding rule, or says what no rule allows.
        reason_code: SDS-TL delivery status for a negative report (None if allowed).
        rule: Name of the deciding rule, None when the default decided.
    """

    allowed: bool
    reason: str
    reason_code: int | None = None
    rule: str | None = None


class Policy:
    """Which origins may address which groups and units, and raise emergencies.

    Args:
        rules: The rules, tried in order.
        default: Decision when no rule decides.
    """

    def __init__(
        self, rules: Sequence[Rule] = (), *, default: Literal["allow", "deny"] = "deny"
    ) -> None:
        self.rules = tuple(rules)
        self.default = default

    @classmethod
    def allow_all(cls) -> Policy:
        """Return the policy used when none is configured: everything allowed."""
        return cls((), default="allow")

    def check(
        self,
        origin_nation: str,
        origin_org: str,
        target_kind: TargetKind,
        target: str,
        is_emergency: bool,
    ) -> Decision:
        """Decide whether an origin may send to a target.

        Args:
            origin_nation: Origin nation code, e.g. ``"FR"``.
            origin_org: Origin organisation, e.g. ``"sdis67"``.
            target_kind: ``"unit"``, ``"group"`` or ``"broadcast"``.
            target: Unit identity or group name (anything for a broadcast).
            is_emergency: The message is EMERGENCY or IMMINENT_PERIL.

        Returns:
            The decision, with a reason and, if refused, a reason code.

        Raises:
            ValueError: Unknown ``target_kind``.
        """
        if target_kind not in _KINDS:
            raise ValueError(f"target_kind must be one of {_KINDS}, got {target_kind!r}")
        what = "a broadcast" if target_kind == "broadcast" else f"{target_kind} {target!r}"
        if is_emergency:
            what = f"an emergency to {what}"
        origin = f"{origin_nation.upper()}/{origin_org}"
        origin_known = False
        lacks_emergency: Rule | None = None
        for rule in self.rules:
            if not rule.matches_origin(origin_nation, origin_org):
                continue
            origin_known = True
            if not rule.matches_target(target_kind, target):
                continue
            if rule.action == "deny":
                code = (
                    DeliveryStatus.SOURCE_NOT_AUTHORIZED
                    if target_kind == "broadcast" or rule.covers_every(target_kind)
                    else DeliveryStatus.DESTINATION_PROHIBITED
                )
                return Decision(
                    allowed=False,
                    reason=f"rule {rule.name!r} denies {origin} sending {what}",
                    reason_code=int(code),
                    rule=rule.name,
                )
            if is_emergency and not rule.emergency:
                lacks_emergency = lacks_emergency or rule
                continue
            return Decision(
                allowed=True,
                reason=f"rule {rule.name!r} allows {origin} sending {what}",
                rule=rule.name,
            )
        if self.default == "allow":
            return Decision(
                allowed=True, reason=f"no rule decides {what} from {origin}; default allow"
            )
        if lacks_emergency is not None:
            reason = (
                f"no rule allows {origin} to send {what}: rule {lacks_emergency.name!r} "
                "covers the target but not emergencies"
            )
            code = DeliveryStatus.SOURCE_NOT_AUTHORIZED
        elif not origin_known or target_kind == "broadcast":
            reason = f"no rule allows {origin} to send {what}"
            code = DeliveryStatus.SOURCE_NOT_AUTHORIZED
        else:
            reason = f"no rule allows {origin} to send {what}"
            code = DeliveryStatus.DESTINATION_PROHIBITED
        return Decision(allowed=False, reason=reason, reason_code=int(code))

    def enforce(
        self,
        origin_nation: str,
        origin_org: str,
        target_kind: TargetKind,
        target: str,
        is_emergency: bool,
    ) -> Decision:
        """Like :meth:`check`, but raise when refused.

        Args:
            origin_nation: Origin nation code.
            origin_org: Origin organisation.
            target_kind: ``"unit"``, ``"group"`` or ``"broadcast"``.
            target: Unit identity or group name.
            is_emergency: The message is EMERGENCY or IMMINENT_PERIL.

        Returns:
            The (allowing) decision.

        Raises:
            DeliveryRefused: Refused; ``reason_code`` is the SDS-TL status.
        """
        decision = self.check(origin_nation, origin_org, target_kind, target, is_emergency)
        if not decision.allowed:
            raise DeliveryRefused(
                decision.reason, reason_code=decision.reason_code, reply_hint="not authorized"
            )
        return decision


def parse_policy(table: Table) -> Policy:
    """Read a ``[policy]`` table with its ``[[policy.rules]]``; errors name the key path.

    Args:
        table: The ``[policy]`` table (an empty one when absent: allow-all).

    Returns:
        The policy.
    """
    rules = tuple(_rule(t, index) for index, t in enumerate(table.tables("rules")))
    explicit = table.has("default")
    default_value: str = table.string("default", "deny")
    table.finish()
    if default_value not in ("allow", "deny"):
        raise table.error("default", f"{default_value!r} is not 'allow' or 'deny'.")
    if not rules and not explicit:
        return Policy.allow_all()
    return Policy(rules, default="allow" if default_value == "allow" else "deny")


def _rule(table: Table, index: int) -> Rule:
    name: str = table.string("name", f"policy.rules[{index}]")
    action: str = table.string("action", "allow")
    if action not in ("allow", "deny"):
        raise table.error("action", f"{action!r} is not 'allow' or 'deny'.")
    nation: str = table.string("nation", "*")
    if not _NATION_GLOB.match(nation):
        raise table.error("nation", f"{nation!r} is not a nation code or glob like 'FR' or '*'.")
    organisation: str = table.string("organisation", "*")
    groups: list[str] = table.strings("groups", [])
    units: list[str] = table.strings("units", [])
    for key, patterns in (("organisation", [organisation]), ("groups", groups), ("units", units)):
        if any(not p.strip() for p in patterns):
            raise table.error(key, "patterns must not be empty.")
    broadcast: bool = table.boolean("broadcast", False)
    emergency: bool = table.boolean("emergency", False)
    if action == "deny" and table.has("emergency"):
        raise table.error("emergency", "only allow rules grant emergencies; remove it.")
    table.finish()  # a typo ("grups") is a better diagnosis than "names no groups"
    if not groups and not units and not broadcast:
        raise table.error("groups", "the rule names no groups, units or broadcast.")
    return Rule(
        name=name,
        action="deny" if action == "deny" else "allow",
        nation=nation.upper(),
        organisation=organisation,
        groups=tuple(groups),
        units=tuple(units),
        broadcast=broadcast,
        emergency=emergency,
    )


# -------------------------------------------------------------------- rate limits


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` stored.

    Starts full. Time going backwards is ignored (no refill, no debt).

    Args:
        rate: Refill rate in tokens per second (> 0).
        burst: Capacity (> 0).
        now: Creation time.
    """

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and burst > 0):
            raise ValueError(f"rate and burst must be positive, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, amount: float, now: float) -> float:
        """Return seconds until ``amount`` tokens are available (0 if now, inf if never)."""
        self.refill(now)
        if amount > self.burst:
            return math.inf
        if self.tokens >= amount:
            return 0.0
        return (amount - self.tokens) / self.rate

    def take(self, amount: float) -> None:
        """Remove ``amount`` tokens (call after :meth:`wait` returned 0)."""
        self.tokens -= amount


@dataclass(frozen=True, kw_only=True)
class PeerLimits:
    """Rate limits of one peer.

    The defaults allow roughly ten times the sustained cross-border load we expect
    from one partner (field notes §0: a 2-core gateway handles ~5-15k msg/s in
    total), so only a runaway or hostile peer hits them.

    Attributes:
        messages_per_second: Sustained normal messages per second.
        burst: Normal messages admitted at once after a quiet period.
        bytes_per_second: Sustained normal bytes per second.
        bytes_burst: Normal bytes admitted at once; a larger message is never admitted.
        emergency_messages_per_second: Sustained EMERGENCY / IMMINENT_PERIL messages.
        emergency_burst: Emergency messages admitted at once (e.g. many units
            pressing the emergency button in one incident).
    """

    messages_per_second: float = 200.0
    burst: float = 400.0
    bytes_per_second: float = 1_000_000.0
    bytes_burst: float = 2_000_000.0
    emergency_messages_per_second: float = 50.0
    emergency_burst: float = 100.0


@dataclass(frozen=True, kw_only=True)
class RateLimitSettings:
    """Rate limits for all peers (TOML ``[rate_limits]``).

    Attributes:
        defaults: Limits of a peer without an override.
        peers: Per-peer overrides (``[rate_limits.peers.<name>]``).
        max_peers: Most peers whose bucket state is kept (least recently seen evicted).
    """

    defaults: PeerLimits = field(default_factory=PeerLimits)
    peers: Mapping[str, PeerLimits] = field(default_factory=lambda: MappingProxyType({}))
    max_peers: int = 4096

    def for_peer(self, peer: str) -> PeerLimits:
        """Return the limits that apply to ``peer``.

        A gateway of a split partner country (``FR-2``) without limits of its own gets its
        country's (each gateway its own buckets).
        """
        limits = self.peers.get(peer)
        if limits is None and is_member(peer):
            limits = self.peers.get(member_nation(peer))
        return self.defaults if limits is None else limits


@dataclass(frozen=True, kw_only=True)
class RateDecision:
    """The outcome of :meth:`RateLimiter.admit`.

    Attributes:
        allowed: True if the message may pass.
        retry_after: Seconds until it would pass (0 if allowed, inf if never).
        reason: Human-readable reason (names peer and exhausted budget when refused).
        reason_code: SDS-TL delivery status for a negative report (None if allowed).
        emergency_budget: Admitted on the emergency bucket.
    """

    allowed: bool
    retry_after: float
    reason: str
    reason_code: int | None = None
    emergency_budget: bool = False


class _PeerState:
    __slots__ = ("bytes", "emergency", "messages")

    def __init__(self, limits: PeerLimits, now: float) -> None:
        self.messages = TokenBucket(limits.messages_per_second, limits.burst, now)
        self.bytes = TokenBucket(limits.bytes_per_second, limits.bytes_burst, now)
        self.emergency = TokenBucket(
            limits.emergency_messages_per_second, limits.emergency_burst, now
        )


class RateLimiter:
    """Per-peer token buckets on messages and bytes, with an emergency budget.

    Memory is bounded by ``settings.max_peers``: the least recently seen peer's
    state is dropped (it starts again with full buckets; peers are authenticated
    partner gateways and adapters, so name churn is not attacker-controlled).

    Refusals carry ``NETWORK_OVERLOAD`` (0x40): the message is rejected, not kept,
    because the sender exceeds its budget. ``CONGESTION`` (0x20) would claim the
    message was stored for later delivery, which it is not. A message larger than
    ``bytes_burst`` can never pass and gets ``MESSAGE_TOO_LONG`` (0x4D).

    Args:
        settings: The limits.
    """

    def __init__(self, settings: RateLimitSettings | None = None) -> None:
        self.settings = settings if settings is not None else RateLimitSettings()
        self._peers: OrderedDict[str, _PeerState] = OrderedDict()
        #: Peer states dropped to stay within ``max_peers`` (a metric).
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._peers)

    def admit(self, peer: str, priority: int, size: int, now: float) -> RateDecision:
        """Decide whether one message of ``size`` bytes from ``peer`` may pass now.

        Admitted messages consume their tokens; refused ones consume nothing.

        Args:
            peer: Partner nation or adapter name.
            priority: ``euccs.v1.Priority`` value; 3 and 4 use the emergency budget.
            size: Encoded size in bytes.
            now: Current time.

        Returns:
            The decision; when refused, ``retry_after`` says when it would pass.
        """
        state = self._state(peer, now)
        limits = self.settings.for_peer(peer)
        if priority >= EMERGENCY_CLASS and state.emergency.wait(1, now) == 0.0:
            state.emergency.take(1)
            return RateDecision(
                allowed=True, retry_after=0.0, reason="emergency budget", emergency_budget=True
            )
        if size > limits.bytes_burst:
            return RateDecision(
                allowed=False,
                retry_after=math.inf,
                reason=(
                    f"{size} bytes from {peer!r} exceed the byte burst of {limits.bytes_burst:g}"
                ),
                reason_code=int(DeliveryStatus.MESSAGE_TOO_LONG),
            )
        wait_messages = state.messages.wait(1, now)
        wait_bytes = state.bytes.wait(size, now)
        if wait_messages == 0.0 and wait_bytes == 0.0:
            state.messages.take(1)
            state.bytes.take(size)
            reason = "normal budget"
            if priority >= EMERGENCY_CLASS:
                reason = "emergency budget exhausted; admitted on the normal budget"
            return RateDecision(allowed=True, retry_after=0.0, reason=reason)
        exhausted = []
        if wait_messages > 0:
            exhausted.append(f"{limits.messages_per_second:g} msg/s (burst {limits.burst:g})")
        if wait_bytes > 0:
            exhausted.append(f"{limits.bytes_per_second:g} B/s (burst {limits.bytes_burst:g})")
        retry_after = max(wait_messages, wait_bytes)
        if priority >= EMERGENCY_CLASS:
            exhausted.insert(
                0,
                f"emergency {limits.emergency_messages_per_second:g} msg/s "
                f"(burst {limits.emergency_burst:g})",
            )
            retry_after = min(retry_after, state.emergency.wait(1, now))
        return RateDecision(
            allowed=False,
            retry_after=retry_after,
            reason=f"peer {peer!r} exceeds its rate limit: " + ", ".join(exhausted),
            reason_code=int(DeliveryStatus.NETWORK_OVERLOAD),
        )

    def _state(self, peer: str, now: float) -> _PeerState:
        state = self._peers.get(peer)
        if state is None:
            if len(self._peers) >= self.settings.max_peers:
                self._peers.popitem(last=False)
                self.evicted += 1
            state = self._peers[peer] = _PeerState(self.settings.for_peer(peer), now)
        else:
            self._peers.move_to_end(peer)
        return state


_RATE_KEYS = (
    ("messages_per_second", 0.0),
    ("burst", 1.0),
    ("bytes_per_second", 0.0),
    ("bytes_burst", 1.0),
    ("emergency_messages_per_second", 0.0),
    ("emergency_burst", 1.0),
)


def parse_rate_limits(table: Table) -> RateLimitSettings:
    """Read a ``[rate_limits]`` table; errors name the key path.

    Keys: ``messages_per_second`` (default 200), ``burst`` (400),
    ``bytes_per_second`` (1000000), ``bytes_burst`` (2000000),
    ``emergency_messages_per_second`` (50), ``emergency_burst`` (100), all
    positive, bursts at least 1; ``max_peers`` (4096). ``[rate_limits.peers.<peer>]``
    tables override any of the six limits for one peer and inherit the rest.

    Args:
        table: The ``[rate_limits]`` table (an empty one when absent: the defaults).

    Returns:
        The settings.
    """
    defaults = _limits(table, PeerLimits())
    max_peers: float = table.number("max_peers", 4096.0, minimum=1)
    if not math.isfinite(max_peers) or not max_peers.is_integer():
        raise table.error("max_peers", f"expected a whole number, got {max_peers}.")
    peers_table = table.table("peers")
    peers: dict[str, PeerLimits] = {}
    for peer in [name for name, _ in peers_table.items()]:
        sub = peers_table.table(peer)
        peers[peer] = _limits(sub, defaults)
        sub.finish()
    peers_table.finish()
    table.finish()
    return RateLimitSettings(
        defaults=defaults, peers=MappingProxyType(peers), max_peers=int(max_peers)
    )


def _limits(table: Table, base: PeerLimits) -> PeerLimits:
    values: dict[str, float] = {}
    for key, minimum in _RATE_KEYS:
        value: float = table.number(key, getattr(base, key), minimum=minimum)
        if not math.isfinite(value) or value <= 0:
            raise table.error(key, f"expected a positive finite number, got {value}.")
        values[key] = value
    return PeerLimits(**values)
