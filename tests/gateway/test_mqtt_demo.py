"""`euccs-gw demo --federation mqtt`: the embedded demo over a real Mosquitto broker."""

from __future__ import annotations

import inspect
import json

import pytest

from gateway.demo import run_demo
from gateway.node import Gateway

NODE_SERVES_ONLY_LOCAL_LINKS = "isinstance(self.link, LocalLink)" in inspect.getsource(Gateway.run)


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.skipif(
    NODE_SERVES_ONLY_LOCAL_LINKS,
    reason="needs gateway/node.py: Gateway.run() must serve any link with serve()",
)
async def test_demo_over_mqtt_delivers_everything(capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_demo(duration=8, as_json=True, federation="mqtt")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["sent"] > 0 and summary["delivered"] == summary["sent"]
    assert summary["lost"] == 0
    assert summary["outage"]["drain_order"][0].startswith("EMERGENCY")


async def test_unknown_federation_is_refused() -> None:
    with pytest.raises(ValueError, match="federation"):
        await run_demo(duration=1, as_json=True, federation="carrier-pigeon")
