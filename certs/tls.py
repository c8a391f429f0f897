"""``ssl.SSLContext`` factories for the MQTT federation link and the HTTPS API.

Both sides use mutual TLS 1.3 (minimum and, in effect, only version), trust every CA of the
federation bundle and check CRLs of the leaf (``VERIFY_CRL_CHECK_LEAF``) when the bundle
carries CRLs.

TLS cannot pin trust per country: OpenSSL accepts a certificate from *any* trust anchor in
the bundle. Two things close that gap:

* CAs minted by :mod:`certs.ca` carry a Name Constraints extension permitting only URI SANs
  whose host is their country, which OpenSSL enforces, so a DE-issued ``euccs://FR/...``
  certificate already fails the handshake;
* the application MUST still call :func:`certs.verify_peer` (or :func:`peer_identity`) on
  the peer certificate after the handshake. That is the real control: it pins the country,
  checks the role and yields the peer's identity. Partner CAs minted by other tooling may
  lack name constraints.

CRL caveat: once CRL checking is on, OpenSSL refuses every peer whose country has no CRL in
the bundle ("unable to get certificate CRL"), so a bundle with CRLs needs one for every
country (``euccs-gw certs bundle`` warns otherwise). An expired CRL also fails the
handshake (fail closed). Hostname checking is off by default: identities are URIs, not host
names (enable it with ``check_hostname`` when a DNS SAN is issued and wanted).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from certs.bundle import TrustBundle, load_bundle
from certs.errors import CertificateError, PeerRefused, Refusal
from certs.identity import PeerIdentity, Role
from certs.verify import Purpose, verify_peer

__all__ = ["client_context", "peer_identity", "server_context"]


def _bundle(bundle: TrustBundle | str | os.PathLike[str]) -> TrustBundle:
    return bundle if isinstance(bundle, TrustBundle) else load_bundle(Path(bundle))


def _configure(
    context: ssl.SSLContext,
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    bundle: TrustBundle,
    *,
    passphrase: bytes | None,
    crl_check: bool | None,
) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    if not len(bundle):
        raise CertificateError("the trust bundle is empty: no CA to trust")
    try:
        context.load_cert_chain(os.fspath(cert), os.fspath(key), password=passphrase)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(
            f"cannot load certificate {os.fspath(cert)} with key {os.fspath(key)}: {exc}"
        ) from None
    crl_pem = bundle.crl_pem()
    use_crls = bool(crl_pem) if crl_check is None else crl_check
    if use_crls and not crl_pem:
        raise CertificateError("CRL checking requested, but the bundle carries no CRL")
    # cadata accepts certificates only; CRLs load through a file, so write both to a
    # private temporary file (public material, but keep it tidy) and load it.
    with tempfile.TemporaryDirectory(prefix="euccs-trust-") as tmp:
        anchors = Path(tmp) / "trust.pem"
        anchors.write_text(bundle.ca_pem() + (crl_pem if use_crls else ""), encoding="ascii")
        context.load_verify_locations(cafile=os.fspath(anchors))
    flags = context.verify_flags | ssl.VERIFY_X509_STRICT
    if use_crls:
        flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.verify_flags = flags
    return context


def client_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    bundle: TrustBundle | str | os.PathLike[str],
    *,
    passphrase: bytes | None = None,
    crl_check: bool | None = None,
    check_hostname: bool = False,
) -> ssl.SSLContext:
    """Return a TLS 1.3 client context presenting ``cert`` and trusting ``bundle``.

    Args:
        cert: Our certificate (PEM).
        key: Our private key (PEM).
        bundle: The federation trust bundle (object or path).
        passphrase: The key's passphrase, if encrypted.
        crl_check: Force CRL checking on or off; default on iff the bundle has CRLs.
        check_hostname: Also match the server's DNS SAN against the host name.

    Raises:
        CertificateError: Unreadable credentials or an empty bundle.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    return _configure(
        context, cert, key, _bundle(bundle), passphrase=passphrase, crl_check=crl_check
    )


def server_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    bundle: TrustBundle | str | os.PathLike[str],
    *,
    passphrase: bytes | None = None,
    crl_check: bool | None = None,
) -> ssl.SSLContext:
    """Return a TLS 1.3 server context that requires a client certificate (mutual TLS).

    Args:
        cert: Our certificate (PEM; role gateway, which has serverAuth).
        key: Our private key (PEM).
        bundle: The federation trust bundle (object or path).
        passphrase: The key's passphrase, if encrypted.
        crl_check: Force CRL checking on or off; default on iff the bundle has CRLs.

    Raises:
        CertificateError: Unreadable credentials or an empty bundle.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return _configure(
        context, cert, key, _bundle(bundle), passphrase=passphrase, crl_check=crl_check
    )


def reload_context(
    context: ssl.SSLContext,
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    bundle: TrustBundle | str | os.PathLike[str],
    *,
    passphrase: bytes | None = None,
) -> ssl.SSLContext:
    """Load a renewed certificate, key and bundle (new CAs, newer CRLs) into ``context``.

    Connections already open keep their session; every handshake from now on uses the
    new certificate and sees the new CRLs, so rotation drops no traffic. OpenSSL's
    store only grows: a CA removed from the bundle stays trusted by TLS until a
    restart, which is one more reason :func:`peer_identity` checks every peer against
    the current bundle after the handshake.

    Raises:
        CertificateError: Unreadable credentials or an empty bundle (``context`` is then
            left as it was, as far as OpenSSL allows).
    """
    return _configure(context, cert, key, _bundle(bundle), passphrase=passphrase, crl_check=None)


def peer_identity(
    ssl_object: ssl.SSLObject | ssl.SSLSocket,
    bundle: TrustBundle,
    now: datetime,
    *,
    roles: Collection[Role | str] | None = None,
    purpose: Purpose | None = None,
) -> PeerIdentity:
    """Apply :func:`certs.verify_peer` to the peer certificate of a finished handshake.

    With asyncio: ``peer_identity(writer.get_extra_info("ssl_object"), bundle, now)``.

    Raises:
        PeerRefused: No peer certificate, or :func:`certs.verify_peer` refuses it.
    """
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerRefused("the peer presented no certificate", reason=Refusal.MALFORMED)
    return verify_peer(der, bundle, now, roles=roles, purpose=purpose)
