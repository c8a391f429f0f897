"""Two MCData adapters talking SIP over mutually configured TLS on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters import LinkState, LinkStateChanged
from adapters.mcdata import McdataAdapter, McdataUser
from protocols.mcdata import McdataId, Payload

from .conftest import ALICE, LMR_1, Recorder, free_port, make_config

pytestmark = pytest.mark.interop


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def contexts(cert: Path, key: Path, trusted: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(trusted))
    return server, client


async def test_sds_both_ways_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "mcx.test")
    server_ssl, client_ssl = contexts(cert, key, cert)
    port_a, port_b = free_port(), free_port()
    tls = {"transport": "tls", "server_ssl": server_ssl, "client_ssl": client_ssl}
    rec_a, rec_b = Recorder(), Recorder()
    config_a = make_config(
        port_b, name="gw-a", listen_port=port_a, peer_server_name="mcx.test", **tls
    )
    config_b = make_config(port_a, name="gw-b", listen_port=port_b, **tls)
    async with McdataAdapter(config_a, rec_a) as a, McdataAdapter(config_b, rec_b) as b:
        await a.wait_connected(5.0)
        await b.wait_connected(5.0)
        to_b = await a.send_sds(LMR_1, McdataUser(McdataId(ALICE)), [Payload.from_text("à B")])
        to_a = await b.send_sds(ALICE, McdataUser(McdataId(LMR_1)), [Payload.from_text("à A")])
        assert to_b.ok and to_a.ok
    assert [s.text for s in rec_b.sds()] == ["à B"]
    assert [s.text for s in rec_a.sds()] == ["à A"]
    assert rec_b.sds()[0].message_id == to_b.message_id


async def test_untrusted_peer_certificate_is_bad_credentials(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "mcx.test")
    other, _ = self_signed(tmp_path, "other.test")
    server_ssl, _ = contexts(cert, key, cert)
    _, distrusting = contexts(cert, key, other)
    port_a, port_b = free_port(), free_port()
    rec_a, rec_b = Recorder(), Recorder()
    config_b = make_config(
        port_a,
        name="gw-b",
        listen_port=port_b,
        transport="tls",
        server_ssl=server_ssl,
        client_ssl=distrusting,
    )
    config_a = make_config(
        port_b,
        name="gw-a",
        listen_port=port_a,
        transport="tls",
        server_ssl=server_ssl,
        client_ssl=distrusting,
    )
    async with McdataAdapter(config_b, rec_b), McdataAdapter(config_a, rec_a):
        await rec_a.wait_for(lambda: LinkState.BAD_CREDENTIALS in rec_a.states())
    assert LinkState.CONNECTED not in rec_a.states()
    [bad] = [e for e in rec_a.of_type(LinkStateChanged) if e.state is LinkState.BAD_CREDENTIALS]
    assert "certificate" in bad.reason
