from __future__ import annotations

from datetime import timedelta

from cryptography import x509

from certs import Credential, Federation, describe_certificate, describe_crl
from certs.testing import BadKind

from .conftest import NOW, load_cert


def test_describe_gateway_certificate(federation: Federation) -> None:
    cert = load_cert(federation.gateways["DE"].cert)
    text = describe_certificate(cert, NOW)
    fields = dict(line.split(":", 1) for line in text.splitlines())
    assert fields["subject"].strip() == "CN=gw-de,OU=gateway,O=EUCCS,C=DE"
    assert fields["identity"].strip() == (
        "euccs://DE/gateway/gw-de (country DE, role gateway, name gw-de)"
    )
    assert fields["issuer"].strip() == "CN=EUCCS CA DE national,O=EUCCS,C=DE"
    assert fields["serial"].strip() == f"0x{cert.serial_number:X}"
    assert "(30.0 days remaining)" in fields["validity"]
    assert fields["key"].strip() == "ECDSA P-256 (secp256r1)"
    assert fields["SANs"].strip() == "URI:euccs://DE/gateway/gw-de"
    assert fields["EKU"].strip() == "clientAuth, serverAuth"
    assert fields["CA"].strip() == "no"


def test_describe_expired_and_ca(federation: Federation) -> None:
    cert = load_cert(federation.consoles["FR"].cert)
    assert "EXPIRED 3 days ago" in describe_certificate(cert, NOW + timedelta(days=10))
    ca_text = describe_certificate(federation.ca("FR").certificate, NOW)
    assert "CA:       yes (pathlen 0)" in ca_text
    assert "identity: euccs://FR/ca/national" in ca_text


def test_describe_certificate_without_identity(
    federation: Federation, bad: dict[BadKind, Credential]
) -> None:
    credential = bad[BadKind.MISSING_IDENTITY]
    text = describe_certificate(load_cert(credential.cert), NOW)
    assert "identity: NONE (" in text


def test_describe_crl(federation: Federation, bad: dict[BadKind, Credential]) -> None:
    path = federation.ca_dirs["DE"] / "crl.pem"
    crl = x509.load_pem_x509_crl(path.read_bytes())
    text = describe_crl(crl, NOW)
    assert "CRL issuer:   CN=EUCCS CA DE national,O=EUCCS,C=DE" in text
    assert "CRL number:   2" in text
    assert "next update:  2030-03-08T12:00:00Z (7.0 days remaining)" in text
    assert "revoked:      1 certificate(s)" in text
    assert "EXPIRED" in describe_crl(crl, NOW + timedelta(days=9))
