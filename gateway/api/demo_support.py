"""API settings for the embedded demo: a throwaway PKI minted at start.

``euccs-gw demo --api`` (see ``docs/api.md``) calls :func:`demo_api_settings` with the demo's
state directory and gateways, then ``serve_api(gateway, settings[gateway.nation])`` for each.
The console credentials to import into a browser are in ``DemoApi.consoles``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import certs
from gateway.api.settings import ApiSettings

if TYPE_CHECKING:
    from gateway.node import Gateway

__all__ = ["DemoApi", "demo_api_settings"]


@dataclass(frozen=True)
class DemoApi:
    """What the demo needs to serve and use the APIs.

    Attributes:
        settings: Nation -> API settings of its gateway.
        consoles: Nation -> the console credential of that country (certificate and key).
        pki: The minted federation PKI.
    """

    settings: dict[str, ApiSettings]
    consoles: dict[str, certs.Credential]
    pki: certs.Federation


def demo_api_settings(
    directory: str | Path,
    gateways: Sequence[Gateway],
    *,
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    include_payload_in_audit: bool = True,
) -> DemoApi:
    """Mint a PKI for ``gateways`` into ``directory`` and return API settings for each.

    Args:
        directory: An empty or new directory (the demo's temporary state directory).
        gateways: The demo's gateways (one per nation).
        host: Listen address of every API.
        ports: Nation -> port (default 0: a free port each).
        include_payload_in_audit: The demo is an exercise: texts in the audit trail.
    """
    pki = certs.mint_federation(
        Path(directory) / "pki",
        [g.nation for g in gateways],
        now=datetime.now(UTC),
        gateway_names={g.nation: g.name.lower() for g in gateways},
    )
    settings = {
        g.nation: ApiSettings(
            host=host,
            port=(ports or {}).get(g.nation, 0),
            cert=pki.gateways[g.nation].cert,
            key=pki.gateways[g.nation].key,
            bundle=pki.bundle_dir,
            include_payload_in_audit=include_payload_in_audit,
        )
        for g in gateways
    }
    return DemoApi(settings=settings, consoles=dict(pki.consoles), pki=pki)
