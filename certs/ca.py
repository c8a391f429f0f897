"""National certificate authorities: create, issue, revoke, publish CRLs.

A CA lives in a directory::

    pki/DE/
        ca.pem        the CA certificate (self-signed, ECDSA P-256)
        ca.key        its private key, mode 0600 (unencrypted PEM unless a passphrase is given)
        index.json    CA state: issued serials and identities, revocations, CRL number
        crl.pem       the latest CRL (written by revoke and by publish_crl)
        issued/       a copy of every issued certificate, named <serial>.pem

Every function that depends on time takes ``now`` (timezone-aware); nothing here reads the
clock. Leaf certificates are ECDSA P-256, carry their identity in a URI SAN
(``euccs://DE/gateway/kehl``) and are backdated by :data:`CLOCK_SKEW` against clock skew
between countries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs._files import (
    aware,
    iso,
    load_certificates,
    load_crl,
    load_private_key,
    private_key_pem,
    write_private,
    write_public,
)
from certs.errors import CertificateError, PeerRefused
from certs.identity import (
    LEAF_ROLES,
    PeerIdentity,
    Role,
    identity_of,
    permitted_names,
    serial_text,
    validate_country,
    validate_name,
)

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CLOCK_SKEW",
    "CRL_FILE",
    "DEFAULT_CA_DAYS",
    "DEFAULT_CRL_DAYS",
    "DEFAULT_LEAF_DAYS",
    "INDEX_FILE",
    "CertificateAuthority",
    "IssuedCredential",
    "Revocation",
    "build_ca_certificate",
    "build_crl",
    "build_leaf_certificate",
    "credential_paths",
    "generate_key",
]

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
INDEX_FILE = "index.json"
CRL_FILE = "crl.pem"
ISSUED_DIR = "issued"
_INDEX_FORMAT = "euccs-ca-index/1"

#: Default lifetime of a national CA certificate (5 years).
DEFAULT_CA_DAYS = 1825
#: Default lifetimes of leaf certificates, by role (short: revocation is the slow path).
DEFAULT_LEAF_DAYS: dict[Role, int] = {Role.GATEWAY: 30, Role.ADAPTER: 30, Role.CONSOLE: 7}
#: Default CRL validity (nextUpdate - thisUpdate).
DEFAULT_CRL_DAYS = 7
#: notBefore is set this far before ``now`` so that a peer whose clock is slightly behind
#: accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)

_EKU: dict[Role, list[x509.ObjectIdentifier]] = {
    Role.GATEWAY: [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
    Role.ADAPTER: [ExtendedKeyUsageOID.CLIENT_AUTH],
    Role.CONSOLE: [ExtendedKeyUsageOID.CLIENT_AUTH],
}


def generate_key() -> ec.EllipticCurvePrivateKey:
    """Generate a fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _ca_subject(country: str, name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EUCCS"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"EUCCS CA {country} {name}"),
        ]
    )


