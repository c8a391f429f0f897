"""One-call PKI for tests and the demo.

:func:`mint_federation` creates a CA, a gateway and a console per country, CRLs and the
trust bundle.

Layout under ``directory``::

    <directory>/
        DE/ca/                     the CA directory of DE (see certs.ca)
        DE/gateway-gw-de.pem/.key  the gateway credential of DE
        DE/console-console-1.pem/.key
        FR/...
        bundle/                    the trust bundle (see certs.bundle)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from certs.bundle import BundleEntry, TrustBundle, load_bundle, write_bundle
from certs.ca import DEFAULT_CRL_DAYS, CertificateAuthority, IssuedCredential
from certs.identity import PeerIdentity, Role

__all__ = ["Credential", "Federation", "mint_federation"]

#: Name of each country's CA in a minted federation (``euccs://DE/ca/national``).
CA_NAME = "national"
#: Name of each country's console in a minted federation.
CONSOLE_NAME = "console-1"


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key on disk.

    Attributes:
        identity: The holder's identity.
        cert: Certificate file (PEM).
        key: Private key file (PEM, mode 0600).
        serial: The certificate's serial number.
    """

    identity: PeerIdentity
    cert: Path
    key: Path
    serial: int

    @classmethod
    def of(cls, issued: IssuedCredential) -> Credential:
        """Convert the result of :meth:`CertificateAuthority.issue`."""
        return cls(issued.identity, issued.cert_path, issued.key_path, issued.serial)


@dataclass(frozen=True)
class Federation:
    """What :func:`mint_federation` wrote.

    Attributes:
        directory: The root directory.
        ca_dirs: Country -> CA directory.
        gateways: Country -> gateway credential.
        consoles: Country -> console credential.
        bundle_dir: The trust bundle directory.
    """

    directory: Path
    ca_dirs: Mapping[str, Path]
    gateways: Mapping[str, Credential]
    consoles: Mapping[str, Credential]
    bundle_dir: Path

    @property
    def countries(self) -> list[str]:
        """The countries of the federation, sorted."""
        return sorted(self.ca_dirs)

    def ca(self, country: str) -> CertificateAuthority:
        """Load the CA of ``country``."""
        return CertificateAuthority.load(self.ca_dirs[country])

    def bundle(self) -> TrustBundle:
        """Load the trust bundle."""
        return load_bundle(self.bundle_dir)

    def rebuild_bundle(self) -> TrustBundle:
        """Rewrite the bundle from the CA directories (e.g. after a revocation)."""
        bundle = TrustBundle.of(
            *(
                BundleEntry(country, ca.certificate, ca.current_crl())
                for country in self.countries
                for ca in [self.ca(country)]
            )
        )
        write_bundle(bundle, self.bundle_dir)
        return bundle


def mint_federation(
    directory: str | Path,
    countries: Sequence[str] = ("DE", "FR"),
    *,
    now: datetime,
    gateway_names: Mapping[str, str] | None = None,
    crl_days: int = DEFAULT_CRL_DAYS,
) -> Federation:
    """Create a CA, a gateway and a console credential, and a CRL per country; and the bundle.

    Args:
        directory: Where to write everything (created if missing; must not hold a
            federation already).
        countries: Country codes.
        now: Issuance time (timezone-aware).
        gateway_names: Country -> gateway name (default ``gw-<country in lower case>``).
        crl_days: Validity of the CRLs.

    Returns:
        The paths written.
    """
    root = Path(directory)
    names = dict(gateway_names or {})
    ca_dirs: dict[str, Path] = {}
    gateways: dict[str, Credential] = {}
    consoles: dict[str, Credential] = {}
    for country in countries:
        base = root / country
        ca = CertificateAuthority.create(base / "ca", country=country, name=CA_NAME, now=now)
        gateway = names.get(country, f"gw-{country.lower()}")
        gateways[country] = Credential.of(
            ca.issue(Role.GATEWAY, gateway, now=now, out=base / f"gateway-{gateway}")
        )
        consoles[country] = Credential.of(
            ca.issue(Role.CONSOLE, CONSOLE_NAME, now=now, out=base / f"console-{CONSOLE_NAME}")
        )
        ca.publish_crl(now=now, days=crl_days)
        ca_dirs[country] = ca.directory
    federation = Federation(root, ca_dirs, gateways, consoles, root / "bundle")
    federation.rebuild_bundle()
    return federation
