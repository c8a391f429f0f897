"""Revocation and rotation on the running API: no restart, no dropped stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import structlog

import certs
from certs.identity import serial_text
from gateway.runner import reload_credentials
from protocols.errors import GatewayError
from tests.gateway.api.conftest import Api


async def test_revoked_console_is_refused_after_reload_and_its_stream_ends(api: Api) -> None:
    console = api.pki.consoles["DE"]
    with structlog.testing.capture_logs() as logs:
        await _revoke_while_streaming(api, console)
    # The client is told the refusal; the log has the certificate's serial and dates.
    [ended] = [e for e in logs if e["event"] == "api.stream_ended"]
    assert ended["why"] == "client certificate refused (revoked)"
    assert serial_text(console.serial) in ended["error"]
    # Another country's console is unaffected by the German revocation (and refused as foreign).
    async with api.session(api.pki.consoles["FR"]) as other, other.get("/api/v1/units") as r:
        assert r.status == 403
        assert "wrong_country" in await r.text()


async def _revoke_while_streaming(api: Api, console: certs.Credential) -> None:
    async with api.session() as watcher, watcher.get("/api/v1/events") as stream:
        assert stream.status == 200

        async def next_event() -> dict[str, object]:
            while True:
                line = (await stream.content.readline()).decode()
                if line.startswith("data: "):
                    event: dict[str, object] = json.loads(line.removeprefix("data: "))
                    return event

        assert (await next_event())["type"] == "hello"

        ca = api.pki.ca("DE")
        ca.revoke(console.serial, now=datetime.now(UTC))
        ca.publish_crl(now=datetime.now(UTC))
        api.pki.rebuild_bundle()
        assert (await api.get("/api/v1/units"))[0] == 200  # not reloaded yet: still trusted
        reload_credentials([api.server])

        # Refused: by the TLS layer (it has the new CRL) or by the check after the handshake.
        try:
            async with api.session() as late, late.get("/api/v1/units") as refused:
                assert refused.status in (401, 403)
                assert "revoked" in (await refused.text())
        except aiohttp.ClientError:
            assert api.server.recorder.tls_failures["revoked"] >= 1
        # The stream opened before the reload ends too: it is told why, then closed.
        async with asyncio.timeout(10):
            goodbye = await next_event()
            while goodbye["type"] != "goodbye":
                goodbye = await next_event()
            assert goodbye["reason"] == "client certificate refused (revoked)"
            assert (await stream.content.read()).strip() == b""  # then the server ended it
        assert api.server.recorder.api_rejections["stream_ended"] == 1


async def test_reload_with_broken_files_keeps_the_old_credentials(api: Api) -> None:
    api.pki.gateways["DE"].key.write_text("not a key")
    reload_credentials([api.server])  # logs the failure, raises nothing
    try:
        api.server.reload()
    except GatewayError as exc:
        assert "cannot load" in str(exc)
    else:
        raise AssertionError("a broken key was accepted")
    status, units = await api.get("/api/v1/units")
    assert status == 200
    assert units
