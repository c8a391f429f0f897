"""Signed envelope batches of the MQTT federation: encode, sign, verify, replay window.

Sans-IO: no sockets, no clock (every time is an argument, seconds since the Unix epoch),
no files. The broker is never trusted: every batch carries the sending gateway's
certificate and an ECDSA P-256 / SHA-256 signature over everything before it, and the
receiver checks the signer against its own trust bundle, pinned to the signer's country.

Wire format (big-endian)::

    magic       4  b"EUB1"
    sent_at_ms  8  when the batch was signed (ms since the Unix epoch)
    batch_id   16  random; unique per batch (replay detection)
    src         2  sending country (ASCII)
    dest        2  destination country (ASCII)
    count       2  number of envelopes
    cert_len    2  length of the signer certificate
    cert        *  signer certificate (DER)
    count x (length 4, envelope bytes)    serialized protocols.schema.v1.Envelope
    sig_len     2  length of the signature
    signature   *  ECDSA(SHA-256) over every byte before sig_len (DER)

Between federation members that are not plain countries (``DE-2``, :mod:`gateway.members`)
the magic is ``b"EUB2"`` and ``src`` and ``dest`` are each one length byte and that many
ASCII bytes; the rest is the same. A plain country pair is always framed ``EUB1``.

A batch is accepted only if it is well formed, addressed to us, its ``src`` equals the
topic's ``<SRC>``, the signer certificate passes :func:`certs.verify_peer` with role
gateway and its country is ``src``'s, the signature is valid, its timestamp is within the
replay window of ``now`` and its batch id was not seen within the window. Envelopes whose
``origin.nation`` is not the signer's country (or that do not parse) are dropped one by one.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError

from certs.bundle import TrustBundle
from certs.errors import PeerRefused
from certs.identity import PeerIdentity, Role
from certs.verify import verify_peer
from gateway.members import member_nation, validate_member
from protocols.errors import RemoteProtocolError
from protocols.schema import v1

__all__ = [
    "MAGIC",
    "MAGIC_MEMBERS",
    "Batch",
    "BatchRejected",
    "BatchSigner",
    "BatchVerifier",
    "ReplayWindow",
    "VerifiedBatch",
    "decode_batch",
    "encode_batch",
]

MAGIC = b"EUB1"
MAGIC_MEMBERS = b"EUB2"
_HEADER = struct.Struct(">4sQ16s2s2sHH")
_HEAD2 = struct.Struct(">4sQ16s")
_TAIL2 = struct.Struct(">HH")
_LEN32 = struct.Struct(">I")
_LEN16 = struct.Struct(">H")
BATCH_ID_SIZE = 16
_MAX_COUNT = 0xFFFF
_MAX_CERT = 0xFFFF


class BatchRejected(RemoteProtocolError):
    """A batch (or one envelope of it) is refused.

    Attributes:
        reason: Short counter key: ``malformed``, ``wrong_destination``, ``topic_mismatch``,
            ``stale``, ``bad_signer``, ``forbidden_signer``, ``signer_mismatch``,
            ``bad_signature``, ``replay``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Batch:
    """A decoded, not yet verified batch.

    Attributes:
        src: Sending member (header): a country, or a member id such as ``DE-2``.
        dest: Destination member (header).
        sent_at: Signing time, seconds since the Unix epoch.
        batch_id: Random id of the batch.
        signer: The signer certificate (DER).
        envelopes: The serialized envelopes.
        signed: The signed bytes.
        signature: The signature (DER).
    """

    src: str
    dest: str
    sent_at: float
    batch_id: bytes
    signer: bytes
    envelopes: tuple[bytes, ...]
    signed: bytes
    signature: bytes


@dataclass(frozen=True)
class VerifiedBatch:
    """A batch that passed every check.

    Attributes:
        sender: The signer's identity (its country is the batch's ``src``).
        batch_id: Random id of the batch.
        sent_at: Signing time.
        envelopes: The accepted envelopes (serialized), in batch order.
        dropped: ``(index, reason)`` of each envelope dropped (``misattributed`` or
            ``malformed_envelope``).
    """

    sender: PeerIdentity
    batch_id: bytes
    sent_at: float
    envelopes: tuple[bytes, ...]
    dropped: tuple[tuple[int, str], ...] = ()


