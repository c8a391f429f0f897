"""Verify a peer's certificate against the CA of the country its identity names.

Unlike TLS chain validation, which accepts a certificate from any trust anchor, this check
is pinned: a certificate claiming ``euccs://FR/...`` is verified against FR's CA only, so
DE's CA cannot mint French identities. Apply it to the peer certificate after every TLS
handshake (:func:`certs.tls.peer_identity` does that for an SSL object).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs._files import aware, iso
from certs.bundle import TrustBundle, issuer_public_key
from certs.errors import CertificateError, PeerRefused, Refusal
from certs.identity import PeerIdentity, Role, identity_of, serial_text

__all__ = ["Purpose", "verify_peer"]

#: What the peer authenticates as: the TLS client or the TLS server of a connection.
Purpose = Literal["client", "server"]

_EKU_OF_PURPOSE = {
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
}


def _leaf(chain_or_cert: x509.Certificate | Sequence[x509.Certificate] | bytes) -> x509.Certificate:
    if isinstance(chain_or_cert, x509.Certificate):
        return chain_or_cert
    if isinstance(chain_or_cert, bytes):
        try:
            if b"-----BEGIN" in chain_or_cert:
                return x509.load_pem_x509_certificates(chain_or_cert)[0]
            return x509.load_der_x509_certificate(chain_or_cert)
        except ValueError:
            raise PeerRefused(
                "the peer's credential is not a readable X.509 certificate",
                reason=Refusal.MALFORMED,
            ) from None
    if not chain_or_cert:
        raise PeerRefused("the peer presented no certificate", reason=Refusal.MALFORMED)
    return chain_or_cert[0]


def _days(delta_seconds: float) -> str:
    days = abs(delta_seconds) / 86400
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


def verify_peer(
    chain_or_cert: x509.Certificate | Sequence[x509.Certificate] | bytes,
    bundle: TrustBundle,
    now: datetime,
    *,
    roles: Collection[Role | str] | None = None,
    purpose: Purpose | None = None,
) -> PeerIdentity:
    """Verify a peer certificate, pinned to its country's CA; return its identity.

    Checks, in order: one well-formed ``euccs://`` URI SAN; the role (not a CA, and in
    ``roles`` if given); the identity's country has a CA in the bundle; the certificate is
    issued (issuer name and signature) by exactly that CA; ``now`` is within the validity of
    the certificate and of the CA; the extended key usage allows ``purpose`` if given;
    the country's CRL, when the bundle has one, is current (an expired CRL refuses: fail
    closed) and does not list the serial. Without a CRL in the bundle no revocation check
    is possible and the certificate is accepted.

    Args:
        chain_or_cert: The peer's certificate, its chain (leaf first; other elements are
            ignored: the CA comes from the bundle), or PEM/DER bytes.
        bundle: The federation trust bundle.
        now: The time to verify at (timezone-aware).
        roles: Accepted roles (default: any leaf role).
        purpose: ``"client"`` or ``"server"``: require clientAuth / serverAuth usage.

    Returns:
        The peer's identity.

    Raises:
        PeerRefused: The certificate is refused; ``reason`` says why, the message says
            what exactly (serials, dates, countries).
    """
    now = aware(now)
    cert = _leaf(chain_or_cert)
    serial = serial_text(cert.serial_number)
    identity = identity_of(cert)
    who = f"{identity.uri} (serial {serial})"

    if identity.role is Role.CA or _is_ca(cert):
        raise PeerRefused(f"{who} is a CA certificate, not a peer", reason=Refusal.WRONG_ROLE)
    if roles is not None:
        accepted = {Role(r) for r in roles}
        if identity.role not in accepted:
            raise PeerRefused(
                f"{who} has role {identity.role.value!r}; accepted here: "
                f"{', '.join(sorted(r.value for r in accepted))}",
                reason=Refusal.WRONG_ROLE,
            )

    expected = (identity.country, "EUCCS", identity.role.value, identity.name)
    if _subject_names(cert) != expected:
        # The broker's ACL is keyed on the subject: it must name what the URI names.
        raise PeerRefused(
            f"{who}: its subject {cert.subject.rfc4514_string()} does not name "
            f"C={expected[0]}, O=EUCCS, OU={expected[2]}, CN={expected[3]}",
            reason=Refusal.SUBJECT_MISMATCH,
        )

    entry = bundle.get(identity.country)
    if entry is None:
        raise PeerRefused(
            f"{who}: unknown CA: the trust bundle has no CA for {identity.country} "
            f"(countries: {', '.join(bundle.countries) or 'none'})",
            reason=Refusal.UNKNOWN_CA,
        )
    ca = entry.ca
    issuer = cert.issuer.rfc4514_string()
    if cert.issuer != ca.subject:
        for other in bundle:
            if other.country != identity.country and other.ca.subject == cert.issuer:
                raise PeerRefused(
                    f"{who}: wrong country for its CA: issued by the CA of {other.country} "
                    f"({issuer}); only the CA of {identity.country} may issue "
                    f"{identity.country} identities",
                    reason=Refusal.WRONG_COUNTRY,
                )
        raise PeerRefused(
            f"{who}: unknown CA: issued by {issuer}, which is not the CA of "
            f"{identity.country} in the trust bundle ({ca.subject.rfc4514_string()})",
            reason=Refusal.UNKNOWN_CA,
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        raise PeerRefused(
            f"{who}: bad signature: not signed by the key of the CA of {identity.country} "
            f"({issuer}); forged, or issued by another CA with the same name",
            reason=Refusal.BAD_SIGNATURE,
        ) from None

    for label, item in ((who, cert), (f"{who}: its CA {ca.subject.rfc4514_string()}", ca)):
        start, end = item.not_valid_before_utc, item.not_valid_after_utc
        if now < start:
            raise PeerRefused(
                f"{label} is not yet valid: valid from {iso(start)}, "
                f"{_days((start - now).total_seconds())} after {iso(now)}",
                reason=Refusal.NOT_YET_VALID,
            )
        if now > end:
            raise PeerRefused(
                f"{label} expired on {iso(end)} ({_days((now - end).total_seconds())} ago)",
                reason=Refusal.EXPIRED,
            )

    if purpose is not None:
        _check_purpose(cert, who, purpose)

    crl = entry.crl
    if crl is not None:
        if crl.issuer != ca.subject or not crl.is_signature_valid(issuer_public_key(ca)):
            raise PeerRefused(
                f"{who}: the CRL of {identity.country} in the bundle is not signed by its CA",
                reason=Refusal.BAD_SIGNATURE,
            )
        next_update = crl.next_update_utc
        if next_update is None or now > next_update:
            when = iso(next_update) if next_update is not None else "(no nextUpdate)"
            raise PeerRefused(
                f"{who}: the CRL of {identity.country} expired on {when}; revocation status "
                "unknown, refusing (fail closed). Fetch a current CRL into the bundle.",
                reason=Refusal.CRL_EXPIRED,
            )
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None:
            raise PeerRefused(
                f"{who} is revoked since {iso(revoked.revocation_date_utc)}{_reason(revoked)} "
                f"(CRL of {identity.country}, issued {iso(crl.last_update_utc)})",
                reason=Refusal.REVOKED,
            )
    return identity


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_purpose(cert: x509.Certificate, who: str, purpose: Purpose) -> None:
    oid = _EKU_OF_PURPOSE.get(purpose)
    if oid is None:
        raise CertificateError(f"purpose must be 'client' or 'server', not {purpose!r}")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU: any usage (RFC 5280 4.2.1.12)
    if oid not in usages:
        raise PeerRefused(
            f"{who} may not act as a TLS {purpose}: its extended key usage lacks {purpose}Auth",
            reason=Refusal.WRONG_USAGE,
        )


def _reason(revoked: x509.RevokedCertificate) -> str:
    try:
        reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return ""
    return f", reason {reason.name}"


_SUBJECT_OIDS = (
    NameOID.COUNTRY_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COMMON_NAME,
)


def _subject_names(cert: x509.Certificate) -> tuple[str, ...] | None:
    """(C, O, OU, CN) of the subject, each exactly once; None for any other subject."""
    names = [cert.subject.get_attributes_for_oid(oid) for oid in _SUBJECT_OIDS]
    if any(len(values) != 1 for values in names) or len(cert.subject) != len(names):
        return None
    return tuple(str(values[0].value) for values in names)
