"""The [api] configuration table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway._toml import Table
from gateway.api.settings import ApiSettings, parse_api, parse_listen
from protocols.errors import ConfigError


def _parse(text: str) -> ApiSettings | None:
    root = Table(tomllib.loads(text), "")
    settings = parse_api(root.table("api"))
    root.finish()
    return settings


def test_absent_table_means_no_api() -> None:
    assert _parse("") is None


def test_full_table() -> None:
    settings = _parse(
        """
        [api]
        listen = "0.0.0.0:8443"
        cert = "gw.pem"
        key = "gw.key"
        bundle = "bundle"
        metrics_listen = "127.0.0.1:9464"
        include_payload_in_audit = true
        """
    )
    assert settings == ApiSettings(
        host="0.0.0.0",
        port=8443,
        cert=Path("gw.pem"),
        key=Path("gw.key"),
        bundle=Path("bundle"),
        metrics_host="127.0.0.1",
        metrics_port=9464,
        include_payload_in_audit=True,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('cert = "a"\nkey = "b"\nbundle = "c"', "api.listen: required string is missing"),
        ('listen = "nope"\ncert = "a"\nkey = "b"\nbundle = "c"', "api.listen: 'nope' is not"),
        ('listen = ":1"\ncert = "a"\nkey = "b"\nbundle = "c"', "api.listen"),
        ('listen = "h:99999"\ncert = "a"\nkey = "b"\nbundle = "c"', "above 65535"),
        ('listen = "h:1"\nkey = "b"\nbundle = "c"', "api.cert: required string is missing"),
        ('listen = "h:1"\ncert = "a"\nkey = "b"\nbundle = "c"\nport = 1', "api.port: unknown"),
        (
            'listen = "h:1"\ncert = "a"\nkey = "b"\nbundle = "c"\ninclude_payload_in_audit = 1',
            "api.include_payload_in_audit: expected true or false",
        ),
        (
            'listen = "h:1"\ncert = "a"\nkey = "b"\nbundle = "c"\nmetrics_listen = "h:1"',
            "api.metrics_listen: must differ",
        ),
    ],
)
def test_errors_name_the_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _parse("[api]\n" + body)


def test_listen_forms() -> None:
    assert parse_listen("[::1]:8443") == ("::1", 8443)
    assert parse_listen("gw.example.eu:0") == ("gw.example.eu", 0)
    with pytest.raises(ValueError, match="IPv6"):
        parse_listen("[zz]:1")


async def test_demo_settings_serve_both_gateways(tmp_path: Path) -> None:
    import aiohttp

    import certs
    from gateway.api.demo_support import demo_api_settings
    from gateway.api.server import serve_api
    from tests.gateway.federation import federation

    async with federation(tmp_path / "state") as fed:
        demo = demo_api_settings(tmp_path / "demo", [fed.de, fed.fr])
        for gateway in (fed.de, fed.fr):
            console = demo.consoles[gateway.nation]
            context = certs.client_context(console.cert, console.key, demo.pki.bundle_dir)
            async with (
                serve_api(gateway, demo.settings[gateway.nation]) as api,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as s,
                s.get(f"{api.url}/readyz") as r,
            ):
                assert r.status == 200
