"""The HTTPS listener's per-address bound: a flood from one address cannot take every slot."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib

import aiohttp
import pytest
import structlog

from gateway._toml import Table
from gateway.api.settings import ApiSettings, parse_api
from protocols.errors import ConfigError
from tests.gateway.api.conftest import Api, ApiFactory
from tests.gateway.federation import eventually

FLOODER = "127.0.0.1"
OTHER = "127.0.0.2"


def _port(api: Api) -> int:
    return int(api.url.rsplit(":", 1)[1])


async def _get_from(api: Api, source: str, path: str) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(ssl=api.context(), local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(api.url, connector=connector) as session,
        session.get(path) as response,
    ):
        return response.status, await response.text()


async def _closed_at_once(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(5.0):
            return await reader.read(1) == b""
    return True


async def test_flood_from_one_address_is_refused_while_another_address_gets_in(
    make_api: ApiFactory,
) -> None:
    async with make_api(
        max_connections=64, max_connections_per_address=4, handshake_timeout=30.0
    ) as api:
        recorder = api.server.recorder
        with structlog.testing.capture_logs() as logs:
            flood = [
                await asyncio.open_connection("127.0.0.1", _port(api), local_addr=(FLOODER, 0))
                for _ in range(10)
            ]
            await eventually(
                lambda: recorder.api_rejections["too_many_connections_from_address"] == 6
            )
            # The four admitted ones are still open (their handshake deadline is far off);
            # the six above the bound were closed at once.
            assert all([await _closed_at_once(reader) for reader, _ in flood[4:]])
            assert not any(reader.at_eof() for reader, _ in flood[:4])
            # Another address is served meanwhile; the flooding address is not.
            status, _ = await _get_from(api, OTHER, "/api/v1/units")
            assert status == 200
            try:
                refused_status: int | None = (await _get_from(api, FLOODER, "/api/v1/units"))[0]
            except (aiohttp.ClientError, OSError):
                refused_status = None
            assert refused_status is None
        assert recorder.api_rejections["too_many_connections_from_address"] == 7
        assert recorder.api_rejections["too_many_connections"] == 0
        refusals = [e for e in logs if e["event"] == "api.connection_refused_per_address"]
        assert len(refusals) == 7
        assert {(e["address"], e["limit"], e["log_level"]) for e in refusals} == {
            (FLOODER, 4, "warning")
        }
        status, text = await _get_from(api, OTHER, "/metrics")
        assert status == 200
        assert (
            'euccs_rejected_inputs_total{reason="too_many_connections_from_address",'
            'source="api"} 7' in text
        )
        # The slots are the flooder's again once its connections end.
        for _, writer in flood:
            writer.close()
        assert await _served_again(api, FLOODER)


async def _served_again(api: Api, source: str) -> bool:
    """Retry from ``source`` until a request is served (its slots are released)."""
    async with asyncio.timeout(10.0):
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                if (await _get_from(api, source, "/api/v1/units"))[0] == 200:
                    return True
            await asyncio.sleep(0.05)


_BASE = """
[api]
listen = "127.0.0.1:8443"
cert = "gw.pem"
key = "gw.key"
bundle = "bundle"
"""


def _parse(extra: str) -> ApiSettings | None:
    root = Table(tomllib.loads(_BASE + extra), "")
    return parse_api(root.table("api"))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", 32),
        ("max_connections = 8", 8),  # the default never exceeds the total bound
        ("max_connections_per_address = 5", 5),
        ("max_connections = 8\nmax_connections_per_address = 8", 8),
    ],
)
def test_per_address_setting(extra: str, expected: int) -> None:
    settings = _parse(extra)
    assert settings is not None
    assert settings.max_connections_per_address == expected


@pytest.mark.parametrize(
    "extra",
    [
        "max_connections_per_address = 0",
        "max_connections = 8\nmax_connections_per_address = 9",
        'max_connections_per_address = "many"',
    ],
)
def test_per_address_setting_is_validated(extra: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.max_connections_per_address"):
        _parse(extra)
