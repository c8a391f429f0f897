"""Mutual TLS and authorisation of the API: who may connect, and who may use it."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import pytest

import certs
from certs.testing import BadKind
from tests.gateway.api.conftest import Api


async def _metrics(api: Api) -> str:
    async with api.session() as s, s.get("/metrics") as r:
        assert r.status == 200
        return await r.text()


def _value(text: str, sample: str) -> float:
    """The value of one sample line (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _handshake_fails(api: Api, context: ssl.SSLContext) -> None:
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(api.url, connector=connector) as session:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            async with session.get("/api/v1/units") as response:
                await response.read()


async def test_no_client_certificate_fails_the_handshake_and_is_counted(api: Api) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=api.pki.bundle().ca_pem())
    await _handshake_fails(api, context)
    text = await _metrics(api)
    # aiohttp retries an idempotent request once on a reset connection: at least one.
    assert (
        _value(text, 'euccs_api_tls_handshake_failures_total{reason="no_client_certificate"}') >= 1
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (BadKind.UNKNOWN_CA, "unknown_ca"),
        (BadKind.EXPIRED, "expired"),
        (BadKind.REVOKED, "revoked"),
    ],
)
async def test_bad_client_certificates_fail_the_handshake(
    api: Api, kind: BadKind, reason: str
) -> None:
    await _handshake_fails(api, api.context(api.bad[kind]))
    text = await _metrics(api)
    assert _value(text, f'euccs_api_tls_handshake_failures_total{{reason="{reason}"}}') >= 1


async def test_console_of_the_other_country_is_forbidden(api: Api) -> None:
    async with api.session(api.pki.consoles["FR"]) as s, s.get("/api/v1/units") as r:
        assert r.status == 403
        body = await r.json()
    assert body["error"] == "wrong_country"
    assert "euccs://FR/console/console-1" in body["detail"] and "DE gateway" in body["detail"]


async def test_a_gateway_certificate_may_monitor_but_not_use_the_api(api: Api) -> None:
    gateway = api.pki.gateways["DE"]
    async with api.session(gateway) as s:
        async with s.get("/api/v1/units") as r:
            assert r.status == 403
            body = await r.json()
            assert body["error"] == "forbidden" and "wrong-role" in body["detail"]
        async with s.get("/metrics") as r:
            assert r.status == 200
        async with s.get("/healthz") as r:
            assert r.status == 200


async def test_plain_http_on_the_tls_port_is_refused(api: Api) -> None:
    url = api.url.replace("https://", "http://")
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(f"{url}/api/v1/units") as r:
                await r.read()


async def test_console_certificate_of_a_forged_country_is_refused(api: Api) -> None:
    assert isinstance(api.bad[BadKind.FOREIGN_IDENTITY], certs.Credential)
    await _handshake_fails(api, api.context(api.bad[BadKind.FOREIGN_IDENTITY]))


async def test_a_request_another_site_makes_a_browser_send_is_refused(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/messages", {"to": {"group": "xb.kehl-strasbourg"}, "emergency": {}}
    )
    assert status == 202
    alert_id = body["message_id"]
    forged = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    async with (
        api.session() as session,
        session.post(f"/api/v1/alerts/{alert_id}/ack", data="x=1", headers=forged) as response,
    ):
        assert response.status == 403
        assert (await response.json())["error"] == "cross_site"
    status, alerts = await api.get("/api/v1/alerts")
    assert not next(a for a in alerts if a["alert_id"] == alert_id)["acknowledged"]
    same_site = {"Origin": api.url, "Sec-Fetch-Site": "same-origin"}
    status, acked = await api.post(f"/api/v1/alerts/{alert_id}/ack", headers=same_site)
    assert (status, acked["acknowledged"]) == (200, True)


async def test_answers_forbid_framing_sniffing_and_foreign_content(api: Api) -> None:
    async with api.session() as session, session.get("/api/v1/units") as response:
        headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "default-src 'self'" in headers["Content-Security-Policy"]


async def test_an_event_stream_whose_client_stopped_reading_is_cut_off(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.api.app.STREAM_WRITE_SECONDS", 0.5)
    hub = api.server.recorder.events
    host, port = api.url.removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=api.context())
    writer.write(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        while len(hub) != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    big = {"type": "presence", "unit": "x" * 60_000}
    for _ in range(600):  # 36 MB: far more than the sockets take while nobody reads
        hub.publish(big)
        await asyncio.sleep(0)
    async with asyncio.timeout(10):
        while api.server.recorder.api_rejections["stream_stalled"] < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
        async with asyncio.timeout(10):
            while await reader.read(65536):  # what was sent, then the cut
                pass
            raise ConnectionResetError("closed")
    writer.transport.abort()
