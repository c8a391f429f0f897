"""Expiry warnings for certificates and CRLs (for the CLI and, later, the gateway).

Default thresholds (used when ``warn_days`` is not given):

* leaf certificates and CRLs: a quarter of their lifetime, at most 7 days (a 30-day gateway
  certificate warns 7 days ahead, a 7-day console certificate 1.75 days ahead, a CRL with a
  7-day nextUpdate 1.75 days ahead);
* CA certificates: a quarter of their lifetime, at most 90 days (a new CA must reach every
  partner's bundle before the old one expires).

Already expired items always produce a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509

from certs._files import aware, iso
from certs.errors import PeerRefused
from certs.identity import identity_of

__all__ = ["ExpiryWarning", "expiry_warnings"]

_LEAF_CAP = timedelta(days=7)
_CA_CAP = timedelta(days=90)

Item = x509.Certificate | x509.CertificateRevocationList


@dataclass(frozen=True)
class ExpiryWarning:
    """A certificate or CRL that expires soon (or has expired).

    Attributes:
        label: What it is (``"certificate euccs://DE/gateway/kehl"``, ``"CRL of DE"``).
        kind: ``"certificate"`` or ``"crl"``.
        expires_at: notAfter of a certificate, nextUpdate of a CRL.
        remaining: Time left (negative once expired).
        message: The human-readable warning.
    """

    label: str
    kind: Literal["certificate", "crl"]
    expires_at: datetime
    remaining: timedelta
    message: str

    @property
    def expired(self) -> bool:
        """True once the item is past its expiry."""
        return self.remaining <= timedelta(0)

    def __str__(self) -> str:
        return self.message


def _label(item: Item) -> str:
    if isinstance(item, x509.CertificateRevocationList):
        return f"CRL of {item.issuer.rfc4514_string()}"
    try:
        return f"certificate {identity_of(item).uri}"
    except PeerRefused:
        return f"certificate {item.subject.rfc4514_string()}"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _human(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def expiry_warnings(
    items: Iterable[Item | tuple[str, Item]],
    now: datetime,
    *,
    warn_days: float | None = None,
) -> list[ExpiryWarning]:
    """Return warnings for certificates and CRLs expiring within their threshold.

    Args:
        items: Certificates and CRLs, optionally as ``(label, item)`` pairs
            (:meth:`certs.TrustBundle.artifacts` returns such pairs).
        now: The current time (timezone-aware).
        warn_days: A fixed threshold for every item; default: see the module docstring.

    Returns:
        One warning per item within its threshold, soonest expiry first.
    """
    now = aware(now)
    warnings: list[ExpiryWarning] = []
    for element in items:
        label, item = element if isinstance(element, tuple) else (_label(element), element)
        kind: Literal["certificate", "crl"]
        if isinstance(item, x509.CertificateRevocationList):
            kind = "crl"
            start = item.last_update_utc
            end = item.next_update_utc
            if end is None:
                continue  # a CRL without nextUpdate never goes stale
            cap = _LEAF_CAP
        else:
            kind = "certificate"
            start, end = item.not_valid_before_utc, item.not_valid_after_utc
            cap = _CA_CAP if _is_ca(item) else _LEAF_CAP
        threshold = (
            timedelta(days=warn_days) if warn_days is not None else min(cap, (end - start) / 4)
        )
        remaining = end - now
        if remaining > threshold:
            continue
        verb = "next update was due" if kind == "crl" else "expired"
        if remaining <= timedelta(0):
            message = f"{label} {verb} on {iso(end)} ({_human(remaining)} ago)"
        elif kind == "crl":
            message = (
                f"{label} must be renewed: next update due {iso(end)} (in {_human(remaining)})"
            )
        else:
            message = f"{label} expires on {iso(end)} (in {_human(remaining)})"
        warnings.append(ExpiryWarning(label, kind, end, remaining, message))
    return sorted(warnings, key=lambda w: w.expires_at)
