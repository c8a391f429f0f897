"""``euccs-gw demo``: three national gateways (two TETRA, one MCX), cross-border traffic.

Everything runs in this process on loopback: each country's simulated TETRA
network speaks PEI over TCP exactly as a radio behind a serial-to-TCP server
does, each gateway's TETRA adapter connects to it, and the gateways federate
over the embedded bus carrying serialized envelopes. A seeded mix of text,
status and location messages crosses the border in both directions, with one
emergency. Every message is then checked at the far radio ("delivered"), and
every receipt back at the origin gateway ("receipts").

With ``--federation mqtt`` the gateways federate over a real Mosquitto broker instead: a
throwaway federation PKI (a CA per country, gateway and broker certificates, CRLs, the
trust bundle) is minted into the temporary state directory, a local broker is started with
mutual TLS 1.3 and the generated ACL, and each gateway gets a
:class:`gateway.mqtt_link.MqttFederationLink`. France's outage is then a real
disconnection of its link from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from adapters.mcdata import McdataSystemSimulator
from adapters.tetra import TetraNetworkSimulator
from gateway.config import GatewayConfig, parse_config
from gateway.demo_configs import (
    DEMO_UNITS,
    GATEWAY_RADIO,
    GROUP_GSSI,
    IWF_DOMAIN,
    MCDATA_UNITS,
    DemoUnit,
    demo_config_text,
)
from gateway.federation import FederationLink, LocalFederationBus
from gateway.logs import configure_logging
from gateway.node import Gateway, Observation
from gateway.runner import LinkFactory, build_gateways, default_link
from protocols.mcdata import ContentType, DispositionRequest
from protocols.schema import v1
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
    message_id: bytes | None = None

    @property
    def path(self) -> str:
        """``tetra->mcdata`` and the like: which kinds of national systems it crossed."""
        return f"{_system(self.origin)}->{_system(self.target)}"


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
    #: The outage of one country's link: who, how long, backlog, what drained first.
    outage: dict[str, Any] = field(default_factory=dict)
    #: Per path ("tetra->mcdata", ...): sent, delivered and receipted messages.
    paths: dict[str, dict[str, int]] = field(default_factory=dict)

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
            "outage": self.outage,
            "paths": self.paths,
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
        mcx: McdataSystemSimulator | None = None,
    ) -> None:
        self.gateways = {g.nation: g for g in gateways}
        self.sims = sims
        self.mcx = mcx
        self.all_units = DEMO_UNITS + (MCDATA_UNITS if mcx is not None else ())
        self.say = narrator.say
        self.rng = random.Random(seed)  # noqa: S311 - traffic mix, not security
        self.result = DemoResult()
        self.expected: list[_Expected] = []
        self.accepted_at: dict[bytes, float] = {}
        self.receipted: set[bytes] = set()
        self.units = {u.unit: u for u in DEMO_UNITS}
        self.draining: list[str] | None = None
        #: Messages kept for France during the outage and not yet sent on since.
        self.backlog: set[bytes | None] = set()
        self.restored_at = 0.0
        #: What each gateway delivers to, as narrated: a radio, or an MCData user.
        self.receivers = {
            g.name: "MCData user" if g.mcdata and not g.adapters else "radio" for g in gateways
        }
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
                    f"{obs.gateway}: delivered to the {self.receivers.get(obs.gateway, 'radio')} "
                    f"({confirmed}), {ms:.0f} ms after acceptance"
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
            case "forwarded" if (
                self.draining is not None
                and obs.fields["partner"] == "FR"
                and obs.gateway == self.gateways["DE"].name
                and obs.message_id in self.backlog
            ):
                self.backlog.discard(obs.message_id)  # sent again after a failure: once
                self.draining.append(obs.fields["priority"])
                if len(self.draining) == 1:
                    self.say(
                        f"{obs.gateway}: backlog drains, first out: {obs.fields['priority']}"
                        f" ({len(self.backlog)} of the backlog still queued)"
                    )
                if not self.backlog and "drain_s" not in self.result.outage:
                    drained = time.monotonic() - self.restored_at
                    self.result.outage["drain_s"] = round(drained, 2)
                    self.result.outage["drain_order"] = _runs(self.draining)
                    self.say(f"{obs.gateway}: backlog drained in {drained:.2f} s")
            case "refused" | "rejected" | "delivery_failed":
                self.result.errors += 1
                self.say(f"{obs.gateway}: {obs.kind}: {obs.fields.get('reason', '')}")
            case _:
                pass

    # -------------------------------------------------------------- traffic

    def _pick_pair(
        self, nation: str | None = None, target_nation: str | None = None
    ) -> tuple[DemoUnit, DemoUnit]:
        origin = self.rng.choice([u for u in self.all_units if nation in (None, u.nation)])
        target = self.rng.choice(
            [
                u
                for u in self.all_units
                if u.nation != origin.nation and target_nation in (None, u.nation)
            ]
        )
        return origin, target

    async def send_one(
        self, number: int, kind: str | None = None, *, origin_nation: str | None = None
    ) -> None:
        # The emergency goes from Germany to France: during the outage it joins the backlog.
        outage_emergency = kind == "emergency" and origin_nation is None
        origin, target = self._pick_pair(
            "DE" if outage_emergency else origin_nation, "FR" if outage_emergency else None
        )
        kind = kind or self.rng.choices(("text", "status", "location"), weights=(5, 3, 2))[0]
        if origin.nation == "BE":
            key = await self._send_mcdata(number, kind, origin, target)
            if key is None:
                return
        else:
            key = await self._send_tetra(number, kind, origin, target)
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

    async def _send_mcdata(self, number: int, kind: str, origin: DemoUnit, target: DemoUnit) -> Any:
        """An MCData user of the Belgian MCX system sends; return what the far radio gets."""
        assert self.mcx is not None
        to = f"sip:{target.unit}@{IWF_DOMAIN}"
        key: Any
        if kind == "text":
            text = f"{self.rng.choice(_TEXTS)} #{number:04d}"
            disposition = self.rng.choice(
                (DispositionRequest.DELIVERY, DispositionRequest.DELIVERY_AND_READ)
            )
            outcome = await self.mcx.send_sds(origin.issi, to, text, disposition=disposition)
            key = f"#{number:04d}"
            self.say(f"{origin.label} (BE, MCData) sends text to {target.label}: {text!r}")
        elif kind == "status":
            code = self.rng.choice(_STATUS_CODES)
            value = self._status_value("BE", code)
            outcome = await self.mcx.send_sds(origin.issi, to, enhanced_status=value)
            key = self._status_value(target.nation, code)
            self.say(f"{origin.label} (BE, MCData) sends enhanced status {value} ({code})")
        else:
            lat, lon = 48.57 + self.rng.uniform(-0.05, 0.05), 7.78 + self.rng.uniform(-0.05, 0.05)
            emergency = kind == "emergency"
            outcome = await self.mcx.send_sds(origin.issi, to, alert=emergency, location=(lat, lon))
            key = (lat, lon) if not emergency else 0
            what = "!! EMERGENCY ALERT (MCData)" if emergency else "location"
            self.say(f"{origin.label} (BE, MCData) sends {what} {lat:.4f},{lon:.4f}")
        if not outcome.ok:
            self.result.errors += 1
            self.say(f"MCX system: the gateway refused it: {outcome.status} {outcome.reason}")
            return None
        return key

    async def _send_tetra(self, number: int, kind: str, origin: DemoUnit, target: DemoUnit) -> Any:
        """A TETRA radio sends to the target's alias; return what the far side gets."""
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
        return key

    def _status_value(self, nation: str, code: str) -> int:
        gateway = self.gateways[nation]
        codebook = gateway.config.codebooks[gateway.config.adapters[0].codebook]
        meaning = codebook.by_code(code)
        assert meaning is not None
        return meaning.tetra_value

    async def traffic(self, duration: float, cut: Callable[[bool], None] | None = None) -> None:
        """Send a seeded mix for ``duration`` s; with ``cut``, cut France off in the middle.

        ``cut(True)`` takes France's federation link down, ``cut(False)`` restores it.

        The outage covers 30 %..60 % of the run; the emergency is raised at 50 %,
        while the backlog is building, so its overtaking the backlog shows.
        """
        interval = 0.25
        start = time.monotonic()
        deadline = start + duration
        outage = (start + duration * 0.3, start + duration * 0.6) if cut else None
        emergency_sent = False
        alert_sent = self.mcx is None
        number = 0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if cut is not None and outage is not None:
                self._outage_step(cut, now, outage)
            number += 1
            emergency = not emergency_sent and now >= start + duration * 0.5
            emergency_sent |= emergency
            if not alert_sent and now >= start + duration * 0.75:
                alert_sent = True  # an MCData emergency alert from the Belgian team
                await self.send_one(number, "emergency", origin_nation="BE")
                number += 1
            await self.send_one(number, "emergency" if emergency else None)
            await asyncio.sleep(self.rng.uniform(interval * 0.5, interval * 1.5))
        if cut is not None and outage is not None:
            self._outage_step(cut, max(time.monotonic(), outage[1]), outage)

    def _outage_step(
        self, cut: Callable[[bool], None], now: float, window: tuple[float, float]
    ) -> None:
        if not self.result.outage and now >= window[0]:
            cut(True)
            self.result.outage = {"nation": "FR", "seconds": round(window[1] - window[0], 2)}
            self.say(
                "OUTAGE: France's federation link is down; German traffic for France"
                " is kept in custody"
            )
        elif self.draining is None and self.result.outage and now >= window[1]:
            # The backlog: messages in custody waiting for France (not the receipts and
            # presence updates queued beside them).
            waiting = [
                entry.item.envelope
                for entry in self.gateways["DE"].queues["egress:FR"]
                if entry.item.entry_id is not None and not entry.item.envelope.HasField("receipt")
            ]
            self.backlog = {envelope.message_id for envelope in waiting}
            depths = Counter(
                v1.Priority.Name(envelope.priority).removeprefix("PRIORITY_").lower()
                for envelope in waiting
            )
            self.result.outage["backlog"] = len(waiting)
            self.say(
                f"link restored; backlog at the German gateway: {len(waiting)} messages"
                f" {dict(depths)}"
            )
            self.draining = []
            self.restored_at = time.monotonic()
            cut(False)

    # -------------------------------------------------------------- checking

    def _match(self) -> None:
        for exp in self.expected:
            if exp.delivered:
                continue
            if exp.target.nation == "BE" and self.mcx is not None:
                arrived = self.mcx.received.get(exp.target.issi, [])
                exp.delivered = any(_matches_mcdata(exp, sds) for sds in arrived)
                continue
            received = self.sims[exp.target.nation].received.get(exp.target.issi, [])
            exp.delivered = any(_matches(exp, content) for _source, content in received)
        self.result.delivered = sum(e.delivered for e in self.expected)
        self.result.receipts = len(self.receipted & set(self.accepted_at))
        paths: dict[str, dict[str, int]] = {}
        for exp in self.expected:
            path = paths.setdefault(exp.path, {"sent": 0, "delivered": 0})
            path["sent"] += 1
            path["delivered"] += exp.delivered
        self.result.paths = paths

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
        ) + (sum(len(n) for n in self.mcx.notifications.values()) if self.mcx else 0)


