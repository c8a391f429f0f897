"""JSON views of a gateway's state for the API: units, groups, links, readiness.

Read-only functions of a running :class:`~gateway.node.Gateway`; times are ISO 8601 UTC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapters import LinkState
from gateway.api.recorder import iso, priority_name
from gateway.liveness import CanaryTracker, PathState

if TYPE_CHECKING:
    from gateway.node import Gateway
    from gateway.presence import UnitPresence
    from gateway.scheduler import AsyncScheduler

__all__ = ["groups_view", "links_view", "readiness", "unit_nation", "units_view"]


def _unit(
    gateway: Gateway,
    unit: str,
    nation: str,
    label: str,
    presence: UnitPresence | None,
    *,
    local: bool,
) -> dict[str, Any]:
    location = None
    if presence is not None and presence.location is not None:
        loc = presence.location
        location = {"lat": loc.lat, "lon": loc.lon, "at": iso(gateway.wall_time(loc.at))}
    return {
        "unit": unit,
        "nation": presence.nation if presence is not None else nation,
        "label": label,
        "availability": presence.availability.name.lower() if presence else "unknown",
        "groups": sorted(presence.groups) if presence else [],
        "location": location,
        "gateway": presence.gateway if presence else None,
        "last_heard": (
            iso(gateway.wall_time(presence.last_heard))
            if presence and presence.last_heard is not None
            else None
        ),
        "local": local,
    }


def units_view(gateway: Gateway) -> list[dict[str, Any]]:
    """Our configured units, configured partner units (aliases) and every unit in presence."""
    registry = gateway.presence
    out: dict[str, dict[str, Any]] = {}
    for unit in gateway.config.units:
        out[unit.unit] = _unit(
            gateway, unit.unit, gateway.nation, unit.label, registry.get(unit.unit), local=True
        )
        if not out[unit.unit]["groups"]:
            out[unit.unit]["groups"] = sorted(unit.groups)
    for alias in gateway.config.aliases:
        if alias.unit not in out:
            out[alias.unit] = _unit(
                gateway,
                alias.unit,
                alias.nation,
                alias.label,
                registry.get(alias.unit),
                local=False,
            )
    for presence in registry.units():
        if presence.unit not in out:
            out[presence.unit] = _unit(
                gateway, presence.unit, presence.nation, "", presence, local=presence.local
            )
    return sorted(out.values(), key=lambda u: (u["nation"], u["unit"]))


def unit_nation(gateway: Gateway, unit: str) -> str | None:
    """The nation of a unit this gateway knows (configured, alias or presence), else None."""
    if gateway.directory.unit(unit) is not None:
        return gateway.nation
    for alias in gateway.config.aliases:
        if alias.unit == unit:
            return alias.nation
    presence = gateway.presence.get(unit)
    return presence.nation if presence is not None else None


def groups_view(gateway: Gateway) -> list[dict[str, Any]]:
    """The configured cross-border groups, their nations, local GSSIs and affiliated units."""
    groups: dict[str, dict[str, Any]] = {}
    for group in gateway.config.groups:
        entry = groups.setdefault(
            group.group,
            {
                "group": group.group,
                "nations": sorted(set(group.nations) | {gateway.nation}),
                "local": [],
                "members": sorted(gateway.presence.affiliated(group.group)),
            },
        )
        entry["local"].append({"adapter": group.adapter, "gssi": group.gssi})
    return sorted(groups.values(), key=lambda g: str(g["group"]))


def _canary(tracker: CanaryTracker | None) -> dict[str, Any] | None:
    if tracker is None:
        return None
    rtt = tracker.last_rtt
    return {
        "state": tracker.state.value,
        "rtt_ms": round(rtt * 1000, 1) if rtt is not None else None,
        "sent": tracker.sent,
        "returned": tracker.returned,
    }


def _queue(queue: AsyncScheduler[Any] | None) -> dict[str, Any]:
    if queue is None:
        return {"depths": {}, "messages": 0, "bytes": 0}
    return {
        "depths": {priority_name(p): n for p, n in sorted(queue.depths().items())},
        "messages": len(queue),
        "bytes": queue.bytes,
    }


def links_view(gateway: Gateway, journal_backlog: int | None) -> dict[str, Any]:
    """Per partner and per adapter: link state, canary, queue depths, backlog."""
    partners = []
    for nation in gateway.config.federation.partners:
        queue = gateway.queues.get(f"egress:{nation}")
        in_flight = gateway.in_flight(nation)
        partners.append(
            {
                "nation": nation,
                "link": "up" if gateway.link.reachable(nation) else "down",
                "canary": _canary(gateway.liveness.get(f"federation:{nation}")),
                "queue": _queue(queue),
                "in_flight": in_flight,
                "backlog": (len(queue) if queue is not None else 0) + in_flight,
            }
        )
    adapters = []
    for name, adapter in gateway.adapters.items():
        queue = gateway.queues.get(f"local:{name}")
        adapters.append(
            {
                "name": name,
                "link": adapter.state.name.lower(),
                "canary": _canary(gateway.liveness.get(f"adapter:{name}")),
                "queue": _queue(queue),
                "backlog": len(queue) if queue is not None else 0,
            }
        )
    return {
        "gateway": gateway.name,
        "nation": gateway.nation,
        "partners": partners,
        "adapters": adapters,
        "journal": {"open": gateway.journal is not None, "backlog": journal_backlog},
    }


#: Seconds after a journal failure during which the gateway does not say it is ready.
JOURNAL_UNREADY_SECONDS = 5.0
#: The readiness reason of a failing journal; the cause is logged as ``journal.write_failed``.
JOURNAL_FAILING = "the journal is failing (cause in the gateway log: journal.write_failed)"


def readiness(gateway: Gateway) -> list[str]:
    """Why the gateway is not ready (empty: ready).

    Ready means: the journal is open and has not failed in the last
    ``JOURNAL_UNREADY_SECONDS`` (a failing journal refuses custody), every adapter is
    connected, and every federation link is up and not degraded (its canaries come back).
    Reasons never carry the journal's error text (its file or database location): that
    is in the ``journal.write_failed`` log line and the ``journal_errors`` counter.
    """
    reasons = []
    if gateway.journal is None:
        reasons.append("the journal is not open")
    failed = gateway.journal_error
    if failed is not None and gateway.monotonic() - failed[0] < JOURNAL_UNREADY_SECONDS:
        # The cause names the journal's file or database: it is in the log, not here.
        reasons.append(JOURNAL_FAILING)
    for name, adapter in gateway.adapters.items():
        if adapter.state is not LinkState.CONNECTED:
            reasons.append(f"adapter {name} is {adapter.state.name.lower()}")
    for nation in gateway.config.federation.partners:
        if not gateway.link.reachable(nation):
            reasons.append(f"the federation link to {nation} is down")
        tracker = gateway.liveness.get(f"federation:{nation}")
        if tracker is not None and tracker.state is PathState.DEGRADED:
            reasons.append(f"the federation link to {nation} is degraded (no canary back)")
    return reasons
