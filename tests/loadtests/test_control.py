"""The simulators' HTTP control interfaces: input validation and real sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.mcdata import McdataSystemSimulator
from adapters.tetra import TetraNetworkSimulator
from protocols.tetra import StatusSds, TextSds


@pytest.fixture
async def tetra() -> AsyncIterator[TetraNetworkSimulator]:
    async with TetraNetworkSimulator(units=("2001", "2002"), control_port=0) as sim:
        yield sim


@pytest.fixture
async def mcdata() -> AsyncIterator[McdataSystemSimulator]:
    async with McdataSystemSimulator(control_port=0) as sim:
        yield sim


async def _request(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as r:
        return r.status, await r.json()


@contextlib.asynccontextmanager
async def _pei_peer(
    tetra: TetraNetworkSimulator,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to the simulated radio's PEI, as the gateway would open it."""
    reader, writer = await asyncio.open_connection(tetra.host, tetra.port)
    try:
        await asyncio.wait_for(tetra.wait_for(lambda: tetra.gateway_connected), 5)
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


def _tetra_url(sim: TetraNetworkSimulator) -> str:
    assert sim.control is not None
    return sim.control.url


def _mcdata_url(sim: McdataSystemSimulator) -> str:
    assert sim.control is not None
    return sim.control.url


async def test_control_listens_on_loopback_by_default(tetra: TetraNetworkSimulator) -> None:
    assert tetra.control is not None and tetra.control.host == "127.0.0.1"
    status, body = await _request("GET", _tetra_url(tetra) + "/healthz")
    assert status == 200
    assert body == {"status": "ok", "gateway_connected": False, "radios": 2}


