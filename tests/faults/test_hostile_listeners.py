"""Hostile peers on the two listeners strangers can reach: the control-room HTTPS API
(mutual TLS) and the MCData SIP listener.

For each: an oversized payload is refused before its body is read, a slow-loris (a head
sent byte by byte, or a head that stops) is dropped after a bounded, configured timeout,
and a connection flood is bounded; every refusal is logged and counted, and a legitimate
client keeps being served meanwhile. Everything runs on loopback sockets, no mocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from adapters.mcdata import McdataAdapter, McdataSystemSimulator
from protocols.errors import LinkError
from protocols.sip import ConnectionClosed
from tests.adapters.mcdata.conftest import (
    ALICE,
    LMR_1,
    RawSip,
    mcx_and_adapter,
)
from tests.gateway.api.conftest import Api, ApiFactory, make_api
from tests.gateway.federation import eventually

__all__ = ["make_api"]  # the fixture, re-used from the API tests

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
#: Bound on every wait of these tests (seconds): far above the configured timeouts.
LIMIT = 10.0


# ---------------------------------------------------------------------- helpers


async def _closed_by_peer(reader: asyncio.StreamReader, limit: float = LIMIT) -> bytes:
    """Read until the other end closes the connection; return what was read."""
    data = b""
    async with asyncio.timeout(limit):
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionResetError, BrokenPipeError):
                return data
            if not chunk:
                return data
            data += chunk


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


async def _drip(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Write ``data`` one byte every ``interval`` seconds until the connection fails."""
    for byte in data:
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except OSError:
            return
        await asyncio.sleep(interval)  # the attack itself: a byte now and then


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# ---------------------------------------------------------------------- the HTTPS API


def _port(api: Api) -> int:
    return int(api.url.rsplit(":", 1)[1])


async def _tls(api: Api) -> Streams:
    return await asyncio.open_connection("127.0.0.1", _port(api), ssl=api.context())


async def _units_ok(api: Api) -> bool:
    status, body = await api.get("/api/v1/units")
    return status == 200 and isinstance(body, list)


async def _metrics(api: Api) -> str:
    async with api.session() as session, session.get("/metrics") as response:
        assert response.status == 200
        return await response.text()


@pytest.fixture
async def guarded_api(make_api: ApiFactory) -> AsyncIterator[Api]:
    async with make_api(max_body_bytes=1024, handshake_timeout=0.5, header_timeout=0.5) as api:
        yield api


async def test_api_refuses_oversized_content_length_without_reading_the_body(
    guarded_api: Api,
) -> None:
    api = guarded_api
    reader, writer = await _tls(api)
    head = (
        "POST /api/v1/messages HTTP/1.1\r\nHost: gateway\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    )
    with structlog.testing.capture_logs() as logs:
        writer.write(head.encode())  # the head only: not a byte of the body is ever sent
        await writer.drain()
        answer = await _closed_by_peer(reader)  # answered, then closed: nothing is read
        # The log line may follow the answer by a loop iteration: wait for it, bounded.
        await eventually(lambda: bool(_events(logs, "api.body_too_large")))
    await _close(writer)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    assert b'"error": "body_too_large"' in answer or b'"error":"body_too_large"' in answer
    assert b"larger than 1024 bytes" in answer
    assert b"Connection: close" in answer
    assert api.server.recorder.api_rejections["body_too_large"] == 1
    [line] = _events(logs, "api.body_too_large")
    assert line["content_length"] == 10**9 and line["limit"] == 1024
    assert await _units_ok(api)  # other traffic keeps flowing
    text = await _metrics(api)
    assert 'euccs_rejected_inputs_total{reason="body_too_large",source="api"} 1' in text


@pytest.mark.parametrize("attack", ["drip", "stall"])
async def test_api_slow_loris_is_dropped_after_the_header_timeout(
    guarded_api: Api, attack: str
) -> None:
    api = guarded_api
    head = b"GET /api/v1/units HTTP/1.1\r\nHost: gateway\r\nX-Padding: " + b"a" * 200
    reader, writer = await _tls(api)
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        if attack == "drip":  # a byte every 50 ms: never a complete head
            sender = asyncio.create_task(_drip(writer, head, 0.05))
        else:  # half a head, then nothing
            writer.write(head[:30])
            await writer.drain()
            sender = asyncio.create_task(asyncio.sleep(0))
        served = 0
        closed = asyncio.create_task(_closed_by_peer(reader))
        while not closed.done():  # a legitimate console is served throughout the attack
            assert await _units_ok(api)
            served += 1
        answer = await closed
        await sender
    elapsed = time.monotonic() - started
    await _close(writer)
    assert answer == b""  # dropped, not answered
    assert 0.4 <= elapsed < 5.0, elapsed
    assert served >= 2
    assert api.server.recorder.api_rejections["header_timeout"] == 1
    [line] = _events(logs, "api.header_timeout")
    assert line["timeout"] == 0.5 and line["requests"] == 0
    assert await _units_ok(api)
    text = await _metrics(api)
    assert 'euccs_rejected_inputs_total{reason="header_timeout",source="api"} 1' in text


async def test_api_idle_keepalive_connection_is_closed_quietly(guarded_api: Api) -> None:
    api = guarded_api
    reader, writer = await _tls(api)
    writer.write(b"GET /api/v1/units HTTP/1.1\r\nHost: gateway\r\n\r\n")
    await writer.drain()
    answer = await _closed_by_peer(reader)  # served, then idle past header_timeout
    await _close(writer)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert api.server.recorder.api_rejections["header_timeout"] == 0


async def test_api_stalled_tls_handshake_is_dropped(guarded_api: Api) -> None:
    api = guarded_api
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(api))
    with structlog.testing.capture_logs() as logs:
        writer.write(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
        await writer.drain()
        started = time.monotonic()
        assert await _closed_by_peer(reader) == b""
    elapsed = time.monotonic() - started
    await _close(writer)
    assert 0.4 <= elapsed < 5.0, elapsed
    assert api.server.recorder.tls_failures["handshake_timeout"] == 1
    assert [e["reason"] for e in _events(logs, "api.tls_handshake_failed")] == ["handshake_timeout"]
    text = await _metrics(api)
    assert 'euccs_api_tls_handshake_failures_total{reason="handshake_timeout"} 1' in text


async def _flood(port: int, count: int) -> list[Streams]:
    """Open ``count`` TCP connections that never send a byte (no TLS handshake either)."""
    return list(
        await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(count)))
    )


