"""Configuration and helpers of the locust scenarios (``loadtests/locustfile.py``).

Everything here is plain Python run under gevent: no asyncio, no import of the
gateway or adapter packages. See ``docs/loadtesting.md`` for the environment
variables.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

__all__ = [
    "ApiCredentials",
    "McdataUser",
    "MutualTlsAdapter",
    "TetraRadioIdentity",
    "UnitPlan",
    "api_credentials",
    "controls",
    "load_plan",
    "random_location",
    "think_time",
]

#: Exercise area of the demo: both banks of the Rhine between Kehl and Strasbourg.
AREA = (48.57, 7.78, 0.05)

_TEXTS = (
    "Need a second ambulance at the Europe bridge",
    "Besoin d'un renfort incendie quai des Alpes",
    "Patient transfer to Strasbourg university hospital, ETA 12 min",
    "Straßensperrung B28 Richtung Kehl ab 14:30",
    "Convoy crossing at Pont de l'Europe in 5 min",
)

#: The unit plan of ``euccs-gw demo`` (``gateway/demo_configs.py``): who sends, to whom, and
#: which status values each national codebook carries.
DEMO_PLAN: dict[str, Any] = {
    "tetra": [
        {
            "nation": "DE",
            "radios": ["2001", "2002", "2003", "2004"],
            "destinations": [
                "9001001",
                "9001002",
                "9001003",
                "9001004",
                "7001001",
                "7001002",
            ],
            # de-bos codebook: available-radio, en-route, on-scene, patient-on-board,
            # at-destination.
            "statuses": [0x8003, 0x8005, 0x8006, 0x8009, 0x800A],
        },
        {
            "nation": "FR",
            "radios": ["1001", "1002", "1003", "1004"],
            "destinations": [
                "8002001",
                "8002002",
                "8002003",
                "8002004",
                "7001001",
                "7001002",
            ],
            "statuses": [0x8101, 0x8103, 0x8104, 0x8105, 0x8106],
        },
    ],
    "mcdata": [
        {
            "nation": "BE",
            "users": ["sip:amb-1@mcx.be", "sip:usar-2@mcx.be"],
            "destinations": [
                "sip:de.bos.rtw-kehl-1@iwf.mcx.be",
                "sip:de.bos.hlf-kehl-2@iwf.mcx.be",
                "sip:fr.sdis67.vsav-strasbourg-1@iwf.mcx.be",
                "sip:fr.sdis67.fpt-strasbourg-2@iwf.mcx.be",
            ],
            "statuses": [1, 2, 3, 4, 5],
        }
    ],
    "control_room": {
        # Partner units of the German gateway (a control room reaches partners only).
        "units": [
            "fr.sdis67.vsav-strasbourg-1",
            "fr.sdis67.fpt-strasbourg-2",
            "be.astrid.amb-bfast-1",
            "be.astrid.usar-bfast-2",
        ],
        "groups": ["xb.kehl-strasbourg"],
        "statuses": ["available-radio", "en-route", "on-scene", "at-destination"],
    },
}


@dataclass(frozen=True)
class Network:
    """One national system of the plan: its identities and where to reach its control."""

    nation: str
    senders: tuple[str, ...]
    destinations: tuple[str, ...]
    statuses: tuple[int, ...]


@dataclass
class UnitPlan:
    """Who the simulated users are and whom they address."""

    tetra: list[Network] = field(default_factory=list)
    mcdata: list[Network] = field(default_factory=list)
    units: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


def _networks(entries: list[dict[str, Any]], senders_key: str) -> list[Network]:
    return [
        Network(
            nation=str(entry["nation"]),
            senders=tuple(str(s) for s in entry[senders_key]),
            destinations=tuple(str(d) for d in entry["destinations"]),
            statuses=tuple(int(s) for s in entry["statuses"]),
        )
        for entry in entries
    ]


def load_plan(environ: Mapping[str, str] = os.environ) -> UnitPlan:
    """The unit plan: ``EUCCS_UNITS_FILE`` (JSON shaped like :data:`DEMO_PLAN`) or the demo's."""
    path = environ.get("EUCCS_UNITS_FILE")
    raw: dict[str, Any] = (
        json.loads(Path(path).read_text(encoding="utf-8")) if path else dict(DEMO_PLAN)
    )
    room = raw.get("control_room", {})
    return UnitPlan(
        tetra=_networks(raw.get("tetra", []), "radios"),
        mcdata=_networks(raw.get("mcdata", []), "users"),
        units=tuple(room.get("units", ())),
        groups=tuple(room.get("groups", ())),
        statuses=tuple(room.get("statuses", ())),
    )


