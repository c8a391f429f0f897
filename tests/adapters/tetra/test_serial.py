"""Serial transport end to end: adapter on a pty slave, master bridged to the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import pytest

from adapters import LinkState, LinkStateChanged
from adapters.tetra import TetraAdapter, TetraNetworkSimulator
from protocols.tetra import SdsReceived, StatusSds, TextSds

from .conftest import RADIO, Recorder, make_config, wait_sim

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty"),
]


@contextlib.asynccontextmanager
async def pty_bridge(port: int) -> AsyncIterator[str]:
    """Open a pty; pump bytes between its master and the simulator's TCP port."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()

    def master_readable() -> None:
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            return
        except OSError:
            loop.remove_reader(master)
            return
        writer.write(data)

    async def to_master() -> None:
        while data := await reader.read(4096):
            os.write(master, data)

    loop.add_reader(master, master_readable)
    pump = asyncio.create_task(to_master(), name="test.pty_bridge.to_master")
    try:
        yield os.ttyname(slave)
    finally:
        loop.remove_reader(master)
        pump.cancel()
        await asyncio.wait({pump})
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        os.close(master)
        os.close(slave)


async def test_adapter_over_serial_pty(sim: TetraNetworkSimulator, recorder: Recorder) -> None:
    async with pty_bridge(sim.port) as device:
        config = make_config(sim.port, url=f"serial://{device}?baudrate=38400")
        async with TetraAdapter(config, recorder) as adapter:
            await adapter.wait_connected(5.0)
            assert any(c.name == "+CTSDS" for c in sim.commands)
            assert (await adapter.send("2001", StatusSds(status=0x8002))).ok
            await wait_sim(sim, lambda: len(sim.received["2001"]) == 1)
            await sim.send_text("2002", RADIO, "per Seriell", report_request=0)
            await recorder.wait_for(lambda: len(recorder.of_type(SdsReceived)) == 1)
            content = recorder.of_type(SdsReceived)[0].content
            assert isinstance(content, TextSds) and content.text == "per Seriell"
        assert LinkState.CONNECTED in recorder.states()


async def test_missing_serial_device_is_a_transient_disconnect(recorder: Recorder) -> None:
    config = make_config(1, url="serial:///dev/euccs-no-such-tty?baudrate=9600")
    async with TetraAdapter(config, recorder) as adapter:
        await recorder.wait_for(lambda: adapter.counters["reconnects"] >= 2)
        assert adapter.state is not LinkState.CONNECTED
    disconnects = [
        e for e in recorder.of_type(LinkStateChanged) if e.state is LinkState.TRANSIENT_DISCONNECT
    ]
    assert disconnects and "euccs-no-such-tty" in disconnects[0].reason