def build_ca_certificate(
    key: ec.EllipticCurvePrivateKey,
    *,
    country: str,
    name: str,
    now: datetime,
    days: int = DEFAULT_CA_DAYS,
    name_constraints: bool = True,
) -> x509.Certificate:
    """Build a self-signed national CA certificate (low level: no files).

    basicConstraints CA:true pathlen 0 (critical), keyUsage keyCertSign + cRLSign
    (critical), subject ``C=<country>``, URI SAN ``euccs://<country>/ca/<name>``. With
    ``name_constraints`` (the default) a critical Name Constraints extension permits only
    URI SANs whose host is the country code and subjects under ``C=<country>, O=EUCCS``,
    so TLS stacks that enforce name constraints (OpenSSL, hence Mosquitto) already refuse
    another country's identity minted by this CA, in the URI and in the subject the
    broker's ACL is keyed on; :func:`certs.verify_peer` enforces the same rules itself.
    A federation bundle takes only CAs with these constraints.

    Args:
        key: The CA's private key.
        country: ISO 3166-1 alpha-2 code in upper case.
        name: The CA's name (``bka``).
        now: Issuance time (timezone-aware).
        days: Lifetime in days.
        name_constraints: Add the Name Constraints extension.
    """
    now = aware(now)
    validate_country(country)
    validate_name(name)
    subject = _ca_subject(country, name)
    identity = PeerIdentity(country, Role.CA, name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if name_constraints:
        builder = builder.add_extension(permitted_names(country), critical=True)
    return builder.sign(key, hashes.SHA256())


def build_leaf_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    identity: PeerIdentity,
    public_key: ec.EllipticCurvePublicKey,
    *,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
    dns: Sequence[str] = (),
    crl_url: str | None = None,
    unsafe_any_country: bool = False,
    unsafe_omit_identity: bool = False,
    unsafe_subject_of: PeerIdentity | None = None,
) -> x509.Certificate:
    """Build and sign a gateway, adapter or console certificate (low level: no files).

    Normal issuance goes through :meth:`CertificateAuthority.issue`, which keeps the index.
    The ``unsafe_*`` flags exist only to mint deliberately bad credentials for tests
    (see :mod:`certs.testing`); production code must never set them.

    Args:
        ca_cert: The issuing CA certificate.
        ca_key: Its private key.
        identity: The holder's identity (role gateway, adapter or console).
        public_key: The holder's public key (ECDSA P-256).
        not_before: Start of validity.
        not_after: End of validity.
        serial: Serial number; random (159 bits) when omitted.
        dns: Optional DNS names for the subjectAltName.
        crl_url: Optional CRL distribution point URL.
        unsafe_any_country: UNSAFE, tests only: allow an identity of another country than
            the CA's (a forgery :func:`certs.verify_peer` must refuse).
        unsafe_omit_identity: UNSAFE, tests only: leave the ``euccs://`` URI SAN out.
        unsafe_subject_of: UNSAFE, tests only: the subject of this other identity (a
            forgery aimed at a broker ACL keyed on the subject).

    Raises:
        CertificateError: The identity's country is not the CA's, or the role is not a
            leaf role.
    """
    ca_country = _country_of(ca_cert)
    if identity.role not in LEAF_ROLES:
        raise CertificateError(
            f"cannot issue a leaf certificate for role {identity.role.value!r}; "
            f"roles: {', '.join(sorted(r.value for r in LEAF_ROLES))}"
        )
    if identity.country != ca_country and not unsafe_any_country:
        raise CertificateError(
            f"refusing to issue {identity.uri}: the CA of {ca_country} issues identities of "
            f"{ca_country} only"
        )
    general_names: list[x509.GeneralName] = []
    if not unsafe_omit_identity:
        general_names.append(x509.UniformResourceIdentifier(identity.uri))
    general_names.extend(x509.DNSName(name) for name in dns)
    named = unsafe_subject_of or identity
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, named.country),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EUCCS"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, named.role.value),
                    x509.NameAttribute(NameOID.COMMON_NAME, named.name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(aware(not_before))
        .not_valid_after(aware(not_after))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(_EKU[identity.role]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class Revocation:
    """One revoked serial number.

    Attributes:
        serial: The certificate's serial number.
        revoked_at: When it was revoked.
        reason: The CRL reason, if given.
        identity: The revoked certificate's identity URI, if the CA knows it.
    """

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None
    identity: str | None = None


def build_crl(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    revocations: Iterable[Revocation],
    *,
    now: datetime,
    number: int,
    days: int = DEFAULT_CRL_DAYS,
) -> x509.CertificateRevocationList:
    """Build and sign a CRL (low level: no files).

    Args:
        ca_cert: The issuing CA certificate.
        ca_key: Its private key.
        revocations: Revoked serials.
        now: thisUpdate.
        number: The CRL number (monotonic per CA).
        days: nextUpdate is ``now + days``.
    """
    now = aware(now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for entry in revocations:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(aware(entry.revoked_at))
        )
        if entry.reason is not None and entry.reason is not x509.ReasonFlags.unspecified:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(ca_key, hashes.SHA256())


def _country_of(ca_cert: x509.Certificate) -> str:
    values = ca_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    if len(values) != 1 or not isinstance(values[0].value, str):
        raise CertificateError(
            f"CA certificate {ca_cert.subject.rfc4514_string()} has no single country (C=)"
        )
    return values[0].value


@dataclass(frozen=True)
class IssuedCredential:
    """A certificate issued by :meth:`CertificateAuthority.issue` and where it was written.

    Attributes:
        identity: The holder's identity.
        serial: The certificate's serial number.
        cert_path: The certificate (PEM).
        key_path: The private key (PEM, mode 0600).
        certificate: The certificate itself.
    """

    identity: PeerIdentity
    serial: int
    cert_path: Path
    key_path: Path
    certificate: x509.Certificate

    @property
    def not_after(self) -> datetime:
        """End of validity (UTC)."""
        return self.certificate.not_valid_after_utc


class CertificateAuthority:
    """A national CA backed by a directory (see the module docstring for its layout).

    Use :meth:`create` or :meth:`load`; the constructor takes already loaded parts.

    Args:
        directory: The CA directory.
        certificate: The CA certificate.
        key: The CA private key.
    """

    def __init__(
        self, directory: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> None:
        self.directory = directory
        self.certificate = certificate
        self.key = key
        self.identity = identity_of(certificate)
        self.country = _country_of(certificate)
        if self.identity.role is not Role.CA or self.identity.country != self.country:
            raise CertificateError(
                f"{directory / CA_CERT_FILE}: identity {self.identity.uri} is not a CA "
                f"identity of {self.country}"
            )
        self.name = self.identity.name

    # -- creation and loading -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: str | Path,
        *,
        country: str,
        name: str,
        now: datetime,
        days: int = DEFAULT_CA_DAYS,
        passphrase: bytes | None = None,
        name_constraints: bool = True,
    ) -> CertificateAuthority:
        """Create a new national CA in ``directory`` (created if missing).

        Args:
            directory: Where to write ``ca.pem``, ``ca.key`` and ``index.json``.
            country: ISO 3166-1 alpha-2 code in upper case.
            name: The CA's name (``bka``), part of its identity ``euccs://DE/ca/bka``.
            now: Issuance time.
            days: Lifetime in days (default 5 years).
            passphrase: Encrypt the key with it (default: unencrypted PEM, mode 0600).
            name_constraints: Add the Name Constraints extension (see
                :func:`build_ca_certificate`).

        Raises:
            CertificateError: The directory already holds a CA, or a bad country/name.
        """
        path = Path(directory)
        try:
            validate_country(country)
            validate_name(name)
        except ValueError as exc:
            raise CertificateError(str(exc)) from None
        if (path / CA_CERT_FILE).exists() or (path / CA_KEY_FILE).exists():
            raise CertificateError(f"{path} already holds a CA ({CA_CERT_FILE}/{CA_KEY_FILE})")
        path.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        cert = build_ca_certificate(
            key, country=country, name=name, now=now, days=days, name_constraints=name_constraints
        )
        write_private(path / CA_KEY_FILE, private_key_pem(key, passphrase))
        write_public(path / CA_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
        ca = cls(path, cert, key)
        ca._save_index(
            {
                "format": _INDEX_FORMAT,
                "country": country,
                "name": name,
                "crl_number": 0,
                "issued": [],
                "revoked": [],
            }
        )
        return ca

    @classmethod
    def load(
        cls, directory: str | Path, *, passphrase: bytes | None = None
    ) -> CertificateAuthority:
        """Load the CA in ``directory``.

        Raises:
            CertificateError: Missing files, a key that does not match the certificate, a
                wrong passphrase.
        """
        path = Path(directory)
        if not (path / CA_CERT_FILE).exists():
            raise CertificateError(f"{path} is not a CA directory: no {CA_CERT_FILE}")
        certs = load_certificates(path / CA_CERT_FILE)
        key = load_private_key(path / CA_KEY_FILE, passphrase)
        cert = certs[0]
        if key.public_key().public_numbers() != _ec_public(cert).public_numbers():
            raise CertificateError(f"{path / CA_KEY_FILE} does not match {path / CA_CERT_FILE}")
        try:
            return cls(path, cert, key)
        except PeerRefused as exc:
            raise CertificateError(f"{path / CA_CERT_FILE}: {exc}") from None

    # -- index ------------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        """The CA's ``index.json``."""
        return self.directory / INDEX_FILE

    @property
    def crl_path(self) -> Path:
        """Where the latest CRL is written (``crl.pem``)."""
        return self.directory / CRL_FILE

    def _load_index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CertificateError(f"{self.directory} has no {INDEX_FILE}") from None
        except (OSError, ValueError) as exc:
            raise CertificateError(f"cannot read {self.index_path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != _INDEX_FORMAT:
            raise CertificateError(f"{self.index_path} is not a {_INDEX_FORMAT} index")
        return data

    def _save_index(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        write_public(self.index_path, text.encode())

    def issued(self) -> list[dict[str, str]]:
        """Return the index records of issued certificates (serial, identity, validity)."""
        return list(self._load_index()["issued"])

    def revocations(self) -> list[Revocation]:
        """Return the revocations recorded in the index."""
        return [
            Revocation(
                serial=int(item["serial"], 16),
                revoked_at=datetime.fromisoformat(item["revoked_at"]),
                reason=x509.ReasonFlags(item["reason"]) if item.get("reason") else None,
                identity=item.get("identity"),
            )
            for item in self._load_index()["revoked"]
        ]

    # -- operations -------------------------------------------------------------------------

    def issue(
        self,
        role: Role | str,
        name: str,
        *,
        now: datetime,
        out: str | Path,
        days: int | None = None,
        dns: Sequence[str] = (),
        crl_url: str | None = None,
        key_passphrase: bytes | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        overwrite: bool = False,
    ) -> IssuedCredential:
        """Issue a certificate for ``euccs://<CA country>/<role>/<name>`` with a new key.

        Writes ``<out>.pem`` (certificate) and ``<out>.key`` (private key, mode 0600) and
        records the serial in the index. The identity's country is always the CA's.

        Args:
            role: gateway, adapter or console.
            name: The holder's name.
            now: Issuance time.
            out: Path prefix of the two files (``pki/DE/gateway-kehl``).
            days: Lifetime; default :data:`DEFAULT_LEAF_DAYS` of the role.
            dns: Optional DNS SANs.
            crl_url: Optional CRL distribution point.
            key_passphrase: Encrypt the key with it (default: unencrypted, mode 0600).
            not_before: Override the start of validity (default ``now - CLOCK_SKEW``).
            not_after: Override the end of validity (default ``now + days``).
            overwrite: Replace existing files at ``out``.

        Raises:
            CertificateError: Bad role or name, a lifetime beyond the CA's, existing files.
        """
        now = aware(now)
        try:
            identity = PeerIdentity(self.country, Role(role), name)
        except ValueError as exc:
            raise CertificateError(str(exc)) from None
        if identity.role not in LEAF_ROLES:
            raise CertificateError(
                f"cannot issue role {identity.role.value!r}: use gateway, adapter or console"
            )
        lifetime = days if days is not None else DEFAULT_LEAF_DAYS[identity.role]
        if lifetime <= 0:
            raise CertificateError(f"--days must be positive, not {lifetime}")
        start = aware(not_before) if not_before is not None else now - CLOCK_SKEW
        end = aware(not_after) if not_after is not None else now + timedelta(days=lifetime)
        if end > self.certificate.not_valid_after_utc:
            raise CertificateError(
                f"refusing to issue {identity.uri} until {iso(end)}: the CA {self.identity.uri} "
                f"expires on {iso(self.certificate.not_valid_after_utc)}"
            )
        index = self._load_index()
        used = {int(item["serial"], 16) for item in index["issued"]}
        serial = x509.random_serial_number()
        while serial in used:  # pragma: no cover - 2**-159
            serial = x509.random_serial_number()
        key = generate_key()
        cert = build_leaf_certificate(
            self.certificate,
            self.key,
            identity,
            key.public_key(),
            not_before=start,
            not_after=end,
            serial=serial,
            dns=dns,
            crl_url=crl_url,
        )
        cert_path, key_path = credential_paths(out)
        own = {
            (self.directory / name).resolve()
            for name in (CA_CERT_FILE, CA_KEY_FILE, INDEX_FILE, CRL_FILE)
        }
        if {cert_path.resolve(), key_path.resolve()} & own:
            # --force would otherwise delete the CA's key and write a leaf over it.
            raise CertificateError(
                f"{out} names the CA's own files in {self.directory}; choose another path"
            )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if cert_path.exists() and not overwrite:
            raise CertificateError(f"{cert_path} already exists (use --force to replace it)")
        key_path.parent.mkdir(parents=True, exist_ok=True)
        write_private(key_path, private_key_pem(key, key_passphrase), overwrite=overwrite)
        write_public(cert_path, pem)
        write_public(self.directory / ISSUED_DIR / f"{serial:X}.pem", pem)
        index["issued"].append(
            {
                "serial": f"{serial:X}",
                "identity": identity.uri,
                "not_before": iso(start),
                "not_after": iso(end),
                "issued_at": iso(now),
                "file": str(cert_path),
            }
        )
        self._save_index(index)
        return IssuedCredential(identity, serial, cert_path, key_path, cert)

    def revoke(
        self, serial: int, *, now: datetime, reason: x509.ReasonFlags | None = None
    ) -> Revocation:
        """Record ``serial`` as revoked at ``now``; call :meth:`publish_crl` to publish it.

        Raises:
            CertificateError: The serial was not issued by this CA, or is already revoked.
        """
        now = aware(now)
        index = self._load_index()
        issued = {int(item["serial"], 16): item for item in index["issued"]}
        if serial not in issued:
            raise CertificateError(
                f"serial {serial_text(serial)} was not issued by the CA {self.identity.uri} "
                f"(not in {self.index_path})"
            )
        for item in index["revoked"]:
            if int(item["serial"], 16) == serial:
                raise CertificateError(
                    f"serial {serial_text(serial)} ({item.get('identity')}) is already revoked "
                    f"since {item['revoked_at']}"
                )
        record = Revocation(serial, now, reason, issued[serial]["identity"])
        index["revoked"].append(
            {
                "serial": f"{serial:X}",
                "revoked_at": iso(now),
                "reason": reason.value if reason is not None else None,
                "identity": record.identity,
            }
        )
        self._save_index(index)
        return record

    def revoke_certificate(
        self, cert: x509.Certificate, *, now: datetime, reason: x509.ReasonFlags | None = None
    ) -> Revocation:
        """Revoke ``cert``, which must have been issued by this CA.

        Raises:
            CertificateError: Issued by another CA, unknown, or already revoked.
        """
        try:
            cert.verify_directly_issued_by(self.certificate)
        except Exception:  # ValueError, TypeError or InvalidSignature
            raise CertificateError(
                f"certificate {cert.subject.rfc4514_string()} (serial "
                f"{serial_text(cert.serial_number)}) was not issued by the CA {self.identity.uri}"
            ) from None
        return self.revoke(cert.serial_number, now=now, reason=reason)

    def publish_crl(self, *, now: datetime, days: int = DEFAULT_CRL_DAYS) -> Path:
        """Sign a CRL of every revocation, valid for ``days``; write it to ``crl.pem``.

        Returns:
            The path of the CRL.
        """
        if days <= 0:
            raise CertificateError(f"CRL validity must be positive, not {days} days")
        index = self._load_index()
        number = int(index.get("crl_number", 0)) + 1
        crl = build_crl(
            self.certificate, self.key, self.revocations(), now=now, number=number, days=days
        )
        write_public(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
        index["crl_number"] = number
        self._save_index(index)
        return self.crl_path

    def current_crl(self) -> x509.CertificateRevocationList | None:
        """Return the latest published CRL, or None if none was published."""
        return load_crl(self.crl_path) if self.crl_path.exists() else None


def credential_paths(out: str | Path) -> tuple[Path, Path]:
    """Return the certificate and key paths for an output prefix: ``<out>.pem``, ``<out>.key``."""
    base = Path(out)
    if base.suffix in {".pem", ".key", ".crt"}:
        base = base.with_suffix("")
    return base.with_name(base.name + ".pem"), base.with_name(base.name + ".key")


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError(f"{cert.subject.rfc4514_string()} does not hold an ECDSA key")
    return key
