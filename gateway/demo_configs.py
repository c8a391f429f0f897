"""Configurations of the embedded demo: Germany (Kehl) and France (Strasbourg) across the Rhine.

Two national gateways, each in front of a simulated TETRA network. Units and
aliases mirror each other: a German RTW reaches a French VSAV by sending to the
French unit's alias ISSI in the German numbering plan, and vice versa. The
French status codebook below is an example written for the demo (the German
one is the built-in BOS codebook).

A third country can join on LTE: Belgium's gateway sits in front of a simulated
MCX system and speaks MCData SDS over SIP to it. Belgian units have alias ISSIs
in the German and French plans; German and French units appear to Belgian MCData
users as users homed in the gateway (``sip:<federation id>@iwf.mcx.be``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEMO_UNITS",
    "IWF_DOMAIN",
    "MCDATA_UNITS",
    "SPLIT_ALIASES_DE",
    "SPLIT_ALIASES_FR",
    "SPLIT_RADIO",
    "SPLIT_UNITS",
    "DemoUnit",
    "demo_config_text",
    "split_config_text",
]


@dataclass(frozen=True, kw_only=True)
class DemoUnit:
    """A field unit of the demo."""

    nation: str
    unit: str
    issi: str
    label: str
    alias_abroad: str  # its alias ISSI in the partner's numbering plan


#: Units of the MCData country (Belgium): ``issi`` holds the MCData ID.
MCDATA_UNITS: tuple[DemoUnit, ...] = (
    DemoUnit(
        nation="BE",
        unit="be.astrid.amb-bfast-1",
        issi="sip:amb-1@mcx.be",
        label="B-FAST Ambulance 1",
        alias_abroad="7001001",
    ),
    DemoUnit(
        nation="BE",
        unit="be.astrid.usar-bfast-2",
        issi="sip:usar-2@mcx.be",
        label="B-FAST USAR 2",
        alias_abroad="7001002",
    ),
)

DEMO_UNITS: tuple[DemoUnit, ...] = (
    DemoUnit(
        nation="DE",
        unit="de.bos.rtw-kehl-1",
        issi="2001",
        label="RTW Kehl 1",
        alias_abroad="8002001",
    ),
    DemoUnit(
        nation="DE",
        unit="de.bos.hlf-kehl-2",
        issi="2002",
        label="HLF Kehl 2",
        alias_abroad="8002002",
    ),
    DemoUnit(
        nation="DE",
        unit="de.bos.pol-offenburg-3",
        issi="2003",
        label="Polizei Offenburg 3",
        alias_abroad="8002003",
    ),
    DemoUnit(
        nation="DE",
        unit="de.bos.elw-kehl-4",
        issi="2004",
        label="ELW Kehl 4",
        alias_abroad="8002004",
    ),
    DemoUnit(
        nation="FR",
        unit="fr.sdis67.vsav-strasbourg-1",
        issi="1001",
        label="VSAV Strasbourg 1",
        alias_abroad="9001001",
    ),
    DemoUnit(
        nation="FR",
        unit="fr.sdis67.fpt-strasbourg-2",
        issi="1002",
        label="FPT Strasbourg 2",
        alias_abroad="9001002",
    ),
    DemoUnit(
        nation="FR",
        unit="fr.sdis67.pn-strasbourg-3",
        issi="1003",
        label="PN Strasbourg 3",
        alias_abroad="9001003",
    ),
    DemoUnit(
        nation="FR",
        unit="fr.sdis67.vl-strasbourg-4",
        issi="1004",
        label="VL Strasbourg 4",
        alias_abroad="9001004",
    ),
)

#: The PEI radio of each national gateway.
GATEWAY_RADIO = {"DE": "9000000", "FR": "8000000"}
#: The cross-border group of the demo and its GSSI (MCData group ID) in each national plan.
CROSS_BORDER_GROUP = "xb.kehl-strasbourg"
GROUP_GSSI = {"DE": "3001", "FR": "4001", "BE": "sip:xb-rhine@mcx.be"}
#: Domain of the MCData IDs under which partner units appear in the Belgian MCX system.
IWF_DOMAIN = "iwf.mcx.be"

_FR_CODEBOOK = """
[codebooks.fr-sdis67]
"0x8101" = { code = "available-radio", label = "Disponible radio" }
"0x8102" = { code = "available-station", label = "Disponible au centre" }
"0x8103" = { code = "en-route", label = "Parti" }
"0x8104" = { code = "on-scene", label = "Sur les lieux" }
"0x8105" = { code = "patient-on-board", label = "Transport hopital" }
"0x8106" = { code = "at-destination", label = "Arrive hopital" }
"0x8107" = { code = "not-available", label = "Indisponible" }
"0x8108" = { code = "request-to-talk", label = "Demande de parole" }
"""

_ORG = {"DE": ("bos", "de-bos"), "FR": ("sdis67", "fr-sdis67"), "BE": ("astrid", "be-astrid")}

#: Enhanced status values of the Belgian MCX system (an example written for the demo).
_BE_CODEBOOK = """
[codebooks.be-astrid]
"0x0001" = { code = "available-radio", label = "Beschikbaar / Disponible" }
"0x0002" = { code = "en-route", label = "Onderweg / En route" }
"0x0003" = { code = "on-scene", label = "Ter plaatse / Sur place" }
"0x0004" = { code = "patient-on-board", label = "Patient aan boord / Patient a bord" }
"0x0005" = { code = "at-destination", label = "Aangekomen / Arrive" }
"""
_NAME = {"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg", "BE": "gw-be-bfast"}


def demo_config_text(
    nation: str,
    *,
    partner: str | None = None,
    partners: Sequence[str] = (),
    pei_port: int = 0,
    sip_peer_port: int = 0,
    keepalive: float = 5.0,
    delivery: str = "",
) -> str:
    """Return the TOML configuration of one demo gateway.

    Args:
        nation: DE or FR (TETRA) or BE (MCData).
        partner: The one partner country (two-country demo).
        partners: Partner countries (three-country demo); used when ``partner`` is None.
        pei_port: TCP port of the simulated TETRA radio's PEI (DE, FR).
        sip_peer_port: SIP port of the simulated MCX system (BE); the gateway listens
            for it on a free port (``Gateway.mcdata["mcx-be"].listen_port``).
        keepalive: PEI keepalive interval.
        delivery: Extra lines for the ``[delivery]`` table.
    """
    allies = [partner] if partner is not None else list(partners)
    organisation, codebook = _ORG[nation]
    mcdata = nation == "BE"
    adapter = "mcx-be" if mcdata else f"tetra-{nation.lower()}"
    lines = [
        "[gateway]",
        f'name = "{_NAME[nation]}"',
        f'nation = "{nation}"',
        "",
        "[federation]",
        'transport = "local"',
        f"partners = {json.dumps(allies)}",
        "",
        "[delivery]",
        "report_timeout = 10.0",
        delivery,
        "",
        "[[adapters]]",
        f'name = "{adapter}"',
        f'type = "{"mcdata" if mcdata else "tetra"}"',
        f'organisation = "{organisation}"',
        f'codebook = "{codebook}"',
    ]
    if mcdata:
        lines += [
            'listen = "127.0.0.1:0"',
            f'peer = "127.0.0.1:{sip_peer_port}"',
            f'iwf_domain = "{IWF_DOMAIN}"',
        ]
    else:
        lines += [
            f'url = "tcp://127.0.0.1:{pei_port}"',
            f'radio_issi = "{GATEWAY_RADIO[nation]}"',
            f"keepalive_interval = {keepalive}",
        ]
    native = "mcdata_id" if mcdata else "issi"
    for unit in (*DEMO_UNITS, *MCDATA_UNITS):
        if unit.nation == nation:
            lines += [
                "",
                "[[units]]",
                f'unit = "{unit.unit}"',
                f'adapter = "{adapter}"',
                f'{native} = "{unit.issi}"',
                f'label = "{unit.label}"',
            ]
        elif unit.nation in allies and not mcdata:
            # TETRA radios reach partner units by alias ISSIs; MCData users by IWF IDs.
            lines += [
                "",
                "[[aliases]]",
                f'issi = "{unit.alias_abroad}"',
                f'unit = "{unit.unit}"',
                f'nation = "{unit.nation}"',
                f'adapter = "{adapter}"',
                f'label = "{unit.label}"',
            ]
    lines += [
        "",
        "[[groups]]",
        f'group = "{CROSS_BORDER_GROUP}"',
        f'adapter = "{adapter}"',
        f'{"mcdata_group" if mcdata else "gssi"} = "{GROUP_GSSI[nation]}"',
        f"nations = {json.dumps(sorted([nation, *allies]))}",
    ]
    text = "\n".join(lines) + "\n"
    if nation == "FR":
        text += _FR_CODEBOOK
    if nation == "BE":
        text += _BE_CODEBOOK
    return text


# ---------------------------------------------------------------- a split country

#: Germany split over two gateways (DE, DE-2), each with its own radio network, and France.
SPLIT_RADIO = {"DE": "9000000", "DE-2": "9000002", "FR": "8000000"}
SPLIT_UNITS = {
    "DE": {"rtw-1": "2001", "hlf-1": "2011"},
    "DE-2": {"rtw-2": "2002", "rtw-3": "2003"},
    "FR": {"vsav-1": "1001", "fpt-1": "1002"},
}
#: French alias ISSIs of the German units (rtw-2's names its gateway; rtw-3's does not).
SPLIT_ALIASES_FR = {"rtw-1": "8002001", "hlf-1": "8002011", "rtw-2": "8002002", "rtw-3": "8002003"}
#: German alias ISSIs of the French units (the same on both German networks).
SPLIT_ALIASES_DE = {"vsav-1": "9001001", "fpt-1": "9001002"}


def split_config_text(member: str, port: int) -> str:
    """The configuration of one gateway of the split federation (embedded bus).

    Args:
        member: ``DE``, ``DE-2`` or ``FR``.
        port: TCP port of its simulated TETRA radio's PEI.
    """
    french = member == "FR"
    tag = member.lower()
    adapter = f"tetra-{tag}"
    lines = [
        "[gateway]",
        f'name = "gw-{tag}"',
        f'nation = "{member[:2]}"',
        f'member = "{member}"',
        "[federation]",
        'transport = "local"',
        f"partners = {json.dumps(['DE', 'DE-2'] if french else ['FR'])}",
        f"siblings = {json.dumps([] if french else [m for m in ('DE', 'DE-2') if m != member])}",
        "[delivery]",
        "report_timeout = 10.0",
        "[[adapters]]",
        f'name = "{adapter}"',
        'type = "tetra"',
        f'organisation = "{"sdis67" if french else "bos"}"',
        f'url = "tcp://127.0.0.1:{port}"',
        f'radio_issi = "{SPLIT_RADIO[member]}"',
    ]
    for name, issi in SPLIT_UNITS[member].items():
        organisation = "sdis67" if french else "bos"
        lines += ["[[units]]", f'unit = "{member[:2].lower()}.{organisation}.{name}"']
        lines += [f'adapter = "{adapter}"', f'issi = "{issi}"']
    if french:
        for name, issi in SPLIT_ALIASES_FR.items():
            lines += ["[[aliases]]", f'issi = "{issi}"', f'unit = "de.bos.{name}"']
            lines += ['nation = "DE"', f'adapter = "{adapter}"']
            if name == "rtw-2":
                lines.append('member = "DE-2"')
    else:
        for name, issi in SPLIT_ALIASES_DE.items():
            lines += ["[[aliases]]", f'issi = "{issi}"', f'unit = "fr.sdis67.{name}"']
            lines += ['nation = "FR"', f'adapter = "{adapter}"']
    return "\n".join(lines) + "\n"