async def _drop_flood(flood: list[Streams]) -> list[bytes]:
    answers = await asyncio.gather(*(_closed_by_peer(reader) for reader, _ in flood))
    await asyncio.gather(*(_close(writer) for _, writer in flood))
    return answers


async def test_api_connection_flood_below_the_limit_does_not_block_consoles(
    make_api: ApiFactory,
) -> None:
    # One address may hold every slot here: the total bound is what this test is about.
    async with make_api(handshake_timeout=2.0, max_connections_per_address=256) as api:
        flood = await _flood(_port(api), 200)
        started = time.monotonic()
        async with asyncio.timeout(1.5):  # before any flood connection timed out
            assert await _units_ok(api)
        assert time.monotonic() - started < 1.5
        assert await _drop_flood(flood) == [b""] * 200  # each dropped after the deadline
        recorder = api.server.recorder
        assert recorder.tls_failures["handshake_timeout"] == 200
        assert recorder.api_rejections["too_many_connections"] == 0
        assert await _units_ok(api)


async def test_api_connection_flood_above_the_limit_is_refused(make_api: ApiFactory) -> None:
    async with make_api(handshake_timeout=0.5, max_connections=20) as api:
        with structlog.testing.capture_logs() as logs:
            flood = await _flood(_port(api), 200)
            recorder = api.server.recorder
            # A console gets through within a bounded time: slots free at the deadline.
            assert await _with_retries(lambda: _units_ok(api), limit=LIMIT)
            assert await _drop_flood(flood) == [b""] * 200
        # Each flood connection was refused at once or dropped at the handshake deadline
        # (the console's attempts during the flood may add refusals).
        refused = recorder.api_rejections["too_many_connections"]
        assert refused + recorder.tls_failures["handshake_timeout"] >= 200
        assert recorder.tls_failures["handshake_timeout"] >= 20
        assert refused > 0
        refusals = _events(logs, "api.connection_refused")
        assert len(refusals) == refused
        assert refusals[0]["limit"] == 20
        assert await _units_ok(api)  # the slots are free again
        text = await _metrics(api)
        assert 'euccs_rejected_inputs_total{reason="too_many_connections",source="api"}' in text


async def _with_retries(attempt: Callable[[], Awaitable[bool]], *, limit: float) -> bool:
    """``attempt()`` until it succeeds; connection errors count as failed attempts."""
    async with asyncio.timeout(limit):
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError, LinkError):
                if await attempt():
                    return True
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------------- the SIP listener


def _sip(
    tmp_path: Path, **options: Any
) -> contextlib.AbstractAsyncContextManager[tuple[McdataAdapter, McdataSystemSimulator]]:
    """A simulated MCX system and an adapter whose inbound deadline is 0.5 s."""
    return mcx_and_adapter(inbound_timeout=0.5, **options)


