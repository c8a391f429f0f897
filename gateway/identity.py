"""Identity mapping between national identities (ISSI/GSSI, TSI) and federation identities.

Federation identities are ``<nation>.<organisation>.<name>`` strings, unique in
the federation (``"de.bos.rtw-1"``). Our own units are listed with their ISSI;
partner units are reachable from our radios through *alias ISSIs*: numbers of
our national plan that the SwMI routes to the gateway radio, so a field unit
simply sends an SDS to the alias. Cross-border groups map to a local GSSI.

Pure lookups: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from gateway.config import AliasConfig, GatewayConfig, GroupConfig, UnitConfig

__all__ = ["Directory", "FederationId", "LocalTarget"]

#: A federation identity: ``"<nation>.<organisation>.<name>"``, lower case.
FederationId = NewType("FederationId", str)


@dataclass(frozen=True, kw_only=True)
class LocalTarget:
    """Where a federation destination lands on our side: adapter plus ISSI/GSSI."""

    adapter: str
    issi: str
    is_group: bool = False


class Directory:
    """Lookup tables built once from the configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        self.nation = config.nation
        self._units_by_issi: dict[tuple[str, str], UnitConfig] = {
            (u.adapter, u.issi): u for u in config.units
        }
        self._units_by_id: dict[str, UnitConfig] = {u.unit: u for u in config.units}
        self._aliases_by_issi: dict[tuple[str, str], AliasConfig] = {
            (a.adapter, a.issi): a for a in config.aliases
        }
        self._alias_members: dict[str, str] = {a.unit: a.member for a in config.aliases if a.member}
        self._aliases_by_unit: dict[tuple[str, str], AliasConfig] = {
            (a.adapter, a.unit): a for a in config.aliases
        }
        self._groups_by_gssi: dict[tuple[str, str], GroupConfig] = {
            (g.adapter, g.gssi): g for g in config.groups
        }
        self._groups_by_name: dict[str, list[GroupConfig]] = {}
        for group in config.groups:
            self._groups_by_name.setdefault(group.group, []).append(group)

    def local_unit(self, adapter: str, issi: str) -> UnitConfig | None:
        """Return our unit behind ``issi`` on ``adapter``, if listed."""
        return self._units_by_issi.get((adapter, issi))

    def unit(self, unit: str) -> UnitConfig | None:
        """Return our unit with federation identity ``unit``, if listed."""
        return self._units_by_id.get(unit)

    def alias(self, adapter: str, issi: str) -> AliasConfig | None:
        """Return the partner unit an alias ISSI stands for."""
        return self._aliases_by_issi.get((adapter, issi))

    def alias_member(self, unit: str) -> str:
        """The partner gateway an alias names for ``unit`` (``FR-2``), or ""."""
        return self._alias_members.get(unit, "")

    def alias_for(self, adapter: str, unit: str) -> AliasConfig | None:
        """Return the alias of a partner unit on ``adapter``, if it has one."""
        return self._aliases_by_unit.get((adapter, unit))

    def group_by_gssi(self, adapter: str, gssi: str) -> GroupConfig | None:
        """Return the cross-border group a local GSSI stands for."""
        return self._groups_by_gssi.get((adapter, gssi))

    def group_by_name(self, group: str) -> GroupConfig | None:
        """Return the first local mapping of a cross-border group, if we carry it."""
        found = self._groups_by_name.get(group)
        return found[0] if found else None

    def group_targets(self, group: str) -> list[LocalTarget]:
        """Return every local GSSI of a cross-border group (empty if we do not carry it)."""
        return [
            LocalTarget(adapter=g.adapter, issi=g.gssi, is_group=True)
            for g in self._groups_by_name.get(group, [])
        ]

    def unit_target(self, unit: str) -> LocalTarget | None:
        """Return where one of our units is reached, or None if unknown here."""
        found = self._units_by_id.get(unit)
        return None if found is None else LocalTarget(adapter=found.adapter, issi=found.issi)