def controls(value: str | None, networks: list[Network]) -> dict[str, str]:
    """Nation -> control URL from ``NATION=URL,NATION=URL`` (a bare URL: the next network)."""
    result: dict[str, str] = {}
    unnamed = iter(n.nation for n in networks)
    for raw in (value or "").split(","):
        item = raw.strip()
        if not item:
            continue
        nation, separator, url = item.partition("=")
        if separator and not nation.startswith("http"):
            result[nation.strip().upper()] = url.strip().rstrip("/")
        else:
            result[next(unnamed, f"#{len(result)}")] = item.rstrip("/")
    return result


@dataclass(frozen=True)
class TetraRadioIdentity:
    """One simulated field radio: its network's control URL and its identities."""

    control: str
    issi: str
    network: Network


@dataclass(frozen=True)
class McdataUser:
    """One simulated MCData handset: its system's control URL and its identities."""

    control: str
    uri: str
    network: Network


class _RoundRobin:
    """Hands out identities in turn, so that users spread over every radio."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, Iterator[int]] = {}

    def next(self, key: str) -> int:
        with self._lock:
            return next(self._counters.setdefault(key, itertools.count()))


_turns = _RoundRobin()


def assign(kind: str, networks: list[Network], urls: dict[str, str]) -> tuple[str, str, Network]:
    """The next (control URL, sender identity, network) for a new user of ``kind``."""
    pairs = [(urls[n.nation], s, n) for n in networks if n.nation in urls for s in n.senders]
    if not pairs:
        raise RuntimeError(
            f"no {kind} control URL matches the unit plan's nations "
            f"{[n.nation for n in networks]}: set EUCCS_{kind.upper()}_CONTROL"
        )
    return pairs[_turns.next(kind) % len(pairs)]


def random_location(rng: random.Random) -> tuple[float, float]:
    """A position in the exercise area."""
    lat, lon, spread = AREA
    return round(lat + rng.uniform(-spread, spread), 6), round(
        lon + rng.uniform(-spread, spread), 6
    )


def random_text(rng: random.Random) -> str:
    """A plausible operational text."""
    return f"{rng.choice(_TEXTS)} #{rng.randrange(10000):04d}"


def think_time(environ: Mapping[str, str] = os.environ) -> tuple[float, float]:
    """Seconds a user waits between two actions: ``EUCCS_THINK_TIME=min,max`` (default 5,15)."""
    low, _, high = environ.get("EUCCS_THINK_TIME", "5,15").partition(",")
    first = float(low)
    return first, float(high) if high else first


@dataclass(frozen=True)
class ApiCredentials:
    """Where the control-room API is and the console credential to present (mutual TLS)."""

    url: str | None
    cert: str | None
    key: str | None
    ca: str | None


def api_credentials(environ: Mapping[str, str] = os.environ) -> ApiCredentials:
    """``EUCCS_API``, ``EUCCS_API_CERT``, ``EUCCS_API_KEY``, ``EUCCS_API_CA``."""
    url = environ.get("EUCCS_API")
    return ApiCredentials(
        url=url.rstrip("/") if url else None,
        cert=environ.get("EUCCS_API_CERT"),
        key=environ.get("EUCCS_API_KEY"),
        ca=environ.get("EUCCS_API_CA"),
    )


def tls_context(credentials: ApiCredentials) -> ssl.SSLContext:
    """A TLS 1.3 client context presenting the console certificate, trusting ``ca``.

    The gateway's certificate names its identity (a URI), not a host name: the chain
    to the configured CA is verified, the host name is not.
    """
    if not credentials.cert or not credentials.key or not credentials.ca:
        raise RuntimeError("EUCCS_API_CERT, EUCCS_API_KEY and EUCCS_API_CA are required")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    ca = Path(credentials.ca)
    for pem in sorted(ca.glob("*.pem")) if ca.is_dir() else [ca]:
        context.load_verify_locations(cafile=str(pem))
    context.load_cert_chain(credentials.cert, credentials.key)
    return context


class MutualTlsAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that uses one prepared TLS context."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Create the pool manager with our context and no host-name check."""
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["assert_hostname"] = False
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        """Verification is configured in the context; keep it from being replaced."""
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def build_connection_pool_key_attributes(
        self, request: Any, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pool keys without ``requests``' own CA or client-certificate settings."""
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        for name in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
            pool_kwargs.pop(name, None)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs
