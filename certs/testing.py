"""Deliberately bad credentials for the bad-credentials test matrix. TESTS ONLY.

:func:`mint_bad_credentials` mints one credential per :class:`BadKind` into a federation
made by :func:`certs.mint_federation` and, for the revoked one, republishes the CRL and
rewrites the bundle. :data:`EXPECTED_REFUSAL` says how :func:`certs.verify_peer` must refuse
each. :func:`unsafe_forge_credential` is the low-level forge (any country, no identity).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs._files import aware, private_key_pem, write_private, write_public
from certs.ca import (
    CertificateAuthority,
    build_leaf_certificate,
    credential_paths,
    generate_key,
)
from certs.errors import Refusal
from certs.federation import CA_NAME, Credential, Federation
from certs.identity import PeerIdentity, Role

__all__ = [
    "EXPECTED_REFUSAL",
    "BadKind",
    "mint_bad_credentials",
    "unsafe_forge_credential",
]


class BadKind(StrEnum):
    """The kinds of bad credentials :func:`mint_bad_credentials` mints."""

    EXPIRED = "expired"
    """Validity ended 10 days before ``now``."""
    NOT_YET_VALID = "not-yet-valid"
    """Validity starts 10 days after ``now``."""
    REVOKED = "revoked"
    """Properly issued, then revoked (on the CRL in the bundle)."""
    UNKNOWN_CA = "unknown-ca"
    """Issued by a rogue CA of the same country that is not in the bundle."""
    IMPOSTOR_CA = "impostor-ca"
    """Issued by a rogue CA with the very same name as the country's real CA."""
    UNKNOWN_COUNTRY = "unknown-country"
    """Identity of a country (ZZ) that has no CA in the bundle."""
    FOREIGN_IDENTITY = "foreign-identity"
    """Another country's identity, signed by this country's real CA (a forgery)."""
    FOREIGN_SUBJECT = "foreign-subject"
    """This country's identity URI, signed by its real CA, under the subject of another
    country's gateway (the name a broker's ACL is keyed on)."""
    MISSING_IDENTITY = "missing-identity"
    """Signed by the real CA, but without the ``euccs://`` URI SAN."""
    CONSOLE_AS_GATEWAY = "console-as-gateway"
    """A valid console certificate, presented where a gateway is required."""


#: How :func:`certs.verify_peer` (with ``roles=[Role.GATEWAY]``) must refuse each kind.
EXPECTED_REFUSAL: dict[BadKind, Refusal] = {
    BadKind.EXPIRED: Refusal.EXPIRED,
    BadKind.NOT_YET_VALID: Refusal.NOT_YET_VALID,
    BadKind.REVOKED: Refusal.REVOKED,
    BadKind.UNKNOWN_CA: Refusal.UNKNOWN_CA,
    BadKind.IMPOSTOR_CA: Refusal.BAD_SIGNATURE,
    BadKind.UNKNOWN_COUNTRY: Refusal.UNKNOWN_CA,
    BadKind.FOREIGN_IDENTITY: Refusal.WRONG_COUNTRY,
    BadKind.FOREIGN_SUBJECT: Refusal.SUBJECT_MISMATCH,
    BadKind.MISSING_IDENTITY: Refusal.MISSING_IDENTITY,
    BadKind.CONSOLE_AS_GATEWAY: Refusal.WRONG_ROLE,
}


def unsafe_forge_credential(
    ca: CertificateAuthority,
    identity: PeerIdentity,
    *,
    now: datetime,
    out: str | Path,
    days: int = 30,
    dns: Sequence[str] = (),
    omit_identity: bool = False,
    subject_of: PeerIdentity | None = None,
) -> Credential:
    """UNSAFE, tests only: sign ANY identity (even another country's) with ``ca``.

    Not recorded in the CA's index. Writes ``<out>.pem`` and ``<out>.key`` (0600).
    """
    now = aware(now)
    key = generate_key()
    cert = build_leaf_certificate(
        ca.certificate,
        ca.key,
        identity,
        key.public_key(),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=days),
        dns=dns,
        unsafe_any_country=True,
        unsafe_omit_identity=omit_identity,
        unsafe_subject_of=subject_of,
    )
    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = credential_paths(base)
    write_private(key_path, private_key_pem(key, None))
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return Credential(identity, cert_path, key_path, cert.serial_number)


