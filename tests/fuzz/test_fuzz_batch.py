"""Fuzz the federation batch codec: mutated signed batches are refused, never crash.

A real PKI is minted once for the module; the seeds are batches signed by DE's gateway for
FR. :func:`decode_batch` and :meth:`BatchVerifier.verify` return a batch or raise
:class:`BatchRejected`; envelopes that do not parse inside a well-signed batch are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

import certs
from gateway.mqtt_batch import (
    MAGIC,
    BatchRejected,
    BatchSigner,
    BatchVerifier,
    VerifiedBatch,
    decode_batch,
    encode_batch,
)
from protocols.schema import v1
from tests.fuzz._fuzz import Tally, flipped, fuzz_settings, mutated

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
_REASONS = {
    "malformed",
    "wrong_destination",
    "topic_mismatch",
    "stale",
    "bad_signer",
    "forbidden_signer",
    "signer_mismatch",
    "bad_signature",
    "replay",
}


def _envelope(origin: str, text: str) -> bytes:
    message = v1.Envelope(message_id=b"m" * 16, schema_version=1)
    message.origin.nation = origin
    message.text.text = text
    return message.SerializeToString()


ENVELOPES = [_envelope("DE", "hallo"), _envelope("DE", "zwei"), _envelope("FR", "misattributed")]


class _Pki:
    def __init__(self, federation: certs.Federation) -> None:
        credential = federation.gateways["DE"]
        key = serialization.load_pem_private_key(credential.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert = x509.load_pem_x509_certificate(credential.cert.read_bytes())
        self.signer = BatchSigner(key, cert)
        self.bundle = federation.bundle()

    def sign(self, envelopes: Sequence[bytes], *, batch_id: bytes = b"b" * 16) -> bytes:
        return encode_batch(
            envelopes, src="DE", dest="FR", signer=self.signer, now=T, batch_id=batch_id
        )

    def verifier(self) -> BatchVerifier:
        return BatchVerifier("FR", self.bundle)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    return _Pki(certs.mint_federation(tmp_path_factory.mktemp("pki"), ["DE", "FR"], now=NOW))


def _check_accepted(verified: VerifiedBatch, count: int) -> None:
    assert verified.sender.country == "DE"
    assert len(verified.envelopes) + len(verified.dropped) == count
    for _, reason in verified.dropped:
        assert reason in ("misattributed", "malformed_envelope")


def test_verify_mutated_batches(pki: _Pki) -> None:
    tally = Tally()
    seeds = [pki.sign(ENVELOPES[:1]), pki.sign(ENVELOPES, batch_id=b"c" * 16)]
    tokens = (MAGIC, b"DE", b"FR", b"\x00\x00", b"\xff\xff", b"\x00\x00\x00\x00", b"\x30\x82")

    @fuzz_settings
    @given(
        mutated(seeds, tokens, max_size=8192) | flipped(seeds),
        st.sampled_from(["DE", "DE", "FR"]),
    )
    def run(data: bytes, topic_src: str) -> None:
        try:
            batch = decode_batch(data)
        except BatchRejected as exc:
            assert exc.reason == "malformed", exc.reason
            tally.refused(exc)
            tally("malformed")
            return
        try:
            verified = pki.verifier().verify(data, topic_src=topic_src, now=T)
        except BatchRejected as exc:
            assert exc.reason in _REASONS, exc.reason
            tally.refused(exc)
            tally(exc.reason)
        else:
            _check_accepted(verified, len(batch.envelopes))
            tally("accepted")

    run()
    tally.expect("accepted", "refused", "malformed", "bad_signature")


def test_verify_signed_batches_of_mutated_envelopes(pki: _Pki) -> None:
    """A correctly signed batch is accepted whatever its envelopes hold; bad ones are dropped."""
    tally = Tally()

    @fuzz_settings
    @given(st.lists(mutated(ENVELOPES, max_size=512), min_size=1, max_size=4))
    def run(envelopes: list[bytes]) -> None:
        verified = pki.verifier().verify(pki.sign(envelopes), topic_src="DE", now=T)
        _check_accepted(verified, len(envelopes))
        tally("accepted")
        for _, reason in verified.dropped:
            tally(reason)

    run()
    tally.expect("accepted", "malformed_envelope", "misattributed")
