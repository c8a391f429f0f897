"""The sans-IO batch codec: framing, signatures, signer checks, replay window."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

import certs
from certs.identity import PeerIdentity, Role
from gateway.mqtt_batch import (
    BatchRejected,
    BatchSigner,
    BatchVerifier,
    ReplayWindow,
    decode_batch,
    encode_batch,
)
from protocols.schema import v1

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()


def _signer(credential: certs.Credential) -> BatchSigner:
    key = serialization.load_pem_private_key(credential.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return BatchSigner(key, x509.load_pem_x509_certificate(credential.cert.read_bytes()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> certs.Federation:
    return certs.mint_federation(tmp_path_factory.mktemp("pki"), ["DE", "FR"], now=NOW)


@pytest.fixture(scope="module")
def de(pki: certs.Federation) -> BatchSigner:
    return _signer(pki.gateways["DE"])


@pytest.fixture(scope="module")
def fr(pki: certs.Federation) -> BatchSigner:
    return _signer(pki.gateways["FR"])


def _envelope(origin: str, text: str = "hello") -> bytes:
    message = v1.Envelope(message_id=b"m" * 16)
    message.origin.nation = origin
    message.text.text = text
    return message.SerializeToString()


def _batch(
    signer: BatchSigner,
    envelopes: list[bytes],
    *,
    src: str = "DE",
    dest: str = "FR",
    now: float = T,
    batch_id: bytes | None = None,
) -> bytes:
    return encode_batch(
        envelopes, src=src, dest=dest, signer=signer, now=now, batch_id=batch_id or os.urandom(16)
    )


def _verifier(pki: certs.Federation, **kwargs: object) -> BatchVerifier:
    return BatchVerifier("FR", pki.bundle(), **kwargs)  # type: ignore[arg-type]


def test_round_trip_and_verification(pki: certs.Federation, de: BatchSigner) -> None:
    envelopes = [_envelope("DE", "a"), _envelope("DE", "b")]
    data = _batch(de, envelopes, batch_id=b"i" * 16)
    batch = decode_batch(data)
    assert (batch.src, batch.dest, batch.batch_id, batch.sent_at) == ("DE", "FR", b"i" * 16, T)
    verified = _verifier(pki).verify(data, topic_src="DE", now=T + 1)
    assert verified.envelopes == tuple(envelopes)
    assert verified.sender == PeerIdentity("DE", Role.GATEWAY, "gw-de")
    assert verified.dropped == ()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20), st.floats(0, 4e9))
def test_hypothesis_round_trip(envelopes: list[bytes], now: float) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = BatchSigner(key, _CERT)
    batch = decode_batch(_batch(signer, envelopes, now=now))
    assert list(batch.envelopes) == envelopes
    assert abs(batch.sent_at - now) <= 0.0005


_CERT = certs.build_ca_certificate(
    ec.generate_private_key(ec.SECP256R1()), country="DE", name="framing", now=NOW
)


def test_every_truncation_is_malformed(de: BatchSigner) -> None:
    data = _batch(de, [_envelope("DE"), _envelope("DE", "second")])
    for size in range(len(data)):
        with pytest.raises(BatchRejected) as caught:
            decode_batch(data[:size])
        assert caught.value.reason == "malformed"
    with pytest.raises(BatchRejected, match="signature length"):
        decode_batch(data + b"x")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: d[:30] + b"\xff\xfe" + d[32:], "not ASCII"),
        (lambda d: d[:32] + b"\x00\x00" + d[34:], "without envelopes"),
    ],
)
def test_malformed_headers(de: BatchSigner, mutate: object, match: str) -> None:
    data = _batch(de, [_envelope("DE")])
    with pytest.raises(BatchRejected, match=match):
        decode_batch(mutate(data))  # type: ignore[operator]


def test_every_flipped_byte_is_rejected(pki: certs.Federation, de: BatchSigner) -> None:
    data = _batch(de, [_envelope("DE")])
    verifier = _verifier(pki, window=1e12)
    accepted = 0
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x40
        try:
            verifier.verify(bytes(tampered), topic_src="DE", now=T)
        except BatchRejected:
            continue
        accepted += 1
    assert accepted == 0


def test_wrong_destination_topic_and_signer(
    pki: certs.Federation, de: BatchSigner, fr: BatchSigner
) -> None:
    verifier = _verifier(pki)
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(_batch(de, [_envelope("DE")], dest="IT"), topic_src="DE", now=T)
    assert caught.value.reason == "wrong_destination"
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(_batch(de, [_envelope("DE")]), topic_src="IT", now=T)
    assert caught.value.reason == "topic_mismatch"
    fr_to_fr = _batch(fr, [_envelope("DE")], src="DE", dest="FR")
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(fr_to_fr, topic_src="DE", now=T)
    assert caught.value.reason == "signer_mismatch"


def test_forbidden_signer(pki: certs.Federation, de: BatchSigner) -> None:
    verifier = _verifier(pki, forbidden=[PeerIdentity("DE", Role.GATEWAY, "gw-de")])
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(_batch(de, [_envelope("DE")]), topic_src="DE", now=T)
    assert caught.value.reason == "forbidden_signer"


def test_stale_future_and_replayed(pki: certs.Federation, de: BatchSigner) -> None:
    verifier = _verifier(pki, window=300)
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(_batch(de, [_envelope("DE")], now=T - 301), topic_src="DE", now=T)
    assert caught.value.reason == "stale"
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(_batch(de, [_envelope("DE")], now=T + 301), topic_src="DE", now=T)
    assert caught.value.reason == "stale"
    data = _batch(de, [_envelope("DE")])
    verifier.verify(data, topic_src="DE", now=T)
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(data, topic_src="DE", now=T + 299)
    assert caught.value.reason == "replay"
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(data, topic_src="DE", now=T + 301)
    assert caught.value.reason == "stale"
    assert len(verifier.replay) == 0  # forgotten once outside the window


def test_replay_window_memory_is_bounded_by_the_window() -> None:
    window = ReplayWindow(10)
    for i in range(100):
        window.check(bytes([i]) * 16, float(i), float(i))
        window.record(bytes([i]) * 16, float(i))
    assert len(window) <= 11


def test_misattributed_and_malformed_envelopes_are_dropped(
    pki: certs.Federation, de: BatchSigner
) -> None:
    data = _batch(de, [_envelope("FR", "forged"), b"\xff\xff\xff", _envelope("DE", "ok")])
    verified = _verifier(pki).verify(data, topic_src="DE", now=T)
    assert verified.envelopes == (_envelope("DE", "ok"),)
    assert verified.dropped == ((0, "misattributed"), (1, "malformed_envelope"))


def test_signer_certificates_are_verified_and_cached(tmp_path: Path) -> None:
    pki = certs.mint_federation(tmp_path / "pki", ["DE", "FR"], now=NOW)
    de = _signer(pki.gateways["DE"])
    verifier = _verifier(pki, recheck=60)
    verifier.verify(_batch(de, [_envelope("DE")]), topic_src="DE", now=T)
    # revoke DE's gateway: cached until recheck, at once after set_bundle
    ca = pki.ca("DE")
    ca.revoke(pki.gateways["DE"].serial, now=NOW)
    ca.publish_crl(now=NOW)
    revoked_bundle = pki.rebuild_bundle()
    verifier.bundle = revoked_bundle
    verifier.verify(_batch(de, [_envelope("DE")]), topic_src="DE", now=T + 10)
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(_batch(de, [_envelope("DE")], now=T + 61), topic_src="DE", now=T + 61)
    assert caught.value.reason == "bad_signer"
    verifier.set_bundle(revoked_bundle)
    with pytest.raises(BatchRejected, match="revoked"):
        verifier.verify(_batch(de, [_envelope("DE")]), topic_src="DE", now=T)


def test_unreadable_and_non_ec_signers(pki: certs.Federation, de: BatchSigner) -> None:
    verifier = _verifier(pki)
    data = bytearray(_batch(de, [_envelope("DE")]))
    cert_len = int.from_bytes(data[34:36], "big")
    data[36 : 36 + cert_len] = b"\x00" * cert_len
    with pytest.raises(BatchRejected) as caught:
        verifier.verify(bytes(data), topic_src="DE", now=T)
    assert caught.value.reason == "bad_signer"
    # an RSA-keyed gateway certificate signed by DE's CA
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = BatchSigner(
        ec.generate_private_key(ec.SECP256R1()), _odd_signer(pki, rsa_key.public_key())
    )
    with pytest.raises(BatchRejected, match="ECDSA"):
        _verifier(pki).verify(_batch(fake, [_envelope("DE")]), topic_src="DE", now=T)


def _odd_signer(
    pki: certs.Federation, public_key: Any, *, may_sign: bool = True, days: float = 1
) -> x509.Certificate:
    """A DE gateway certificate from DE's CA, with a key or key usage of our choosing."""
    ca = pki.ca("DE")
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EUCCS"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "gateway"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "odd"),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("euccs://DE/gateway/odd")]),
            critical=False,
        )
        .add_extension(x509.KeyUsage(digital_signature=may_sign, **usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def test_a_signer_certificate_that_may_not_sign_is_refused(pki: certs.Federation) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    fake = BatchSigner(key, _odd_signer(pki, key.public_key(), may_sign=False))
    with pytest.raises(BatchRejected, match="key usage"):
        _verifier(pki).verify(_batch(fake, [_envelope("DE")]), topic_src="DE", now=T)


def test_a_cached_signer_is_refused_once_its_certificate_expired(pki: certs.Federation) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _odd_signer(pki, key.public_key(), days=0)  # valid until NOW
    signer = BatchSigner(key, cert)
    verifier = _verifier(pki)
    before = cert.not_valid_after_utc.timestamp() - 30
    verifier.verify(_batch(signer, [_envelope("DE")], now=before), topic_src="DE", now=before)
    after = before + 40  # within the 60 s the verified signer is cached
    with pytest.raises(BatchRejected, match="expired"):
        verifier.verify(_batch(signer, [_envelope("DE")], now=after), topic_src="DE", now=after)


def test_encode_rejects_bad_arguments(de: BatchSigner) -> None:
    with pytest.raises(ValueError, match="envelopes"):
        _batch(de, [])
    with pytest.raises(ValueError, match="batch_id"):
        _batch(de, [b"x"], batch_id=b"short")
    with pytest.raises(ValueError, match="country"):
        _batch(de, [b"x"], dest="FRA")


def test_signer_cache_is_bounded(pki: certs.Federation, de: BatchSigner) -> None:
    verifier = _verifier(pki)
    verifier._signers.update(
        {i.to_bytes(2, "big"): verifier._signer(de.der, T) for i in range(300)}
    )
    verifier.verify(_batch(de, [_envelope("DE")]), topic_src="DE", now=T + 100)
    assert len(verifier._signers) == 1


def test_encode_rejects_an_oversized_certificate(de: BatchSigner) -> None:
    huge = BatchSigner(de.key, de.certificate)
    huge.der = b"x" * 70_000
    with pytest.raises(ValueError, match="too large"):
        _batch(huge, [b"x"])


# ---------------------------------------------------------------- members of a split country


def test_a_batch_between_members_of_split_countries_is_framed_eub2_and_verified(
    pki: certs.Federation, de: BatchSigner
) -> None:
    envelopes = [_envelope("DE", "a"), _envelope("DE", "b")]
    data = _batch(de, envelopes, src="DE-2", dest="FR-NORTH", batch_id=b"j" * 16)
    assert data[:4] == b"EUB2"
    batch = decode_batch(data)
    assert (batch.src, batch.dest, batch.batch_id, batch.sent_at) == (
        "DE-2",
        "FR-NORTH",
        b"j" * 16,
        T,
    )
    verified = BatchVerifier("FR-NORTH", pki.bundle()).verify(data, topic_src="DE-2", now=T)
    assert verified.envelopes == tuple(envelopes)
    assert verified.sender.country == "DE"
    # A plain pair of countries keeps the first framing.
    assert _batch(de, envelopes)[:4] == b"EUB1"


def test_a_member_batch_is_refused_for_another_member_or_a_foreign_signer(
    pki: certs.Federation, de: BatchSigner, fr: BatchSigner
) -> None:
    data = _batch(de, [_envelope("DE")], src="DE-2", dest="FR")
    with pytest.raises(BatchRejected) as caught:
        BatchVerifier("FR-2", pki.bundle()).verify(data, topic_src="DE-2", now=T)
    assert caught.value.reason == "wrong_destination"
    with pytest.raises(BatchRejected) as caught:
        _verifier(pki).verify(data, topic_src="DE", now=T)
    assert caught.value.reason == "topic_mismatch"
    forged = _batch(fr, [_envelope("DE")], src="DE-2", dest="FR")
    with pytest.raises(BatchRejected) as caught:
        _verifier(pki).verify(forged, topic_src="DE-2", now=T)
    assert caught.value.reason == "signer_mismatch"


@settings(max_examples=40, deadline=None)
@given(
    st.from_regex(r"[A-Z]{2}(-[A-Z0-9]{1,8})?", fullmatch=True),
    st.from_regex(r"[A-Z]{2}(-[A-Z0-9]{1,8})?", fullmatch=True),
    st.lists(st.binary(max_size=100), min_size=1, max_size=5),
)
def test_hypothesis_member_round_trip(src: str, dest: str, envelopes: list[bytes]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = _batch(BatchSigner(key, _CERT), envelopes, src=src, dest=dest)
    batch = decode_batch(data)
    assert (batch.src, batch.dest, list(batch.envelopes)) == (src, dest, envelopes)
    assert data[:4] == (b"EUB1" if len(src) == len(dest) == 2 else b"EUB2")


def test_every_truncation_of_a_member_batch_is_malformed(de: BatchSigner) -> None:
    data = _batch(de, [_envelope("DE"), _envelope("DE", "second")], src="DE-2")
    for size in range(len(data)):
        with pytest.raises(BatchRejected) as caught:
            decode_batch(data[:size])
        assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d[:28] + b"\x04de-2" + d[33:], "not a member id"),
        (lambda d: d[:28] + b"\x04\xff\xfe-2" + d[33:], "not a member id"),
        (lambda d: d[:28] + b"\xff" + d[29:], "member ids|not a member id"),
    ],
)
def test_malformed_member_headers(de: BatchSigner, mutate: object, match: str) -> None:
    data = _batch(de, [_envelope("DE")], src="DE-2")
    assert data[28:33] == b"\x04DE-2"
    with pytest.raises(BatchRejected, match=match):
        decode_batch(mutate(data))  # type: ignore[operator]


def test_encode_rejects_a_bad_member(de: BatchSigner) -> None:
    for bad in ("DE-", "DE-TOOLONGTAG", "de-2", "DE_2"):
        with pytest.raises(ValueError, match="member"):
            _batch(de, [b"x"], src=bad)
