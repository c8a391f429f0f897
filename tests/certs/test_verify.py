from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from certs import (
    BundleEntry,
    Credential,
    Federation,
    PeerIdentity,
    PeerRefused,
    Refusal,
    Role,
    TrustBundle,
    verify_peer,
)
from certs.ca import build_crl
from certs.testing import EXPECTED_REFUSAL, BadKind

from .conftest import NOW, load_cert


def test_valid_gateways_verify_to_their_identity(federation: Federation) -> None:
    bundle = federation.bundle()
    for country, credential in federation.gateways.items():
        identity = verify_peer(
            load_cert(credential.cert), bundle, NOW, roles=[Role.GATEWAY], purpose="server"
        )
        assert identity == PeerIdentity(country, Role.GATEWAY, f"gw-{country.lower()}")


def test_accepts_pem_der_and_chain_inputs(federation: Federation) -> None:
    bundle = federation.bundle()
    cert = load_cert(federation.consoles["FR"].cert)
    expected = PeerIdentity("FR", Role.CONSOLE, "console-1")
    assert verify_peer(cert.public_bytes(serialization.Encoding.DER), bundle, NOW) == expected
    assert verify_peer(federation.consoles["FR"].cert.read_bytes(), bundle, NOW) == expected
    assert verify_peer([cert, bundle.entries["FR"].ca], bundle, NOW) == expected
    with pytest.raises(PeerRefused, match="no certificate") as info:
        verify_peer([], bundle, NOW)
    assert info.value.reason is Refusal.MALFORMED
    with pytest.raises(PeerRefused, match=r"not a readable X\.509") as info:
        verify_peer(b"garbage", bundle, NOW)
    assert info.value.reason is Refusal.MALFORMED


@pytest.mark.parametrize("kind", list(BadKind), ids=lambda k: k.value)
def test_bad_credentials_matrix(
    federation: Federation, bad: dict[BadKind, Credential], kind: BadKind
) -> None:
    bundle = federation.bundle()
    with pytest.raises(PeerRefused) as info:
        verify_peer(load_cert(bad[kind].cert), bundle, NOW, roles=[Role.GATEWAY])
    assert info.value.reason is EXPECTED_REFUSAL[kind], str(info.value)


def test_refusal_messages_name_the_problem(
    federation: Federation, bad: dict[BadKind, Credential]
) -> None:
    bundle = federation.bundle()

    def message(kind: BadKind) -> str:
        with pytest.raises(PeerRefused) as info:
            verify_peer(load_cert(bad[kind].cert), bundle, NOW, roles=[Role.GATEWAY])
        return str(info.value)

    expired = message(BadKind.EXPIRED)
    assert "expired on 2030-02-19T12:00:00Z (10 days ago)" in expired
    assert "not yet valid: valid from 2030-03-11T12:00:00Z" in message(BadKind.NOT_YET_VALID)
    revoked = message(BadKind.REVOKED)
    assert f"0x{bad[BadKind.REVOKED].serial:X}" in revoked
    assert "revoked since 2030-03-01T12:00:00Z" in revoked
    foreign = message(BadKind.FOREIGN_IDENTITY)
    assert "euccs://FR/gateway/gw-fr" in foreign and "issued by the CA of DE" in foreign
    assert "only the CA of FR may issue FR identities" in foreign
    assert "no CA for ZZ" in message(BadKind.UNKNOWN_COUNTRY)
    assert "CN=EUCCS CA DE rogue" in message(BadKind.UNKNOWN_CA)
    assert "bad signature" in message(BadKind.IMPOSTOR_CA)
    assert "no euccs:// URI subjectAltName" in message(BadKind.MISSING_IDENTITY)
    assert "role 'console'; accepted here: gateway" in message(BadKind.CONSOLE_AS_GATEWAY)


def test_not_yet_valid_becomes_valid_later(
    federation: Federation, bad: dict[BadKind, Credential]
) -> None:
    """Only the time makes it bad: at its start of validity it is accepted."""
    later = NOW + timedelta(days=15)
    bundle = federation.bundle()
    ca = federation.ca("DE")
    bundle = bundle.with_crl("DE", build_crl(ca.certificate, ca.key, [], now=later, number=5))
    identity = verify_peer(load_cert(bad[BadKind.NOT_YET_VALID].cert), bundle, later)
    assert identity == PeerIdentity("DE", Role.GATEWAY, "gw-not-yet-valid")


def test_revocation_only_counts_on_the_bundled_crl(
    federation: Federation, bad: dict[BadKind, Credential]
) -> None:
    stale = TrustBundle(
        {c: BundleEntry(c, e.ca, None) for c, e in federation.bundle().entries.items()}
    )
    cert = load_cert(bad[BadKind.REVOKED].cert)
    assert verify_peer(cert, stale, NOW).name == "gw-revoked"  # no CRL: cannot know
    with pytest.raises(PeerRefused) as info:
        verify_peer(cert, federation.bundle(), NOW)
    assert info.value.reason is Refusal.REVOKED


def test_expired_crl_fails_closed(federation: Federation) -> None:
    bundle = federation.bundle()
    cert = load_cert(federation.gateways["DE"].cert)
    later = NOW + timedelta(days=8)  # CRLs are valid 7 days, the certificate 30
    with pytest.raises(PeerRefused, match="CRL of DE expired on 2030-03-08T12:00:00Z") as info:
        verify_peer(cert, bundle, later)
    assert info.value.reason is Refusal.CRL_EXPIRED
    ca = federation.ca("DE")
    fresh = build_crl(ca.certificate, ca.key, [], now=later, number=9)
    assert verify_peer(cert, bundle.with_crl("DE", fresh), later).country == "DE"


def test_ca_validity_is_checked(federation: Federation) -> None:
    bundle = federation.bundle()
    ca = federation.ca("DE")
    # A CA certificate valid in the past only, with the same key and name.
    from certs import build_ca_certificate

    old_ca = build_ca_certificate(
        ca.key, country="DE", name="national", now=NOW - timedelta(days=100), days=10
    )
    bundle = bundle.with_entry(BundleEntry("DE", old_ca, None), replace_ca=True)
    with pytest.raises(PeerRefused, match=r"its CA .* expired on") as info:
        verify_peer(load_cert(federation.gateways["DE"].cert), bundle, NOW)
    assert info.value.reason is Refusal.EXPIRED


def test_purpose_and_ca_as_peer(federation: Federation) -> None:
    bundle = federation.bundle()
    console = load_cert(federation.consoles["DE"].cert)
    assert verify_peer(console, bundle, NOW, purpose="client").role is Role.CONSOLE
    with pytest.raises(PeerRefused, match="may not act as a TLS server") as info:
        verify_peer(console, bundle, NOW, purpose="server")
    assert info.value.reason is Refusal.WRONG_USAGE
    with pytest.raises(PeerRefused, match="is a CA certificate") as info:
        verify_peer(bundle.entries["FR"].ca, bundle, NOW)
    assert info.value.reason is Refusal.WRONG_ROLE


def test_refusals_are_gateway_errors(federation: Federation) -> None:
    from protocols.errors import GatewayError

    with pytest.raises(GatewayError):
        verify_peer(load_cert(federation.gateways["DE"].cert), TrustBundle(), NOW)
