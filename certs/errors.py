"""Errors of the PKI tooling.

::

    GatewayError                      (protocols.errors)
    └── CertificateError              bad input, CA state, issuance refused (CLI exit 2)
        └── PeerRefused               a peer's certificate is refused (CLI exit 1)

:class:`PeerRefused` carries a :class:`Refusal` code so callers can react to the kind of
problem (log it, count it, answer with a specific negative report) without parsing text.
"""

from __future__ import annotations

from enum import StrEnum

from protocols.errors import GatewayError

__all__ = ["CertificateError", "PeerRefused", "Refusal"]


class Refusal(StrEnum):
    """Why :func:`certs.verify_peer` refused a certificate."""

    MALFORMED = "malformed"
    """The input is not a certificate (or an empty chain)."""
    MISSING_IDENTITY = "missing-identity"
    """No (or more than one) ``euccs://`` URI SAN, or a malformed one."""
    WRONG_ROLE = "wrong-role"
    """The identity's role is not one the caller accepts (or the leaf is a CA)."""
    UNKNOWN_CA = "unknown-ca"
    """The identity's country is not in the bundle, or the issuer is not that country's CA."""
    WRONG_COUNTRY = "wrong-country"
    """Issued by the CA of another country than the one named in the identity."""
    BAD_SIGNATURE = "bad-signature"
    """The certificate (or the CRL) is not signed by the country's CA key."""
    NOT_YET_VALID = "not-yet-valid"
    """``now`` is before notBefore (of the leaf or of the CA)."""
    EXPIRED = "expired"
    """``now`` is after notAfter (of the leaf or of the CA)."""
    WRONG_USAGE = "wrong-usage"
    """The extended key usage does not allow the requested purpose."""
    REVOKED = "revoked"
    """The serial number is on the country's CRL."""
    CRL_EXPIRED = "crl-expired"
    """The country's CRL is past its nextUpdate: revocation status unknown, fail closed."""
    SUBJECT_MISMATCH = "subject-mismatch"
    """The subject is not ``C=<country>, O=EUCCS, OU=<role>, CN=<name>`` of the identity URI."""


class CertificateError(GatewayError):
    """A PKI operation failed: unreadable file, bad CA directory, refused issuance."""


class PeerRefused(CertificateError):
    """A peer's certificate is refused.

    Args:
        message: What is wrong, naming the certificate, the country and the dates.
        reason: The kind of problem.
    """

    def __init__(self, message: str, *, reason: Refusal) -> None:
        super().__init__(message)
        self.reason = reason
