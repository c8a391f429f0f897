"""The simulated radio on its own: raw PEI lines over TCP, and the standalone entry point."""

from __future__ import annotations

import asyncio
import sys

import pytest

from adapters.tetra import TetraNetworkSimulator

from .conftest import RADIO, wait_sim

pytestmark = pytest.mark.interop


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes, until: bytes
) -> bytes:
    writer.write(line)
    await writer.drain()
    async with asyncio.timeout(5.0):
        return await reader.readuntil(until)


async def test_answers_like_a_radio(sim: TetraNetworkSimulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        assert b"OK" in await exchange(reader, writer, b"AT\r\n", b"OK\r\n")
        answer = await exchange(reader, writer, b"AT+CNUMF?\r\n", b"OK\r\n")
        assert b"+CNUMF: 6,1000" in answer
        answer = await exchange(reader, writer, b"AT+CMGS=?\r\n", b"OK\r\n")
        assert b"(8-2047)" in answer
        answer = await exchange(reader, writer, b"AT+BOGUS=1\r\n", b"+CME ERROR: 35\r\n")
        assert answer.endswith(b"+CME ERROR: 35\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    assert [c.name for c in sim.commands] == ["", "+CNUMF", "+CMGS", "+BOGUS"]


async def test_new_connection_replaces_old(sim: TetraNetworkSimulator) -> None:
    first_reader, first_writer = await asyncio.open_connection("127.0.0.1", sim.port)
    await wait_sim(sim, lambda: sim.connection_count == 1)
    second_reader, second_writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        async with asyncio.timeout(5.0):
            assert await first_reader.read() == b""
        assert b"OK" in await exchange(second_reader, second_writer, b"AT\r\n", b"OK\r\n")
        assert sim.connection_count == 2
    finally:
        for writer in (first_writer, second_writer):
            writer.close()
            await writer.wait_closed()


async def test_script_api_needs_a_connection(sim: TetraNetworkSimulator) -> None:
    with pytest.raises(ConnectionError, match="No gateway"):
        await sim.send_status("2001", "1000", 3)
    with pytest.raises(KeyError, match="9999"):
        sim.set_reachable("9999", False)


async def test_main_runs_standalone() -> None:
    code = "from adapters.tetra.simulator import main; raise SystemExit(main(sys.argv[1:]))"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        f"import sys; {code}",
        "--port",
        "0",
        "--units",
        "3001,3002",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20.0):
            line = await process.stdout.readline()
            while line and not line.startswith(b"TETRA simulator listening"):
                line = await process.stdout.readline()
        port = int(line.rsplit(b":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert b"OK" in await exchange(reader, writer, b"AT\r\n", b"OK\r\n")
        writer.close()
        await writer.wait_closed()
    finally:
        process.terminate()
        await process.wait()
    assert process.returncode is not None


async def test_delivery_after_gateway_left_does_not_stop_simulator(
    sim: TetraNetworkSimulator,
) -> None:
    sim.delivery_latency = 0.05
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    # SDS-TRANSFER to 2001 asking for a report, then the gateway disappears.
    writer.write(b"AT+CMGS=2001,40\r\n8204070141\x1a")
    await writer.drain()
    async with asyncio.timeout(5.0):
        assert b"OK" in await reader.readuntil(b"OK\r\n")
    writer.close()
    await writer.wait_closed()
    await wait_sim(sim, lambda: len(sim.received["2001"]) == 1)
    await wait_sim(sim, lambda: sim.connection_count == 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    assert b"OK" in await exchange(reader, writer, b"AT\r\n", b"OK\r\n")
    writer.close()
    await writer.wait_closed()


async def test_a_gateway_lost_under_a_delivery_is_a_link_error(
    sim: TetraNetworkSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost under a write (before the simulator saw it go) is a LinkError.

    Scripts catch LinkError for "no gateway connected"; a reset in the middle of the write
    raised ConnectionResetError from the stream instead.
    """
    from protocols.errors import LinkError

    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        assert b"OK" in await exchange(reader, writer, b"AT\r\n", b"OK\r\n")
        assert sim._writer is not None

        async def reset() -> None:
            raise ConnectionResetError("Connection lost")

        monkeypatch.setattr(sim._writer, "drain", reset)
        with pytest.raises(LinkError, match="PEI connection was lost"):
            await sim.send_text("2001", RADIO, "lost on the way")
    finally:
        writer.close()
        await writer.wait_closed()
