from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import (
    BundleEntry,
    CertificateAuthority,
    CertificateError,
    Federation,
    TrustBundle,
    load_bundle,
    write_bundle,
)

from .conftest import NOW


def test_directory_round_trip(federation: Federation, tmp_path: Path) -> None:
    bundle = federation.bundle()
    assert bundle.countries == ["DE", "FR"]
    for country in ("DE", "FR"):
        ca = federation.ca(country)
        entry = bundle.entries[country]
        assert entry.ca == ca.certificate
        assert entry.crl is not None and entry.crl == ca.current_crl()
    written = write_bundle(bundle, tmp_path / "copy")
    names = sorted(p.name for p in written)
    assert names == [
        "DE-ca.pem",
        "DE-crl.pem",
        "FR-ca.pem",
        "FR-crl.pem",
        "cafile.pem",
        "crls.pem",
        "manifest.json",
    ]
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert manifest["countries"]["FR"]["identity"] == "euccs://FR/ca/national"
    assert load_bundle(tmp_path / "copy") == bundle
    assert (tmp_path / "copy" / "cafile.pem").read_text().count("BEGIN CERTIFICATE") == 2
    pems = (tmp_path / "copy" / "crls.pem").read_bytes().split(b"-----BEGIN X509 CRL-----")[1:]
    crls = [x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + pem) for pem in pems]
    assert crls == [bundle.entries["DE"].crl, bundle.entries["FR"].crl]  # a broker's crlfile
    # A country without a CRL: the others' CRLs stay, so a broker using the file still
    # starts (and refuses only that country, as its gateways warn).
    without = TrustBundle.of(bundle.entries["DE"], replace(bundle.entries["FR"], crl=None))
    write_bundle(without, tmp_path / "copy")
    remaining = (tmp_path / "copy" / "crls.pem").read_bytes()
    assert remaining.count(b"BEGIN X509 CRL") == 1


def test_single_json_file_round_trip(federation: Federation, tmp_path: Path) -> None:
    bundle = federation.bundle()
    [path] = write_bundle(bundle, tmp_path / "federation.json")
    data = json.loads(path.read_text())
    assert data["countries"]["DE"]["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert load_bundle(path) == bundle


def test_pinned_fingerprint_detects_a_swapped_ca(federation: Federation, tmp_path: Path) -> None:
    rogue = CertificateAuthority.create(tmp_path / "rogue", country="DE", name="national", now=NOW)
    (federation.bundle_dir / "DE-ca.pem").write_bytes((rogue.directory / "ca.pem").read_bytes())
    with pytest.raises(CertificateError, match=r"CA of DE has SHA-256 .* but the manifest pins"):
        load_bundle(federation.bundle_dir)


def test_entry_checks(federation: Federation) -> None:
    de = federation.ca("DE")
    fr = federation.ca("FR")
    with pytest.raises(CertificateError, match="is the CA of DE"):
        BundleEntry("FR", de.certificate)
    with pytest.raises(CertificateError, match=r"CRL for DE is issued by .*FR"):
        BundleEntry("DE", de.certificate, fr.current_crl())
    leaf = federation.gateways["DE"].cert
    from .conftest import load_cert

    with pytest.raises(CertificateError, match="not a CA identity"):
        BundleEntry("DE", load_cert(leaf))


def test_one_ca_per_country(federation: Federation, tmp_path: Path) -> None:
    other = CertificateAuthority.create(tmp_path / "DE2", country="DE", name="second", now=NOW)
    bundle = federation.bundle()
    with pytest.raises(CertificateError, match="two CAs for DE"):
        TrustBundle.of(bundle.entries["DE"], BundleEntry("DE", other.certificate))
    with pytest.raises(CertificateError, match="already holds a different CA for DE"):
        bundle.with_entry(BundleEntry("DE", other.certificate))
    replaced = bundle.with_entry(BundleEntry("DE", other.certificate), replace_ca=True)
    assert replaced.entries["DE"].ca == other.certificate
    assert replaced.entries["DE"].crl is None
    other.publish_crl(now=NOW)
    crl = other.current_crl()
    assert crl is not None
    with pytest.raises(CertificateError, match="no CA for IT"):
        bundle.with_crl("IT", crl)


def test_missing_and_malformed_bundles(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="no trust bundle at"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(CertificateError, match="is not a euccs-trust-bundle/1 manifest"):
        load_bundle(tmp_path / "bad.json")


def test_a_delta_crl_is_not_taken_for_a_complete_one(federation: Federation) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca = federation.ca("DE")
    delta = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(7), critical=False)
        .add_extension(x509.DeltaCRLIndicator(6), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="delta or partial CRL"):
        BundleEntry("DE", ca.certificate, delta)