async def test_no_control_interface_unless_asked() -> None:
    async with TetraNetworkSimulator() as sim, McdataSystemSimulator() as mcx:
        assert sim.control is None and mcx.control is None


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "error"),
    [
        ("/radios/2001/sds", {"data": b"{not json"}, 400, "malformed_json"),
        ("/radios/2001/sds", {"data": b"\xff\xfe"}, 400, "malformed_json"),
        ("/radios/2001/sds", {"json": [1, 2]}, 400, "invalid_body"),
        ("/radios/2001/sds", {"json": {"to": "1000"}}, 400, "invalid_body"),
        ("/radios/2001/sds", {"json": {"to": "x", "status": 1}}, 400, "invalid_body"),
        ("/radios/2001/sds", {"json": {"to": "1000", "status": 70000}}, 400, "invalid_body"),
        (
            "/radios/2001/sds",
            {"json": {"to": "1000", "status": 1, "text": "a"}},
            400,
            "invalid_body",
        ),
        (
            "/radios/2001/sds",
            {"json": {"to": "1000", "latitude": 91, "longitude": 0}},
            400,
            "invalid_body",
        ),
        (
            "/radios/2001/sds",
            {"json": {"to": "1000", "status": 1, "bogus": 1}},
            400,
            "invalid_body",
        ),
        ("/radios/2001/sds", {"data": b"x" * (64 * 1024 + 1)}, 413, "body_too_large"),
        (
            "/radios/2001/sds",
            {"json": {"to": "1000", "emergency": True, "status": 1}},
            400,
            "invalid_body",
        ),
        ("/radios/9999/sds", {"json": {"to": "1000", "status": 1}}, 404, "unknown_radio"),
        ("/nowhere", {"json": {}}, 404, "not_found"),
        ("/faults", {"json": {"silent": "yes"}}, 400, "invalid_body"),
    ],
)
async def test_tetra_control_refuses_bad_requests(
    tetra: TetraNetworkSimulator, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    got, body = await _request("POST", _tetra_url(tetra) + path, **kwargs)
    assert (got, body["error"]) == (status, error)
    assert body["detail"]
    # The server is still answering.
    assert (await _request("GET", _tetra_url(tetra) + "/healthz"))[0] == 200


async def test_tetra_unknown_radio_listing_and_bad_query(tetra: TetraNetworkSimulator) -> None:
    status, body = await _request("GET", _tetra_url(tetra) + "/radios/42/received")
    assert (status, body["error"]) == (404, "unknown_radio")
    status, body = await _request("GET", _tetra_url(tetra) + "/radios/2001/received?since=-1")
    assert (status, body["error"]) == (400, "invalid_query")


async def test_tetra_send_without_gateway_is_503(tetra: TetraNetworkSimulator) -> None:
    status, body = await _request(
        "POST", _tetra_url(tetra) + "/radios/2001/sds", json={"to": "1000", "status": 3}
    )
    assert (status, body["error"]) == (503, "no_gateway")


async def test_tetra_send_reaches_the_pei_and_received_lists(tetra: TetraNetworkSimulator) -> None:
    """A connected PEI peer sees the radio's status; a radio's inbox is listed as JSON."""
    async with _pei_peer(tetra) as (reader, _writer):
        status, body = await _request(
            "POST",
            _tetra_url(tetra) + "/radios/2001/sds",
            json={"to": "9001001", "emergency": True},
        )
        assert status == 200
        assert body == {"radio": "2001", "to": "9001001", "kind": "emergency", "custody": "written"}
        data = b""
        async with asyncio.timeout(5):
            while b"9001001" not in data:
                data += await reader.read(4096)
        assert b"+CTSDSR:" in data and b"2001" in data
        # An emergency with the radio's position (a LIP report, reason emergency).
        status, body = await _request(
            "POST",
            _tetra_url(tetra) + "/radios/2001/sds",
            json={"to": "9001001", "emergency": True, "latitude": 48.57, "longitude": 7.8},
        )
        assert (status, body["kind"], body["custody"]) == (200, "emergency", "written")
        # Text with wait=false: answered on write, with its SDS-TL message reference.
        status, body = await _request(
            "POST",
            _tetra_url(tetra) + "/radios/2001/sds",
            json={"to": "9001001", "text": "hello", "wait": False},
        )
        assert (status, body["custody"], body["reference"]) == (200, "written", 0)
    tetra.radios.accept("1000", "2002", StatusSds(status=0x8006), 0.0)
    tetra.radios.accept(
        "1000", "2002", TextSds(protocol_id=0x82, text="bonjour", message_reference=7), 0.0
    )
    status, body = await _request("GET", _tetra_url(tetra) + "/radios/2002/received?since=1")
    assert status == 200
    assert body["count"] == 2
    [message] = body["messages"]
    assert (message["index"], message["from"], message["type"], message["text"]) == (
        1,
        "1000",
        "TextSds",
        "bonjour",
    )


async def test_tetra_text_wait_times_out_without_report(tetra: TetraNetworkSimulator) -> None:
    """A peer that never reports custody: the text is answered 504 after ``wait``."""
    async with _pei_peer(tetra):
        status, body = await _request(
            "POST",
            _tetra_url(tetra) + "/radios/2001/sds",
            json={"to": "9001001", "text": "anyone?", "wait": 0.2},
        )
        assert (status, body["error"]) == (504, "timeout")


async def test_tetra_faults(tetra: TetraNetworkSimulator) -> None:
    status, body = await _request("POST", _tetra_url(tetra) + "/faults", json={"silent": True})
    assert (status, body) == (200, {"applied": {"silent": True}})
    assert tetra._silent


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "error"),
    [
        ("/users/sip:alice@mcx.example.eu/sds", {"data": b"]"}, 400, "malformed_json"),
        ("/users/sip:alice@mcx.example.eu/sds", {"json": "text"}, 400, "invalid_body"),
        ("/users/sip:alice@mcx.example.eu/sds", {"json": {"to": "sip:x@y"}}, 400, "invalid_body"),
        (
            "/users/sip:alice@mcx.example.eu/sds",
            {"json": {"to": "sip:x@y", "text": "a", "disposition": "maybe"}},
            400,
            "invalid_body",
        ),
        ("/users/sip:alice@mcx.example.eu/sds", {"data": b" " * 70000}, 413, "body_too_large"),
        (
            "/users/sip:eve@mcx.example.eu/sds",
            {"json": {"to": "sip:x@y", "text": "a"}},
            404,
            "unknown_user",
        ),
    ],
)
async def test_mcdata_control_refuses_bad_requests(
    mcdata: McdataSystemSimulator, path: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    got, body = await _request("POST", _mcdata_url(mcdata) + path, **kwargs)
    assert (got, body["error"]) == (status, error)
    assert (await _request("GET", _mcdata_url(mcdata) + "/healthz"))[0] == 200


@pytest.mark.parametrize(
    "send",
    [
        {"status": 3},
        {"emergency": True, "latitude": 50.85, "longitude": 4.35},  # an alert with a position
        {"emergency": True, "text": "help", "latitude": 50.85, "longitude": 4.35},
    ],
)
async def test_mcdata_send_without_gateway_is_503(
    mcdata: McdataSystemSimulator, send: dict[str, Any]
) -> None:
    status, body = await _request(
        "POST",
        _mcdata_url(mcdata) + "/users/sip:alice@mcx.example.eu/sds",
        json={"to": "sip:unit@iwf.example.eu", **send},
    )
    assert (status, body["error"]) == (503, "no_gateway")  # a valid request, nobody to take it


async def test_mcdata_users_and_empty_inbox(mcdata: McdataSystemSimulator) -> None:
    status, body = await _request("GET", _mcdata_url(mcdata) + "/users")
    assert status == 200 and body["users"] == mcdata.users
    status, body = await _request(
        "GET", _mcdata_url(mcdata) + "/users/sip:bob@mcx.example.eu/received"
    )
    assert (status, body["count"], body["messages"]) == (200, 0, [])
