"""McdataAdapter under faults: malformed SIP and MCData, refusals, timeouts, lost links."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import uuid
from typing import Any

import pytest
import structlog

from adapters import LinkState
from adapters.mcdata import (
    McdataAdapter,
    McdataEvent,
    McdataSdsReceived,
    McdataSystemSimulator,
    McdataUser,
    RefusalStatus,
    refusal_status,
)
from adapters.mcdata._channel import SipChannel
from protocols.errors import DeliveryRefused, LinkError, RoutingError
from protocols.mcdata import (
    MIME_MCDATA_INFO,
    MIME_MCDATA_PAYLOAD,
    MIME_MCDATA_SIGNALLING,
    McdataId,
    McdataInfo,
    Payload,
    RequestType,
    encode_mcdata_info,
)
from protocols.sip import (
    BodyPart,
    ConnectionClosed,
    SipHeaders,
    SipRequest,
    build_message_request,
    encode_message,
    encode_multipart,
)
from protocols.tetra import DeliveryStatus

from .conftest import ALICE, BOB, LMR_1, RawSip, Recorder, free_port, make_config, wait_sim

pytestmark = pytest.mark.interop

_INFO = encode_mcdata_info(
    McdataInfo(
        request_type=RequestType.ONE_TO_ONE_SDS,
        calling_user=McdataId(ALICE),
        called_user=McdataId(LMR_1),
    )
)
# SDS SIGNALLING PAYLOAD and DATA PAYLOAD (one TEXT payload "hi"), assembled by hand.
_SIGNALLING = bytes([0x01]) + bytes(5) + bytes(range(16)) + bytes(range(16, 32))
_DATA = bytes([0x03, 0x01, 0x78, 0x00, 0x03, 0x01]) + b"hi"


def message(
    parts: list[tuple[str, bytes]] | None = None,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    call_id: str = "c1@test",
    cseq: int = 1,
) -> bytes:
    """A MESSAGE to the adapter; multipart of ``parts`` unless a raw body is given."""
    if parts is not None:
        content_type, body = encode_multipart(
            [BodyPart(content_type=kind, body=data) for kind, data in parts], "b0undary"
        )
    request = build_message_request(
        request_uri=LMR_1,
        from_uri=ALICE,
        from_tag="t1",
        to_uri=LMR_1,
        call_id=call_id,
        cseq=cseq,
        via_sent_by="127.0.0.1:5999",
        branch=f"z9hG4bK{call_id.split('@', maxsplit=1)[0]}x{cseq}",
        body=body or b"",
        content_type=content_type or "text/plain",
    )
    return encode_message(request)


def good_parts() -> list[tuple[str, bytes]]:
    return [
        (MIME_MCDATA_INFO, _INFO),
        (MIME_MCDATA_SIGNALLING, _SIGNALLING),
        (MIME_MCDATA_PAYLOAD, _DATA),
    ]


@pytest.fixture
async def raw(adapter: McdataAdapter) -> Any:
    client = await RawSip.open(adapter.listen_port)
    yield client
    await client.close()


# ---------------------------------------------------------------- malformed MCData


async def test_hand_built_sds_is_accepted(raw: RawSip, recorder: Recorder) -> None:
    await raw.send(message(good_parts()))
    response = await raw.response()
    assert response.status == 200 and response.headers.get("Call-ID") == "c1@test"
    [sds] = recorder.sds()
    assert sds.text == "hi" and sds.message_id == uuid.UUID(bytes=bytes(range(16, 32)))


@pytest.mark.parametrize(
    ("parts", "status", "warning"),
    [
        ([(MIME_MCDATA_INFO, _INFO), (MIME_MCDATA_SIGNALLING, b"\x01\x00")], 400, "Malformed"),
        ([(MIME_MCDATA_INFO, b"<mcdatainfo"), (MIME_MCDATA_SIGNALLING, _SIGNALLING)], 400, "XML"),
        ([(MIME_MCDATA_SIGNALLING, _SIGNALLING), (MIME_MCDATA_PAYLOAD, _DATA)], 400, "info"),
        ([(MIME_MCDATA_INFO, _INFO), (MIME_MCDATA_SIGNALLING, _SIGNALLING)], 400, "DATA PAYLOAD"),
        ([("text/plain", b"hello")], 415, "no application/vnd.3gpp.mcdata-signalling"),
        (
            [
                (MIME_MCDATA_INFO, _INFO.replace(b"one-to-one-sds", b"group-fd")),
                (MIME_MCDATA_SIGNALLING, _SIGNALLING),
                (MIME_MCDATA_PAYLOAD, _DATA),
            ],
            488,
            "not a standalone SDS",
        ),
    ],
    ids=["short-signalling", "bad-xml", "no-info", "no-data", "plain-text", "fd-request"],
)
async def test_malformed_mcdata_gets_error_and_connection_stays(
    raw: RawSip,
    recorder: Recorder,
    adapter: McdataAdapter,
    parts: list[tuple[str, bytes]],
    status: int,
    warning: str,
) -> None:
    await raw.send(message(parts))
    response = await raw.response()
    assert response.status == status
    assert warning in (response.headers.get("Warning") or "")
    if status == 415:
        assert response.headers.get("Accept") == "multipart/mixed"
    [rejected] = recorder.rejected()
    assert rejected.status == status and rejected.call_id == "c1@test"
    assert adapter.counters["rejected"] == 1 and recorder.sds() == []
    await raw.send(message(good_parts(), call_id="c2@test"))
    assert (await raw.response()).status == 200


async def test_non_multipart_body_is_415(raw: RawSip) -> None:
    await raw.send(message(body=b"hello", content_type="text/plain"))
    response = await raw.response()
    assert response.status == 415 and response.reason == "Unsupported Media Type"


async def test_options_and_other_methods(raw: RawSip) -> None:
    fields = [
        ("Via", "SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKo1"),
        ("Max-Forwards", "70"),
        ("From", f"<{ALICE}>;tag=a"),
        ("To", f"<{LMR_1}>"),
        ("Call-ID", "o1@test"),
    ]
    options = SipRequest(
        method="OPTIONS", uri=LMR_1, headers=SipHeaders([*fields, ("CSeq", "1 OPTIONS")])
    )
    invite = SipRequest(
        method="INVITE", uri=LMR_1, headers=SipHeaders([*fields, ("CSeq", "2 INVITE")])
    )
    await raw.send(encode_message(options) + encode_message(invite))
    first, second = await raw.response(), await raw.response()
    assert first.status == 200 and "MESSAGE" in (first.headers.get("Allow") or "")
    assert second.status == 405 and second.headers.get("Allow") == "MESSAGE, OPTIONS"


# ---------------------------------------------------------------- malformed SIP


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (message(good_parts()).replace(b"Content-Length", b"X-Length"), 400),
        (message(good_parts()).replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (message(good_parts()).replace(b"MESSAGE sip:", b"MESSAGE nonsense", 1), 400),
        (message(good_parts()).replace(b"1 MESSAGE", b"1 OPTIONS"), 400),
        (message(body=b"x" * 2000, content_type="text/plain"), 413),
    ],
    ids=["no-content-length", "sip-3", "bad-request-uri", "cseq-method", "too-large"],
)
async def test_malformed_sip_is_answered_then_closed(
    raw: RawSip, recorder: Recorder, adapter: McdataAdapter, data: bytes, status: int
) -> None:
    await raw.send(data)
    response = await raw.response()
    assert response.status == status
    assert (response.headers.get("Warning") or "").startswith("399 ")
    assert isinstance(await raw.next_event(), ConnectionClosed)
    await recorder.wait_for(lambda: len(recorder.rejected()) == 1)
    assert recorder.rejected()[0].status == status
    # The adapter still serves new connections.
    again = await RawSip.open(adapter.listen_port)
    try:
        await again.send(message(good_parts()))
        assert (await again.response()).status == 200
    finally:
        await again.close()


@pytest.fixture
def adapter_options() -> dict[str, Any]:
    return {"max_body": 1024}


async def test_garbage_without_headers_is_closed_without_answer(
    raw: RawSip, recorder: Recorder
) -> None:
    await raw.send(b"\x16\x03\x01 hello there\r\n\r\n")
    assert isinstance(await raw.next_event(), ConnectionClosed)
    await recorder.wait_for(lambda: len(recorder.rejected()) == 1)


async def test_keepalive_ping_is_answered_with_pong(raw: RawSip) -> None:
    await raw.send(b"\r\n\r\n")
    assert type(await raw.next_event()).__name__ == "PongReceived"
    await raw.send(message(good_parts()))
    assert (await raw.response()).status == 200


async def test_simulator_raw_bytes_are_rejected(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    await sim.send_raw(b"MESSAGE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKr\r\n\r\n")
    await recorder.wait_for(lambda: len(recorder.rejected()) == 1)
    assert recorder.rejected()[0].status == 400
    await wait_sim(sim, lambda: not sim.gateway_connected)  # the adapter closed it
    assert (await sim.send_sds(ALICE, LMR_1, "still there")).ok


# ---------------------------------------------------------------- sink refusals


@pytest.mark.parametrize(
    ("error", "status", "phrase"),
    [
        (DeliveryRefused("off", reason_code=RefusalStatus.TEMPORARILY_UNAVAILABLE), 480, None),
        (DeliveryRefused("busy", reason_code=486), 486, "Busy Here"),
        (DeliveryRefused("unknown", reason_code=DeliveryStatus.UNKNOWN_DESTINATION), 404, None),
        (DeliveryRefused("why", reason_code=DeliveryStatus.PROTOCOL_NOT_SUPPORTED), 488, None),
        (DeliveryRefused("policy"), 403, "Forbidden"),
        (RoutingError("no route"), 404, "Not Found"),
        (LinkError("radio down"), 503, "Service Unavailable"),
        (RuntimeError("bug"), 500, "Server Internal Error"),
    ],
    ids=["480", "486", "sds-tl-404", "sds-tl-488", "403", "routing", "link", "bug"],
)
async def test_sink_refusal_maps_to_sip_status(
    adapter: McdataAdapter,
    sim: McdataSystemSimulator,
    recorder: Recorder,
    error: Exception,
    status: int,
    phrase: str | None,
) -> None:
    recorder.refuse = lambda event: error if isinstance(event, McdataSdsReceived) else None
    with structlog.testing.capture_logs() as logs:
        outcome = await sim.send_sds(ALICE, LMR_1, "x")
    assert outcome.status == status and not outcome.ok
    assert refusal_status(error)[0] == status
    if phrase is not None:
        assert phrase in outcome.reason
    if isinstance(error, RuntimeError):
        assert "internal error" in outcome.reason and "bug" not in outcome.reason
        assert any(entry["event"] == "sink_failed" for entry in logs)
    else:
        assert str(error) in outcome.reason
    assert adapter.counters["refused"] == 1
    recorder.refuse = None
    assert (await sim.send_sds(ALICE, LMR_1, "y")).ok


async def test_failing_sink_on_link_events_does_not_stop_the_adapter(
    sim: McdataSystemSimulator,
) -> None:
    seen: list[McdataEvent] = []

    async def sink(event: McdataEvent) -> None:
        seen.append(event)
        if not isinstance(event, McdataSdsReceived):
            raise RuntimeError("sink broke")

    async with McdataAdapter(make_config(sim.port), sink) as adapter:
        sim.gateway_port = adapter.listen_port
        await adapter.wait_connected(5.0)
        assert (await sim.send_sds(ALICE, LMR_1, "trotzdem")).ok
    assert any(isinstance(e, McdataSdsReceived) and e.text == "trotzdem" for e in seen)


# ---------------------------------------------------------------- timeouts and links


@pytest.mark.parametrize("adapter_options", [{"request_timeout": 0.2}])
async def test_unanswered_message_times_out(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    sim.set_silent(True)
    outcome = await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")])
    assert not outcome.ok and outcome.timed_out and outcome.status is None
    assert "no final response within 0.2s" in outcome.reason
    assert adapter.counters["timeouts"] == 1 and adapter.state is LinkState.CONNECTED
    sim.set_silent(False)
    assert (await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("y")])).ok


async def test_outgoing_connection_reconnects(
    adapter: McdataAdapter, sim: McdataSystemSimulator, recorder: Recorder
) -> None:
    assert (await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("1")])).ok
    sim.drop_connections()
    await recorder.wait_for(lambda: recorder.states().count(LinkState.CONNECTED) == 2)
    assert LinkState.TRANSIENT_DISCONNECT in recorder.states()
    assert adapter.counters["reconnects"] == 1
    await adapter.wait_connected(5.0)
    assert (await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("2")])).ok
    await wait_sim(sim, lambda: len(sim.received[BOB]) == 2)
    assert sim.connection_count == 2


async def test_connection_lost_during_send_raises(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    sim.set_silent(True)
    send = asyncio.create_task(
        adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")])
    )
    await wait_sim(sim, lambda: len(sim.requests) == 1)
    sim.drop_connections()
    with pytest.raises(LinkError, match="closed"):
        await send


async def test_unreachable_peer_keeps_retrying(recorder: Recorder) -> None:
    async with McdataAdapter(make_config(free_port()), recorder) as adapter:
        await recorder.wait_for(lambda: adapter.counters["reconnects"] >= 3)
        with pytest.raises(LinkError, match="cannot send"):
            await adapter.send_sds(LMR_1, McdataUser(McdataId(BOB)), [Payload.from_text("x")])
    states = recorder.states()
    assert states[:2] == [LinkState.CONNECTING, LinkState.TRANSIENT_DISCONNECT]
    assert LinkState.CONNECTED not in states and states[-1] is LinkState.STOPPED


async def test_missing_pong_drops_the_connection(recorder: Recorder) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def mute_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(mute_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = make_config(port, keepalive_interval=0.05, pong_timeout=0.1)
    try:
        async with McdataAdapter(config, recorder, random=random.Random(1).random):
            await recorder.wait_for(lambda: LinkState.TRANSIENT_DISCONNECT in recorder.states())
        transient = [e for e in recorder.events if getattr(e, "state", None) is not None]
        assert any("no keep-alive pong" in getattr(e, "reason", "") for e in transient)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_keepalive_pings_are_answered_by_the_simulator(
    sim: McdataSystemSimulator, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[bool] = []
    three = asyncio.Event()
    original = SipChannel.ping

    async def counting_ping(self: SipChannel, timeout: float) -> bool:  # noqa: ASYNC109
        result = await original(self, timeout)
        answered.append(result)
        if len(answered) >= 3:
            three.set()
        return result

    monkeypatch.setattr(SipChannel, "ping", counting_ping)
    config = make_config(sim.port, keepalive_interval=0.01, pong_timeout=1.0)
    async with McdataAdapter(config, recorder) as adapter:
        await adapter.wait_connected(5.0)
        async with asyncio.timeout(5.0):
            await three.wait()
        assert adapter.state is LinkState.CONNECTED
    assert answered[:3] == [True, True, True]
    assert recorder.states().count(LinkState.CONNECTED) == 1


@pytest.mark.parametrize("adapter_options", [{"max_connections": 1}])
async def test_connections_over_the_limit_are_closed(
    adapter: McdataAdapter, sim: McdataSystemSimulator
) -> None:
    assert (await sim.send_sds(ALICE, LMR_1, "first")).ok  # the one allowed connection
    extra = await RawSip.open(adapter.listen_port)
    try:
        assert isinstance(await extra.next_event(), ConnectionClosed)
    finally:
        await extra.close()
    assert adapter.counters["connections_refused"] == 1


async def test_listener_port_in_use_raises(sim: McdataSystemSimulator, recorder: Recorder) -> None:
    config = make_config(sim.port, listen_port=sim.port)
    with pytest.raises(OSError):
        async with McdataAdapter(config, recorder):
            pass


async def test_a_peer_that_pipelines_requests_then_resets_frees_its_connection_slot() -> None:
    """A full request queue must not hold a dead connection (and its slot) for ever."""

    async def slow_sink(_event: object) -> None:
        await asyncio.sleep(0.05)  # a journal commit per message

    config = make_config(free_port(), max_connections=2, keepalive_interval=None)
    burst = b"".join(message(good_parts(), call_id=f"c{i}@test") for i in range(200))
    async with McdataAdapter(config, slow_sink, inbound_timeout=1.0) as adapter:
        for _ in range(3):  # more than the slots there are
            sock = socket.create_connection(("127.0.0.1", adapter.listen_port))
            sock.sendall(burst)
            await asyncio.sleep(0.3)  # the queue is full, requests wait for the sink
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset: writing the next answer fails
            async with asyncio.timeout(5):
                while adapter.inbound_connections:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        assert adapter.counters["connections_refused"] == 0
        client = await RawSip.open(adapter.listen_port)  # the MCX system still gets in
        try:
            await client.send(message(good_parts(), call_id="after@test"))
            assert (await client.response()).status == 200
        finally:
            await client.close()


async def test_a_peer_that_stops_reading_is_dropped_by_the_keepalive() -> None:
    """Writes pile up against a full socket: the ping waits too, and that is no pong."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    accepted: list[socket.socket] = []

    async def accept_and_never_read() -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(server)
            accepted.append(conn)

    acceptor = asyncio.create_task(accept_and_never_read())
    config = make_config(
        server.getsockname()[1], request_timeout=0.3, keepalive_interval=0.5, pong_timeout=0.5
    )
    try:
        async with McdataAdapter(config, Recorder()) as adapter:
            await adapter.wait_connected(3.0)
            big = [Payload.from_text("x" * 60_000)]
            to = McdataUser(McdataId(BOB))
            outcomes = await asyncio.gather(
                *(adapter.send_sds(LMR_1, to, big) for _ in range(60)), return_exceptions=True
            )
            assert not any(getattr(o, "ok", False) for o in outcomes)
            # It dropped the stuck connection and opened another (counted as a reconnect,
            # which may come before the listener has accepted the new connection).
            async with asyncio.timeout(5):
                while adapter.counters["reconnects"] < 1 or len(accepted) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
    finally:
        acceptor.cancel()
        for conn in accepted:
            conn.close()
        server.close()
