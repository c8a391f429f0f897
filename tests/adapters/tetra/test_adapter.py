"""TetraAdapter against the TETRA network simulator over real loopback TCP."""

from __future__ import annotations

import pytest

from adapters import LinkState, LinkStateChanged
from adapters.tetra import TetraAdapter, TetraAdapterConfig, TetraNetworkSimulator
from protocols.errors import ConfigError, LinkError
from protocols.tetra import (
    DeliveryStatus,
    LocationReport,
    SdsAck,
    SdsReceived,
    SdsReport,
    StatusSds,
    TextSds,
)

from .conftest import RADIO, Recorder, make_config, text, wait_sim

pytestmark = pytest.mark.interop


def received(recorder: Recorder) -> list[SdsReceived]:
    return recorder.of_type(SdsReceived)


async def test_initialisation_sequence(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    lines = [(c.name, c.args, c.query, c.test) for c in sim.commands]
    assert lines[0] == ("", "", False, False)
    profiles = [args for name, args, _, _ in lines if name == "+CTSP"]
    assert profiles[:3] == ["1,3,130", "1,3,137", "1,3,138"]
    assert "1,2,20" in profiles
    assert ("+CTSDS", "12,0,0,0,0", False, False) in lines
    assert lines[-1][0] == "+CMGS" and lines[-1][3]
    assert adapter.state is LinkState.CONNECTED
    assert recorder.states() == [LinkState.CONNECTING, LinkState.CONNECTED]


@pytest.mark.parametrize("sim_options", [{"max_pdu_bits": 1184}])
async def test_learns_max_pdu_bits(adapter: TetraAdapter) -> None:
    assert adapter.max_pdu_bits == 1184


async def test_send_text_and_delivery_report_loop(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    content = text(adapter, "2001", "Grenzeinsatz A7", report=3)
    outcome = await adapter.send("2001", content)
    assert outcome.ok and outcome.sds_status == 4 and outcome.reason == ""
    assert outcome.message_references == [content.message_reference]
    await wait_sim(sim, lambda: len(sim.received["2001"]) == 1)
    source, got = sim.received["2001"][0]
    assert source == RADIO and isinstance(got, TextSds) and got.text == "Grenzeinsatz A7"

    def reports() -> list[SdsReport]:
        return [e.content for e in received(recorder) if isinstance(e.content, SdsReport)]

    await recorder.wait_for(lambda: len(reports()) == 2)
    assert [r.delivery_status for r in reports()] == [0x00, 0x02]
    assert {r.message_reference for r in reports()} == {content.message_reference}
    assert all(e.source == "2001" for e in received(recorder))
    assert adapter.counters["sds_out"] == 1 and adapter.counters["sds_in"] == 2


async def test_send_status_switches_ai_service_only_when_needed(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    for value in (0x8003, 0x8004):
        outcome = await adapter.send("2002", StatusSds(status=value))
        assert outcome.ok
    assert (await adapter.send("2002", text(adapter, "2002", "ok", report=0))).ok
    await wait_sim(sim, lambda: len(sim.received["2002"]) == 3)
    contents = [content for _, content in sim.received["2002"]]
    assert contents[:2] == [StatusSds(status=0x8003), StatusSds(status=0x8004)]
    selects = [c.args.split(",")[0] for c in sim.commands if c.name == "+CTSDS"]
    assert selects == ["12", "13", "12"]


async def test_a_refused_ai_service_fails_that_send_and_keeps_the_link(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    sim.refuse_ai_service(13)
    outcome = await adapter.send("2002", StatusSds(status=0x8003))
    assert not outcome.ok and "refused SDS AI service 13" in outcome.reason
    assert adapter.counters["send_failed"] == 1
    assert adapter.state is LinkState.CONNECTED  # not a link failure: nothing to resend
    assert (await adapter.send("2002", text(adapter, "2002", "still here", report=0))).ok
    await wait_sim(sim, lambda: len(sim.received["2002"]) == 1)


async def test_send_location(adapter: TetraAdapter, sim: TetraNetworkSimulator) -> None:
    report = LocationReport(latitude=48.5, longitude=7.75, reason=0, time_elapsed=0)
    assert (await adapter.send("2001", report)).ok
    await wait_sim(sim, lambda: len(sim.received["2001"]) == 1)
    got = sim.received["2001"][0][1]
    assert isinstance(got, LocationReport)
    assert got.latitude == pytest.approx(48.5, abs=1e-4)
    assert got.longitude == pytest.approx(7.75, abs=1e-4)


async def test_inbound_text_status_and_location(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    reference = await sim.send_text("2001", RADIO, "Lage ruhig", report_request=0)
    await sim.send_status("2002", RADIO, 0x8005)
    await sim.send_location("2001", RADIO, 50.0, 8.25, velocity=30.0)
    await recorder.wait_for(lambda: len(received(recorder)) == 3)
    first, second, third = received(recorder)
    assert first.source == "2001" and first.destination == RADIO
    assert isinstance(first.content, TextSds)
    assert first.content.text == "Lage ruhig"
    assert first.content.message_reference == reference
    assert second.source == "2002" and second.content == StatusSds(status=0x8005)
    assert isinstance(third.content, LocationReport)
    assert third.content.latitude == pytest.approx(50.0, abs=1e-4)


async def test_report_requiring_ack_is_acknowledged(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    await sim.send_report("2001", RADIO, message_reference=42, ack_required=True)
    await wait_sim(sim, lambda: len(sim.reports["2001"]) == 1)
    ack = sim.reports["2001"][0][1]
    assert ack == SdsAck(
        protocol_id=0x82, delivery_status=DeliveryStatus.RECEIPT_REPORT_ACK, message_reference=42
    )
    await recorder.wait_for(lambda: len(received(recorder)) == 1)


async def test_send_report_reaches_field_radio(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    outcome = await adapter.send_report(
        "2002", protocol_id=0x82, message_reference=9, delivery_status=DeliveryStatus.CONSUMED
    )
    assert outcome.ok and outcome.message_references == [9]
    await wait_sim(sim, lambda: len(sim.reports["2002"]) == 1)
    report = sim.reports["2002"][0][1]
    assert isinstance(report, SdsReport) and report.delivery_status == 0x02


@pytest.mark.parametrize("sim_options", [{"max_pdu_bits": 400}])
async def test_long_text_is_split_and_reassembled_at_far_radio(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    body = "Einsatzbefehl " * 20
    outcome = await adapter.send("2001", text(adapter, "2001", body, report=0))
    assert outcome.ok
    assert len(outcome.message_references) > 1
    assert len(sim.submitted) == len(outcome.message_references)
    assert all(s.bits <= 400 for s in sim.submitted)
    await wait_sim(sim, lambda: len(sim.received["2001"]) == 1)
    whole = sim.received["2001"][0][1]
    assert isinstance(whole, TextSds) and whole.text == body and whole.concat is None
    follow = adapter.allocate_reference("2001")
    assert follow == (outcome.message_references[-1] + 1) % 256


@pytest.mark.parametrize("sim_options", [{"max_pdu_bits": 400}])
async def test_long_inbound_text_is_reassembled(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    body = "Lagebericht Grenzübergang " * 12
    await sim.send_text("2002", RADIO, body, report_request=0)
    await recorder.wait_for(lambda: len(received(recorder)) == 1)
    content = received(recorder)[0].content
    assert isinstance(content, TextSds) and content.text == body and content.concat is None


async def test_cme_error_gives_failed_outcome(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    sim.fail_next_cmgs(cme=31)
    outcome = await adapter.send("2001", text(adapter, "2001", "x"))
    assert not outcome.ok
    assert outcome.cme_error == 31
    assert "+CME ERROR: 31" in outcome.reason
    assert "2001" not in outcome.reason  # the reason may go abroad: no ISSI of ours in it
    assert adapter.counters["send_failed"] == 1
    assert (await adapter.send("2001", text(adapter, "2001", "y"))).ok


async def test_unreachable_radio_gives_status_5(
    adapter: TetraAdapter, sim: TetraNetworkSimulator
) -> None:
    sim.set_reachable("2002", False)
    outcome = await adapter.send("2002", text(adapter, "2002", "x"))
    assert not outcome.ok and outcome.sds_status == 5 and "status 5" in outcome.reason
    unknown = await adapter.send("9999", StatusSds(status=1))
    assert not unknown.ok and unknown.sds_status == 5
    assert sim.received["2002"] == []
    assert adapter.state is LinkState.CONNECTED


async def test_send_when_not_connected_raises(recorder: Recorder) -> None:
    adapter = TetraAdapter(make_config(9), recorder)
    with pytest.raises(LinkError, match="STOPPED"):
        await adapter.send("2001", StatusSds(status=1))
    assert adapter.state is LinkState.STOPPED


async def test_drop_and_reconnect_reports_state_transitions(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    sim.drop_connection()
    await recorder.wait_for(lambda: recorder.states().count(LinkState.CONNECTED) == 2)
    states = recorder.states()
    after = states[states.index(LinkState.CONNECTED) + 1 :]
    assert after[0] is LinkState.TRANSIENT_DISCONNECT
    assert after[-1] is LinkState.CONNECTED
    assert sim.connection_count == 2
    assert adapter.counters["reconnects"] == 1
    assert (await adapter.send("2001", text(adapter, "2001", "wieder da"))).ok


@pytest.mark.parametrize("adapter_options", [{"keepalive_interval": 0.05, "command_timeout": 0.2}])
async def test_keepalive_detects_silent_radio(
    adapter: TetraAdapter, sim: TetraNetworkSimulator, recorder: Recorder
) -> None:
    await wait_sim(sim, lambda: sum(1 for c in sim.commands if c.name == "") >= 2)
    sim.set_silent(True)
    await recorder.wait_for(lambda: LinkState.TRANSIENT_DISCONNECT in recorder.states())
    reasons = [e.reason for e in recorder.of_type(LinkStateChanged)]
    assert any("did not answer AT" in reason for reason in reasons)
    sim.set_silent(False)
    await recorder.wait_for(lambda: recorder.states().count(LinkState.CONNECTED) == 2)
    assert adapter.state is LinkState.CONNECTED


async def test_stop_reports_stopped(sim: TetraNetworkSimulator, recorder: Recorder) -> None:
    adapter = TetraAdapter(make_config(sim.port), recorder)
    async with adapter:
        await adapter.wait_connected(5.0)
    assert adapter.state is LinkState.STOPPED
    assert recorder.states()[-1] is LinkState.STOPPED
    await wait_sim(sim, lambda: sim.connection_count == 1)


async def test_wait_connected_times_out(recorder: Recorder) -> None:
    adapter = TetraAdapter(make_config(9), recorder)
    with pytest.raises(LinkError, match="not connected"):
        await adapter.wait_connected(0.01)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="command_timeout"):
        TetraAdapterConfig(name="t", url="tcp://h:1", command_timeout=0)
    with pytest.raises(ConfigError, match="reconnect_max"):
        TetraAdapterConfig(name="t", url="tcp://h:1", reconnect_min=5, reconnect_max=1)
    with pytest.raises(ConfigError, match="max_pdu_bits"):
        TetraAdapterConfig(name="t", url="tcp://h:1", max_pdu_bits=4096)
    with pytest.raises(ConfigError, match="url="):
        TetraAdapter(TetraAdapterConfig(name="t", url="http://h:1"), Recorder())
