"""The gateway's MCData link over mutual TLS, configured as an operator would."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from adapters.mcdata import McdataAdapter, McdataUser
from gateway.config import AdapterConfig, parse_config
from gateway.demo_configs import demo_config_text
from gateway.node import _mcdata_settings, mcdata_tls_context
from protocols.errors import ConfigError
from protocols.mcdata import McdataId, Payload
from tests.adapters.mcdata.conftest import ALICE, LMR_1, Recorder, free_port, make_config
from tests.adapters.mcdata.test_tls import self_signed

pytestmark = pytest.mark.interop


def _gateway_side(
    tmp_path: Path, listen: int, peer: int, mcx_cert: Path
) -> tuple[AdapterConfig, Path]:
    cert, key = self_signed(tmp_path, "iwf.gateway.test")
    adapter = AdapterConfig(
        name="mcx-be",
        type="mcdata",
        organisation="astrid",
        codebook="be-astrid",
        listen=f"127.0.0.1:{listen}",
        peer=f"127.0.0.1:{peer}",
        transport="tls",
        iwf_domain="iwf.mcx.be",
        tls_cert=str(cert),
        tls_key=str(key),
        tls_ca=str(mcx_cert),
        tls_server_name="mcx.test",
    )
    return adapter, cert


def _mcx_side(
    mcx_cert: Path, mcx_key: Path, gateway_cert: Path
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(gateway_cert))
    server.load_cert_chain(mcx_cert, mcx_key)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(gateway_cert))
    client.load_cert_chain(mcx_cert, mcx_key)
    return server, client


async def test_sds_cross_the_mcdata_link_over_mutual_tls_and_strangers_are_refused(
    tmp_path: Path,
) -> None:
    mcx_cert, mcx_key = self_signed(tmp_path, "mcx.test")
    gateway_port, mcx_port = free_port(), free_port()
    adapter, gateway_cert = _gateway_side(tmp_path, gateway_port, mcx_port, mcx_cert)
    server_ssl, client_ssl = _mcx_side(mcx_cert, mcx_key, gateway_cert)
    mcx_config = make_config(
        gateway_port,
        name="mcx",
        listen_port=mcx_port,
        peer_server_name="iwf.gateway.test",
        transport="tls",
        server_ssl=server_ssl,
        client_ssl=client_ssl,
    )
    at_gateway, at_mcx = Recorder(), Recorder()
    async with (
        McdataAdapter(_mcdata_settings(adapter), at_gateway) as gateway,
        McdataAdapter(mcx_config, at_mcx) as mcx,
    ):
        await gateway.wait_connected(5.0)
        await mcx.wait_connected(5.0)
        sent = await mcx.send_sds(ALICE, McdataUser(McdataId(LMR_1)), [Payload.from_text("à B")])
        assert sent.ok
        assert [s.text for s in at_gateway.sds()] == ["à B"]
        # Someone without a certificate the CA signed cannot even open a connection.
        stranger = ssl.create_default_context(cafile=str(gateway_cert))
        stranger.check_hostname = False
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway_port, ssl=stranger)
            try:
                writer.write(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
                await writer.drain()
                await reader.readexactly(1)
            finally:
                writer.close()
    assert len(at_gateway.sds()) == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('transport = "tls"\n', "tls_cert"),
        ('tls_cert = "/etc/euccs/mcx.pem"\n', "used with transport = 'tls' only"),
    ],
)
def test_tls_settings_of_an_mcdata_adapter_are_checked(lines: str, message: str) -> None:
    text = demo_config_text("BE", sip_peer_port=5070).replace(
        'iwf_domain = "', lines + 'iwf_domain = "', 1
    )
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_unreadable_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    adapter = AdapterConfig(
        name="mcx-be",
        type="mcdata",
        organisation="astrid",
        codebook="be-astrid",
        transport="tls",
        tls_cert=str(tmp_path / "missing.pem"),
        tls_key=str(tmp_path / "missing.key"),
        tls_ca=str(tmp_path / "missing-ca.pem"),
    )
    with pytest.raises(ConfigError, match="adapter 'mcx-be': cannot set up TLS"):
        mcdata_tls_context(adapter, server=True)
