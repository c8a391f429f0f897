"""The federation trust bundle: exactly one CA (and optionally its CRL) per country.

A bundle is pinned per country: :func:`certs.verify_peer` checks a peer certificate only
against the CA of the country named in the peer's identity, so one country's CA cannot mint
another country's identities.

On disk a bundle is either a directory::

    federation-bundle/
        manifest.json    {"format": "euccs-trust-bundle/1", "countries": {"DE": {...}}}
        DE-ca.pem        the CA certificate of DE
        DE-crl.pem       the CRL of DE (optional)
        cafile.pem       every CA concatenated (for tools that want one CA file)
        crls.pem         every CRL concatenated (a broker's crlfile; a broker that
                         checks CRLs refuses a country without one)

where each manifest entry names its files (``ca_file``, ``crl_file``) and pins the CA's
SHA-256 fingerprint (``ca_sha256``) and identity; or a single ``*.json`` file with the same
manifest carrying the PEM text inline (``ca_pem``, ``crl_pem``). :func:`load_bundle` reads
both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from certs._files import load_certificates, load_crl, write_public
from certs.errors import CertificateError, PeerRefused
from certs.identity import Role, identity_of, permitted_names

__all__ = ["BundleEntry", "TrustBundle", "load_bundle", "write_bundle"]

_FORMAT = "euccs-trust-bundle/1"
MANIFEST_FILE = "manifest.json"
CAFILE = "cafile.pem"
#: Every country's CRL, concatenated (Mosquitto's ``crlfile``).
CRLFILE = "crls.pem"


def fingerprint(cert: x509.Certificate) -> str:
    """Return the SHA-256 fingerprint of ``cert`` as lower-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class BundleEntry:
    """One country's trust anchor.

    Attributes:
        country: ISO 3166-1 alpha-2 code in upper case.
        ca: The country's CA certificate.
        crl: The country's latest CRL, if it published one.
    """

    country: str
    ca: x509.Certificate
    crl: x509.CertificateRevocationList | None = None

    def __post_init__(self) -> None:
        _check_ca(self.country, self.ca)
        if self.crl is not None:
            _check_crl(self.country, self.ca, self.crl)


def _check_ca(country: str, ca: x509.Certificate) -> None:
    subject = ca.subject.rfc4514_string()
    try:
        identity = identity_of(ca)
    except PeerRefused as exc:
        raise CertificateError(f"CA for {country}: {exc}") from None
    if identity.role is not Role.CA:
        raise CertificateError(
            f"CA for {country}: {subject} has identity {identity.uri}, not a CA identity"
        )
    if identity.country != country:
        raise CertificateError(
            f"CA for {country}: {subject} is the CA of {identity.country} ({identity.uri})"
        )
    countries = [a.value for a in ca.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)]
    if countries != [country]:
        raise CertificateError(f"CA for {country}: subject {subject} does not say C={country}")
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError(f"CA for {country}: {subject} is not a CA certificate")
    if ca.issuer != ca.subject:
        raise CertificateError(f"CA for {country}: {subject} is not self-signed")
    try:
        names = ca.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        names = None
    if names is None or not names.critical or names.value != permitted_names(country):
        # The broker keys its ACL on the subject and checks only the chain: a CA that may
        # name anything could mint a certificate the broker takes for another country's.
        raise CertificateError(
            f"CA for {country}: {subject} does not constrain its names (a critical Name "
            f"Constraints extension permitting only euccs://{country} URIs and subjects "
            f"under C={country}, O=EUCCS); mint it with this version's 'certs ca create'"
        )
    try:
        ca.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, ValueError, TypeError
        raise CertificateError(f"CA for {country}: {subject} has a bad self-signature") from None


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return -1


def _check_crl(country: str, ca: x509.Certificate, crl: x509.CertificateRevocationList) -> None:
    if crl.issuer != ca.subject:
        raise CertificateError(
            f"CRL for {country} is issued by {crl.issuer.rfc4514_string()}, "
            f"not by the CA {ca.subject.rfc4514_string()}"
        )
    if not crl.is_signature_valid(issuer_public_key(ca)):
        raise CertificateError(f"CRL for {country} is not signed by the CA of {country}")
    for partial in (x509.DeltaCRLIndicator, x509.IssuingDistributionPoint):
        try:
            crl.extensions.get_extension_for_class(partial)
        except x509.ExtensionNotFound:
            continue
        # A delta or partial CRL read as complete would say "nothing else is revoked".
        raise CertificateError(
            f"CRL for {country} is a delta or partial CRL ({partial.__name__}); "
            "give the country's complete CRL"
        )