async def _serve_consoles(
    stack: contextlib.AsyncExitStack, narrator: _Narrator, state: str, gateways: list[Gateway]
) -> dict[str, dict[str, str]]:
    """Serve each gateway's control-room API and console; say where and with which identity.

    Returns:
        Nation -> ``url``, console ``cert`` and ``key``, and ``ca`` (the gateway's CA).
    """
    from gateway.api.demo_support import demo_api_settings
    from gateway.api.server import serve_api

    demo_api = demo_api_settings(Path(state) / "api", gateways)
    served: dict[str, dict[str, str]] = {}
    for gateway in gateways:
        server = await stack.enter_async_context(
            serve_api(gateway, demo_api.settings[gateway.nation])
        )
        credential = demo_api.consoles[gateway.nation]
        narrator.say(
            f"{gateway.nation} control-room console: {server.url}/ (mutual TLS: client "
            f"certificate {credential.cert}, key {credential.key}; CA bundle "
            f"{demo_api.pki.bundle_dir})"
        )
        served[gateway.nation] = {
            "url": server.url,
            "cert": str(credential.cert),
            "key": str(credential.key),
            "ca": str(Path(demo_api.pki.ca_dirs[gateway.nation]) / "ca.pem"),
        }
    return served


async def _serve_load_tests(
    narrator: _Narrator,
    env_file: str,
    controls: dict[str, str],
    apis: dict[str, dict[str, str]],
    duration: float | None,
    *,
    cut: Callable[[bool], None],
) -> None:
    """Write the load generator's environment to ``env_file``, then serve until stopped.

    Stops on SIGINT or SIGTERM, or after ``duration`` seconds when given. SIGUSR1 cuts
    France's federation link and SIGUSR2 restores it: the commands the ``LinkOutage``
    shape runs (``EUCCS_OUTAGE_COMMAND``, ``EUCCS_RESTORE_COMMAND``).
    """
    pid = os.getpid()
    env = {
        "EUCCS_TETRA_CONTROL": ",".join(f"{n}={controls[n]}" for n in ("DE", "FR")),
        "EUCCS_MCDATA_CONTROL": f"BE={controls['BE']}",
        "EUCCS_OUTAGE_COMMAND": f"kill -USR1 {pid}",
        "EUCCS_RESTORE_COMMAND": f"kill -USR2 {pid}",
    }
    if "DE" in apis:
        api = apis["DE"]
        env |= {
            "EUCCS_API": api["url"],
            "EUCCS_API_CERT": api["cert"],
            "EUCCS_API_KEY": api["key"],
            "EUCCS_API_CA": api["ca"],
        }
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def outage(down: bool) -> None:
        cut(down)
        narrator.say(
            "OUTAGE: France's federation link is down" if down else "France's link is restored"
        )

    # Ready before anyone can read the commands that send them.
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    for signum in signals[:2]:
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, outage, True)
    loop.add_signal_handler(signal.SIGUSR2, outage, False)
    text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items())
    # Written whole or not at all (a script waiting for the file never reads half of it),
    # and removed at the end: its certificate paths die with the demo's directory.
    partial = Path(f"{env_file}.partial")
    try:
        await asyncio.to_thread(partial.write_text, text, encoding="utf-8")
        await asyncio.to_thread(partial.replace, env_file)
        for name, value in env.items():
            narrator.say(f"  {name}={value}")
        narrator.say(f"serving for load tests; environment written to {env_file}; Ctrl-C stops")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        for late in signals[2:]:  # a late outage command must not kill the stopping demo
            signal.signal(late, signal.SIG_IGN)
        await asyncio.to_thread(Path(env_file).unlink, missing_ok=True)
    narrator.say("stopping")


def _runs(priorities: list[str]) -> list[str]:
    """Collapse a forwarding order into runs: ["EMERGENCY x1", "ROUTINE x4", ...]."""
    runs: list[str] = []
    for name, group in itertools.groupby(priorities):
        runs.append(f"{name.removeprefix('PRIORITY_')} x{len(list(group))}")
    return runs


def _system(unit: DemoUnit) -> str:
    return "mcdata" if unit.nation == "BE" else "tetra"


def _matches_mcdata(exp: _Expected, sds: Any) -> bool:
    """Did this SDS at the MCX system carry what was sent?"""
    payloads = {int(p.content_type): p.data for p in sds.payloads}
    if exp.kind == "text":
        return str(exp.key) in (sds.text or "")
    if exp.kind == "status":
        return payloads.get(int(ContentType.ENHANCED_STATUS)) == int(exp.key).to_bytes(2, "big")
    if exp.kind == "emergency":
        return bool(sds.emergency or sds.alert)
    location = payloads.get(int(ContentType.LOCATION), b"").decode(errors="replace")
    if not location.startswith("geo:"):
        return False
    lat, lon = (float(x) for x in location[4:].split(";")[0].split(",")[:2])
    return bool(abs(lat - exp.key[0]) < 1e-3 and abs(lon - exp.key[1]) < 1e-3)


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


