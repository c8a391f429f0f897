"""Gateway configuration: one TOML file per gateway, validated with errors naming the key.

A minimal file::

    [gateway]
    name = "gw-de-1"
    nation = "DE"

    [federation]
    transport = "local"
    partners = ["FR"]

    [[adapters]]
    name = "tetra-de"
    type = "tetra"
    organisation = "bos"
    url = "tcp://127.0.0.1:7001"
    radio_issi = "9000000"
    codebook = "de-bos"

    [[units]]            # our units, visible to partner countries
    unit = "de.bos.rtw-1"
    adapter = "tetra-de"
    issi = "2001"

    [[aliases]]          # partner units, addressable from our radios by an alias ISSI
    issi = "9001001"
    unit = "fr.sdis67.vsav-1"
    nation = "FR"
    adapter = "tetra-de"

See ``docs/configuration.md`` for every key. Loading never does network I/O.
"""

from __future__ import annotations

import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway._toml import Table
from gateway.api.settings import ApiSettings, parse_api
from gateway.codebooks import BUILTIN_CODEBOOKS, Codebook, StatusMeaning
from gateway.members import is_member, member_nation
from gateway.mqtt_link import MqttSettings, parse_mqtt_settings
from gateway.ordering import HOLD_SECONDS
from gateway.policy import Policy, RateLimitSettings, parse_policy, parse_rate_limits
from gateway.presence import PresenceSettings, parse_presence
from protocols.errors import ConfigError

__all__ = [
    "AdapterConfig",
    "AliasConfig",
    "ClusterConfig",
    "DeliveryConfig",
    "FederationConfig",
    "GatewayConfig",
    "GroupConfig",
    "LivenessConfig",
    "UnitConfig",
    "load_config",
    "parse_config",
]

_NATION = re.compile(r"^[A-Z]{2}$")
_UNIT = re.compile(r"^[a-z]{2}\.[a-z0-9_-]+\.[a-z0-9_.-]+$")
#: A federation identity: ``<nation>.<organisation>.<name>``, lower case.
UNIT_PATTERN = _UNIT
_ISSI = re.compile(r"^[0-9]{1,8}$|^[0-9]{15,17}$")
_GROUP = re.compile(r"^[a-z0-9_.-]+$")
#: A cross-border group name.
GROUP_PATTERN = _GROUP
_URL = re.compile(r"^(tcp://[^:/]+:[0-9]{1,5}|serial:///.+)$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.:\[\]-]+:[0-9]{1,5}$")
#: An MCData user or group ID: a SIP URI (TS 23.280 MCData ID format).
_MCDATA_ID = re.compile(r"^sips?:[^@\s]+@[^@\s]+$")
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
#: What names a unit or group on each adapter type, and how it is checked.
_NATIVE = {
    "tetra": ("issi", "gssi", _ISSI, "an ISSI or TSI", "a GSSI"),
    "mcdata": (
        "mcdata_id",
        "mcdata_group",
        _MCDATA_ID,
        "an MCData ID like 'sip:x@mcx.be'",
        "an MCData group ID like 'sip:group@mcx.be'",
    ),
}
_PRIORITIES = ("emergency", "imminent_peril", "high", "routine")


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """One national system attached to this gateway: a TETRA radio's PEI or an MCX system.

    TETRA uses ``url`` and ``radio_issi``; MCData uses ``listen``, ``peer``,
    ``transport`` and ``iwf_domain``, and with ``transport = "tls"`` the files
    ``tls_cert``, ``tls_key`` (our certificate and key, both directions) and ``tls_ca``
    (the CAs of the MCX system's certificates; it must present one, both directions).
    """

    name: str
    type: str
    organisation: str
    codebook: str
    url: str = ""
    radio_issi: str = ""
    listen: str = ""
    peer: str = ""
    transport: str = "tcp"
    #: Domain of the MCData IDs under which partner units appear in the MCX system:
    #: ``sip:<federation id>@<iwf_domain>`` (3GPP TS 23.283: users homed in the IWF).
    iwf_domain: str = ""
    request_timeout: float = 32.0
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    #: The name the MCX system's certificate must carry (default: the host of ``peer``).
    tls_server_name: str = ""
    sender_prefix: bool = True
    keepalive_interval: float = 15.0
    command_timeout: float = 5.0


