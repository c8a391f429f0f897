"""``euccs-gw demo``: two national gateways, two simulated TETRA networks, cross-border traffic.

Everything runs in this process on loopback: each country's simulated TETRA
network speaks PEI over TCP exactly as a radio behind a serial-to-TCP server
does, each gateway's TETRA adapter connects to it, and the gateways federate
over the embedded bus carrying serialized envelopes. A seeded mix of text,
status and location messages crosses the border in both directions, with one
emergency. Every message is then checked at the far radio ("delivered"), and
every receipt back at the origin gateway ("receipts").
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from adapters.tetra import TetraNetworkSimulator
from gateway.config import GatewayConfig, parse_config
from gateway.demo_configs import DEMO_UNITS, GATEWAY_RADIO, DemoUnit, demo_config_text
from gateway.federation import LocalFederationBus
from gateway.logs import configure_logging
from gateway.node import Gateway, Observation
from gateway.runner import build_gateways
from protocols.tetra import LocationReport, StatusSds, TextSds

__all__ = ["DemoResult", "run_demo"]

_TEXTS = (
    "Need a second ambulance at the Europe bridge",
    "Besoin d'un renfort incendie quai des Alpes",
    "Patient transfer to Strasbourg university hospital, ETA 12 min",
    "Straßensperrung B28 Richtung Kehl ab 14:30",
    "Fuite de gaz signalée, périmètre 200 m",
    "Wasserversorgung am Rheinhafen sichergestellt",
    "Convoy crossing at Pont de l'Europe in 5 min",
)
#: Federation status codes both demo codebooks carry.
_STATUS_CODES = ("available-radio", "en-route", "on-scene", "patient-on-board", "at-destination")
_DRAIN_TIMEOUT = 15.0


@dataclass(kw_only=True)
class _Expected:
    number: int
    kind: str
    origin: DemoUnit
    target: DemoUnit
    key: Any
    sent_at: float
    delivered: bool = False


@dataclass(kw_only=True)
class DemoResult:
    """Counts of one demo run."""

    sent: int = 0
    delivered: int = 0
    receipts: int = 0
    radio_reports: int = 0
    errors: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Messages sent but never seen at the far radio."""
        return self.sent - self.delivered

    def as_dict(self, duration: float) -> dict[str, Any]:
        """The JSON summary."""
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "receipts": self.receipts,
            "lost": self.lost,
            "errors": self.errors,
            "radio_reports": self.radio_reports,
            "by_kind": dict(self.by_kind),
            "latency_ms": {
                "p50": pct(0.5),
                "p95": pct(0.95),
                "max": round(lat[-1], 1) if lat else None,
            },
            "duration_s": duration,
        }


class _Narrator:
    def __init__(self, out: TextIO, start: float) -> None:
        self.out = out
        self.start = start

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.start:6.2f}s] {text}\n")
        self.out.flush()


class _Demo:
    def __init__(
        self,
        gateways: list[Gateway],
        sims: dict[str, TetraNetworkSimulator],
        narrator: _Narrator,
        seed: int,
    ) -> None:
        self.gateways = {g.nation: g for g in gateways}
        self.sims = sims
        self.say = narrator.say
        self.rng = random.Random(seed)  # noqa: S311 - traffic mix, not security
        self.result = DemoResult()
        self.expected: list[_Expected] = []
        self.accepted_at: dict[bytes, float] = {}
        self.receipted: set[bytes] = set()
        self.units = {u.unit: u for u in DEMO_UNITS}
        for gateway in gateways:
            gateway.observers.append(self._observe)

    # -------------------------------------------------------------- observing the gateways

    def _observe(self, obs: Observation) -> None:
        now = time.monotonic()
        match obs.kind:
            case "accepted":
                assert obs.message_id is not None
                self.accepted_at[obs.message_id] = now
                tag = "  !! EMERGENCY" if obs.fields["priority"] == "PRIORITY_EMERGENCY" else ""
                self.say(
                    f"{obs.gateway}: accepted {obs.fields['origin']} -> "
                    f"{obs.fields['destination']}: {obs.fields['summary']}{tag}"
                )
            case "delivered" if obs.message_id in self.accepted_at and obs.fields["state"] == (
                "DELIVERY_STATE_DELIVERED"
            ):
                assert obs.message_id is not None
                ms = (now - self.accepted_at[obs.message_id]) * 1000
                self.result.latencies_ms.append(ms)
                confirmed = (
                    "unit confirmed"
                    if obs.fields["confirmation"] == "CONFIRMATION_UNIT"
                    else ("network confirmed")
                )
                self.say(
                    f"{obs.gateway}: delivered to the radio ({confirmed}), "
                    f"{ms:.0f} ms after acceptance"
                )
            case "receipt":
                assert obs.message_id is not None
                state = obs.fields["state"]
                if state in ("DELIVERY_STATE_DELIVERED", "DELIVERY_STATE_READ"):
                    self.receipted.add(obs.message_id)
                else:
                    self.result.errors += 1
                self.say(
                    f"{obs.gateway}: receipt {state.removeprefix('DELIVERY_STATE_').lower()}"
                    f"{' - ' + obs.fields['reason'] if obs.fields['reason'] else ''}"
                )
            case "refused" | "rejected" | "delivery_failed":
                self.result.errors += 1
                self.say(f"{obs.gateway}: {obs.kind}: {obs.fields.get('reason', '')}")
            case _:
                pass

    # -------------------------------------------------------------- traffic

    def _pick_pair(self) -> tuple[DemoUnit, DemoUnit]:
        origin = self.rng.choice(DEMO_UNITS)
        target = self.rng.choice([u for u in DEMO_UNITS if u.nation != origin.nation])
        return origin, target

    async def send_one(self, number: int, kind: str | None = None) -> None:
        origin, target = self._pick_pair()
        kind = kind or self.rng.choices(("text", "status", "location"), weights=(5, 3, 2))[0]
        sim = self.sims[origin.nation]
        key: Any
        if kind == "text":
            text = f"{self.rng.choice(_TEXTS)} #{number:04d}"
            await sim.send_text(
                origin.issi, target.alias_abroad, text, report_request=self.rng.choice((1, 1, 3))
            )
            key = f"#{number:04d}"
            self.say(f"{origin.label} ({origin.nation}) sends text to {target.label}: {text!r}")
        elif kind == "status":
            code = self.rng.choice(_STATUS_CODES)
            value = self._status_value(origin.nation, code)
            await sim.send_status(origin.issi, target.alias_abroad, value)
            key = self._status_value(target.nation, code)
            self.say(
                f"{origin.label} ({origin.nation}) sends status 0x{value:04X} ({code}) "
                f"to {target.label}"
            )
        else:
            lat, lon = 48.57 + self.rng.uniform(-0.05, 0.05), 7.78 + self.rng.uniform(-0.05, 0.05)
            emergency = kind == "emergency"
            await sim.send_location(
                origin.issi, target.alias_abroad, lat, lon, reason=2 if emergency else 0
            )
            key = (lat, lon) if not emergency else 0
            what = "!! EMERGENCY (LIP, reason 2)" if emergency else "location"
            self.say(
                f"{origin.label} ({origin.nation}) sends {what} {lat:.4f},{lon:.4f} "
                f"to {target.label}"
            )
        self.expected.append(
            _Expected(
                number=number,
                kind=kind,
                origin=origin,
                target=target,
                key=key,
                sent_at=time.monotonic(),
            )
        )
        self.result.sent += 1
        self.result.by_kind[kind] += 1

    def _status_value(self, nation: str, code: str) -> int:
        gateway = self.gateways[nation]
        codebook = gateway.config.codebooks[gateway.config.adapters[0].codebook]
        meaning = codebook.by_code(code)
        assert meaning is not None
        return meaning.tetra_value

    async def traffic(self, duration: float) -> None:
        interval = 0.25
        emergency_at = max(1, int(duration / interval * 0.3))
        number = 0
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            number += 1
            await self.send_one(number, "emergency" if number == emergency_at else None)
            await asyncio.sleep(self.rng.uniform(interval * 0.5, interval * 1.5))

    # -------------------------------------------------------------- checking

    def _match(self) -> None:
        for exp in self.expected:
            if exp.delivered:
                continue
            received = self.sims[exp.target.nation].received.get(exp.target.issi, [])
            exp.delivered = any(_matches(exp, content) for _source, content in received)
        self.result.delivered = sum(e.delivered for e in self.expected)
        self.result.receipts = len(self.receipted & set(self.accepted_at))

    async def drain(self) -> None:
        deadline = time.monotonic() + _DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            self._match()
            if (
                self.result.delivered == self.result.sent
                and self.result.receipts >= self.result.sent
            ):
                break
            await asyncio.sleep(0.1)
        self._match()
        self.result.radio_reports = sum(
            len(r) for s in self.sims.values() for r in s.reports.values()
        )