async def run_demo(
    *,
    duration: float,
    as_json: bool,
    seed: int = 1,
    log_level: str = "off",
    outage: bool = True,
    federation: str = "local",
    console: bool = True,
    serve: str | None = None,
) -> int:
    """Run the demo; return 0 when every message arrived and was receipted, else 1.

    Args:
        duration: Seconds of traffic.
        as_json: Narrate on stderr and print a JSON summary on stdout.
        seed: Seed of the traffic mix.
        log_level: Structured gateway logs on stderr (``off`` by default).
        outage: Cut France off in the middle of the run.
        federation: ``local`` (embedded bus) or ``mqtt`` (a local Mosquitto broker).
        console: Serve each gateway's control-room API and web console while it runs.
        serve: Instead of the scripted traffic, open the simulators' HTTP control
            interfaces, write the load generator's environment (``EUCCS_*=...`` lines) to
            this file and serve until interrupted (or for ``duration`` seconds if > 0).
    """
    if federation not in ("local", "mqtt"):
        raise ValueError(f"federation must be 'local' or 'mqtt', not {federation!r}")
    configure_logging(log_level)
    out = sys.stderr if as_json else sys.stdout
    narrator = _Narrator(out, time.monotonic())
    units = {n: [u.issi for u in DEMO_UNITS if u.nation == n] for n in ("DE", "FR")}
    mcdata_users = [u.issi for u in MCDATA_UNITS]
    control_port = None if serve is None else 0
    if serve is not None:  # an earlier run's file names ports and files that are gone
        await asyncio.to_thread(Path(serve).unlink, missing_ok=True)
    async with (
        _state_dir() as state,
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["DE"], units=units["DE"], control_port=control_port
        ) as sim_de,
        TetraNetworkSimulator(
            radio_issi=GATEWAY_RADIO["FR"], units=units["FR"], control_port=control_port
        ) as sim_fr,
        McdataSystemSimulator(
            users=mcdata_users,
            groups={GROUP_GSSI["BE"]: mcdata_users},
            name="mcx-be",
            control_port=control_port,
        ) as mcx,
        contextlib.AsyncExitStack() as stack,
    ):
        configs: list[GatewayConfig] = [
            parse_config(
                demo_config_text("DE", partners=["FR", "BE"], pei_port=sim_de.port),
                source="demo:DE",
            ),
            parse_config(
                demo_config_text("FR", partners=["DE", "BE"], pei_port=sim_fr.port),
                source="demo:FR",
            ),
            parse_config(
                demo_config_text("BE", partners=["DE", "FR"], sip_peer_port=mcx.port),
                source="demo:BE",
            ),
        ]
        what = (
            f"{duration:g} s of cross-border traffic"
            if serve is None
            else "no scripted traffic: serving the simulators' control API"
            + (f" for {duration:g} s" if duration > 0 else " until interrupted")
        )
        _intro(narrator, configs, {"DE": sim_de.port, "FR": sim_fr.port, "BE": mcx.port}, what)
        bus = LocalFederationBus()
        link_factory: LinkFactory = default_link
        cut: Callable[[bool], None] = lambda down: bus.cut("FR", down=down)  # noqa: E731
        backbone: _MqttBackbone | None = None
        if federation == "mqtt":
            backbone = await stack.enter_async_context(_mqtt_backbone(Path(state), configs))
            narrator.say(
                f"  federation over MQTT 5: Mosquitto with mutual TLS 1.3 on "
                f"127.0.0.1:{backbone.port}, PKI minted in {state}"
            )
            link_factory = backbone.link
            cut = backbone.cut
        gateways = build_gateways(configs, bus, state_dir=state, link_factory=link_factory)
        demo = _Demo(gateways, {"DE": sim_de, "FR": sim_fr}, narrator, seed, mcx=mcx)
        async with contextlib.AsyncExitStack() as running:
            for gateway in gateways:
                await running.enter_async_context(gateway.running())
            for gateway in gateways:
                await gateway.wait_ready(10.0)
            mcx.gateway_port = demo.gateways["BE"].mcdata["mcx-be"].listen_port
            if backbone is not None:
                await backbone.wait_connected(10.0)
            apis = await _serve_consoles(running, narrator, state, gateways) if console else {}
            if serve is not None:
                controls = {
                    n: sim.control.url
                    for n, sim in (("DE", sim_de), ("FR", sim_fr), ("BE", mcx))
                    if sim.control is not None
                }
                await _serve_load_tests(
                    narrator, serve, controls, apis, duration if duration > 0 else None, cut=cut
                )
                return 0
            narrator.say("every gateway is connected to its national system; traffic starts")
            await demo.traffic(duration, cut if outage else None)
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