@dataclass(frozen=True, kw_only=True)
class UnitConfig:
    """One of our units, exposed to the federation under a federation identity."""

    unit: str
    adapter: str
    issi: str
    label: str = ""
    #: Cross-border groups the unit is affiliated to (TETRA does not tell the gateway).
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AliasConfig:
    """A partner country's unit, reachable from our radios through an alias ISSI."""

    issi: str
    unit: str
    nation: str
    adapter: str
    label: str = ""
    #: The partner's gateway that serves the unit where the partner country is split over
    #: several gateways (``FR-2``); "": the one named like the country, or whichever one
    #: the unit's presence came from (:mod:`gateway.members`).
    member: str = ""


@dataclass(frozen=True, kw_only=True)
class GroupConfig:
    """A cross-border group mapped to a local GSSI on one adapter."""

    group: str
    adapter: str
    gssi: str
    #: Partners that carry the group: countries, or members of a split country (``FR-2``).
    nations: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FederationConfig:
    """How this gateway reaches partner gateways."""

    transport: str = "local"
    partners: tuple[str, ...] = ()
    #: ``[federation.mqtt]``: broker, certificates, batching (transport "mqtt" only).
    mqtt: MqttSettings | None = None
    #: The other gateways of our split country (``DE-2``): they exchange presence only.
    siblings: tuple[str, ...] = ()

    @property
    def peers(self) -> tuple[str, ...]:
        """Every member we exchange envelopes with: partners, then siblings."""
        return (*self.partners, *self.siblings)


@dataclass(frozen=True, kw_only=True)
class DeliveryConfig:
    """Delivery defaults: expiry per priority class, report timeouts, queue bounds."""

    expiry_seconds: dict[str, float] = field(
        default_factory=lambda: {
            "emergency": 3600.0,
            "imminent_peril": 1800.0,
            "high": 900.0,
            "routine": 600.0,
        }
    )
    report_timeout: float = 30.0
    queue_max_messages: int = 10_000
    queue_max_bytes: int = 16 * 1024 * 1024
    allow_unlisted_units: bool = False
    #: Seconds a partner has to acknowledge custody before we send again.
    ack_timeout: float = 5.0
    #: Messages per partner sent and not yet acknowledged (emergency traffic ignores it).
    window: int = 256
    #: Partner message ids remembered for duplicate suppression, in seconds.
    dedup_window: float = 7200.0
    #: Send SDS-TL 0x21 "message stored" once a radio's message is in custody.
    stored_report: bool = True
    #: A queue at its bound keeps further non-urgent copies in the journal only (read
    #: back in order as it drains) instead of refusing them; False: refuse (0x4C).
    spill: bool = True


