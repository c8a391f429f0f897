"""The MCData simulator on its own: script API errors, CLI, config validation."""

from __future__ import annotations

import pytest

from adapters.mcdata import McdataAdapterConfig, McdataGroup, McdataSystemSimulator, McdataUser
from adapters.mcdata.simulator import enhanced_status_payload, location_payload, main
from protocols.errors import ConfigError, LinkError
from protocols.mcdata import ContentType, McdataId

from .conftest import ALICE, LMR_1, free_port


async def test_send_without_gateway_raises_link_error() -> None:
    async with McdataSystemSimulator(users=[ALICE]) as sim:
        with pytest.raises(LinkError, match="does not know"):
            await sim.send_sds(ALICE, LMR_1, "x")
        sim.gateway_port = free_port()
        with pytest.raises(LinkError, match="Cannot reach the gateway"):
            await sim.send_sds(ALICE, LMR_1, "x")
        assert not sim.gateway_connected


async def test_send_needs_a_payload() -> None:
    async with McdataSystemSimulator(users=[ALICE]) as sim:
        with pytest.raises(ValueError, match="needs text"):
            await sim.send_sds(ALICE, LMR_1)


def test_payload_helpers_follow_the_gateway_encoding() -> None:
    assert location_payload(48.5, -7.25).data == b"geo:48.500000,-7.250000"
    status = enhanced_status_payload(0x8002)
    assert status.content_type == ContentType.ENHANCED_STATUS and status.data == b"\x80\x02"


def test_targets_validate_ids() -> None:
    assert McdataUser(McdataId(ALICE)).id == McdataGroup(McdataId(ALICE)).id
    with pytest.raises(ValueError, match="not valid"):
        McdataUser(McdataId(" sip:x@y"))
    with pytest.raises(ValueError, match="not valid"):
        McdataGroup(McdataId(""))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"name": ""}, "name"),
        ({"server_uri": "iwf.example"}, "server_uri"),
        ({"peer_port": 0}, "peer_port"),
        ({"listen_port": 70000}, "listen_port"),
        ({"transport": "udp"}, "transport"),
        ({"transport": "tls"}, "tls"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"keepalive_interval": -1.0}, "keepalive_interval"),
        ({"reconnect_min": 2.0, "reconnect_max": 1.0}, "reconnect_max"),
        ({"max_body": 10}, "max_body"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_config_is_validated(overrides: dict[str, object], key: str) -> None:
    values: dict[str, object] = {
        "name": "m",
        "server_uri": "sip:iwf.example.eu",
        "peer_host": "127.0.0.1",
        "peer_port": 5060,
    }
    values.update(overrides)
    with pytest.raises(ConfigError, match=key):
        McdataAdapterConfig(**values)  # type: ignore[arg-type]


def test_cli_help_and_bad_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "euccs-gw simulate mcdata" in capsys.readouterr().out
    with pytest.raises(SystemExit) as failed:
        main(["--group", "no-members-separator"])
    assert failed.value.code == 2