class _MqttBackbone:
    """The demo's broker and the MQTT links it builds for the gateways."""

    def __init__(self, federation: Any, port: int, broker_identity: str) -> None:
        self.federation = federation
        self.port = port
        self.broker_identity = broker_identity
        self.links: dict[str, Any] = {}

    def link(
        self, config: GatewayConfig, _bus: LocalFederationBus, epoch: Callable[[], int]
    ) -> FederationLink:
        from gateway.mqtt_link import MqttFederationLink, MqttSettings

        credential = self.federation.gateways[config.nation]
        settings = MqttSettings(
            host="127.0.0.1",
            port=self.port,
            cert=credential.cert,
            key=credential.key,
            bundle=self.federation.bundle_dir,
            broker_identities=(self.broker_identity,),
            keepalive=10,
            reconnect_base=0.1,
            reconnect_cap=1.0,
        )
        link = MqttFederationLink(config.nation, settings, epoch=epoch, gateway_name=config.name)
        self.links[config.nation] = link
        return link

    def cut(self, down: bool) -> None:
        """France's link leaves the broker (graceful offline) or rejoins it."""
        link = self.links["FR"]
        if down:
            link.suspend()
        else:
            link.resume()

    async def wait_connected(self, seconds: float) -> None:
        """Wait until every link is connected and sees every partner online."""
        for nation, link in self.links.items():
            others = [n for n in self.links if n != nation]
            await link.wait_until(
                lambda link=link, others=others: all(link.reachable(n) for n in others), seconds
            )


