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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway._toml import Table
from gateway.codebooks import BUILTIN_CODEBOOKS, Codebook, StatusMeaning
from protocols.errors import ConfigError

__all__ = [
    "AdapterConfig",
    "AliasConfig",
    "DeliveryConfig",
    "FederationConfig",
    "GatewayConfig",
    "GroupConfig",
    "UnitConfig",
    "load_config",
    "parse_config",
]

_NATION = re.compile(r"^[A-Z]{2}$")
_UNIT = re.compile(r"^[a-z]{2}\.[a-z0-9_-]+\.[a-z0-9_.-]+$")
_ISSI = re.compile(r"^[0-9]{1,8}$|^[0-9]{15,17}$")
_GROUP = re.compile(r"^[a-z0-9_.-]+$")
_URL = re.compile(r"^(tcp://[^:/]+:[0-9]{1,5}|serial:///.+)$")
_PRIORITIES = ("emergency", "imminent_peril", "high", "routine")


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """One national system attached to this gateway (for now: one TETRA radio's PEI)."""

    name: str
    type: str
    organisation: str
    url: str
    radio_issi: str
    codebook: str
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


@dataclass(frozen=True, kw_only=True)
class AliasConfig:
    """A partner country's unit, reachable from our radios through an alias ISSI."""

    issi: str
    unit: str
    nation: str
    adapter: str
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class GroupConfig:
    """A cross-border group mapped to a local GSSI on one adapter."""

    group: str
    adapter: str
    gssi: str
    nations: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FederationConfig:
    """How this gateway reaches partner gateways."""

    transport: str = "local"
    partners: tuple[str, ...] = ()


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
    allow_unlisted_units: bool = False


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
    gw.finish()
    federation = _federation(root.table("federation"), nation)
    delivery = _delivery(root.table("delivery"))
    codebooks = dict(BUILTIN_CODEBOOKS)
    cb_table = root.table("codebooks")
    for cb_name, cb_data in cb_table.items():
        codebooks[cb_name] = _codebook(Table(cb_data, f"codebooks.{cb_name}"), cb_name)
    adapters = tuple(_adapter(t, codebooks) for t in root.tables("adapters"))
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise root.error("adapters", "adapter names must be unique.")
    units = tuple(_unit(t, names) for t in root.tables("units"))
    aliases = tuple(_alias(t, names, nation) for t in root.tables("aliases"))
    groups = tuple(_group(t, names) for t in root.tables("groups"))
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
    )


def _match(table: Table, key: str, pattern: re.Pattern[str], what: str, default: Any = None) -> str:
    value: str = table.string(key) if default is None else table.string(key, default)
    if not pattern.match(value):
        raise table.error(key, f"{value!r} is not {what}.")
    return value


def _federation(table: Table, nation: str) -> FederationConfig:
    transport = table.string("transport", "local")
    if transport not in ("local",):
        raise table.error("transport", f"{transport!r} is not supported; use 'local'.")
    partners = tuple(table.strings("partners", []))
    for partner in partners:
        if not _NATION.match(partner) or partner == nation:
            raise table.error("partners", f"{partner!r} is not a partner nation code.")
    table.finish()
    return FederationConfig(transport=transport, partners=partners)


def _delivery(table: Table) -> DeliveryConfig:
    defaults = DeliveryConfig()
    expiry = dict(defaults.expiry_seconds)
    exp_table = table.table("expiry_seconds")
    for key in _PRIORITIES:
        expiry[key] = exp_table.number(key, expiry[key], minimum=1.0)
    exp_table.finish()
    max_messages = table.number("queue_max_messages", float(defaults.queue_max_messages), minimum=1)
    result = DeliveryConfig(
        expiry_seconds=expiry,
        report_timeout=table.number("report_timeout", defaults.report_timeout, minimum=0.1),
        queue_max_messages=int(max_messages),
        allow_unlisted_units=table.boolean("allow_unlisted_units", False),
    )
    table.finish()
    return result


def _adapter(table: Table, codebooks: dict[str, Codebook]) -> AdapterConfig:
    kind = table.string("type")
    if kind != "tetra":
        raise table.error("type", f"{kind!r} is not a supported adapter type; use 'tetra'.")
    url = _match(
        table, "url", _URL, "a PEI address like 'tcp://127.0.0.1:7001' or 'serial:///dev/ttyUSB0'"
    )
    codebook = table.string("codebook", "de-bos")
    if codebook not in codebooks:
        known = ", ".join(sorted(codebooks))
        raise table.error("codebook", f"no codebook {codebook!r}; known: {known}.")
    result = AdapterConfig(
        name=_match(table, "name", re.compile(r"^[A-Za-z0-9_.-]{1,64}$"), "an adapter name"),
        type=kind,
        organisation=_match(table, "organisation", re.compile(r"^[a-z0-9_-]+$"), "an organisation"),
        url=url,
        radio_issi=_match(table, "radio_issi", _ISSI, "an ISSI or TSI"),
        codebook=codebook,
        sender_prefix=table.boolean("sender_prefix", True),
        keepalive_interval=table.number("keepalive_interval", 15.0, minimum=0.1),
        command_timeout=table.number("command_timeout", 5.0, minimum=0.1),
    )
    table.finish()
    return result


def _adapter_ref(table: Table, names: list[str]) -> str:
    adapter: str = table.string("adapter")
    if adapter not in names:
        raise table.error("adapter", f"no adapter called {adapter!r} (known: {', '.join(names)}).")
    return adapter


def _unit(table: Table, names: list[str]) -> UnitConfig:
    result = UnitConfig(
        unit=_match(table, "unit", _UNIT, "a federation identity like 'de.bos.rtw-1'"),
        adapter=_adapter_ref(table, names),
        issi=_match(table, "issi", _ISSI, "an ISSI or TSI"),
        label=table.string("label", ""),
    )
    table.finish()
    return result


def _alias(table: Table, names: list[str], own_nation: str) -> AliasConfig:
    nation = _match(table, "nation", _NATION, "an ISO 3166-1 alpha-2 code in upper case")
    if nation == own_nation:
        raise table.error("nation", f"an alias stands for a partner's unit, not one of {nation}.")
    unit = _match(table, "unit", _UNIT, "a federation identity like 'fr.sdis67.vsav-1'")
    if unit[:2].upper() != nation:
        raise table.error("unit", f"{unit!r} does not start with the nation {nation.lower()!r}.")
    result = AliasConfig(
        issi=_match(table, "issi", _ISSI, "an ISSI or TSI"),
        unit=unit,
        nation=nation,
        adapter=_adapter_ref(table, names),
        label=table.string("label", ""),
    )
    table.finish()
    return result


def _group(table: Table, names: list[str]) -> GroupConfig:
    result = GroupConfig(
        group=_match(table, "group", _GROUP, "a group name like 'xb.rhine.fire'"),
        adapter=_adapter_ref(table, names),
        gssi=_match(table, "gssi", _ISSI, "a GSSI"),
        nations=tuple(table.strings("nations", [])),
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
                f"{where}: ISSI {issi} on adapter {adapter!r} is already used by "
                f"{seen[(adapter, issi)]}."
            )
        seen[(adapter, issi)] = where
    federation_ids = [u.unit for u in units]
    if len(set(federation_ids)) != len(federation_ids):
        raise ConfigError("units: a federation identity is listed twice.")
