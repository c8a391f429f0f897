from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from gateway.demo_configs import demo_config_text
from protocols.errors import ConfigError

VALID = """
[gateway]
name = "gw-de-1"
nation = "DE"

[federation]
partners = ["FR"]

[[adapters]]
name = "tetra-de"
type = "tetra"
organisation = "bos"
url = "tcp://127.0.0.1:7001"
radio_issi = "9000000"

[[units]]
unit = "de.bos.rtw-1"
adapter = "tetra-de"
issi = "2001"

[[aliases]]
issi = "9001001"
unit = "fr.sdis67.vsav-1"
nation = "FR"
adapter = "tetra-de"

[[groups]]
group = "xb.rhine.fire"
adapter = "tetra-de"
gssi = "9100001"
nations = ["FR"]
"""


def test_valid_config_is_read_with_defaults() -> None:
    config = parse_config(VALID)
    assert config.name == "gw-de-1"
    assert config.nation == "DE"
    assert config.federation.partners == ("FR",)
    assert config.adapter("tetra-de").codebook == "de-bos"
    assert config.adapter("tetra-de").keepalive_interval == 15.0
    assert config.delivery.expiry_seconds["emergency"] == 3600.0
    assert config.units[0].issi == "2001"
    assert config.aliases[0].nation == "FR"
    assert config.groups[0].nations == ("FR",)
    with pytest.raises(KeyError):
        config.adapter("nope")


def test_a_gateway_of_a_split_country_and_its_split_partners() -> None:
    config = parse_config(
        VALID.replace('nation = "DE"\n', 'nation = "DE"\nmember = "DE-2"\n', 1)
        .replace('partners = ["FR"]', 'partners = ["FR", "FR-2"]\nsiblings = ["DE"]')
        .replace('nation = "FR"\nadapter', 'nation = "FR"\nmember = "FR-2"\nadapter')
        .replace('nations = ["FR"]', 'nations = ["FR-2", "DE"]')
    )
    assert (config.member, config.federation_member) == ("DE-2", "DE-2")
    assert config.federation.partners == ("FR", "FR-2")
    assert config.federation.peers == ("FR", "FR-2", "DE")
    assert config.aliases[0].member == "FR-2"
    assert config.groups[0].nations == ("FR-2", "DE")
    # Naming the country itself is the default member.
    plain = parse_config(VALID.replace('nation = "DE"\n', 'nation = "DE"\nmember = "DE"\n', 1))
    assert (plain.member, plain.federation_member) == ("", "DE")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('nation = "DE"', 'nation = "de"', "gateway.nation: 'de' is not an ISO 3166-1"),
        ('nation = "DE"\n', "", "gateway.nation: required string is missing"),
        ('url = "tcp://127.0.0.1:7001"', 'url = "udp://x"', "adapters[0].url: 'udp://x'"),
        ('type = "tetra"', 'type = "dmr"', "adapters[0].type: 'dmr' is not a supported"),
        (
            'organisation = "bos"',
            'organisation = "bos"\ncodbook = "x"',
            "adapters[0].codbook: unknown key. Did you mean 'codebook'?",
        ),
        ('issi = "2001"', 'issi = "20x1"', "units[0].issi: '20x1' is not an ISSI"),
        (
            'adapter = "tetra-de"\nissi = "2001"',
            'adapter = "radio"\nissi = "2001"',
            "units[0].adapter: no adapter called 'radio'",
        ),
        (
            'unit = "fr.sdis67.vsav-1"',
            'unit = "be.x.y"',
            "aliases[0].unit: 'be.x.y' does not start",
        ),
        ('nation = "FR"\nadapter', 'nation = "DE"\nadapter', "aliases[0].nation: an alias stands"),
        ('issi = "9001001"', 'issi = "2001"', "ISSI 2001 on adapter 'tetra-de' is already used"),
        (
            'partners = ["FR"]',
            'partners = ["DE"]',
            "federation.partners: 'DE' is this gateway's own nation",
        ),
        ('partners = ["FR"]', 'partners = ["fr"]', "federation.partners: 'fr' is not a nation"),
        ('partners = ["FR"]', 'partners = "FR"', "federation.partners: expected a list of strings"),
        ("[federation]", '[federation]\ntransport = "carrier-pigeon"', "federation.transport"),
        (
            'radio_issi = "9000000"',
            'radio_issi = "9000000"\nkeepalive_interval = -1',
            "adapters[0].keepalive_interval: -1 is below the minimum",
        ),
        (
            'radio_issi = "9000000"',
            'radio_issi = "9000000"\nsender_prefix = "yes"',
            "adapters[0].sender_prefix: expected true or false",
        ),
        ('radio_issi = "9000000"', 'radio_issi = "9000000"\ncodebook = "xx"', "no codebook 'xx'"),
        ("[[units]]", "[units]", "units: expected an array of tables"),
        (
            "[gateway]",
            "[gatway]",
            "gateway: required table is missing. Is 'gatway' a misspelling of it?",
        ),
        (
            "[federation]",
            "[delivery]\nack_timeout = 25\n\n[federation]",
            "delivery.ack_timeout: 25 s is too long (at most 20 s)",
        ),
        ('nation = "DE"\n', 'nation = "DE"\nmember = "FR-2"\n', "gateway.member: 'FR-2' is not"),
        ('nation = "DE"\n', 'nation = "DE"\nmember = "DE-"\n', "gateway.member: 'DE-' is not"),
        (
            'partners = ["FR"]',
            'partners = ["FR", "DE-2"]',
            "federation.partners: 'DE-2' is a gateway of this gateway's own nation",
        ),
        ('partners = ["FR"]', 'partners = ["FR", "FR"]', "federation.partners: lists a partner"),
        (
            'nation = "FR"\nadapter',
            'nation = "FR"\nmember = "BE-2"\nadapter',
            "aliases[0].member: 'BE-2' is not a gateway of FR",
        ),
        ('nations = ["FR"]', 'nations = ["fr"]', "groups[0].nations: 'fr' is not a country"),
        (
            'nation = "FR"\nadapter',
            'nation = "FR"\nmember = "FR-2"\nadapter',
            "aliases[0].member: 'FR-2' is not in federation.partners",
        ),
        (
            'nations = ["FR"]',
            'nations = ["FR-3"]',
            "groups[0].nations: 'FR-3' is not in federation",
        ),
        ('partners = ["FR"]', 'partners = ["BE"]', "aliases[0].nation: FR is not a partner"),
        (
            'partners = ["FR"]',
            'partners = ["FR"]\nsiblings = ["FR-2"]',
            "federation.siblings: 'FR-2' is not another gateway of DE",
        ),
        (
            'partners = ["FR"]',
            'partners = ["FR"]\nsiblings = ["DE"]',
            "federation.siblings: 'DE' is this gateway's own member id",
        ),
    ],
)
def test_errors_name_the_key(old: str, new: str, message: str) -> None:
    assert old in VALID
    with pytest.raises(ConfigError) as info:
        parse_config(VALID.replace(old, new, 1), source="de.toml")
    assert str(info.value).startswith("de.toml: ")
    assert message in str(info.value)


