"""What the recorder pushes to the consoles' event stream about links."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from adapters import LinkState, LinkStateChanged
from gateway.api.recorder import HOP_GATEWAYS_PER_NATION, Recorder
from protocols.schema import v1
from tests.gateway.api.conftest import Api
from tests.gateway.federation import Federation, eventually

#: Reasons adapters give for a link state: peer addresses, device paths, TLS errors.
ADAPTER_REASONS = {
    LinkState.TRANSIENT_DISCONNECT: (
        "connect to sip-core.ops.internal:5061 failed: "
        "ConnectionRefusedError(111, \"Connect call failed ('10.20.30.40', 5061)\")"
    ),
    LinkState.BAD_CREDENTIALS: (
        "certificate of sip-core.ops.internal:5061 refused: [SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed: serial 0x5A3F17"
    ),
    LinkState.UNKNOWN_ERROR: "[Errno 2] could not open port /dev/ttyUSB3: No such file",
}


async def test_adapter_link_events_carry_no_adapter_error_text(api: Api) -> None:
    events: list[dict[str, Any]] = []

    async def listen() -> None:
        async with api.session() as s, s.get("/api/v1/events") as response:
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))

    task = asyncio.create_task(listen())
    try:
        await eventually(lambda: any(e["type"] == "hello" for e in events), 5)
        with structlog.testing.capture_logs() as logs:
            for state, reason in ADAPTER_REASONS.items():
                changed = LinkStateChanged(adapter="tetra-de", state=state, reason=reason, at=0.0)
                api.fed.de._on_link_state("tetra-de", changed)
            await eventually(
                lambda: sum(e["type"] == "link" for e in events) == len(ADAPTER_REASONS), 5
            )
    finally:
        task.cancel()
    links = [e for e in events if e["type"] == "link"]
    assert [e["state"] for e in links] == [s.value for s in ADAPTER_REASONS]
    assert [e["reason"] for e in links] == [
        "the adapter's link is down; reconnecting",
        "the adapter's credentials or permissions were refused",
        "the adapter's session failed; reconnecting",
    ]
    text = json.dumps(links)
    for secret in ("ops.internal", "10.20.30.40", "5061", "/dev/tty", "Errno", "SSL", "0x5A"):
        assert secret not in text
    # The operator still has every cause, in the log.
    logged = [e["reason"] for e in logs if e["event"] == "adapter.link"]
    assert logged == list(ADAPTER_REASONS.values())


async def test_hop_latency_series_are_not_for_partners_to_name(fed: Federation) -> None:
    """A partner writes its own hops: made-up gateways and nations share catch-all series."""
    recorder = Recorder(fed.de, log_size=10)
    for n in range(300):
        envelope = v1.Envelope(message_id=n.to_bytes(16, "big"))
        envelope.trace.add(gateway=f"gw-fr-{n}", nation="FR", received_at_us=1, forwarded_at_us=2)
        envelope.trace.add(gateway=f"fake-{n}", nation=f"X{n}", received_at_us=3, forwarded_at_us=4)
        envelope.trace.add(gateway=f"fake-de-{n}", nation="DE", received_at_us=5, forwarded_at_us=6)
        envelope.trace.add(gateway="gw-de-kehl", nation="FR", received_at_us=7, forwarded_at_us=9)
        envelope.trace.add(gateway="gw-de-kehl", nation="DE", received_at_us=10)  # ours
        recorder._trace(recorder.messages.record(envelope.message_id, 0.0), envelope, "FR")
    labels = {dict(key)["gateway"] for key in recorder.hop_latency.series}
    assert labels == {
        *(f"FR:gw-fr-{n}" for n in range(HOP_GATEWAYS_PER_NATION - 1)),
        "FR:gw-de-kehl",  # a French hop named like ours stays French
        "FR:other",
        "other",
        "gw-de-kehl",
    }
    ours = recorder.hop_latency.series[(("gateway", "gw-de-kehl"), ("stage", "link"))]
    assert ours.count == 300  # only our own hop's link latency, 1 µs each
