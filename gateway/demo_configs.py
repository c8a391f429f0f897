"""Configurations of the embedded demo: Germany (Kehl) and France (Strasbourg) across the Rhine.

Two national gateways, each in front of a simulated TETRA network. Units and
aliases mirror each other: a German RTW reaches a French VSAV by sending to the
French unit's alias ISSI in the German numbering plan, and vice versa. The
French status codebook below is an example written for the demo (the German
one is the built-in BOS codebook).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEMO_UNITS", "DemoUnit", "demo_config_text"]


@dataclass(frozen=True, kw_only=True)
class DemoUnit:
    """A field unit of the demo."""

    nation: str
    unit: str
    issi: str
    label: str
    alias_abroad: str  # its alias ISSI in the partner's numbering plan


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

_ORG = {"DE": ("bos", "de-bos"), "FR": ("sdis67", "fr-sdis67")}
_NAME = {"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg"}


def demo_config_text(nation: str, *, partner: str, pei_port: int, keepalive: float = 5.0) -> str:
    """Return the TOML configuration of one demo gateway."""
    organisation, codebook = _ORG[nation]
    lines = [
        "[gateway]",
        f'name = "{_NAME[nation]}"',
        f'nation = "{nation}"',
        "",
        "[federation]",
        'transport = "local"',
        f'partners = ["{partner}"]',
        "",
        "[delivery]",
        "report_timeout = 10.0",
        "",
        "[[adapters]]",
        f'name = "tetra-{nation.lower()}"',
        'type = "tetra"',
        f'organisation = "{organisation}"',
        f'url = "tcp://127.0.0.1:{pei_port}"',
        f'radio_issi = "{GATEWAY_RADIO[nation]}"',
        f'codebook = "{codebook}"',
        f"keepalive_interval = {keepalive}",
    ]
    adapter = f"tetra-{nation.lower()}"
    for unit in DEMO_UNITS:
        if unit.nation == nation:
            lines += [
                "",
                "[[units]]",
                f'unit = "{unit.unit}"',
                f'adapter = "{adapter}"',
                f'issi = "{unit.issi}"',
                f'label = "{unit.label}"',
            ]
        else:
            lines += [
                "",
                "[[aliases]]",
                f'issi = "{unit.alias_abroad}"',
                f'unit = "{unit.unit}"',
                f'nation = "{unit.nation}"',
                f'adapter = "{adapter}"',
                f'label = "{unit.label}"',
            ]
    text = "\n".join(lines) + "\n"
    if nation == "FR":
        text += _FR_CODEBOOK
    return text