def test_codebook_section_is_validated() -> None:
    good = VALID + '\n[codebooks.fr-x]\n"0x8101" = { code = "on-scene", label = "Sur les lieux" }\n'
    config = parse_config(good)
    meaning = config.codebooks["fr-x"].by_code("on-scene")
    assert meaning is not None
    assert meaning.tetra_value == 0x8101
    for bad, message in [
        ('"abc" = { code = "x" }', "status keys are numbers"),
        ('"0x7C01" = { code = "x" }', "not a pre-coded status value"),
        ('"0x8101" = { label = "x" }', "code: required string is missing"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(VALID + f"\n[codebooks.fr-x]\n{bad}\n")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[gateway")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.toml")
    path = tmp_path / "gw.toml"
    path.write_text(VALID, encoding="utf-8")
    assert load_config(path).source == str(path)


def test_demo_configs_are_valid() -> None:
    de = parse_config(demo_config_text("DE", partner="FR", pei_port=7001))
    fr = parse_config(demo_config_text("FR", partner="DE", pei_port=7002))
    assert len(de.units) == len(fr.units) == 4
    assert {a.unit for a in de.aliases} == {u.unit for u in fr.units}
    assert "fr-sdis67" in fr.codebooks


def test_file_problems_read_an_mcx_system_s_ca_as_ssl_does(tmp_path: Path) -> None:
    """``tls_ca`` goes to ssl at run time: what ssl takes passes, what it cannot use does not."""
    from dataclasses import replace

    from certs import mint_federation
    from gateway.config import file_problems

    pki = mint_federation(tmp_path / "pki", ["BE"], now=datetime.now(UTC))
    be = parse_config(demo_config_text("BE", partners=["DE"]), source="be.toml")
    gateway = pki.gateways["BE"]
    ca = pki.ca("BE").directory / "ca.pem"
    tls = replace(
        be.adapters[0], tls_cert=str(gateway.cert), tls_key=str(gateway.key), tls_ca=str(ca)
    )
    assert file_problems(replace(be, adapters=(tls,))) == []
    not_a_ca = tmp_path / "notes.txt"
    not_a_ca.write_text("no certificate here\n")
    problems = file_problems(replace(be, adapters=(replace(tls, tls_ca=str(not_a_ca)),)))
    assert len(problems) == 1 and problems[0].startswith("adapters[0].tls_ca: ")