@dataclass(frozen=True, kw_only=True)
class LivenessConfig:
    """End-to-end canaries: a link that is up but does not deliver is reported degraded."""

    #: Seconds between canaries per federation link and per adapter; 0 disables them.
    canary_interval: float = 10.0
    #: Seconds without a canary coming back after which the path is degraded.
    canary_timeout: float = 20.0


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """``[cluster]``: several instances of this gateway, one active at a time (by lease).

    Every instance runs with the same configuration and a unique instance id; they share
    the PostgreSQL journal, where the lease ``gateway:<name>`` says which one is active
    (the leases live in the journal's database, so journal writes can be fenced by them).
    """

    #: This instance's id; None: ``--instance``, else ``EUCCS_INSTANCE``, else host-pid.
    instance: str | None = None
    #: Seconds a lease lasts without renewal: the bound on a takeover after a crash.
    lease_ttl: float = 10.0
    #: The instance that runs this gateway whenever it is up (the gateways of a split
    #: country spread over instances this way); the others take it over only while that
    #: instance is down, and hand it back when it is up again. None: whichever comes first.
    home: str | None = None


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """The whole validated configuration of one gateway."""

    name: str
    nation: str
    federation: FederationConfig
    delivery: DeliveryConfig
    adapters: tuple[AdapterConfig, ...]
    units: tuple[UnitConfig, ...]
    aliases: tuple[AliasConfig, ...]
    groups: tuple[GroupConfig, ...]
    codebooks: dict[str, Codebook]
    source: str = "<string>"
    #: Store-and-forward journal file; None: ``<state dir>/<name>.journal.sqlite3``.
    journal_path: str | None = None
    #: PostgreSQL journal (``postgresql://user@host:port/db``); None: the SQLite file.
    journal_url: str | None = None
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    policy: Policy = field(default_factory=Policy.allow_all)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    #: The control-room API (``[api]``); None: not served.
    api: ApiSettings | None = None
    #: ``[cluster]``: active/standby instances by lease; None: a single instance.
    cluster: ClusterConfig | None = None
    #: ``[gateway] member``: this gateway's federation member id where the country runs
    #: several gateways (``DE-2``, :mod:`gateway.members`); "": the country code.
    member: str = ""

    @property
    def federation_member(self) -> str:
        """Our id on the federation link: ``member``, else the country code."""
        return self.member or self.nation

    def adapter(self, name: str) -> AdapterConfig:
        """Return the adapter called ``name`` (KeyError if there is none)."""
        for adapter in self.adapters:
            if adapter.name == name:
                return adapter
        raise KeyError(name)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML file; raise :class:`ConfigError` naming file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}.") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<string>") -> GatewayConfig:
    """Validate configuration TOML text; raise :class:`ConfigError` naming the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}.") from exc
    try:
        return _parse(Table(data, ""), source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _parse(root: Table, source: str) -> GatewayConfig:
    gw = root.table("gateway", required=True)
    name = _match(gw, "name", re.compile(r"^[A-Za-z0-9_.-]{1,64}$"), "a gateway name")
    nation = _match(gw, "nation", _NATION, "an ISO 3166-1 alpha-2 code in upper case")
    member = gw.string("member", "")
    if member and not (is_member(member) and member_nation(member) == nation):
        raise gw.error(
            "member",
            f"{member!r} is not a member id of {nation}: {nation}, or {nation}-<tag> with a "
            "tag of 1-8 upper-case letters or digits (DE-2).",
        )
    gw.finish()
    federation = _federation(root.table("federation"), nation, member or nation)
    delivery = _delivery(root.table("delivery"))
    codebooks = dict(BUILTIN_CODEBOOKS)
    cb_table = root.table("codebooks")
    for cb_name, cb_data in cb_table.items():
        codebooks[cb_name] = _codebook(Table(cb_data, f"codebooks.{cb_name}"), cb_name)
    adapters = tuple(_adapter(t, codebooks) for t in root.tables("adapters"))
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise root.error("adapters", "adapter names must be unique.")
    kinds = {a.name: a.type for a in adapters}
    units = tuple(_unit(t, kinds) for t in root.tables("units"))
    aliases = tuple(_alias(t, kinds, nation) for t in root.tables("aliases"))
    groups = tuple(_group(t, kinds) for t in root.tables("groups"))
    journal_table = root.table("journal")
    journal_path = journal_table.string("path", None)
    if journal_path is not None and not journal_path.strip():
        raise journal_table.error("path", "must name a file (or leave the key out).")
    journal_url = journal_table.string("url", None)
    if journal_url is not None:
        if not journal_url.startswith(("postgresql://", "postgres://")) or any(
            c.isspace() for c in journal_url
        ):
            raise journal_table.error(
                "url", f"{journal_url!r} is not a postgresql://user@host:port/database URL."
            )
        if journal_path is not None:
            raise journal_table.error("url", "set path (SQLite) or url (PostgreSQL), not both.")
    journal_table.finish()
    presence = parse_presence(root.table("presence"))
    policy = parse_policy(root.table("policy")) if root.has("policy") else Policy.allow_all()
    rate_limits = parse_rate_limits(root.table("rate_limits"))
    liveness = _liveness(root.table("liveness"))
    api = parse_api(root.table("api"))
    cluster = _cluster(root, journal_url, federation) if root.has("cluster") else None
    _check_partners(federation, aliases, groups, nation)
    root.finish()
    _check_unique_identities(units, aliases, groups)
    return GatewayConfig(
        name=name,
        nation=nation,
        federation=federation,
        delivery=delivery,
        adapters=adapters,
        units=units,
        aliases=aliases,
        groups=groups,
        codebooks=codebooks,
        source=source,
        journal_path=journal_path,
        journal_url=journal_url,
        presence=presence,
        policy=policy,
        rate_limits=rate_limits,
        liveness=liveness,
        api=api,
        cluster=cluster,
        member="" if member == nation else member,
    )


def _check_partners(
    federation: FederationConfig,
    aliases: tuple[AliasConfig, ...],
    groups: tuple[GroupConfig, ...],
    nation: str,
) -> None:
    """Aliases and groups may name only partners (a message to anyone else is refused)."""
    partners = set(federation.partners)
    countries = {member_nation(p) for p in partners}
    for index, alias in enumerate(aliases):
        if alias.member and alias.member not in partners:
            raise ConfigError(
                f"aliases[{index}].member: {alias.member!r} is not in federation.partners."
            )
        if alias.nation not in countries:
            raise ConfigError(
                f"aliases[{index}].nation: {alias.nation} is not a partner "
                "(federation.partners): messages to this alias could go nowhere."
            )
    for index, group in enumerate(groups):
        for partner in group.nations:
            if member_nation(partner) != nation and partner not in partners:
                raise ConfigError(
                    f"groups[{index}].nations: {partner!r} is not in federation.partners."
                )


_INSTANCE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _cluster(root: Table, journal_url: str | None, federation: FederationConfig) -> ClusterConfig:
    table = root.table("cluster")
    instance = table.string("instance", None)
    if instance is not None and not _INSTANCE.match(instance):
        raise table.error(
            "instance", f"{instance!r} is not an instance id (1-64 of A-Z a-z 0-9 _.:-)."
        )
    home = table.string("home", None)
    if home is not None and not _INSTANCE.match(home):
        raise table.error("home", f"{home!r} is not an instance id (1-64 of A-Z a-z 0-9 _.:-).")
    ttl = table.number("lease_ttl", ClusterConfig.lease_ttl, minimum=1)
    if ttl > 300:
        raise table.error("lease_ttl", f"{ttl:g} s is too long (at most 300 s).")
    table.finish()
    if journal_url is None:
        raise root.error(
            "cluster",
            "instances of one gateway must share their journal: set [journal] url to a "
            "PostgreSQL database.",
        )
    if federation.transport != "mqtt":
        raise root.error(
            "cluster",
            "instances run in separate processes: set federation.transport = 'mqtt'.",
        )
    return ClusterConfig(instance=instance, lease_ttl=ttl, home=home)


def _match(table: Table, key: str, pattern: re.Pattern[str], what: str, default: Any = None) -> str:
    value: str = table.string(key) if default is None else table.string(key, default)
    if not pattern.match(value):
        raise table.error(key, f"{value!r} is not {what}.")
    return value


def _federation(table: Table, nation: str, member: str) -> FederationConfig:
    transport = table.string("transport", "local")
    if transport not in ("local", "mqtt"):
        raise table.error("transport", f"{transport!r} is not supported; use 'local' or 'mqtt'.")
    partners = tuple(table.strings("partners", []))
    for partner in partners:
        if partner == nation:
            raise table.error(
                "partners", f"{partner!r} is this gateway's own nation (gateway.nation)."
            )
        if not is_member(partner):
            raise table.error(
                "partners",
                f"{partner!r} is not a nation code (ISO 3166-1 alpha-2, upper case), nor a "
                "member of a split partner country (FR-2).",
            )
        if member_nation(partner) == nation:
            raise table.error(
                "partners",
                f"{partner!r} is a gateway of this gateway's own nation: the gateways of one "
                "country exchange no traffic.",
            )
    if len(set(partners)) != len(partners):
        raise table.error("partners", "lists a partner twice.")
    siblings = tuple(table.strings("siblings", []))
    for sibling in siblings:
        if sibling == member:
            raise table.error(
                "siblings",
                f"{sibling!r} is this gateway's own member id (gateway.member, by default "
                f"the country): in the second gateway of {nation} set gateway.member = "
                f'"{nation}-2".',
            )
        if not is_member(sibling) or member_nation(sibling) != nation:
            raise table.error(
                "siblings",
                f"{sibling!r} is not another gateway of {nation} ({nation}, or {nation}-<tag>).",
            )
    if len(set(siblings)) != len(siblings):
        raise table.error("siblings", "lists a gateway twice.")
    mqtt = None
    if transport == "mqtt":
        mqtt = parse_mqtt_settings(table.table("mqtt", required=True))
    elif table.has("mqtt"):
        raise table.error("mqtt", "is only read with transport = 'mqtt'.")
    table.finish()
    return FederationConfig(transport=transport, partners=partners, mqtt=mqtt, siblings=siblings)


#: The longest ``ack_timeout``: a partner holds a message that overtook a lost one for
#: :data:`gateway.ordering.HOLD_SECONDS` after its latest copy, so the lost one must be
#: sent again well within that, or order gives way (``docs/delivery.md``, step 3).
MAX_ACK_TIMEOUT = HOLD_SECONDS * 2 / 3


def _ack_timeout(table: Table, default: float) -> float:
    value: float = table.number("ack_timeout", default, minimum=0.05)
    if value > MAX_ACK_TIMEOUT:
        raise table.error(
            "ack_timeout",
            f"{value:g} s is too long (at most {MAX_ACK_TIMEOUT:g} s): partners hold a message"
            f" that overtook a lost one for {HOLD_SECONDS:g} s, and the lost one must be sent"
            " again before that or order gives way.",
        )
    return value


def _delivery(table: Table) -> DeliveryConfig:
    defaults = DeliveryConfig()
    expiry = dict(defaults.expiry_seconds)
    exp_table = table.table("expiry_seconds")
    for key in _PRIORITIES:
        expiry[key] = exp_table.number(key, expiry[key], minimum=1.0)
    exp_table.finish()
    max_messages = table.number("queue_max_messages", float(defaults.queue_max_messages), minimum=1)
    max_bytes = table.number("queue_max_bytes", float(defaults.queue_max_bytes), minimum=1024)
    dedup_window = table.number("dedup_window", 2 * max(expiry.values()), minimum=1.0)
    if dedup_window < max(expiry.values()):
        raise table.error(
            "dedup_window",
            f"{dedup_window:g} s is shorter than the longest expiry ({max(expiry.values()):g} s):"
            " a partner's retransmission could be delivered twice.",
        )
    result = DeliveryConfig(
        expiry_seconds=expiry,
        report_timeout=table.number("report_timeout", defaults.report_timeout, minimum=0.1),
        queue_max_messages=int(max_messages),
        queue_max_bytes=int(max_bytes),
        allow_unlisted_units=table.boolean("allow_unlisted_units", False),
        ack_timeout=_ack_timeout(table, defaults.ack_timeout),
        window=int(table.number("window", float(defaults.window), minimum=1)),
        dedup_window=dedup_window,
        stored_report=table.boolean("stored_report", defaults.stored_report),
        spill=table.boolean("spill", defaults.spill),
    )
    table.finish()
    return result


def _liveness(table: Table) -> LivenessConfig:
    defaults = LivenessConfig()
    interval = table.number("canary_interval", defaults.canary_interval)
    timeout = table.number("canary_timeout", max(defaults.canary_timeout, 2 * interval))
    if interval and timeout <= interval:
        raise table.error(
            "canary_timeout",
            f"{timeout:g} s must be longer than canary_interval ({interval:g} s).",
        )
    table.finish()
    return LivenessConfig(canary_interval=interval, canary_timeout=timeout)


def _adapter(table: Table, codebooks: dict[str, Codebook]) -> AdapterConfig:
    kind = table.string("type")
    if kind not in _NATIVE:
        raise table.error(
            "type", f"{kind!r} is not a supported adapter type; use 'tetra' or 'mcdata'."
        )
    codebook = table.string("codebook", "de-bos")
    if codebook not in codebooks:
        known = ", ".join(sorted(codebooks))
        raise table.error("codebook", f"no codebook {codebook!r}; known: {known}.")
    name = _match(table, "name", re.compile(r"^[A-Za-z0-9_.-]{1,64}$"), "an adapter name")
    organisation = _match(table, "organisation", re.compile(r"^[a-z0-9_-]+$"), "an organisation")
    if kind == "tetra":
        result = AdapterConfig(
            name=name,
            type=kind,
            organisation=organisation,
            codebook=codebook,
            url=_match(
                table,
                "url",
                _URL,
                "a PEI address like 'tcp://127.0.0.1:7001' or 'serial:///dev/ttyUSB0'",
            ),
            radio_issi=_match(table, "radio_issi", _ISSI, "an ISSI or TSI"),
            sender_prefix=table.boolean("sender_prefix", True),
            keepalive_interval=table.number("keepalive_interval", 15.0, minimum=0.1),
            command_timeout=table.number("command_timeout", 5.0, minimum=0.1),
        )
    else:
        transport = table.string("transport", "tcp")
        if transport not in ("tcp", "tls"):
            raise table.error("transport", f"{transport!r}: use 'tcp' or 'tls'.")
        tls = {key: table.string(key, "") for key in ("tls_cert", "tls_key", "tls_ca")}
        server_name = table.string("tls_server_name", "")
        if transport == "tls":
            for key, value in tls.items():
                if not value:
                    raise table.error(key, "transport 'tls' needs a file here.")
        elif any(tls.values()) or server_name:
            given = next(k for k, v in (*tls.items(), ("tls_server_name", server_name)) if v)
            raise table.error(given, "is used with transport = 'tls' only.")
        result = AdapterConfig(
            name=name,
            type=kind,
            organisation=organisation,
            codebook=codebook,
            listen=_match(table, "listen", _HOST_PORT, "'host:port' to accept SIP on"),
            peer=_match(table, "peer", _HOST_PORT, "'host:port' of the MCX system's SIP server"),
            transport=transport,
            iwf_domain=_match(table, "iwf_domain", _DOMAIN, "a domain like 'iwf.mcx.example'"),
            request_timeout=table.number("request_timeout", 32.0, minimum=0.1),
            tls_server_name=server_name,
            **tls,
            sender_prefix=table.boolean("sender_prefix", False),
        )
    table.finish()
    return result


def _adapter_ref(table: Table, kinds: dict[str, str]) -> str:
    adapter: str = table.string("adapter")
    if adapter not in kinds:
        known = ", ".join(kinds)
        raise table.error("adapter", f"no adapter called {adapter!r} (known: {known}).")
    return adapter


def _native(table: Table, kinds: dict[str, str], adapter: str, *, group: bool = False) -> str:
    """The unit's or group's identity in its national system (ISSI/GSSI, MCData ID)."""
    unit_key, group_key, pattern, unit_what, group_what = _NATIVE[kinds[adapter]]
    key, what = (group_key, group_what) if group else (unit_key, unit_what)
    return _match(table, key, pattern, what)


def _unit(table: Table, kinds: dict[str, str]) -> UnitConfig:
    adapter = _adapter_ref(table, kinds)
    result = UnitConfig(
        unit=_match(table, "unit", _UNIT, "a federation identity like 'de.bos.rtw-1'"),
        adapter=adapter,
        issi=_native(table, kinds, adapter),
        label=table.string("label", ""),
        groups=tuple(table.strings("groups", [])),
    )
    for group in result.groups:
        if not _GROUP.match(group):
            raise table.error("groups", f"{group!r} is not a group name like 'xb.rhine.fire'.")
    table.finish()
    return result


def _alias(table: Table, kinds: dict[str, str], own_nation: str) -> AliasConfig:
    nation = _match(table, "nation", _NATION, "an ISO 3166-1 alpha-2 code in upper case")
    if nation == own_nation:
        raise table.error("nation", f"an alias stands for a partner's unit, not one of {nation}.")
    unit = _match(table, "unit", _UNIT, "a federation identity like 'fr.sdis67.vsav-1'")
    if unit[:2].upper() != nation:
        raise table.error("unit", f"{unit!r} does not start with the nation {nation.lower()!r}.")
    adapter = _adapter_ref(table, kinds)
    member = table.string("member", "")
    if member and not (is_member(member) and member_nation(member) == nation):
        raise table.error(
            "member", f"{member!r} is not a gateway of {nation} ({nation}, or {nation}-2 ...)."
        )
    result = AliasConfig(
        issi=_native(table, kinds, adapter),
        unit=unit,
        nation=nation,
        adapter=adapter,
        label=table.string("label", ""),
        member=member,
    )
    table.finish()
    return result


def _group(table: Table, kinds: dict[str, str]) -> GroupConfig:
    adapter = _adapter_ref(table, kinds)
    nations = tuple(table.strings("nations", []))
    for partner in nations:
        if not is_member(partner):
            raise table.error(
                "nations", f"{partner!r} is not a country (FR) or a partner's gateway (FR-2)."
            )
    result = GroupConfig(
        group=_match(table, "group", _GROUP, "a group name like 'xb.rhine.fire'"),
        adapter=adapter,
        gssi=_native(table, kinds, adapter, group=True),
        nations=nations,
    )
    table.finish()
    return result


def _codebook(table: Table, name: str) -> Codebook:
    meanings: list[StatusMeaning] = []
    for key, value in table.items():
        try:
            tetra_value = int(key, 0)
        except ValueError:
            raise table.error(key, 'status keys are numbers like "0x8003".') from None
        if not 0 < tetra_value <= 0xFFFF or 0x7C00 <= tetra_value <= 0x7FFF:
            raise table.error(key, "not a pre-coded status value (1..0x7BFF or 0x8000..0xFFFF).")
        entry = Table(value, f"codebooks.{name}.{key}")
        meanings.append(
            StatusMeaning(
                tetra_value=tetra_value, code=entry.string("code"), label=entry.string("label", "")
            )
        )
        entry.finish()
    return Codebook(name=name, meanings=tuple(meanings))


def _check_unique_identities(
    units: tuple[UnitConfig, ...], aliases: tuple[AliasConfig, ...], groups: tuple[GroupConfig, ...]
) -> None:
    seen: dict[tuple[str, str], str] = {}
    entries = [(u.adapter, u.issi, f"units ({u.unit})") for u in units]
    entries += [(a.adapter, a.issi, f"aliases ({a.unit})") for a in aliases]
    entries += [(g.adapter, g.gssi, f"groups ({g.group})") for g in groups]
    for adapter, issi, where in entries:
        if (adapter, issi) in seen:
            raise ConfigError(
                f"{where}: {'ISSI' if issi.isdigit() else 'MCData ID'} {issi} on adapter"
                f" {adapter!r} is already used by "
                f"{seen[(adapter, issi)]}."
            )
        seen[(adapter, issi)] = where
    federation_ids = [u.unit for u in units]
    if len(set(federation_ids)) != len(federation_ids):
        raise ConfigError("units: a federation identity is listed twice.")


def file_problems(config: GatewayConfig) -> list[str]:
    """What is wrong with the files a configuration names: ``"<key>: <problem>"`` each.

    The loader checks only the text; this reads every certificate, key and trust bundle
    the gateway will need (without a key's passphrase), so that ``config check`` finds a
    wrong path before ``run`` does.
    """
    from certs import CertificateError, load_bundle
    from certs._files import load_certificates

    checks: list[tuple[str, str, str]] = []  # (key, path, kind)
    if (mqtt := config.federation.mqtt) is not None:
        checks += [
            ("federation.mqtt.cert", str(mqtt.cert), "certificate"),
            ("federation.mqtt.key", str(mqtt.key), "key"),
            ("federation.mqtt.bundle", str(mqtt.bundle), "bundle"),
        ]
    if (api := config.api) is not None:
        checks += [
            ("api.cert", str(api.cert), "certificate"),
            ("api.key", str(api.key), "key"),
            ("api.bundle", str(api.bundle), "bundle"),
        ]
    for index, adapter in enumerate(config.adapters):
        for key, kind in (("tls_cert", "certificate"), ("tls_key", "key"), ("tls_ca", "ca")):
            if value := getattr(adapter, key):
                checks.append((f"adapters[{index}].{key}", value, kind))
    problems: list[str] = []
    for key, value, kind in checks:
        path = Path(value)
        try:
            if kind == "bundle":
                load_bundle(path)
            elif kind == "ca":  # read by ssl at run time, which takes more forms
                ssl.create_default_context(cafile=path)
            elif kind == "certificate":
                load_certificates(path)
            elif b"PRIVATE KEY-----" not in path.read_bytes():
                problems.append(f"{key}: {path} holds no PEM private key")
        except CertificateError as exc:
            problems.append(f"{key}: {exc}")
        except FileNotFoundError:
            problems.append(f"{key}: {path} does not exist")
        except ssl.SSLError as exc:
            problems.append(f"{key}: {path} holds no CA certificate ssl can use ({exc.reason})")
        except OSError as exc:
            problems.append(f"{key}: cannot read {path}: {exc.strerror}")
    return problems
