"""TetraAdapter under faults: malformed PEI, lost parts, silent radio, unreachable port."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from adapters import LinkState
from adapters.tetra import TetraAdapter, TetraNetworkSimulator
from protocols.errors import LinkError, LinkTimeoutError
from protocols.tetra import (
    DeliveryStatus,
    RadioPei,
    SdsReceived,
    SdsRejected,
    SdsReport,
    StatusSds,
    TextSds,
    encode_sds,
    split_text,
)

from .conftest import RADIO, Recorder, make_config, text, wait_sim

pytestmark = pytest.mark.interop


def reports_to(sim: TetraNetworkSimulator, issi: str) -> list[SdsReport]:
    return [c for _, c in sim.reports[issi] if isinstance(c, SdsReport)]


async def test_malformed_sds_is_rejected_with_negative_report(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    # SDS-TRANSFER, MR 0x33, text coding scheme 27 (VISCII): readable header, unusable text.
    with structlog.testing.capture_logs() as logs:
        await sim.send_raw(b"+CTSDSR: 12,2001,0,1000,0,48\r\n8204331B4142\r\n")
        await wait_sim(sim, lambda: len(reports_to(sim, "2001")) == 1)
    rejected = recorder.of_type(SdsRejected)
    assert len(rejected) == 1
    assert rejected[0].source == "2001" and rejected[0].message_reference == 0x33
    report = reports_to(sim, "2001")[0]
    assert report.message_reference == 0x33
    assert report.delivery_status == DeliveryStatus.CODING_SCHEME_NOT_SUPPORTED
    assert report.delivery_status == rejected[0].reason_code
    assert any(entry["event"] == "sds_rejected" for entry in logs)
    assert adapter.counters["rejected"] == 1
    await sim.send_status("2002", RADIO, 0x8001)
    await recorder.wait_for(lambda: len(recorder.of_type(SdsReceived)) == 1)
    assert adapter.state is LinkState.CONNECTED


async def test_garbage_without_sender_is_forwarded_without_report(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    await sim.send_raw(b"+CTSDSR: 12,2001,0,1000,0,16\r\nZZZZ\r\n+CTSDSR: 12,x\r\n\r\n")
    await recorder.wait_for(lambda: len(recorder.of_type(SdsRejected)) == 2)
    assert all(r.message_reference is None for r in recorder.of_type(SdsRejected))
    assert (await adapter.send("2001", StatusSds(status=7))).ok
    assert reports_to(sim, "2001") == []


@pytest.mark.parametrize("adapter_options", [{"reassembly_timeout": 0.1}])
async def test_incomplete_concatenation_gets_negative_report(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    parts = split_text("x" * 120, destination_max_bits=400, message_reference_start=0x40)
    assert len(parts) > 1
    payload, bits = encode_sds(parts[0])
    await sim.send_raw(RadioPei.deliver("2002", RADIO, 12, payload, bits))
    await wait_sim(sim, lambda: len(reports_to(sim, "2002")) == 1)
    report = reports_to(sim, "2002")[0]
    assert report.delivery_status == DeliveryStatus.CONCATENATION_INCOMPLETE
    assert report.message_reference == 0x40 and report.protocol_id == 0x8A
    assert recorder.of_type(SdsReceived) == []


@pytest.mark.parametrize("sim_options", [{"delivery_latency": 1.0}])
@pytest.mark.parametrize("adapter_options", [{"send_timeout": 0.1}])
async def test_missing_final_status_times_out(adapter: TetraAdapter) -> None:
    outcome = await adapter.send("2001", StatusSds(status=1))
    assert not outcome.ok and outcome.sds_status is None
    assert "no final +CMGS status" in outcome.reason
    assert adapter.state is LinkState.CONNECTED


@pytest.mark.parametrize("sim_options", [{"delivery_latency": 0.6, "instances": 1}])
@pytest.mark.parametrize("adapter_options", [{"send_timeout": 0.4}])
async def test_a_late_final_status_is_not_credited_to_the_next_sds_on_its_instance(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    # The radio numbers every send 0. The first text fails (unreachable), but its status
    # (0.6 s) comes after its wait (0.4 s), during the second text's wait: the second must
    # wait for its own status (0.3 s after its send), not take the first one's failure.
    sim.set_reachable("2002", False)
    first = await adapter.send("2002", text(adapter, "2002", "one", report=0))
    assert not first.ok and "no final +CMGS status" in first.reason
    sim.delivery_latency = 0.3
    second = await adapter.send("2001", text(adapter, "2001", "two", report=0))
    assert second.ok, second.reason
    assert second.message_references != first.message_references


@pytest.mark.parametrize("adapter_options", [{"command_timeout": 0.2}])
async def test_silent_radio_during_send_raises_and_reconnects(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    sim.set_silent(True)
    with pytest.raises(LinkTimeoutError, match="did not answer"):
        await adapter.send("2001", StatusSds(status=1))
    await recorder.wait_for(lambda: LinkState.TRANSIENT_DISCONNECT in recorder.states())
    sim.set_silent(False)
    await adapter.wait_connected(5.0)
    assert (await adapter.send("2001", StatusSds(status=2))).ok


async def test_unreachable_port_keeps_retrying(recorder: Recorder) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with TetraAdapter(make_config(port), recorder) as adapter:
        await recorder.wait_for(lambda: adapter.counters["reconnects"] >= 3)
        with pytest.raises(LinkError, match="cannot send"):
            await adapter.send("2001", StatusSds(status=1))
    states = recorder.states()
    assert states[:2] == [LinkState.CONNECTING, LinkState.TRANSIENT_DISCONNECT]
    assert LinkState.CONNECTED not in states and states[-1] is LinkState.STOPPED


async def test_failing_sink_is_logged_and_does_not_stop_the_adapter(
    sim: TetraNetworkSimulator,
) -> None:
    seen: list[Any] = []
    got_sds = asyncio.Event()

    async def sink(event: Any) -> None:
        seen.append(event)
        if isinstance(event, SdsReceived):
            got_sds.set()
        raise RuntimeError("sink broke")

    with structlog.testing.capture_logs() as logs:
        async with TetraAdapter(make_config(sim.port), sink) as adapter:
            await adapter.wait_connected(5.0)
            await sim.send_text("2001", RADIO, "trotzdem", report_request=0)
            async with asyncio.timeout(5.0):
                await got_sds.wait()
    assert any(entry["event"] == "sink_failed" for entry in logs)
    texts = [e.content for e in seen if isinstance(e, SdsReceived)]
    assert isinstance(texts[0], TextSds) and texts[0].text == "trotzdem"


@pytest.mark.parametrize(
    "user_data",
    [
        "8211003304",  # SDS-REPORT with a reserved forward address type
        "82195C3304",  # the same, ack required, status 0x5C (a negative report gone bad)
        "8230C9AA00",  # reserved SDS-TL message type 3
    ],
)
async def test_corrupt_report_or_reserved_type_gets_no_negative_report(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder, user_data: str
) -> None:
    # SDS-TL never answers a report (or a PDU it cannot classify) with a report: two
    # gateways would bounce negative reports at each other for ever.
    with structlog.testing.capture_logs() as logs:
        await sim.send_raw(f"+CTSDSR: 12,2001,0,1000,0,40\r\n{user_data}\r\n".encode())
        await recorder.wait_for(lambda: len(recorder.of_type(SdsRejected)) == 1)
    (rejected,) = recorder.of_type(SdsRejected)
    assert rejected.source == "2001" and rejected.protocol_id == 0x82
    assert rejected.message_reference is None
    assert adapter.counters["rejected"] == 1
    assert [e["source"] for e in logs if e["event"] == "sds_rejected"] == ["2001"]
    # A send behind any background report: once it is delivered, a report would be too.
    assert (await adapter.send("2001", StatusSds(status=7))).ok
    await wait_sim(sim, lambda: len(sim.received["2001"]) == 1)
    assert reports_to(sim, "2001") == []
    assert len(sim.submitted) == 1


async def _deliver_parts(sim: TetraNetworkSimulator, source: str, parts: list[TextSds]) -> None:
    for part in parts:
        payload, bits = encode_sds(part)
        await sim.send_raw(RadioPei.deliver(source, RADIO, 12, payload, bits))


@pytest.mark.parametrize("adapter_options", [{"reassembly_timeout": 0.2}])
async def test_retransmitted_parts_are_discarded_and_answered(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    body = "Lagebericht " * 10
    parts = split_text(
        body, destination_max_bits=400, message_reference_start=0x40, delivery_report_request=1
    )
    assert len(parts) == 3
    await _deliver_parts(sim, "2002", parts)
    await recorder.wait_for(lambda: len(recorder.of_type(SdsReceived)) == 1)
    whole = recorder.of_type(SdsReceived)[0].content
    assert isinstance(whole, TextSds) and whole.text == body and whole.message_reference == 0x40
    # Parts 2 and 3 are acknowledged on receipt; the gateway answers the whole text on
    # its reference (part 1's): "stored".
    await wait_sim(sim, lambda: len(reports_to(sim, "2002")) == 2)
    acks = [(r.message_reference, r.delivery_status) for r in reports_to(sim, "2002")]
    assert sorted(acks) == [(0x41, 0x06), (0x42, 0x06)]
    stored = await adapter.send_report(
        "2002", protocol_id=0x8A, message_reference=0x40, delivery_status=DeliveryStatus.STORED
    )
    assert stored.ok
    await wait_sim(sim, lambda: len(reports_to(sim, "2002")) == 3)

    # Part 2 again (its acknowledgement was lost), after the text was complete.
    await _deliver_parts(sim, "2002", parts[1:2])
    await wait_sim(sim, lambda: len(reports_to(sim, "2002")) == 4)
    answer = reports_to(sim, "2002")[3]
    assert (answer.protocol_id, answer.message_reference) == (0x8A, 0x41)
    assert answer.delivery_status == DeliveryStatus.CONCATENATION_PART_ACK
    # The whole text again: each part answered like its original, none handed on.
    await _deliver_parts(sim, "2002", parts)
    await wait_sim(sim, lambda: len(reports_to(sim, "2002")) == 7)
    answers = [(r.message_reference, r.delivery_status) for r in reports_to(sim, "2002")[4:]]
    assert answers == [(0x40, 0x21), (0x41, 0x06), (0x42, 0x06)]
    assert adapter.counters["sds_duplicate"] == 4
    # No partial was started: nothing expires into a spurious "not all parts" (0x5D).
    await asyncio.sleep(0.4)
    assert len(reports_to(sim, "2002")) == 7
    assert all(r.delivery_status != 0x5D for r in reports_to(sim, "2002"))
    assert len(recorder.of_type(SdsReceived)) == 1


async def test_retransmitted_text_is_emitted_once(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    quiet = TextSds(protocol_id=0x82, text="ohne Bericht", message_reference=7)
    asks = TextSds(
        protocol_id=0x82, text="mit Bericht", message_reference=8, delivery_report_request=1
    )
    reused = TextSds(protocol_id=0x82, text="neu, alte Referenz", message_reference=7)
    await _deliver_parts(sim, "2001", [quiet, quiet, asks, asks, reused])
    await recorder.wait_for(lambda: len(recorder.of_type(SdsReceived)) == 3)
    await wait_sim(sim, lambda: len(reports_to(sim, "2001")) == 1)
    texts = [e.content.text for e in recorder.of_type(SdsReceived)]
    assert texts == ["ohne Bericht", "mit Bericht", "neu, alte Referenz"]
    (answer,) = reports_to(sim, "2001")
    assert (answer.message_reference, answer.delivery_status) == (8, DeliveryStatus.RECEIVED)
    assert adapter.counters["sds_duplicate"] == 2 and adapter.counters["sds_in"] == 5


@pytest.mark.parametrize("sim_options", [{"delivery_latency": 5.0}])
@pytest.mark.parametrize("how", ["link_lost", "adapter_stopped"])
async def test_control_sds_lost_with_the_session_is_logged_and_counted(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder, how: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        await sim.send_report("2001", RADIO, message_reference=42, ack_required=True)
        # The radio takes the SDS-ACK; its final +CMGS status would come 5 s later.
        await wait_sim(sim, lambda: len(sim.submitted) == 1)
        if how == "link_lost":
            sim.drop_connection()
        else:
            await adapter.stop()
        await recorder.wait_for(lambda: adapter.counters["control_sds_lost"] == 1)
        await asyncio.sleep(0.05)
    assert adapter.counters["control_sds_lost"] == 1
    lost = [e for e in logs if e["event"] == "control_sds_lost"]
    assert len(lost) == 1 and lost[0]["log_level"] == "warning"
    assert lost[0]["purpose"] == "sds_ack" and lost[0]["destination"] == "2001"
    assert lost[0]["message_reference"] == 42
    assert reports_to(sim, "2001") == []