async def _sds_ok(sim: McdataSystemSimulator, text: str) -> bool:
    return (await sim.send_sds(ALICE, LMR_1, text)).ok


def _message_head(content_length: int) -> bytes:
    return (
        f"MESSAGE {LMR_1} SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKhostile1\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{ALICE}>;tag=t1\r\n"
        f"To: <{LMR_1}>\r\n"
        "Call-ID: hostile1@test\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


async def test_sip_oversized_message_is_refused_before_its_body(tmp_path: Path) -> None:
    async with _sip(tmp_path, max_body=1024) as (adapter, sim):
        raw = await RawSip.open(adapter.listen_port)
        try:
            with structlog.testing.capture_logs() as logs:
                await raw.send(_message_head(10**9))  # the head only: no body ever follows
                response = await raw.response()
                closed = await raw.next_event()
        finally:
            await raw.close()
        assert response.status == 413
        assert response.headers.get("Call-ID") == "hostile1@test"
        assert isinstance(closed, ConnectionClosed)
        assert adapter.counters["rejected"] == 1
        [line] = _events(logs, "mcdata_rejected")
        assert line["status"] == 413 and line["answered"] is True
        assert await _sds_ok(sim, "after the oversized one")  # other traffic keeps flowing
        assert adapter.counters["sds_in"] == 1


@pytest.mark.parametrize("attack", ["drip", "stall"])
async def test_sip_slow_loris_is_dropped_after_the_inbound_timeout(
    tmp_path: Path, attack: str
) -> None:
    async with _sip(tmp_path) as (adapter, sim):
        head = _message_head(2)
        reader, writer = await asyncio.open_connection("127.0.0.1", adapter.listen_port)
        started = time.monotonic()
        with structlog.testing.capture_logs() as logs:
            if attack == "drip":  # a byte every 50 ms: never a complete request
                sender = asyncio.create_task(_drip(writer, head, 0.05))
            else:  # half a head, then nothing
                writer.write(head[: len(head) // 2])
                await writer.drain()
                sender = asyncio.create_task(asyncio.sleep(0))
            closed = asyncio.create_task(_closed_by_peer(reader))
            served = 0
            while not closed.done():  # the MCX system is served throughout the attack
                assert await _sds_ok(sim, f"during the attack {served}")
                served += 1
            answer = await closed
            await sender
        elapsed = time.monotonic() - started
        await _close(writer)
        assert answer == b""  # dropped, not answered
        assert 0.4 <= elapsed < 5.0, elapsed
        assert served >= 2
        assert adapter.counters["inbound_stalled"] == 1
        [line] = _events(logs, "sip_connection_stalled")
        assert line["timeout"] == 0.5 and line["served"] == 0
        assert adapter.counters["sds_in"] == served


async def test_sip_connection_flood_is_bounded_and_the_mcx_system_still_served(
    tmp_path: Path,
) -> None:
    async with _sip(tmp_path, max_connections=16) as (adapter, sim):
        with structlog.testing.capture_logs() as logs:
            flood = await _flood(adapter.listen_port, 200)
            counters = adapter.counters
            # The MCX system gets through within a bounded time (slots free at the deadline).
            assert await _with_retries(lambda: _sds_ok(sim, "through the flood"), limit=LIMIT)
            assert await _drop_flood(flood) == [b""] * 200
        # Each flood connection was refused at once or dropped at the inbound deadline
        # (the MCX system's own attempts during the flood may add refusals).
        assert counters["connections_refused"] + counters["inbound_stalled"] >= 200
        assert counters["connections_refused"] > 0
        assert counters["inbound_stalled"] >= 16
        assert len(_events(logs, "sip_connection_refused")) == counters["connections_refused"]
        assert len(_events(logs, "sip_connection_stalled")) == counters["inbound_stalled"]
        assert adapter.inbound_connections <= 1  # only the MCX system's, if any
        assert await _sds_ok(sim, "after the flood")


async def test_sip_idle_connection_after_traffic_is_closed_quietly(tmp_path: Path) -> None:
    async with _sip(tmp_path) as (adapter, sim):
        assert await _sds_ok(sim, "then silence")
        await eventually(lambda: adapter.counters["inbound_idle_closed"] == 1, LIMIT)
        assert adapter.counters["inbound_stalled"] == 0
        # Like a real MCX system, the simulator may first hit the connection the gateway just
        # closed; it then connects again and the message goes through.
        try:
            delivered = await _sds_ok(sim, "the MCX system reconnects")
        except LinkError:
            delivered = await _sds_ok(sim, "the MCX system reconnects")
        assert delivered
