"""What ``GET /metrics`` reports.

The recorder's counters and histograms, and gateway state read at scrape time (queues,
journal, presence, links, the gateway's own counters).

Metric names (all prefixed ``euccs_``) are listed in ``docs/api.md``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from adapters import LinkState
from gateway.api.metrics import Exposition, Labels
from gateway.api.recorder import priority_name
from gateway.liveness import PathState
from gateway.presence import Availability
from protocols.tetra import DeliveryStatus

if TYPE_CHECKING:
    from gateway.api.recorder import Recorder
    from gateway.node import Gateway

__all__ = ["render_metrics"]

_REFUSED = re.compile(r"^refused_0x([0-9a-f]{2})$")
_PATH_STATES = {PathState.UNKNOWN: 0, PathState.HEALTHY: 1, PathState.DEGRADED: 2}


def _lab(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


def _rejections(gateway: Gateway, recorder: Recorder) -> dict[Labels, float]:
    series: Counter[Labels] = Counter()
    for name, value in gateway.counters.items():
        refused = _REFUSED.match(name)
        if refused:
            code = int(refused.group(1), 16)
            try:
                reason = DeliveryStatus(code).name.lower()
            except ValueError:
                reason = f"status_0x{code:02x}"
            series[_lab(source="radio", reason=reason)] += value
        elif name == "rejected_input":
            series[_lab(source="radio", reason="undecodable")] += value
        elif name == "refused_by_policy":
            series[_lab(source="partner", reason="policy")] += value
        elif name.startswith("rate_limited_"):
            series[_lab(source="partner", reason="rate_limited")] += value
        elif name == "federation_malformed":
            series[_lab(source="partner", reason="malformed")] += value
        elif name == "federation_misattributed":
            series[_lab(source="partner", reason="misattributed")] += value
    for reason, value in recorder.api_rejections.items():
        series[_lab(source="api", reason=reason)] += value
    return dict(series)


def render_metrics(gateway: Gateway, recorder: Recorder, journal_backlog: int | None) -> str:
    """The Prometheus text exposition of one gateway and its API."""
    out = Exposition()
    gw = gateway.name
    out.counter(
        "euccs_messages_in_total",
        "Messages taken into custody, by source (adapter:<name>, link:<NATION>, api) and priority.",
        {_lab(source=s, priority=p): n for (s, p), n in recorder.messages_in.items()},
    )
    out.counter(
        "euccs_messages_out_total",
        "Messages handed on: sent on a federation link (link:<NATION>) or delivered to a "
        "unit behind an adapter (adapter:<name>), by priority.",
        {_lab(destination=d, priority=p): n for (d, p), n in recorder.messages_out.items()},
    )
    out.histogram(
        "euccs_end_to_end_latency_seconds",
        "Acceptance to delivery. measured_at=origin: accepted here until the DELIVERED "
        "receipt came back; measured_at=destination: created at the origin until delivered "
        "to our radio network.",
        recorder.end_to_end,
    )
    out.histogram(
        "euccs_hop_latency_seconds",
        "Per hop from envelope traces: stage=queue is received..forwarded inside a gateway, "
        "stage=link is forwarded by the previous gateway..received by this one.",
        recorder.hop_latency,
    )
    depths: dict[Labels, float] = {}
    sizes: dict[Labels, float] = {}
    for name, queue in gateway.queues.items():
        for priority, depth in queue.depths().items():
            depths[_lab(queue=name, priority=priority_name(priority))] = depth
        sizes[_lab(queue=name)] = queue.bytes
    out.gauge("euccs_queue_depth", "Messages waiting per queue and priority.", depths)
    out.gauge("euccs_queue_bytes", "Bytes waiting per queue.", sizes)
    out.gauge(
        "euccs_queue_spilled",
        "Messages of each queue beyond its memory bound, kept in the journal only.",
        {_lab(queue=name): gateway.spilled(name) for name in gateway.queues},
    )
    out.gauge(
        "euccs_in_flight",
        "Messages sent to a partner and not yet acknowledged.",
        {_lab(partner=n): gateway.in_flight(n) for n in gateway.config.federation.partners},
    )
    out.gauge(
        "euccs_journal_backlog",
        "Message copies in the journal's custody (-1: the journal is not open).",
        {(): journal_backlog if journal_backlog is not None else -1},
    )
    journal = gateway.journal
    out.counter(
        "euccs_journal_commits_total",
        "Group commits the journal ran (each one made durable with fsync or a database commit, "
        "unless it failed).",
        {(): journal.commits if journal is not None else 0},
    )
    out.counter(
        "euccs_journal_operations_total",
        "Operations the journal committed; per commit, the mean group size.",
        {(): journal.operations if journal is not None else 0},
    )
    out.counter(
        "euccs_rejected_inputs_total",
        "Inputs refused, by source (radio, partner, api) and reason.",
        _rejections(gateway, recorder),
    )
    out.counter(
        "euccs_api_tls_handshake_failures_total",
        "TLS handshakes that failed on the API listener, by reason.",
        {_lab(reason=r): n for r, n in recorder.tls_failures.items()},
    )
    presence: Counter[Labels] = Counter(
        {
            _lab(availability=a.name.lower(), scope=s): 0
            for a in Availability
            for s in ("local", "remote")
        }
    )
    for unit in gateway.presence.units():
        scope = "local" if unit.local else "remote"
        presence[_lab(availability=unit.availability.name.lower(), scope=scope)] += 1
    out.gauge("euccs_presence_units", "Units by availability (local: ours).", dict(presence))
    out.gauge(
        "euccs_link_up",
        "1 if the link is up: federation:<NATION> reachable, adapter:<name> connected.",
        {
            **{
                _lab(path=f"federation:{n}"): float(gateway.link.reachable(n))
                for n in gateway.config.federation.partners
            },
            **{
                _lab(path=f"adapter:{n}"): float(a.state is LinkState.CONNECTED)
                for n, a in gateway.adapters.items()
            },
        },
    )
    out.gauge(
        "euccs_path_canary_state",
        "Canary verdict per path: 0 unknown, 1 healthy, 2 degraded.",
        {_lab(path=p): _PATH_STATES[t.state] for p, t in gateway.liveness.items()},
    )
    out.gauge(
        "euccs_path_canary_rtt_seconds",
        "Round-trip time of the last canary that came back.",
        {_lab(path=p): t.last_rtt for p, t in gateway.liveness.items() if t.last_rtt is not None},
    )
    out.gauge(
        "euccs_alerts_outstanding",
        "Emergency alerts outstanding: partners' alerts in the replay ledger.",
        {(): len(gateway.alerts)},
    )
    out.gauge("euccs_api_event_subscribers", "Open event streams.", {(): len(recorder.events)})
    out.counter(
        "euccs_gateway_events_total",
        "The gateway's internal counters (gateway.counters), by name.",
        {_lab(name=k): v for k, v in gateway.counters.items()},
    )
    out.gauge(
        "euccs_gateway_info",
        "Constant 1, labelled with the gateway.",
        {_lab(gateway=gw, nation=gateway.nation, member=gateway.member): 1},
    )
    return out.text()
