"""File helpers: private keys created 0600, atomic public writes, PEM loading."""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.errors import CertificateError

__all__ = [
    "aware",
    "load_certificates",
    "load_crl",
    "load_private_key",
    "private_key_pem",
    "write_private",
    "write_public",
]


def aware(now: datetime) -> datetime:
    """Return ``now`` in UTC; refuse naive datetimes (their zone is a guess)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return now.astimezone(UTC)


def write_private(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Create ``path`` with mode 0600 and write ``data`` (a private key).

    The file is created with its final permissions (``os.open(..., 0o600)``), never written
    first and restricted afterwards. An existing file is refused unless ``overwrite``, in
    which case it is unlinked and created anew (so a wider mode is not inherited).

    Raises:
        CertificateError: The file exists (and not ``overwrite``) or cannot be created.
    """
    if overwrite:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise CertificateError(
            f"{path} already exists; refusing to overwrite a private key"
        ) from None
    except OSError as exc:
        raise CertificateError(f"cannot create private key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_public(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename), mode 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def private_key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    """Serialise ``key`` as PKCS#8 PEM, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Load every certificate in a PEM (or DER) file, in file order.

    Raises:
        CertificateError: Unreadable, or no certificate in it.
    """
    data = _read(path, "certificate file")
    if b"PRIVATE KEY-----" in data and b"CERTIFICATE-----" not in data:
        raise CertificateError(f"{path} is a private key, not a certificate")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateError(f"{path} holds no readable X.509 certificate") from None


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """Load a CRL from a PEM (or DER) file.

    Raises:
        CertificateError: Unreadable or not a CRL.
    """
    data = _read(path, "CRL file")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise CertificateError(f"{path} holds no readable X.509 CRL") from None


def load_private_key(path: Path, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """Load an ECDSA private key from PEM; never echo its content in errors.

    Raises:
        CertificateError: Unreadable, wrong passphrase, or not an EC key.
    """
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError:
        raise CertificateError(
            f"private key {path} is encrypted: give its passphrase (--passphrase-env VAR)"
            if not passphrase
            else f"private key {path} is not encrypted, but a passphrase was given"
        ) from None
    except ValueError:
        raise CertificateError(
            f"cannot load private key {path}: not a PEM private key, or a wrong passphrase"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"private key {path} is not an ECDSA key")
    return key


def iso(moment: datetime) -> str:
    """Format a UTC moment as ``2025-01-31T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