@contextlib.asynccontextmanager
async def _mqtt_backbone(state: Path, configs: list[GatewayConfig]) -> AsyncIterator[_MqttBackbone]:
    """Mint a throwaway PKI, start Mosquitto with TLS and the generated ACL; stop it after."""
    import certs
    from gateway.mqtt_broker import MosquittoBroker, mint_broker_credential

    now = datetime.now(UTC)
    names = {c.nation: c.name for c in configs}
    federation = await asyncio.to_thread(
        certs.mint_federation, state / "pki", sorted(names), now=now, gateway_names=names
    )
    broker_credential = mint_broker_credential(federation, now=now, country="DE")
    broker = MosquittoBroker.for_federation(
        federation, federation.bundle(), broker_credential, state / "broker"
    )
    await asyncio.to_thread(broker.start)
    try:
        yield _MqttBackbone(federation, broker.port, broker_credential.identity.uri)
    finally:
        await asyncio.to_thread(broker.stop)


@contextlib.asynccontextmanager
async def _state_dir() -> AsyncIterator[str]:
    """A throwaway directory for the demo gateways' journals."""
    with tempfile.TemporaryDirectory(prefix="euccs-demo-") as path:
        yield path


def _intro(
    narrator: _Narrator, configs: list[GatewayConfig], ports: dict[str, int], what: str
) -> None:
    narrator.say(f"euccs-gw demo: {len(configs)} national gateways, {what}")
    for config in configs:
        system = (
            "MCX system (MCData SDS over SIP/TCP)"
            if config.adapters[0].type == "mcdata"
            else "TETRA network (PEI over TCP)"
        )
        narrator.say(
            f"  {config.nation}: gateway {config.name}, {system} simulated on "
            f"127.0.0.1:{ports[config.nation]}, {len(config.units)} units"
        )


def _outro(out: TextIO, summary: dict[str, Any]) -> None:
    out.write("\nsummary\n")
    for key in ("sent", "delivered", "receipts", "lost", "errors", "radio_reports"):
        out.write(f"  {key:<14}{summary[key]}\n")
    out.write(f"  {'by kind':<14}{summary['by_kind']}\n")
    out.write(f"  {'latency ms':<14}{summary['latency_ms']}\n")
    if summary["outage"]:
        out.write(f"  {'outage':<14}{summary['outage']}\n")
    for path, counts in sorted(summary["paths"].items()):
        out.write(f"  {path:<14}{counts['delivered']}/{counts['sent']} delivered\n")
    verdict = "every message delivered and receipted" if summary["lost"] == 0 else "MESSAGES LOST"
    out.write(f"  {verdict}\n")
    out.flush()
