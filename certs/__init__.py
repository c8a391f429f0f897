"""PKI tooling of the federation: national CAs, certificates, CRLs, the trust bundle.

Each country runs one CA; it issues gateway, adapter and console certificates (ECDSA
P-256) carrying the holder's identity in a URI SAN ``euccs://<COUNTRY>/<role>/<name>``.
The trust bundle holds one CA (and CRL) per country, and :func:`verify_peer` pins every
identity to the CA of its own country. Every time-dependent function takes ``now``.
"""

from __future__ import annotations

from certs.bundle import BundleEntry, TrustBundle, load_bundle, write_bundle
from certs.ca import (
    DEFAULT_CA_DAYS,
    DEFAULT_CRL_DAYS,
    DEFAULT_LEAF_DAYS,
    CertificateAuthority,
    IssuedCredential,
    Revocation,
    build_ca_certificate,
    build_crl,
    build_leaf_certificate,
)
from certs.describe import describe_certificate, describe_crl
from certs.errors import CertificateError, PeerRefused, Refusal
from certs.expiry import ExpiryWarning, expiry_warnings
from certs.federation import Credential, Federation, mint_federation
from certs.identity import PeerIdentity, Role, identity_of, parse_identity_uri
from certs.tls import client_context, peer_identity, reload_context, server_context
from certs.verify import verify_peer

__all__ = [
    "DEFAULT_CA_DAYS",
    "DEFAULT_CRL_DAYS",
    "DEFAULT_LEAF_DAYS",
    "BundleEntry",
    "CertificateAuthority",
    "CertificateError",
    "Credential",
    "ExpiryWarning",
    "Federation",
    "IssuedCredential",
    "PeerIdentity",
    "PeerRefused",
    "Refusal",
    "Revocation",
    "Role",
    "TrustBundle",
    "build_ca_certificate",
    "build_crl",
    "build_leaf_certificate",
    "client_context",
    "describe_certificate",
    "describe_crl",
    "expiry_warnings",
    "identity_of",
    "load_bundle",
    "mint_federation",
    "parse_identity_uri",
    "peer_identity",
    "reload_context",
    "server_context",
    "verify_peer",
    "write_bundle",
]
