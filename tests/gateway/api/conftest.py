"""Fixtures of the API tests: DE and FR gateways on simulated radios, a real PKI minted at
run time, and the DE gateway's API on an ephemeral HTTPS port."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import certs
from certs.testing import BadKind, mint_bad_credentials
from gateway.api.server import ApiServer, serve_api
from gateway.api.settings import ApiSettings
from tests.gateway.federation import Federation, eventually, federation

GATEWAY_NAMES = {"DE": "gw-de-kehl", "FR": "gw-fr-strasbourg"}


@dataclass
class Api:
    fed: Federation
    pki: certs.Federation
    bad: dict[BadKind, certs.Credential]
    server: ApiServer
    settings: ApiSettings

    @property
    def url(self) -> str:
        return self.server.url

    def context(self, credential: certs.Credential | None = None) -> ssl.SSLContext:
        credential = credential or self.pki.consoles["DE"]
        return certs.client_context(credential.cert, credential.key, self.pki.bundle_dir)

    def session(self, credential: certs.Credential | None = None) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.context(credential))
        return aiohttp.ClientSession(self.url, connector=connector)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session() as s, s.get(path, **kwargs) as r:
            return r.status, await r.json()

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        async with self.session() as s, s.post(path, json=body, **kwargs) as r:
            return r.status, await r.json()

    async def wait_state(self, message_id: str, state: str, seconds: float = 10.0) -> Any:
        found: dict[str, Any] = {}

        async def check() -> bool:
            status, body = await self.get(f"/api/v1/messages/{message_id}")
            found.update(body if status == 200 else {})
            return status == 200 and state in [s["state"] for s in body["states"]]

        async with __import__("asyncio").timeout(seconds):
            while not await check():
                await __import__("asyncio").sleep(0.05)
        return found


def mint(tmp_path: Path) -> tuple[certs.Federation, dict[BadKind, certs.Credential]]:
    now = datetime.now(UTC)
    pki = certs.mint_federation(
        tmp_path / "pki", ("DE", "FR"), now=now, gateway_names=GATEWAY_NAMES
    )
    bad = mint_bad_credentials(pki, now=now, country="DE")
    return pki, bad


ApiFactory = Callable[..., contextlib.AbstractAsyncContextManager[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    pki, bad = mint(tmp_path)

    @contextlib.asynccontextmanager
    async def make(**settings: Any) -> AsyncIterator[Api]:
        base = ApiSettings(
            host="127.0.0.1",
            port=0,
            cert=pki.gateways["DE"].cert,
            key=pki.gateways["DE"].key,
            bundle=pki.bundle_dir,
        )
        chosen = replace(base, **settings)
        async with federation(tmp_path) as fed, serve_api(fed.de, chosen, keepalive=0.5) as server:
            yield Api(fed, pki, bad, server, chosen)

    yield make


@pytest.fixture
async def api(make_api: ApiFactory) -> AsyncIterator[Api]:
    async with make_api() as running:
        yield running


__all__ = ["Api", "ApiFactory", "eventually"]
