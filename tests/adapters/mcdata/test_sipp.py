"""Interop with SIPp, an independent SIP implementation, over TCP (``sipp -t t1``).

SIPp plays the MCX system's SIP server: as UAC it sends MCData SDS MESSAGEs (bodies
built in the scenario XML under ``sipp/``, binary parts assembled by hand below, not
with our encoders) to the adapter's listener; as UAS it receives the adapter's MESSAGE
and answers 200, 486 or 503. SIPp comes from Debian's ``sip-tester`` package through
``scripts/ensure-sipp``; without it these tests fail under ``CI`` and skip elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.mcdata import McdataAdapter, McdataGroup, McdataSdsReceived, McdataUser
from protocols.mcdata import (
    ContentType,
    DispositionRequest,
    McdataId,
    Payload,
    unix_from_date_time,
)

from .conftest import LMR_1, LMR_GROUP, Recorder, free_port, make_config

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = Path(__file__).resolve().parent / "sipp"
ENSURE_SIPP = ROOT / "scripts" / "ensure-sipp"
SIPP_TIMEOUT = 15.0
SENDER = "sip:sipp-alice@mcx.fr.example.eu"

CONVERSATION = uuid.UUID("5f0c6a52-1c8e-4a8e-9d3b-0e6f1a2b3c4d")
MESSAGE = uuid.UUID("a1b2c3d4-e5f6-4789-8abc-def012345678")
# SDS SIGNALLING PAYLOAD (TS 24.282 Table 15.1.2.1-1), by hand: message type 0x01, Date
# and time 0x00EBF96000 (1_750_000_000 UNIX + NTP offset), Conversation ID, Message ID,
# SDS disposition request type (half-octet IEI 0x8, value 3 = delivery and read).
SIGNALLING = (
    bytes.fromhex("0100EBF96000") + CONVERSATION.bytes + MESSAGE.bytes + bytes.fromhex("83")
)
TEXT = "Grüße aus Frankreich: Lage ruhig."
# DATA PAYLOAD, by hand: message type 0x03, two payloads, each IEI 0x78 + 2-octet length +
# content type: TEXT (1) in UTF-8 and ENHANCED STATUS (6) 0x8003.
_TEXT = TEXT.encode()
PAYLOAD = (
    bytes.fromhex("0302")
    + bytes.fromhex("78")
    + (len(_TEXT) + 1).to_bytes(2, "big")
    + b"\x01"
    + _TEXT
    + bytes.fromhex("7800030680 03".replace(" ", ""))
)


def find_sipp() -> str | None:
    return shutil.which("sipp") or next(
        (str(p) for p in (Path("/usr/bin/sipp"), Path("/usr/local/bin/sipp")) if p.exists()),
        None,
    )


@pytest.fixture(scope="session")
def sipp_binary() -> str:
    """The sipp executable, installed by scripts/ensure-sipp if needed.

    Fails under CI (``CI`` set), where set-up must provide SIPp; skips elsewhere.
    """
    path = find_sipp()
    if path is None:
        result = subprocess.run(
            [str(ENSURE_SIPP)], capture_output=True, text=True, timeout=600, check=False
        )
        path = find_sipp()
        if path is None:
            message = (
                "SIPp (sipp) not found and scripts/ensure-sipp could not install it "
                f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return path


@dataclass
class SippResult:
    returncode: int | None
    stdout: str
    stderr: str
    workdir: Path

    def report(self) -> str:
        parts = [f"sipp exit status {self.returncode}", "--- stderr", self.stderr[-4000:]]
        for log in sorted(self.workdir.glob("*.log")):
            parts += [f"--- {log.name}", log.read_text(errors="replace")[-8000:]]
        parts += ["--- stdout (tail)", self.stdout[-3000:]]
        return "\n".join(parts)


class Sipp:
    """One sipp process; always stopped, its logs printed (shown by pytest on failure)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    async def run(self, scenario: str, *args: str) -> SippResult:
        command = [
            self.binary,
            "-sf",
            str(SCENARIOS / scenario),
            "-t",
            "t1",
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-timeout",
            f"{int(SIPP_TIMEOUT) - 5}s",
            "-timeout_error",
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(self.workdir / "messages.log"),
            "-trace_err",
            "-error_file",
            str(self.workdir / "errors.log"),
            *args,
        ]
        self.process = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(SIPP_TIMEOUT):
                stdout, stderr = await self.process.communicate()
        finally:
            await self.stop()
        result = SippResult(
            self.process.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
            self.workdir,
        )
        print(result.report())
        return result

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(5.0):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
async def sipp(sipp_binary: str, tmp_path: Path) -> AsyncIterator[Sipp]:
    (tmp_path / "signalling.bin").write_bytes(SIGNALLING)
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    runner = Sipp(sipp_binary, tmp_path)
    try:
        yield runner
    finally:
        await runner.stop()


@pytest.fixture
async def listening_adapter(recorder: Recorder) -> AsyncIterator[McdataAdapter]:
    """An adapter whose peer does not exist: only its listener is used."""
    config = make_config(free_port(), keepalive_interval=None, reconnect_min=0.5, reconnect_max=1.0)
    async with McdataAdapter(config, recorder) as running:
        yield running


