"""Federation identities carried in certificates: ``euccs://<COUNTRY>/<role>/<name>``.

The identity lives in a URI subjectAltName. ``COUNTRY`` is an ISO 3166-1 alpha-2 code in
upper case, ``role`` one of :class:`Role`, ``name`` a lower-case token
(``[a-z0-9][a-z0-9._-]*``, at most 63 characters). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from certs.errors import PeerRefused, Refusal

__all__ = [
    "LEAF_ROLES",
    "SCHEME",
    "PeerIdentity",
    "Role",
    "identity_of",
    "identity_uris",
    "parse_identity_uri",
    "parse_serial",
    "permitted_names",
    "serial_text",
    "validate_country",
    "validate_name",
]

#: URI scheme of federation identities.
SCHEME = "euccs"

_COUNTRY = re.compile(r"[A-Z]{2}")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_URI = re.compile(r"euccs://([^/]*)/([^/]*)/([^/]*)")


class Role(StrEnum):
    """What a certificate's holder is in the federation."""

    GATEWAY = "gateway"
    """A national gateway: TLS client and server (MQTT federation, HTTPS API)."""
    ADAPTER = "adapter"
    """An adapter process connecting to its gateway: TLS client."""
    CONSOLE = "console"
    """A control-room console: TLS client."""
    CA = "ca"
    """A national CA (only in CA certificates, never in a leaf)."""


#: Roles a CA issues leaf certificates for.
LEAF_ROLES: frozenset[Role] = frozenset({Role.GATEWAY, Role.ADAPTER, Role.CONSOLE})


def validate_country(country: str) -> str:
    """Return ``country`` if it is an upper-case ISO 3166-1 alpha-2 code.

    Raises:
        ValueError: It is not.
    """
    if not _COUNTRY.fullmatch(country):
        raise ValueError(f"{country!r} is not a country code (two upper-case letters, e.g. DE)")
    return country


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid identity name (``[a-z0-9][a-z0-9._-]*``, <= 63).

    Raises:
        ValueError: It is not.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid name (lower-case letters, digits, '.', '_', '-'; "
            "starting with a letter or digit; at most 63 characters)"
        )
    return name


@dataclass(frozen=True)
class PeerIdentity:
    """A federation identity: who holds a certificate.

    Attributes:
        country: ISO 3166-1 alpha-2 code in upper case (``"DE"``).
        role: What the holder is.
        name: The holder's name within its country and role (``"kehl"``).
    """

    country: str
    role: Role
    name: str

    def __post_init__(self) -> None:
        validate_country(self.country)
        validate_name(self.name)
        object.__setattr__(self, "role", Role(self.role))

    @property
    def uri(self) -> str:
        """The identity as carried in the URI SAN: ``euccs://DE/gateway/kehl``."""
        return f"{SCHEME}://{self.country}/{self.role.value}/{self.name}"

    def __str__(self) -> str:
        return self.uri


def parse_identity_uri(uri: str) -> PeerIdentity:
    """Parse ``euccs://<COUNTRY>/<role>/<name>``.

    Raises:
        ValueError: The URI is not a well-formed federation identity.
    """
    match = _URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not a federation identity (euccs://<COUNTRY>/<role>/<name>)")
    country, role, name = match.groups()
    roles = {r.value for r in Role}
    if role not in roles:
        raise ValueError(
            f"{uri!r} is not a valid federation identity: role {role!r} is not one of "
            f"{', '.join(sorted(roles))}"
        )
    try:
        return PeerIdentity(country, Role(role), name)
    except ValueError as exc:
        raise ValueError(f"{uri!r} is not a valid federation identity: {exc}") from None


def identity_uris(cert: x509.Certificate) -> list[str]:
    """Return every ``euccs://`` URI in ``cert``'s subjectAltName (possibly none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return [u for u in uris if u.lower().startswith(f"{SCHEME}:")]


def identity_of(cert: x509.Certificate) -> PeerIdentity:
    """Return the federation identity in ``cert``'s URI SAN.

    Raises:
        PeerRefused: (:attr:`Refusal.MISSING_IDENTITY`) no ``euccs://`` URI SAN, more than
            one, or a malformed one.
    """
    uris = identity_uris(cert)
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    if not uris:
        raise PeerRefused(
            f"certificate {subject} (serial {serial_text(cert.serial_number)}) carries no "
            f"federation identity: no {SCHEME}:// URI subjectAltName",
            reason=Refusal.MISSING_IDENTITY,
        )
    if len(uris) > 1:
        raise PeerRefused(
            f"certificate {subject} carries {len(uris)} federation identities "
            f"({', '.join(uris)}); exactly one is allowed",
            reason=Refusal.MISSING_IDENTITY,
        )
    try:
        return parse_identity_uri(uris[0])
    except ValueError as exc:
        raise PeerRefused(
            f"certificate {subject}: {exc}", reason=Refusal.MISSING_IDENTITY
        ) from None


def serial_text(serial: int) -> str:
    """Format a serial number the way the tooling prints and accepts it: ``0x1A2B...``."""
    return f"0x{serial:X}"


def parse_serial(text: str) -> int:
    """Parse a serial number: ``0x`` hex, colon-separated hex (``1a:2b``) or decimal.

    Raises:
        ValueError: Not a serial number.
    """
    cleaned = text.strip()
    try:
        if cleaned.lower().startswith("0x"):
            return int(cleaned[2:], 16)
        if ":" in cleaned:
            return int(cleaned.replace(":", ""), 16)
        return int(cleaned, 10)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a serial number (0x-prefixed hex, colon-separated hex or decimal)"
        ) from None


def permitted_names(country: str) -> x509.NameConstraints:
    """What a country's CA may name: ``euccs://<country>/...`` URIs, ``C=<country>, O=EUCCS``."""
    return x509.NameConstraints(
        permitted_subtrees=[
            x509.UniformResourceIdentifier(country),
            x509.DirectoryName(
                x509.Name(
                    [
                        x509.NameAttribute(x509.NameOID.COUNTRY_NAME, country),
                        x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "EUCCS"),
                    ]
                )
            ),
        ],
        excluded_subtrees=None,
    )
