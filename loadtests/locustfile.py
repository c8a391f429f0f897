"""Locust scenarios for exercise load tests of a federation (``docs/loadtesting.md``).

Users:

* :class:`TetraRadio`: a TETRA field radio; its traffic enters through the gateway's
  PEI adapter, sent by the simulated TETRA network's control interface.
* :class:`McdataHandset`: an MCData user of the simulated MCX system.
* :class:`ControlRoom`: a control-room console on the gateway's API (mutual TLS).

Per action, out of 500: radios and handsets send 250 locations, 170 statuses, 70 texts,
9 reads of their inbox and 1 emergency; control rooms make 150 unit list reads, 150 alert
reads (acknowledging what is outstanding), 100 message log reads, 50 link reads, 49 texts
and 1 emergency. Emergencies are reported under their own request names (``... EMERGENCY``).

Shapes: ``EUCCS_SHAPE=NormalDay|MajorIncident|LinkOutage`` (or ``all`` with
``--class-picker``); without it, ``-u``/``-r``/``-t`` drive the run.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from typing import Any, ClassVar

import requests
from locust import HttpUser, between, events, task

from loadtests._locust_shapes import SHAPES
from loadtests._locust_users import (
    MutualTlsAdapter,
    api_credentials,
    assign,
    controls,
    load_plan,
    random_location,
    random_text,
    think_time,
    tls_context,
)

_log = logging.getLogger("euccs.loadtest")
_PLAN = load_plan()
_TETRA = controls(os.environ.get("EUCCS_TETRA_CONTROL"), _PLAN.tetra)
_MCDATA = controls(os.environ.get("EUCCS_MCDATA_CONTROL"), _PLAN.mcdata)
_API = api_credentials()
_WAIT = between(*think_time())
#: Seconds a TETRA text waits for the gateway's "stored" report (custody).
_CUSTODY_WAIT = float(os.environ.get("EUCCS_CUSTODY_WAIT", "10"))


def _why(response: Any) -> str:
    """A failed request's reason: the answer, or the connection error when there was none."""
    if response.status_code == 0 or getattr(response, "error", None) is not None:
        return f"no answer from {response.url}: {response.error}"
    return f"{response.status_code}: {response.text[:200]}"


def _check_targets(environment: Any, **_kwargs: Any) -> None:
    """Stop before the run, saying why, when a simulator's control interface does not answer.

    Otherwise every request of the run would fail, each with the same connection error.
    """
    unreachable = []
    for kind, urls in (("TETRA", _TETRA), ("MCData", _MCDATA)):
        for nation, url in urls.items():
            try:
                health = requests.get(f"{url}/healthz", timeout=3).json()
            except (requests.RequestException, ValueError) as exc:
                unreachable.append(f"{kind} simulator {nation} at {url}: {exc}")
                continue
            if not health.get("gateway_connected", True):
                _log.warning("%s simulator %s at %s: no gateway connected yet", kind, nation, url)
    if unreachable:
        for target in unreachable:
            _log.error("not reachable: %s (check EUCCS_*_CONTROL, docs/loadtesting.md)", target)
        raise SystemExit(2)


events.init.add_listener(_check_targets)  # type: ignore[no-untyped-call]


def _first(urls: dict[str, str]) -> str | None:
    return next(iter(urls.values()), None)