class BatchSigner:
    """Signs batches with a gateway's key, attaching its certificate.

    Args:
        key: The gateway's private key (ECDSA P-256).
        certificate: The gateway's certificate (its DER goes into each batch).
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding

        self.key = key
        self.certificate = certificate
        self.der = certificate.public_bytes(Encoding.DER)

    def sign(self, data: bytes) -> bytes:
        """Return the ECDSA/SHA-256 signature (DER) of ``data``."""
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def encode_batch(
    envelopes: Sequence[bytes],
    *,
    src: str,
    dest: str,
    signer: BatchSigner,
    now: float,
    batch_id: bytes,
) -> bytes:
    """Frame and sign ``envelopes`` from ``src`` to ``dest``.

    Args:
        envelopes: Serialized envelopes (1..65535).
        src: Our member id (our country unless the country is split).
        dest: The destination member.
        signer: Our key and certificate.
        now: Signing time, seconds since the Unix epoch.
        batch_id: 16 random bytes (``os.urandom(16)``).

    Returns:
        The batch bytes (one MQTT PUBLISH payload).

    Raises:
        ValueError: No envelope, too many, a bad member id or batch id.
    """
    if not 0 < len(envelopes) <= _MAX_COUNT:
        raise ValueError(f"a batch carries 1..{_MAX_COUNT} envelopes, not {len(envelopes)}")
    if len(signer.der) > _MAX_CERT:
        raise ValueError(f"a certificate of {len(signer.der)} bytes is too large for a batch")
    if len(batch_id) != BATCH_ID_SIZE:
        raise ValueError(f"batch_id must be {BATCH_ID_SIZE} bytes")
    for member in (src, dest):
        validate_member(member)
    if len(src) == len(dest) == 2:
        head = _HEADER.pack(
            MAGIC,
            round(now * 1000),
            batch_id,
            src.encode("ascii"),
            dest.encode("ascii"),
            len(envelopes),
            len(signer.der),
        )
    else:
        head = b"".join(
            (
                _HEAD2.pack(MAGIC_MEMBERS, round(now * 1000), batch_id),
                bytes((len(src),)),
                src.encode("ascii"),
                bytes((len(dest),)),
                dest.encode("ascii"),
                _TAIL2.pack(len(envelopes), len(signer.der)),
            )
        )
    parts = [head, signer.der]
    for envelope in envelopes:
        parts += [_LEN32.pack(len(envelope)), envelope]
    signed = b"".join(parts)
    signature = signer.sign(signed)
    return signed + _LEN16.pack(len(signature)) + signature


def _malformed(message: str) -> BatchRejected:
    return BatchRejected("malformed", message)


def decode_batch(data: bytes) -> Batch:
    """Parse a batch without verifying it.

    Raises:
        BatchRejected: (``malformed``) truncated, trailing bytes, bad magic or fields.
    """
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise _malformed(f"{len(view)} bytes is shorter than the batch header")
    if bytes(view[:4]) == MAGIC_MEMBERS:
        src, dest, sent_ms, batch_id, count, cert_len, offset = _members_header(view)
    else:
        magic, sent_ms, batch_id, src_b, dest_b, count, cert_len = _HEADER.unpack_from(view, 0)
        if magic != MAGIC:
            raise _malformed("not a batch (bad magic)")
        try:
            src, dest = src_b.decode("ascii"), dest_b.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("country codes are not ASCII") from None
        offset = _HEADER.size
    if count == 0:
        raise _malformed("a batch without envelopes")
    if offset + cert_len > len(view):
        raise _malformed("truncated in the signer certificate")
    signer = bytes(view[offset : offset + cert_len])
    offset += cert_len
    envelopes: list[bytes] = []
    for index in range(count):
        if offset + _LEN32.size > len(view):
            raise _malformed(f"truncated before envelope {index}")
        (length,) = _LEN32.unpack_from(view, offset)
        offset += _LEN32.size
        if offset + length > len(view):
            raise _malformed(f"truncated in envelope {index}")
        envelopes.append(bytes(view[offset : offset + length]))
        offset += length
    signed_end = offset
    if offset + _LEN16.size > len(view):
        raise _malformed("truncated before the signature")
    (sig_len,) = _LEN16.unpack_from(view, offset)
    offset += _LEN16.size
    if offset + sig_len != len(view):
        raise _malformed("the signature length does not match the batch size")
    return Batch(
        src=src,
        dest=dest,
        sent_at=sent_ms / 1000,
        batch_id=bytes(batch_id),
        signer=signer,
        envelopes=tuple(envelopes),
        signed=bytes(view[:signed_end]),
        signature=bytes(view[offset:]),
    )


def _members_header(view: memoryview) -> tuple[str, str, int, bytes, int, int, int]:
    """The ``EUB2`` header: ``(src, dest, sent_ms, batch_id, count, cert_len, offset)``."""
    _, sent_ms, batch_id = _HEAD2.unpack_from(view, 0)
    offset = _HEAD2.size
    members: list[str] = []
    for _ in range(2):
        if offset >= len(view):
            raise _malformed("truncated in the member ids")
        length = view[offset]
        member_b = bytes(view[offset + 1 : offset + 1 + length])
        offset += 1 + length
        try:
            members.append(validate_member(member_b.decode("ascii")))
        except (UnicodeDecodeError, ValueError):
            raise _malformed(f"{member_b!r} is not a member id") from None
    if offset + _TAIL2.size > len(view):
        raise _malformed("truncated in the batch header")
    count, cert_len = _TAIL2.unpack_from(view, offset)
    return members[0], members[1], sent_ms, bytes(batch_id), count, cert_len, offset + _TAIL2.size


@dataclass
class ReplayWindow:
    """Refuses batches signed too long ago (or ahead), and batch ids seen within the window.

    Ids are remembered until their timestamp leaves the window: an older copy is refused
    as stale anyway, so memory stays bounded by the traffic of one window.

    Attributes:
        window: Accepted clock skew / age in seconds.
    """

    window: float = 300.0
    _seen: set[bytes] = field(default_factory=set, repr=False)
    _expiry: list[tuple[float, bytes]] = field(default_factory=list, repr=False)

    def check(self, batch_id: bytes, sent_at: float, now: float) -> None:
        """Raise if the batch is stale or replayed; do not record it.

        Raises:
            BatchRejected: ``stale`` or ``replay``.
        """
        self._prune(now)
        skew = now - sent_at
        if abs(skew) > self.window:
            raise BatchRejected(
                "stale",
                f"signed {skew:+.0f} s from now; the replay window is +-{self.window:g} s",
            )
        if batch_id in self._seen:
            raise BatchRejected("replay", f"batch {batch_id.hex()} was already received")

    def record(self, batch_id: bytes, sent_at: float) -> None:
        """Remember an accepted batch id."""
        self._seen.add(batch_id)
        heapq.heappush(self._expiry, (sent_at + self.window, batch_id))

    def _prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, batch_id = heapq.heappop(self._expiry)
            self._seen.discard(batch_id)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class _Signer:
    identity: PeerIdentity
    key: ec.EllipticCurvePublicKey
    checked_at: float
    valid_from: float
    valid_until: float


#: Curves a batch signer's key may be on.
_CURVES = frozenset({"secp256r1", "secp384r1"})


class BatchVerifier:
    """Verifies batches addressed to ``nation``.

    Args:
        nation: Our member id (our country unless it is split): batches must be
            addressed to it.
        bundle: The trust bundle the signer certificates are verified against.
        window: Replay window in seconds.
        forbidden: Identities that must never sign a batch (e.g. the broker's).
        recheck: Seconds a verified signer certificate is trusted before it is verified
            again (revocation in a reloaded bundle applies at once: :meth:`set_bundle`).
    """

    def __init__(
        self,
        nation: str,
        bundle: TrustBundle,
        *,
        window: float = 300.0,
        forbidden: Collection[PeerIdentity] = (),
        recheck: float = 60.0,
    ) -> None:
        self.nation = nation
        self.bundle = bundle
        self.replay = ReplayWindow(window)
        self.forbidden = frozenset(forbidden)
        self.recheck = recheck
        self._signers: dict[bytes, _Signer] = {}

    def set_bundle(self, bundle: TrustBundle) -> None:
        """Use a new trust bundle (rotation, new CRLs); forget every verified signer."""
        self.bundle = bundle
        self._signers.clear()

    def _signer(self, der: bytes, now: float) -> _Signer:
        cached = self._signers.get(der)
        if (
            cached is not None
            and now - cached.checked_at <= self.recheck
            and cached.valid_from <= now <= cached.valid_until  # an expiry is not cached
        ):
            return cached
        try:
            cert = x509.load_der_x509_certificate(der)
            identity = verify_peer(
                cert,
                self.bundle,
                datetime.fromtimestamp(now, UTC),
                roles=[Role.GATEWAY],
                purpose="client",  # a gateway's certificate, issued to sign as one
            )
        except PeerRefused as exc:
            raise BatchRejected("bad_signer", f"signer refused ({exc.reason}): {exc}") from None
        except Exception as exc:  # any parse error of a hostile certificate: refuse, never crash
            raise BatchRejected(
                "bad_signer", f"the signer certificate is not readable ({type(exc).__name__})"
            ) from None
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
            raise BatchRejected(
                "bad_signer", f"{identity.uri} does not have an ECDSA P-256/P-384 key"
            )
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or not usage.digital_signature:
            raise BatchRejected("bad_signer", f"{identity.uri} may not sign (key usage)")
        if len(self._signers) >= 256:
            self._signers.clear()
        signer = _Signer(
            identity,
            key,
            now,
            cert.not_valid_before_utc.timestamp(),
            cert.not_valid_after_utc.timestamp(),
        )
        self._signers[der] = signer
        return signer

    def verify(self, data: bytes, *, topic_src: str, now: float) -> VerifiedBatch:
        """Verify one batch received on a topic ``.../from/<topic_src>/...``.

        Args:
            data: The PUBLISH payload.
            topic_src: The ``<SRC>`` segment of the topic it arrived on.
            now: The current time, seconds since the Unix epoch.

        Returns:
            The accepted envelopes (mis-attributed ones dropped and listed).

        Raises:
            BatchRejected: The whole batch is refused; ``reason`` says why.
        """
        batch = decode_batch(data)
        if batch.dest != self.nation:
            raise BatchRejected(
                "wrong_destination", f"addressed to {batch.dest!r}, we are {self.nation}"
            )
        if batch.src != topic_src:
            raise BatchRejected(
                "topic_mismatch", f"batch from {batch.src!r} on a topic of {topic_src!r}"
            )
        self.replay.check(batch.batch_id, batch.sent_at, now)
        signer = self._signer(batch.signer, now)
        if signer.identity in self.forbidden:
            raise BatchRejected("forbidden_signer", f"{signer.identity.uri} may not sign batches")
        if signer.identity.country != member_nation(batch.src):
            raise BatchRejected(
                "signer_mismatch",
                f"signed by {signer.identity.uri}, but sent as from {batch.src!r}",
            )
        try:
            signer.key.verify(batch.signature, batch.signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise BatchRejected(
                "bad_signature", f"the signature of {signer.identity.uri} does not match"
            ) from None
        self.replay.record(batch.batch_id, batch.sent_at)
        accepted: list[bytes] = []
        dropped: list[tuple[int, str]] = []
        for index, payload in enumerate(batch.envelopes):
            envelope = v1.Envelope()
            try:
                envelope.ParseFromString(payload)
            except DecodeError:
                dropped.append((index, "malformed_envelope"))
                continue
            if envelope.origin.nation != signer.identity.country:
                dropped.append((index, "misattributed"))
                continue
            accepted.append(payload)
        return VerifiedBatch(
            sender=signer.identity,
            batch_id=batch.batch_id,
            sent_at=batch.sent_at,
            envelopes=tuple(accepted),
            dropped=tuple(dropped),
        )