def uac_keys(target: str, *, group: bool, alert: bool) -> list[str]:
    return [
        *("-key", "sender", SENDER),
        *("-key", "target", target),
        *("-key", "request_type", "group-sds" if group else "one-to-one-sds"),
        *(
            "-key",
            "target_element",
            "mcdata-calling-group-id" if group else "mcdata-called-party-id",
        ),
        *("-key", "alert", "true" if alert else "false"),
    ]


@pytest.mark.parametrize("group", [False, True], ids=["one-to-one", "group"])
async def test_sipp_uac_sds_is_decoded_and_accepted(
    sipp: Sipp, listening_adapter: McdataAdapter, recorder: Recorder, group: bool
) -> None:
    target = LMR_GROUP if group else LMR_1
    result = await sipp.run(
        "uac_sds.xml",
        *uac_keys(target, group=group, alert=group),
        f"127.0.0.1:{listening_adapter.listen_port}",
    )
    assert result.returncode == 0, result.report()
    [sds] = recorder.of_type(McdataSdsReceived)
    assert sds.sender == SENDER
    expected = McdataGroup(McdataId(target)) if group else McdataUser(McdataId(target))
    assert sds.target == expected
    assert sds.alert is group and not sds.emergency
    assert sds.message_id == MESSAGE and sds.conversation_id == CONVERSATION
    assert sds.disposition_request == DispositionRequest.DELIVERY_AND_READ
    assert unix_from_date_time(sds.signalling.date_time) == 1_750_000_000
    assert sds.text == TEXT
    assert sds.payloads[1] == Payload(content_type=ContentType.ENHANCED_STATUS, data=b"\x80\x03")
    assert listening_adapter.counters["sds_in"] == 1


async def test_sipp_uac_malformed_body_gets_400(
    sipp: Sipp, listening_adapter: McdataAdapter, recorder: Recorder
) -> None:
    result = await sipp.run(
        "uac_malformed.xml",
        *("-key", "sender", SENDER),
        *("-key", "target", LMR_1),
        f"127.0.0.1:{listening_adapter.listen_port}",
    )
    assert result.returncode == 0, result.report()
    [rejected] = recorder.rejected()
    assert rejected.status == 400 and "Message type 0x74" in rejected.reason
    assert recorder.of_type(McdataSdsReceived) == []
    assert listening_adapter.counters["rejected"] == 1


@pytest.mark.parametrize(
    ("scenario", "status", "reason"),
    [
        ("uas_ok.xml", 200, "OK"),
        ("uas_busy.xml", 486, "Busy Here"),
        ("uas_unavailable.xml", 503, "Service Unavailable"),
    ],
)
async def test_sipp_uas_answers_the_adapters_message(
    sipp: Sipp, recorder: Recorder, scenario: str, status: int, reason: str
) -> None:
    port = free_port()
    uas = asyncio.create_task(sipp.run(scenario, "-p", str(port)))
    config = make_config(port, keepalive_interval=None, request_timeout=5.0, reconnect_min=0.05)
    try:
        async with McdataAdapter(config, recorder) as adapter:
            await adapter.wait_connected(SIPP_TIMEOUT)
            outcome = await adapter.send_sds(
                LMR_1,
                McdataUser(McdataId(SENDER)),
                [Payload.from_text("Lage ruhig"), Payload.from_text("Ende")],
                disposition_request=DispositionRequest.DELIVERY,
            )
        result = await uas
    finally:
        if not uas.done():
            await sipp.stop()
            await asyncio.wait({uas})
    assert result.returncode == 0, result.report()
    assert outcome.status == status, result.report()
    assert outcome.ok is (status == 200)
    if status != 200:
        assert reason in outcome.reason
        assert adapter.counters["send_failed"] == 1
    else:
        assert outcome.reason == "" and adapter.counters["sds_out"] == 1


async def test_sipp_uas_group_sds(sipp: Sipp, recorder: Recorder) -> None:
    port = free_port()
    uas = asyncio.create_task(sipp.run("uas_ok.xml", "-p", str(port)))
    config = make_config(port, keepalive_interval=None, request_timeout=5.0, reconnect_min=0.05)
    try:
        async with McdataAdapter(config, recorder) as adapter:
            await adapter.wait_connected(SIPP_TIMEOUT)
            outcome = await adapter.send_sds(
                LMR_1,
                McdataGroup(McdataId("sip:fire-1@mcx.fr.example.eu")),
                [Payload(content_type=ContentType.LOCATION, data=b"geo:48.5,7.7")],
                emergency=True,
                alert=True,
            )
        result = await uas
    finally:
        if not uas.done():
            await sipp.stop()
            await asyncio.wait({uas})
    assert result.returncode == 0, result.report()
    assert outcome.ok, result.report()
    messages = (sipp.workdir / "messages.log").read_text(errors="replace")
    assert "<request-type>group-sds</request-type>" in messages
    assert "<alert-ind><mcdataBoolean>true</mcdataBoolean></alert-ind>" in messages
