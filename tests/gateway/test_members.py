"""A split country: two German gateways (DE, DE-2), each with its own radio network, and a
French gateway that routes to each the units it serves, over the embedded bus."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog.testing

from adapters.tetra import TetraNetworkSimulator
from gateway.config import parse_config
from gateway.demo_configs import (
    SPLIT_ALIASES_DE,
    SPLIT_ALIASES_FR,
    SPLIT_RADIO,
    SPLIT_UNITS,
    split_config_text,
)
from gateway.federation import LocalFederationBus
from gateway.members import is_member, member_nation, validate_member
from gateway.node import Gateway
from gateway.runner import build_gateways
from protocols.errors import ConfigError, DeliveryRefused
from protocols.schema import v1
from tests.gateway.federation import (
    eventually,
    reports,
    texts,
)

FR_VSAV = SPLIT_UNITS["FR"]["vsav-1"]
DE_RTW_1 = SPLIT_UNITS["DE"]["rtw-1"]
DE_RTW_2, DE_RTW_3 = SPLIT_UNITS["DE-2"]["rtw-2"], SPLIT_UNITS["DE-2"]["rtw-3"]
ALIAS_OF_FR_VSAV = SPLIT_ALIASES_DE["vsav-1"]
ALIAS_OF = SPLIT_ALIASES_FR


@dataclass
class Split:
    de: Gateway
    de2: Gateway
    fr: Gateway
    sim_de: TetraNetworkSimulator
    sim_de2: TetraNetworkSimulator
    sim_fr: TetraNetworkSimulator


def _network(member: str) -> TetraNetworkSimulator:
    return TetraNetworkSimulator(
        radio_issi=SPLIT_RADIO[member], units=list(SPLIT_UNITS[member].values())
    )


@contextlib.asynccontextmanager
async def _split(tmp_path: Path) -> AsyncIterator[Split]:
    async with (
        _network("DE") as sim_de,
        _network("DE-2") as sim_de2,
        _network("FR") as sim_fr,
    ):
        configs = [
            parse_config(split_config_text(member, sim.port))
            for member, sim in (("DE", sim_de), ("DE-2", sim_de2), ("FR", sim_fr))
        ]
        de, de2, fr = build_gateways(configs, LocalFederationBus(), state_dir=tmp_path)
        async with de.running(), de2.running(), fr.running():
            for gateway in (de, de2, fr):
                await gateway.wait_ready(5)
            yield Split(de, de2, fr, sim_de, sim_de2, sim_fr)


@pytest.fixture
async def split(tmp_path: Path) -> AsyncIterator[Split]:
    async with _split(tmp_path) as running:
        yield running


def test_member_ids() -> None:
    assert [is_member(m) for m in ("DE", "DE-2", "DE-NORTH1", "DE-", "de", "DE-TOOLONGTAG")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert member_nation("DE-2") == member_nation("DE") == "DE"
    with pytest.raises(ValueError, match="not a federation member"):
        validate_member("D-2")


async def test_each_german_gateway_gets_the_texts_for_its_own_units(split: Split) -> None:
    await split.sim_fr.send_text(FR_VSAV, ALIAS_OF["rtw-1"], "to Kehl", report_request=1)
    await split.sim_fr.send_text(FR_VSAV, ALIAS_OF["rtw-2"], "to Offenburg", report_request=1)
    await eventually(lambda: len(reports(split.sim_fr, FR_VSAV)) == 2)
    assert [t.text for t in texts(split.sim_de, DE_RTW_1)] == ["[9001001 fr.sdis67.vsav-1] to Kehl"]
    assert [t.text for t in texts(split.sim_de2, DE_RTW_2)] == [
        "[9001001 fr.sdis67.vsav-1] to Offenburg"
    ]
    assert [r.delivery_status for r in reports(split.sim_fr, FR_VSAV)] == [0x00, 0x00]
    assert split.de.counters["receipts_sent_delivered"] == 1
    assert split.de2.counters["receipts_sent_delivered"] == 1


async def test_a_split_member_s_radio_gets_its_report_from_abroad(split: Split) -> None:
    mr = await split.sim_de2.send_text(DE_RTW_2, ALIAS_OF_FR_VSAV, "from DE-2", report_request=1)
    await eventually(lambda: bool(reports(split.sim_de2, DE_RTW_2)))
    [delivered] = texts(split.sim_fr, FR_VSAV)
    assert delivered.text.endswith("from DE-2")
    [report] = reports(split.sim_de2, DE_RTW_2)
    assert (report.delivery_status, report.message_reference) == (0x00, mr)
    # The receipt came back to DE-2, which sent the text, not to the gateway named DE.
    assert split.de2.counters["receipts_delivered"] == 1
    assert split.de.counters["receipts_unmatched"] == 0
    assert split.de.counters["receipts_delivered"] == 0


async def test_a_unit_is_routed_to_the_gateway_its_presence_came_from(split: Split) -> None:
    # Before its presence came, rtw-3 goes to the gateway named DE, which does not know it.
    await split.sim_fr.send_text(FR_VSAV, ALIAS_OF["rtw-3"], "first", report_request=1)
    await eventually(lambda: bool(reports(split.sim_fr, FR_VSAV)))
    [refused] = reports(split.sim_fr, FR_VSAV)
    assert refused.delivery_status != 0x00
    # rtw-3 speaks up on DE-2's network: DE-2 announces it, and France routes to DE-2.
    await split.sim_de2.send_text(DE_RTW_3, ALIAS_OF_FR_VSAV, "here", report_request=0)
    await eventually(lambda: _member_of(split.fr, "de.bos.rtw-3") == "DE-2")
    await split.sim_fr.send_text(FR_VSAV, ALIAS_OF["rtw-3"], "second", report_request=1)
    await eventually(lambda: len(reports(split.sim_fr, FR_VSAV)) == 2)
    assert reports(split.sim_fr, FR_VSAV)[1].delivery_status == 0x00
    assert [t.text for t in texts(split.sim_de2, DE_RTW_3)] == ["[9001001 fr.sdis67.vsav-1] second"]


def _member_of(gateway: Gateway, unit: str) -> str | None:
    held = gateway.presence.get(unit)
    return None if held is None else held.member


def _presence_of(unit: str, gateway: str, availability: int, epoch: int) -> bytes:
    env = v1.Envelope(message_id=uuid.uuid4().bytes)
    env.origin.nation = "DE"
    env.presence.unit.nation = "DE"
    env.presence.unit.unit = unit
    env.presence.availability = availability  # type: ignore[assignment]
    env.presence.served_by = gateway
    env.presence.epoch, env.presence.seq = epoch, 1
    env.presence.valid_for_ms = 60_000
    return env.SerializeToString()


async def test_routes_follow_the_presence_registry_and_outlive_a_restart(tmp_path: Path) -> None:
    unit = "de.bos.rtw-3"
    party = v1.Party(nation="DE", unit=unit)
    async with _split(tmp_path) as split:
        await split.sim_de2.send_text(DE_RTW_3, ALIAS_OF_FR_VSAV, "here", report_request=0)
        await eventually(lambda: _member_of(split.fr, unit) == "DE-2")
        # A late "stale" from the unit's former gateway does not move an ONLINE unit, and
        # so does not move its route either.
        ignored = split.fr.counters["presence_ignored"]
        await split.de.link.send("FR", _presence_of(unit, "gw-de", v1.AVAILABILITY_STALE, 9))
        await eventually(lambda: split.fr.counters["presence_ignored"] == ignored + 1)
        assert split.fr._member_for(party) == "DE-2"
        await eventually(lambda: split.fr.counters["state_saved"] > 0)
    # France restarts: the route comes back with the presence it had saved.
    config = parse_config(split_config_text("FR", 1))
    [fr] = build_gateways([config], LocalFederationBus(), state_dir=tmp_path)
    async with fr.running():
        await eventually(lambda: fr.journal is not None)  # opened, and presence restored
        assert _member_of(fr, unit) == "DE-2"
        assert fr._member_for(party) == "DE-2"


async def test_a_german_gateway_cannot_speak_for_another(split: Split) -> None:
    forged = v1.Envelope(message_id=uuid.uuid4().bytes, priority=v1.PRIORITY_ROUTINE)
    forged.origin.nation = "DE"
    forged.origin.unit = "de.bos.rtw-1"
    forged.origin_member = "DE"  # sent by DE-2 as if DE had sent it
    forged.destination.unit.nation = "FR"
    forged.destination.unit.unit = "fr.sdis67.vsav-1"
    forged.text.text = "forged"
    await split.de2.link.send("FR", forged.SerializeToString())
    unstamped = v1.Envelope()
    unstamped.CopyFrom(forged)
    unstamped.ClearField("origin_member")  # DE-2 must say it is DE-2
    await split.de2.link.send("FR", unstamped.SerializeToString())
    await eventually(lambda: split.fr.counters["federation_misattributed"] == 2)
    assert texts(split.sim_fr, FR_VSAV) == []


async def test_the_gateways_of_a_split_country_share_their_units_presence(split: Split) -> None:
    await split.sim_de2.send_text(DE_RTW_2, ALIAS_OF_FR_VSAV, "here", report_request=0)
    await eventually(lambda: split.de.presence.availability("de.bos.rtw-2").name == "ONLINE")
    held = split.de.presence.get("de.bos.rtw-2")
    assert held is not None and not held.local and held.gateway == "gw-de-2"
    # A sibling speaks for its own units only, and sends nothing but presence.
    claim = v1.Envelope(message_id=uuid.uuid4().bytes)
    claim.origin.nation = "DE"
    claim.origin_member = "DE-2"
    claim.presence.unit.nation = "DE"
    claim.presence.unit.unit = "de.bos.rtw-1"  # DE's own unit
    claim.presence.availability = v1.AVAILABILITY_OFFLINE
    claim.presence.served_by = "gw-de-2"
    claim.presence.epoch = claim.presence.seq = 2**63
    await split.de2.link.send("DE", claim.SerializeToString())
    await eventually(lambda: split.de.counters["presence_refused"] == 1)
    text = v1.Envelope(message_id=uuid.uuid4().bytes, priority=v1.PRIORITY_ROUTINE)
    text.origin.nation, text.origin.unit, text.origin_member = "DE", "de.bos.rtw-2", "DE-2"
    text.destination.unit.nation, text.destination.unit.unit = "DE", "de.bos.rtw-1"
    text.text.text = "not through a sibling"
    await split.de2.link.send("DE", text.SerializeToString())
    await eventually(lambda: split.de.counters["federation_misattributed"] == 1)
    assert texts(split.sim_de, DE_RTW_1) == []


def test_two_configurations_of_one_member_cannot_share_a_process(tmp_path: Path) -> None:
    config = parse_config(split_config_text("DE-2", 1))
    with pytest.raises(ConfigError, match=r"both federation member DE-2: .* e\.g\. DE-2, DE-3"):
        build_gateways([config, config], LocalFederationBus(), state_dir=tmp_path)


def test_two_gateways_of_one_process_need_names_of_their_own(tmp_path: Path) -> None:
    de, de2 = (parse_config(split_config_text(m, 1)) for m in ("DE", "DE-2"))
    same = parse_config(split_config_text("DE-2", 1).replace('name = "gw-de-2"', 'name = "gw-de"'))
    with pytest.raises(ConfigError, match="same gateway"):
        build_gateways([de, same], LocalFederationBus(), state_dir=tmp_path)
    assert len(build_gateways([de, de2], LocalFederationBus(), state_dir=tmp_path)) == 2


async def test_a_message_for_a_unit_of_our_own_country_is_refused(split: Split) -> None:
    envelope = v1.Envelope(priority=v1.PRIORITY_ROUTINE)
    envelope.destination.unit.nation, envelope.destination.unit.unit = "DE", "de.bos.rtw-2"
    with pytest.raises(DeliveryRefused, match="our own country"):
        split.de._destination_nations(envelope)


def test_the_only_gateway_of_a_partner_country_gets_all_its_units(tmp_path: Path) -> None:
    text = split_config_text("FR", 1).replace('partners = ["DE", "DE-2"]', 'partners = ["DE-2"]')
    [fr] = build_gateways([parse_config(text)], LocalFederationBus(), state_dir=tmp_path)
    assert fr._member_for(v1.Party(nation="DE", unit="de.bos.rtw-1")) == "DE-2"
    assert fr._member_for(v1.Party(nation="IT", unit="it.vvf.aps-1")) == "IT"  # not a partner


def _with_api(member: str, listen: str, metrics: str = "") -> str:
    table = f'[api]\nlisten = "{listen}"\ncert = "c.pem"\nkey = "c.key"\nbundle = "b"\n'
    return (
        split_config_text(member, 1) + table + (f'metrics_listen = "{metrics}"\n' * bool(metrics))
    )


@pytest.mark.parametrize(
    ("de", "de2", "clash"),
    [
        (("0.0.0.0:8443",), ("127.0.0.1:8443",), "api.listen listens on port 8443"),
        (("127.0.0.1:8443", "127.0.0.1:9464"), ("127.0.0.1:9464",), "api.listen listens on"),
        (("127.0.0.1:8443",), ("127.0.0.1:8447", "127.0.0.1:8443"), "api.metrics_listen"),
    ],
)
def test_gateways_of_one_process_need_ports_of_their_own(
    tmp_path: Path, de: tuple[str, ...], de2: tuple[str, ...], clash: str
) -> None:
    configs = [parse_config(_with_api("DE", *de)), parse_config(_with_api("DE-2", *de2))]
    with pytest.raises(ConfigError, match=clash):
        build_gateways(configs, LocalFederationBus(), state_dir=tmp_path)
    # Ports of their own, on one address or on two, and any free port, are fine.
    apart = [
        parse_config(_with_api("DE", "127.0.0.1:8443", "127.0.0.1:9464")),
        parse_config(_with_api("DE-2", "127.0.0.2:8443", "127.0.0.1:9465")),
    ]
    assert len(build_gateways(apart, LocalFederationBus(), state_dir=tmp_path)) == 2
    free = [parse_config(_with_api(m, "127.0.0.1:0")) for m in ("DE", "DE-2")]
    assert len(build_gateways(free, LocalFederationBus(), state_dir=tmp_path / "free")) == 2


def test_two_gateways_of_one_process_need_certificates_of_their_own(tmp_path: Path) -> None:
    from tests.processes import over_mqtt

    def mqtt(cert: str) -> str:
        return f'[federation.mqtt]\nhost = "broker"\ncert = "{cert}"\nkey = "k"\nbundle = "b"\n'

    de = parse_config(over_mqtt(split_config_text("DE", 1), mqtt("de.pem")))
    same = parse_config(over_mqtt(split_config_text("DE-2", 1), mqtt("de.pem")))
    with pytest.raises(ConfigError, match="same certificate"):
        build_gateways([de, same], LocalFederationBus(), state_dir=tmp_path)


async def test_a_gateway_not_listed_as_partner_or_sibling_is_named_in_the_log(
    tmp_path: Path,
) -> None:
    """DE-2 forgot DE as a sibling, France forgot DE-2 as a partner: each log says so."""
    texts_by = {
        "DE-2": split_config_text("DE-2", 1).replace('siblings = ["DE"]', "siblings = []"),
        "FR": split_config_text("FR", 1).replace('partners = ["DE", "DE-2"]', 'partners = ["DE"]'),
    }
    texts_by["FR"] = "\n".join(
        line for line in texts_by["FR"].splitlines() if line != 'member = "DE-2"'
    )
    de2, fr = build_gateways(
        [parse_config(t) for t in texts_by.values()], LocalFederationBus(), state_dir=tmp_path
    )
    presence = _presence_of("de.bos.rtw-2", "gw-de", v1.AVAILABILITY_ONLINE, 1)
    with structlog.testing.capture_logs() as logs:
        await de2._on_federation("DE", presence)
        await fr._on_federation("DE-2", presence)
    unlisted = [
        (e["sender"], e["hint"]) for e in logs if e["event"] == "federation.unlisted_gateway"
    ]
    assert unlisted == [
        ("DE", "add DE to federation.siblings"),
        ("DE-2", "add DE-2 to federation.partners"),
    ]
