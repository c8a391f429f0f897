"""Gateways as real processes: what an operator runs, for crash and fault tests."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from adapters.tetra import TetraNetworkSimulator
from loadtests._processes import mqtt_backbone, over_mqtt, radios_initialised, start_gateways
from protocols.tetra import SdsReport, TextSds

__all__ = [
    "STORED",
    "arrivals",
    "log_events",
    "mqtt_backbone",
    "over_mqtt",
    "radios_initialised",
    "reports_with",
    "start_gateways",
    "texts_at",
]

#: SDS-TL "message stored": the gateway's acknowledgement that it has a message in custody.
STORED = 0x21


def reports_with(sim: TetraNetworkSimulator, issi: str, status: int) -> set[int]:
    """Message references of the SDS-REPORTs with ``status`` that radio ``issi`` received."""
    return {
        c.message_reference
        for _s, c in sim.reports.get(issi, [])
        if isinstance(c, SdsReport) and c.delivery_status == status
    }


def texts_at(sim: TetraNetworkSimulator, issis: list[str]) -> list[str]:
    """Texts the radios received, without the gateway's sender prefix, in arrival order."""
    return [
        c.text.split("] ", 1)[-1]
        for issi in issis
        for _s, c in sim.received.get(issi, [])
        if isinstance(c, TextSds)
    ]


def log_events(path: Path, event: str, **match: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``event`` in a gateway's log file (with these fields, if given)."""
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if (
                isinstance(record, dict)
                and record.get("event") == event
                and all(record.get(k) == v for k, v in match.items())
            ):
                found.append(record)
    return found


def arrivals(sim: TetraNetworkSimulator, issi: str) -> list[str]:
    """Texts radio ``issi`` received, without the gateway's sender prefix, in order."""
    return [
        c.text.split("] ", 1)[-1] for _s, c in sim.received.get(issi, []) if isinstance(c, TextSds)
    ]