def issuer_public_key(ca: x509.Certificate) -> CertificateIssuerPublicKeyTypes:
    """Return ``ca``'s public key as a key that can verify signatures.

    Raises:
        CertificateError: The key type cannot sign (X25519, X448).
    """
    key = ca.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise CertificateError(f"{ca.subject.rfc4514_string()} holds a key that cannot sign")


@dataclass(frozen=True)
class TrustBundle:
    """Trust anchors of the federation, one per country.

    Attributes:
        entries: Country code -> entry.
    """

    entries: Mapping[str, BundleEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, *entries: BundleEntry) -> TrustBundle:
        """Build a bundle from entries, refusing two entries for one country.

        Raises:
            CertificateError: A country appears twice.
        """
        result: dict[str, BundleEntry] = {}
        for entry in entries:
            if entry.country in result:
                raise CertificateError(
                    f"two CAs for {entry.country}: a bundle holds one CA per country"
                )
            result[entry.country] = entry
        return cls(result)

    def __contains__(self, country: object) -> bool:
        return country in self.entries

    def __iter__(self) -> Iterator[BundleEntry]:
        return iter(self.entries[c] for c in sorted(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def countries(self) -> list[str]:
        """The countries in the bundle, sorted."""
        return sorted(self.entries)

    def get(self, country: str) -> BundleEntry | None:
        """Return the entry of ``country``, if present."""
        return self.entries.get(country)

    def with_entry(self, entry: BundleEntry, *, replace_ca: bool = False) -> TrustBundle:
        """Return a bundle with ``entry`` added.

        Raises:
            CertificateError: The country already has a different CA and not ``replace_ca``.
        """
        old = self.entries.get(entry.country)
        if old is not None and old.ca != entry.ca and not replace_ca:
            raise CertificateError(
                f"the bundle already holds a different CA for {entry.country} "
                f"(SHA-256 {fingerprint(old.ca)}); one CA per country"
            )
        return TrustBundle({**self.entries, entry.country: entry})

    def with_crl(
        self, country: str, crl: x509.CertificateRevocationList, *, allow_older: bool = False
    ) -> TrustBundle:
        """Return a bundle with ``crl`` as the CRL of ``country``.

        A CRL older than the one held (a lower CRL number, or an earlier thisUpdate) is
        refused unless ``allow_older``: it could bring revoked certificates back.

        Raises:
            CertificateError: No CA for ``country``, the CRL is not signed by it, or it is
                older than the one held.
        """
        old = self.entries.get(country)
        if old is None:
            raise CertificateError(f"no CA for {country} in the bundle; add its CA first")
        held = old.crl
        if (
            held is not None
            and not allow_older
            and (_crl_number(crl) < _crl_number(held) or crl.last_update_utc < held.last_update_utc)
        ):
            raise CertificateError(
                f"the CRL for {country} (number {_crl_number(crl)}, issued "
                f"{crl.last_update_utc.isoformat()}) is older than the one in the bundle "
                f"(number {_crl_number(held)}, issued {held.last_update_utc.isoformat()}): "
                "it could bring revoked certificates back"
            )
        return TrustBundle({**self.entries, country: replace(old, crl=crl)})

    def ca_pem(self) -> str:
        """Every CA certificate as concatenated PEM."""
        return "".join(e.ca.public_bytes(serialization.Encoding.PEM).decode() for e in self)

    def crl_pem(self) -> str:
        """Every CRL as concatenated PEM (empty if none)."""
        return "".join(
            e.crl.public_bytes(serialization.Encoding.PEM).decode()
            for e in self
            if e.crl is not None
        )

    def artifacts(self) -> list[tuple[str, x509.Certificate | x509.CertificateRevocationList]]:
        """Every CA and CRL with a label, for :func:`certs.expiry_warnings`."""
        items: list[tuple[str, x509.Certificate | x509.CertificateRevocationList]] = []
        for entry in self:
            items.append((f"CA of {entry.country}", entry.ca))
            if entry.crl is not None:
                items.append((f"CRL of {entry.country}", entry.crl))
        return items


def write_bundle(bundle: TrustBundle, out: str | Path) -> list[Path]:
    """Write ``bundle`` to a directory, or to a single file if ``out`` ends in ``.json``.

    Returns:
        The files written.
    """
    path = Path(out)
    countries: dict[str, dict[str, Any]] = {}
    written: list[Path] = []
    single = path.suffix == ".json"
    for entry in bundle:
        ca_pem = entry.ca.public_bytes(serialization.Encoding.PEM)
        item: dict[str, Any] = {
            "identity": identity_of(entry.ca).uri,
            "subject": entry.ca.subject.rfc4514_string(),
            "ca_sha256": fingerprint(entry.ca),
        }
        crl_pem = (
            entry.crl.public_bytes(serialization.Encoding.PEM) if entry.crl is not None else None
        )
        if single:
            item["ca_pem"] = ca_pem.decode()
            item["crl_pem"] = crl_pem.decode() if crl_pem is not None else None
        else:
            ca_file = path / f"{entry.country}-ca.pem"
            write_public(ca_file, ca_pem)
            written.append(ca_file)
            item["ca_file"] = ca_file.name
            item["crl_file"] = None
            if crl_pem is not None:
                crl_file = path / f"{entry.country}-crl.pem"
                write_public(crl_file, crl_pem)
                written.append(crl_file)
                item["crl_file"] = crl_file.name
        countries[entry.country] = item
    manifest = json.dumps({"format": _FORMAT, "countries": countries}, indent=2) + "\n"
    if single:
        write_public(path, manifest.encode())
        return [path]
    write_public(path / CAFILE, bundle.ca_pem().encode())
    crls = [entry.crl for entry in bundle if entry.crl is not None]
    if crls:  # never removed once written: a broker whose crlfile vanished would not start
        pems = b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl in crls)
        write_public(path / CRLFILE, pems)
        written.append(path / CRLFILE)
    write_public(path / MANIFEST_FILE, manifest.encode())
    return [*written, path / CAFILE, path / MANIFEST_FILE]


def load_bundle(path: str | Path) -> TrustBundle:
    """Load a bundle directory (with ``manifest.json``) or a single-file JSON bundle.

    Every CA is checked: self-signed CA certificate of the country it is listed under
    (subject ``C=`` and ``euccs://<C>/ca/...`` identity), matching its pinned fingerprint;
    every CRL must be signed by its country's CA.

    Raises:
        CertificateError: Unreadable, malformed, or failing a check (the message says which).
    """
    source = Path(path)
    manifest_path = source / MANIFEST_FILE if source.is_dir() else source
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CertificateError(f"no trust bundle at {source} (no {manifest_path})") from None
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot read trust bundle {manifest_path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise CertificateError(f"{manifest_path} is not a {_FORMAT} manifest")
    countries = manifest.get("countries")
    if not isinstance(countries, dict):
        raise CertificateError(f"{manifest_path}: 'countries' must be an object")
    entries: list[BundleEntry] = []
    for country, item in sorted(countries.items()):
        if not isinstance(item, dict):
            raise CertificateError(f"{manifest_path}: entry {country!r} must be an object")
        ca = _load_part(source, item, "ca", country, manifest_path)
        if not isinstance(ca, x509.Certificate):  # pragma: no cover - _load_part guarantees
            raise CertificateError(f"{manifest_path}: CA of {country} is not a certificate")
        pinned = item.get("ca_sha256")
        if pinned is not None and pinned != fingerprint(ca):
            raise CertificateError(
                f"{manifest_path}: CA of {country} has SHA-256 {fingerprint(ca)}, "
                f"but the manifest pins {pinned}"
            )
        crl = _load_part(source, item, "crl", country, manifest_path)
        if crl is not None and not isinstance(crl, x509.CertificateRevocationList):
            raise CertificateError(f"{manifest_path}: CRL of {country} is not a CRL")
        entries.append(BundleEntry(country, ca, crl))
    return TrustBundle.of(*entries)


def _load_part(
    source: Path, item: dict[str, Any], part: str, country: str, manifest_path: Path
) -> x509.Certificate | x509.CertificateRevocationList | None:
    inline = item.get(f"{part}_pem")
    file_name = item.get(f"{part}_file")
    if inline is None and file_name is None:
        if part == "ca":
            raise CertificateError(f"{manifest_path}: no CA for {country} (ca_file or ca_pem)")
        return None
    try:
        if inline is not None:
            data = str(inline).encode()
            if part == "ca":
                return x509.load_pem_x509_certificate(data)
            return x509.load_pem_x509_crl(data)
    except ValueError:
        raise CertificateError(f"{manifest_path}: unreadable {part} PEM of {country}") from None
    if not source.is_dir():
        raise CertificateError(f"{manifest_path}: a single-file bundle must carry {part}_pem")
    file_path = source / str(file_name)
    if Path(str(file_name)).name != str(file_name):
        raise CertificateError(f"{manifest_path}: {part}_file of {country} must be a bare name")
    if part == "ca":
        return load_certificates(file_path)[0]
    return load_crl(file_path)