def mint_bad_credentials(
    federation: Federation, *, now: datetime, country: str | None = None
) -> dict[BadKind, Credential]:
    """Mint one bad gateway credential of each :class:`BadKind` for ``country``.

    Writes under ``<federation>/bad/``; republishes the country's CRL and rewrites the
    federation's bundle (so the revoked credential is on the bundled CRL).

    Args:
        federation: A federation from :func:`certs.mint_federation`.
        now: The reference time (timezone-aware).
        country: The country whose gateway identities are forged (default: the first).
    """
    now = aware(now)
    cc = country or federation.countries[0]
    other = next((c for c in federation.countries if c != cc), "FR" if cc != "FR" else "DE")
    ca = federation.ca(cc)
    out = federation.directory / "bad"
    rogue_dir = federation.directory / "rogue"
    result: dict[BadKind, Credential] = {}

    def issue(
        kind: BadKind, not_before: datetime | None = None, not_after: datetime | None = None
    ) -> Credential:
        return Credential.of(
            ca.issue(
                Role.GATEWAY,
                f"gw-{kind.value}",
                now=now,
                out=out / kind.value,
                not_before=not_before,
                not_after=not_after,
            )
        )

    result[BadKind.EXPIRED] = issue(
        BadKind.EXPIRED, not_before=now - timedelta(days=40), not_after=now - timedelta(days=10)
    )
    result[BadKind.NOT_YET_VALID] = issue(
        BadKind.NOT_YET_VALID,
        not_before=now + timedelta(days=10),
        not_after=now + timedelta(days=40),
    )
    revoked = issue(BadKind.REVOKED)
    ca.revoke(revoked.serial, now=now)
    ca.publish_crl(now=now)
    result[BadKind.REVOKED] = revoked

    rogue = CertificateAuthority.create(
        rogue_dir / f"{cc}-rogue", country=cc, name="rogue", now=now
    )
    result[BadKind.UNKNOWN_CA] = Credential.of(
        rogue.issue(Role.GATEWAY, "gw-rogue", now=now, out=out / BadKind.UNKNOWN_CA.value)
    )
    impostor = CertificateAuthority.create(
        rogue_dir / f"{cc}-impostor", country=cc, name=CA_NAME, now=now
    )
    result[BadKind.IMPOSTOR_CA] = Credential.of(
        impostor.issue(Role.GATEWAY, "gw-impostor", now=now, out=out / BadKind.IMPOSTOR_CA.value)
    )
    stranger = CertificateAuthority.create(rogue_dir / "ZZ", country="ZZ", name=CA_NAME, now=now)
    result[BadKind.UNKNOWN_COUNTRY] = Credential.of(
        stranger.issue(Role.GATEWAY, "gw-zz", now=now, out=out / BadKind.UNKNOWN_COUNTRY.value)
    )
    result[BadKind.FOREIGN_IDENTITY] = unsafe_forge_credential(
        ca,
        PeerIdentity(other, Role.GATEWAY, f"gw-{other.lower()}"),
        now=now,
        out=out / BadKind.FOREIGN_IDENTITY.value,
    )
    result[BadKind.FOREIGN_SUBJECT] = unsafe_forge_credential(
        ca,
        PeerIdentity(cc, Role.GATEWAY, "gw-evil"),
        now=now,
        out=out / BadKind.FOREIGN_SUBJECT.value,
        subject_of=PeerIdentity(other, Role.GATEWAY, f"gw-{other.lower()}"),
    )
    result[BadKind.MISSING_IDENTITY] = unsafe_forge_credential(
        ca,
        PeerIdentity(cc, Role.GATEWAY, "gw-anonymous"),
        now=now,
        out=out / BadKind.MISSING_IDENTITY.value,
        omit_identity=True,
    )
    result[BadKind.CONSOLE_AS_GATEWAY] = federation.consoles[cc]
    federation.rebuild_bundle()
    return result
