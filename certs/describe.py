"""Human-readable descriptions of certificates and CRLs (``euccs-gw certs inspect``)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs._files import aware, iso
from certs.errors import PeerRefused
from certs.identity import identity_of, serial_text

__all__ = ["describe_certificate", "describe_crl"]

_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


def _key_type(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)} ({key.curve.name})"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def _validity(start: datetime, end: datetime, now: datetime) -> str:
    if now < start:
        return f"{iso(start)} to {iso(end)} (NOT YET VALID: starts in {(start - now).days} days)"
    if now > end:
        return f"{iso(start)} to {iso(end)} (EXPIRED {(now - end).days} days ago)"
    remaining = (end - now).total_seconds() / 86400
    return f"{iso(start)} to {iso(end)} ({remaining:.1f} days remaining)"


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def describe_certificate(cert: x509.Certificate, now: datetime) -> str:
    """Describe ``cert``: subject, identity, issuer, serial, validity, key, SANs, EKU.

    Args:
        cert: The certificate.
        now: Reference time for "days remaining" (timezone-aware).

    Returns:
        Several ``field: value`` lines (no trailing newline).
    """
    now = aware(now)
    try:
        identity = identity_of(cert)
        who = (
            f"{identity.uri} (country {identity.country}, role {identity.role.value}, "
            f"name {identity.name})"
        )
    except PeerRefused as exc:
        who = f"NONE ({exc})"
    lines = [
        ("subject", cert.subject.rfc4514_string()),
        ("identity", who),
        ("issuer", cert.issuer.rfc4514_string()),
        ("serial", serial_text(cert.serial_number)),
        ("validity", _validity(cert.not_valid_before_utc, cert.not_valid_after_utc, now)),
        ("key", _key_type(cert)),
    ]
    san = _ext(cert, x509.SubjectAlternativeName)
    if isinstance(san, x509.SubjectAlternativeName):
        names = [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        names += [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
        lines.append(("SANs", ", ".join(names) or "(none readable)"))
    else:
        lines.append(("SANs", "(none)"))
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if isinstance(eku, x509.ExtendedKeyUsage):
        lines.append(("EKU", ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)))
    else:
        lines.append(("EKU", "(none: any usage)"))
    constraints = _ext(cert, x509.BasicConstraints)
    is_ca = isinstance(constraints, x509.BasicConstraints) and constraints.ca
    if is_ca and isinstance(constraints, x509.BasicConstraints):
        lines.append(("CA", f"yes (pathlen {constraints.path_length})"))
    else:
        lines.append(("CA", "no"))
    points = _ext(cert, x509.CRLDistributionPoints)
    if isinstance(points, x509.CRLDistributionPoints):
        urls = [
            name.value
            for point in points
            for name in point.full_name or []
            if isinstance(name, x509.UniformResourceIdentifier)
        ]
        lines.append(("CRL", ", ".join(urls)))
    lines.append(("SHA-256", cert.fingerprint(hashes.SHA256()).hex(":")))
    width = max(len(k) for k, _ in lines) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in lines)


def describe_crl(crl: x509.CertificateRevocationList, now: datetime) -> str:
    """Describe ``crl``: issuer, number, this/next update, revoked serials.

    Args:
        crl: The CRL.
        now: Reference time for staleness (timezone-aware).

    Returns:
        Several lines (no trailing newline).
    """
    now = aware(now)
    try:
        number = str(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        number = "(none)"
    next_update = crl.next_update_utc
    if next_update is None:
        status = "(no next update)"
    elif now > next_update:
        status = f"{iso(next_update)} (EXPIRED {(now - next_update).days} days ago)"
    else:
        remaining = (next_update - now).total_seconds() / 86400
        status = f"{iso(next_update)} ({remaining:.1f} days remaining)"
    lines = [
        f"CRL issuer:   {crl.issuer.rfc4514_string()}",
        f"CRL number:   {number}",
        f"this update:  {iso(crl.last_update_utc)}",
        f"next update:  {status}",
        f"revoked:      {len(crl)} certificate(s)",
    ]
    lines += [f"  {serial_text(r.serial_number)} since {iso(r.revocation_date_utc)}" for r in crl]
    return "\n".join(lines)
