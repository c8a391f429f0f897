from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import (
    CertificateAuthority,
    CertificateError,
    PeerIdentity,
    Role,
    build_leaf_certificate,
    identity_of,
)
from certs.ca import generate_key

from .conftest import NOW, load_cert


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path / "DE", country="DE", name="bka", now=NOW)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_create_ca_writes_a_self_signed_p256_ca(ca: CertificateAuthority) -> None:
    cert = load_cert(ca.directory / "ca.pem")
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
    assert identity_of(cert) == PeerIdentity("DE", Role.CA, "bka")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    names = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert names.critical
    assert names.value.permitted_subtrees == [
        x509.UniformResourceIdentifier("DE"),
        x509.DirectoryName(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EUCCS"),
                ]
            )
        ),
    ]
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)
    assert _mode(ca.directory / "ca.key") == 0o600
    assert ca.issued() == []


def test_create_refuses_an_existing_ca_and_bad_names(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match="already holds a CA"):
        CertificateAuthority.create(ca.directory, country="DE", name="bka", now=NOW)
    with pytest.raises(CertificateError, match="not a country code"):
        CertificateAuthority.create(ca.directory.parent / "x", country="de", name="a", now=NOW)
    with pytest.raises(CertificateError, match="not a valid name"):
        CertificateAuthority.create(ca.directory.parent / "y", country="DE", name="A B", now=NOW)


def test_load_round_trip_and_encrypted_key(tmp_path: Path) -> None:
    created = CertificateAuthority.create(
        tmp_path / "FR", country="FR", name="anfsi", now=NOW, passphrase=b"s3cret"
    )
    key_text = (tmp_path / "FR" / "ca.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key_text
    with pytest.raises(CertificateError, match="is encrypted"):
        CertificateAuthority.load(tmp_path / "FR")
    with pytest.raises(CertificateError, match="wrong passphrase"):
        CertificateAuthority.load(tmp_path / "FR", passphrase=b"nope")
    loaded = CertificateAuthority.load(tmp_path / "FR", passphrase=b"s3cret")
    assert loaded.certificate == created.certificate
    assert loaded.identity.uri == "euccs://FR/ca/anfsi"


def test_load_refuses_a_directory_without_ca(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="not a CA directory"):
        CertificateAuthority.load(tmp_path)


@pytest.mark.parametrize(
    ("role", "days", "usages"),
    [
        (Role.GATEWAY, 30, {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}),
        (Role.ADAPTER, 30, {ExtendedKeyUsageOID.CLIENT_AUTH}),
        (Role.CONSOLE, 7, {ExtendedKeyUsageOID.CLIENT_AUTH}),
    ],
)
def test_issue_per_role(
    ca: CertificateAuthority,
    tmp_path: Path,
    role: Role,
    days: int,
    usages: set[x509.ObjectIdentifier],
) -> None:
    issued = ca.issue(role, "kehl", now=NOW, out=tmp_path / "out" / f"{role.value}-kehl")
    cert = load_cert(issued.cert_path)
    assert issued.cert_path.name == f"{role.value}-kehl.pem"
    assert identity_of(cert) == PeerIdentity("DE", role, "kehl")
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == usages
    assert cert.not_valid_after_utc - NOW == timedelta(days=days)
    assert NOW - cert.not_valid_before_utc == timedelta(minutes=5)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.certificate)
    assert _mode(issued.key_path) == 0o600
    assert b"BEGIN PRIVATE KEY" in issued.key_path.read_bytes()
    records = ca.issued()
    assert [r["identity"] for r in records] == [f"euccs://DE/{role.value}/kehl"]
    assert int(records[0]["serial"], 16) == cert.serial_number
    assert (ca.directory / "issued" / f"{cert.serial_number:X}.pem").read_bytes() == (
        issued.cert_path.read_bytes()
    )