class _SimulatedUnit(HttpUser):
    """A field unit driven through a simulator's control interface."""

    abstract = True
    wait_time = _WAIT
    kind: ClassVar[str] = ""
    path: ClassVar[str] = ""
    #: Nation -> control URL of the simulators of this kind.
    control_urls: ClassVar[dict[str, str]] = {}
    #: The plan's networks of this kind.
    plan_networks: ClassVar[Sequence[Any]] = ()

    def on_start(self) -> None:
        """Take the next identity of the unit plan."""
        self.rng = random.Random()
        self.seen = 0  # messages of this unit's inbox read so far
        urls = self.control_urls or ({"": self.host} if self.host else {})
        networks = list(self.plan_networks)
        if "" in urls:  # --host only: every network of the plan behind that URL
            urls = {n.nation: urls[""] for n in networks}
        self.control, self.identity, self.network = assign(self.kind, networks, urls)

    def _send(self, name: str, body: dict[str, Any]) -> None:
        body = {"to": self.rng.choice(self.network.destinations)} | body
        url = f"{self.control}{self.path}/{self.identity}/sds"
        with self.client.post(url, json=body, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_why(response))

    @task(250)
    def location(self) -> None:
        """A periodic position report."""
        lat, lon = random_location(self.rng)
        self._send(f"{self.kind} location", {"latitude": lat, "longitude": lon})

    @task(170)
    def status(self) -> None:
        """A status change (en route, on scene, ...)."""
        self._send(f"{self.kind} status", {"status": self.rng.choice(self.network.statuses)})

    @task(70)
    def text(self) -> None:
        """An operational text message."""
        self._send(f"{self.kind} text", self.text_body())

    def text_body(self) -> dict[str, Any]:
        """The body of a text."""
        return {"text": random_text(self.rng)}

    @task(9)
    def inbox(self) -> None:
        """Read what reached this unit since the last look (end-to-end check)."""
        url = f"{self.control}{self.path}/{self.identity}/received?since={self.seen}"
        with self.client.get(url, name=f"{self.kind} received", catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(_why(answer))
                return
            try:
                count = int(answer.json()["count"])
            except (ValueError, KeyError, TypeError):
                answer.failure(f"not an inbox: {answer.text[:200]}")
                return
            # Only what is new comes back, so answers do not grow through a long run.
            self.seen = count

    @task(1)
    def emergency(self) -> None:
        """An emergency with the unit's position."""
        lat, lon = random_location(self.rng)
        body = {"emergency": True, "latitude": lat, "longitude": lon}
        self._send(f"{self.kind} EMERGENCY", body)


class TetraRadio(_SimulatedUnit):
    """A TETRA field radio behind a simulated TETRA network (PEI into the gateway)."""

    weight = 6
    host = _first(_TETRA)
    kind = "tetra"
    path = "/radios"
    control_urls = _TETRA  # EUCCS_TETRA_CONTROL
    plan_networks = _PLAN.tetra

    def text_body(self) -> dict[str, Any]:
        """A text that asks for a report: answered once the gateway reports custody."""
        return {"text": random_text(self.rng), "wait": _CUSTODY_WAIT}


class McdataHandset(_SimulatedUnit):
    """An MCData user of a simulated MCX system."""

    weight = 3
    host = _first(_MCDATA)
    kind = "mcdata"
    path = "/users"
    control_urls = _MCDATA  # EUCCS_MCDATA_CONTROL
    plan_networks = _PLAN.mcdata


class ControlRoom(HttpUser):
    """A control-room console on the gateway's API (mutual TLS, role console)."""

    weight = 1
    wait_time = _WAIT
    host = _API.url

    def on_start(self) -> None:
        """Present the console certificate on every request."""
        self.rng = random.Random()
        self.client.mount("https://", MutualTlsAdapter(tls_context(_API)))

    @task(150)
    def units(self) -> None:
        """The unit list (the console's map)."""
        self.client.get("/api/v1/units", name="api units")

    @task(150)
    def alerts(self) -> None:
        """Outstanding alerts; acknowledge the unacknowledged ones."""
        with self.client.get("/api/v1/alerts", name="api alerts", catch_response=True) as r:
            alerts = r.json() if r.status_code == 200 else []
        for alert in alerts:
            if not alert.get("acknowledged"):
                self.client.post(
                    f"/api/v1/alerts/{alert['alert_id']}/ack", json={}, name="api alert ack"
                )

    @task(100)
    def messages(self) -> None:
        """The message log."""
        self.client.get("/api/v1/messages?limit=20", name="api messages")

    @task(50)
    def links(self) -> None:
        """Link and queue state."""
        self.client.get("/api/v1/links", name="api links")

    def _post(self, name: str, body: dict[str, Any]) -> None:
        with self.client.post(
            "/api/v1/messages", json=body, name=name, catch_response=True
        ) as response:
            if response.status_code != 202:
                response.failure(_why(response))

    @task(49)
    def text(self) -> None:
        """A text to a partner unit."""
        body = {"to": {"unit": self.rng.choice(_PLAN.units)}, "text": random_text(self.rng)}
        self._post("api text", body)

    @task(1)
    def emergency(self) -> None:
        """An emergency to the cross-border group."""
        lat, lon = random_location(self.rng)
        target = {"group": self.rng.choice(_PLAN.groups)} if _PLAN.groups else None
        target = target or {"unit": self.rng.choice(_PLAN.units)}
        self._post("api EMERGENCY", {"to": target, "emergency": {"lat": lat, "lon": lon}})


# ---------------------------------------------------------------------- shapes

# Locust uses a shape it finds in this module: only the chosen ones are bound here.
_chosen = os.environ.get("EUCCS_SHAPE", "")
if _chosen == "all":  # every shape, for --class-picker
    globals().update(SHAPES)
elif _chosen:
    if _chosen not in SHAPES:
        raise SystemExit(f"EUCCS_SHAPE={_chosen!r}: choose one of {', '.join(SHAPES)} or all")
    globals()[_chosen] = SHAPES[_chosen]