def _matches(exp: _Expected, content: Any) -> bool:
    if exp.kind == "text":
        return isinstance(content, TextSds) and str(exp.key) in content.text
    if exp.kind in ("status", "emergency"):
        return isinstance(content, StatusSds) and content.status == int(exp.key)
    if (
        isinstance(content, LocationReport)
        and content.latitude is not None
        and content.longitude is not None
    ):
        lat, lon = exp.key
        return bool(abs(content.latitude - lat) < 1e-3 and abs(content.longitude - lon) < 1e-3)
    return False


async def run_demo(*, duration: float, as_json: bool, seed: int = 1, log_level: str = "off") -> int:
    """Run the demo; return 0 when every message arrived and was receipted, else 1."""
    configure_logging(log_level)
    out = sys.stderr if as_json else sys.stdout
    narrator = _Narrator(out, time.monotonic())
    units = {n: [u.issi for u in DEMO_UNITS if u.nation == n] for n in ("DE", "FR")}
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=units["DE"]) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=units["FR"]) as sim_fr,
    ):
        configs: list[GatewayConfig] = [
            parse_config(
                demo_config_text("DE", partner="FR", pei_port=sim_de.port), source="demo:DE"
            ),
            parse_config(
                demo_config_text("FR", partner="DE", pei_port=sim_fr.port), source="demo:FR"
            ),
        ]
        _intro(narrator, configs, {"DE": sim_de.port, "FR": sim_fr.port}, duration)
        gateways = build_gateways(configs, LocalFederationBus())
        demo = _Demo(gateways, {"DE": sim_de, "FR": sim_fr}, narrator, seed)
        async with gateways[0].running(), gateways[1].running():
            for gateway in gateways:
                await gateway.wait_ready(10.0)
            narrator.say("both gateways connected to their radios; traffic starts")
            await demo.traffic(duration)
            narrator.say("traffic stopped; waiting for the last deliveries and receipts")
            await demo.drain()
    summary = demo.result.as_dict(duration)
    _outro(out, summary)
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    healthy = (
        summary["sent"] > 0 and summary["lost"] == 0 and summary["delivered"] == summary["sent"]
    )
    return 0 if healthy else 1


def _intro(
    narrator: _Narrator, configs: list[GatewayConfig], ports: dict[str, int], duration: float
) -> None:
    narrator.say(
        f"euccs-gw demo: {len(configs)} national gateways, {duration:g} s of cross-border traffic"
    )
    for config in configs:
        narrator.say(
            f"  {config.nation}: gateway {config.name}, TETRA network simulated on "
            f"127.0.0.1:{ports[config.nation]} (PEI over TCP), {len(config.units)} units"
        )


def _outro(out: TextIO, summary: dict[str, Any]) -> None:
    out.write("\nsummary\n")
    for key in ("sent", "delivered", "receipts", "lost", "errors", "radio_reports"):
        out.write(f"  {key:<14}{summary[key]}\n")
    out.write(f"  {'by kind':<14}{summary['by_kind']}\n")
    out.write(f"  {'latency ms':<14}{summary['latency_ms']}\n")
    verdict = "every message delivered and receipted" if summary["lost"] == 0 else "MESSAGES LOST"
    out.write(f"  {verdict}\n")
    out.flush()