def test_issue_with_dns_crl_url_and_days(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue(
        "gateway",
        "kehl",
        now=NOW,
        out=tmp_path / "gw",
        days=3,
        dns=["gw.kehl.example"],
        crl_url="https://pki.example/de.crl",
    )
    cert = issued.certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw.kehl.example"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["euccs://DE/gateway/kehl"]
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name == [x509.UniformResourceIdentifier("https://pki.example/de.crl")]
    assert issued.not_after == NOW + timedelta(days=3)


def test_issue_refuses_to_overwrite_and_bad_input(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.issue("gateway", "kehl", now=NOW, out=tmp_path / "gw")
    with pytest.raises(CertificateError, match="already exists"):
        ca.issue("gateway", "kehl", now=NOW, out=tmp_path / "gw")
    replaced = ca.issue("gateway", "kehl", now=NOW, out=tmp_path / "gw", overwrite=True)
    assert _mode(replaced.key_path) == 0o600
    ca_key = (ca.directory / "ca.key").read_bytes()
    with pytest.raises(CertificateError, match="names the CA's own files"):
        ca.issue("gateway", "kehl", now=NOW, out=ca.directory / "ca", overwrite=True)
    assert (ca.directory / "ca.key").read_bytes() == ca_key  # the CA is intact
    with pytest.raises(CertificateError, match="cannot issue role 'ca'"):
        ca.issue("ca", "sub", now=NOW, out=tmp_path / "sub")
    with pytest.raises(CertificateError, match=r"CA .* expires on"):
        ca.issue("gateway", "long", now=NOW, out=tmp_path / "long", days=5000)
    with pytest.raises(ValueError, match="timezone-aware"):
        ca.issue("gateway", "naive", now=NOW.replace(tzinfo=None), out=tmp_path / "naive")


def test_key_file_is_created_0600_even_with_permissive_umask(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        issued = ca.issue("adapter", "tetra-1", now=NOW, out=tmp_path / "adapter")
    finally:
        os.umask(old)
    assert _mode(issued.key_path) == 0o600
    assert _mode(issued.cert_path) == 0o644


def test_issuer_refuses_another_countrys_identity(ca: CertificateAuthority) -> None:
    key = generate_key()
    identity = PeerIdentity("FR", Role.GATEWAY, "strasbourg")
    with pytest.raises(CertificateError, match="the CA of DE issues identities of DE only"):
        build_leaf_certificate(
            ca.certificate,
            ca.key,
            identity,
            key.public_key(),
            not_before=NOW,
            not_after=NOW + timedelta(days=1),
        )
    forged = build_leaf_certificate(
        ca.certificate,
        ca.key,
        identity,
        key.public_key(),
        not_before=NOW,
        not_after=NOW + timedelta(days=1),
        unsafe_any_country=True,
    )
    assert identity_of(forged) == identity


def test_revoke_and_publish_crl(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue("gateway", "kehl", now=NOW, out=tmp_path / "gw")
    other = ca.issue("console", "lz-1", now=NOW, out=tmp_path / "console")
    record = ca.revoke(issued.serial, now=NOW, reason=x509.ReasonFlags.key_compromise)
    assert record.identity == "euccs://DE/gateway/kehl"
    revoked_cert = ca.revoke_certificate(other.certificate, now=NOW + timedelta(hours=1))
    assert revoked_cert.serial == other.serial
    path = ca.publish_crl(now=NOW, days=3)
    crl = x509.load_pem_x509_crl(path.read_bytes())
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc == NOW + timedelta(days=3)
    entry = crl.get_revoked_certificate_by_serial_number(issued.serial)
    assert entry is not None and entry.revocation_date_utc == NOW
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(other.serial) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    ca.publish_crl(now=NOW)
    assert ca.current_crl() is not None
    number = ca.current_crl().extensions.get_extension_for_class(x509.CRLNumber)  # type: ignore[union-attr]
    assert number.value.crl_number == 2


def test_revoke_refusals(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue("gateway", "kehl", now=NOW, out=tmp_path / "gw")
    with pytest.raises(CertificateError, match="was not issued by the CA"):
        ca.revoke(12345, now=NOW)
    ca.revoke(issued.serial, now=NOW)
    with pytest.raises(CertificateError, match="already revoked since"):
        ca.revoke(issued.serial, now=NOW)
    stranger = CertificateAuthority.create(tmp_path / "X", country="DE", name="x", now=NOW)
    foreign = stranger.issue("gateway", "y", now=NOW, out=tmp_path / "y")
    with pytest.raises(CertificateError, match="was not issued by the CA euccs://DE/ca/bka"):
        ca.revoke_certificate(foreign.certificate, now=NOW)
