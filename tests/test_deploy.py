"""deploy/compose.yaml: services, mounted files, gateway configurations and the broker's
configuration, checked without a container engine."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from gateway.mqtt_acl import generate_emqx_acl

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount (sources starting with . or /)."""
    binds = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            binds.append((source, target))
    return binds


def test_services_and_their_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"certs", "mosquitto", "gateway-de", "gateway-fr", "sim-de", "sim-fr"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
                ROOT / "Dockerfile"
            )
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    for name in ("mosquitto", "gateway-de", "gateway-fr", "sim-de", "sim-fr"):
        assert "healthcheck" in services[name], name
    assert services["certs"]["restart"] == "no"
    for name in ("mosquitto", "gateway-de", "gateway-fr"):
        assert services[name]["depends_on"]["mosquitto" if name != "mosquitto" else "certs"]


def test_api_ports_are_published_on_loopback_only() -> None:
    published = [
        str(port)
        for service in _compose()["services"].values()
        for port in service.get("ports", [])
    ]
    assert sorted(published) == ["127.0.0.1:8443:8443", "127.0.0.1:8444:8443"]


def test_every_mounted_file_exists_in_the_repository() -> None:
    for name, service in _compose()["services"].items():
        for source, _target in _binds(service):
            assert (DEPLOY / source).is_file(), f"{name}: {source}"


def test_no_secret_in_the_deploy_folder() -> None:
    for path in DEPLOY.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "PRIVATE KEY" not in text, path
        assert path.suffix not in {".key", ".pem", ".crt"}, path


@pytest.mark.parametrize("service", ["gateway-de", "gateway-fr"])
def test_gateway_configuration_passes_the_loader(service: str) -> None:
    spec = _compose()["services"][service]
    [config_file] = [s for s, t in _binds(spec) if t == "/etc/euccs/gateway.toml"]
    config = load_config(DEPLOY / config_file)
    nation = service.rsplit("-", 1)[1].upper()
    assert config.nation == nation
    assert config.federation.transport == "mqtt"
    mqtt: Any = config.federation.mqtt
    assert mqtt.host == "mosquitto"
    assert str(mqtt.cert).startswith("/pki/") and str(mqtt.bundle) == "/pki/bundle"
    assert config.api is not None and config.api.port == 8443
    assert config.adapters[0].url == f"tcp://sim-{nation.lower()}:7001"
    # The certificate the configuration names is one the certs service mints.
    script = (DEPLOY / "mint-pki.sh").read_text(encoding="utf-8")
    assert f'--name {config.name} --out "$PKI/{nation}/gateway-{config.name}"' in script
    assert str(mqtt.cert) == f"/pki/{nation}/gateway-{config.name}.pem"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mint(tmp_path: Path) -> Path:
    """Run deploy/mint-pki.sh for real into ``tmp_path/pki``; return that folder."""
    pki = tmp_path / "pki"
    env = {
        **os.environ,
        "PKI": str(pki),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    subprocess.run(
        ["/bin/sh", str(DEPLOY / "mint-pki.sh")], env=env, check=True, capture_output=True
    )
    return pki


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed")
def test_mosquitto_accepts_the_configuration_with_the_minted_pki(tmp_path: Path) -> None:
    pki = _mint(tmp_path)
    for needed in ("broker/broker.pem", "broker/broker.key", "broker/acl", "broker/crl.pem"):
        assert (pki / needed).is_file(), needed
    assert (pki / "bundle" / "cafile.pem").is_file()
    port = _free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8")
    conf = conf.replace("/pki/", f"{pki}/").replace(
        "listener 8883 0.0.0.0", f"listener {port} 127.0.0.1"
    )
    if os.geteuid() == 0:
        conf = "user root\n" + conf  # the minted keys are root's, mode 0600
    (tmp_path / "mosquitto.conf").write_text(conf, encoding="utf-8")
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen(
            [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 10.0
        listening = False
        while time.monotonic() < deadline and broker.poll() is None and not listening:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                listening = True
            except OSError:
                time.sleep(0.05)  # polling the broker's start-up, not an assertion
        assert listening, log.read_text(errors="replace")
        assert broker.poll() is None, log.read_text(errors="replace")
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_the_image_has_what_a_postgresql_journal_and_a_cluster_need() -> None:
    """``[journal] url`` and ``[cluster]`` need psycopg: the image installs that extra."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    [sync] = [line for line in dockerfile.splitlines() if line.startswith("RUN uv sync")]
    assert "--frozen" in sync and "--extra postgres" in sync
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'postgres = ["psycopg[binary]' in pyproject


# ------------------------------------------------------------ deploy/compose.cluster.yaml

CLUSTER_GATEWAYS = {"gateway-de-1", "gateway-de-2", "gateway-fr-1", "gateway-fr-2"}
EMQX_NODES = {"emqx1", "emqx2", "emqx3"}


def _cluster() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.cluster.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return dict(data["services"])


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_cluster_services_images_and_dependencies() -> None:
    services = _cluster()
    assert set(services) == {"certs", "postgres", "sim-de", "sim-de-2", "sim-fr"} | EMQX_NODES | (
        CLUSTER_GATEWAYS
    )
    for name, service in services.items():
        assert "image" in service or "build" in service, name
    for node in EMQX_NODES:
        assert services[node]["image"].startswith("emqx/emqx:5.")
        assert services[node]["depends_on"]["certs"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["postgres"]["image"].startswith("postgres:")
    for name in CLUSTER_GATEWAYS:
        needs = services[name]["depends_on"]
        assert {"postgres", *EMQX_NODES} <= set(needs), name
        assert all(needs[n]["condition"] == "service_healthy" for n in needs), name
    for name in ("postgres", *EMQX_NODES):
        assert "healthcheck" in services[name], name


def test_the_emqx_nodes_form_one_cluster_behind_one_address() -> None:
    services = _cluster()
    names = set()
    for node in EMQX_NODES:
        service = services[node]
        env = service["environment"]
        name = env["EMQX_NODE__NAME"]
        host = name.split("@", 1)[1]
        assert "." in host  # EMQX runs Erlang in long-name mode
        assert service["hostname"] == host
        assert service["networks"]["federation"]["aliases"] == [host, "broker"]
        seeds = env["EMQX_CLUSTER__STATIC__SEEDS"].strip("[]").split(",")
        names.add(name)
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        assert set(seeds) == {f"emqx@{n}.euccs.local" for n in EMQX_NODES}
        # Mutual TLS 1.3 only, the subject as username, the generated ACL, deny by default.
        assert env["EMQX_LISTENERS__SSL__DEFAULT__SSL_OPTIONS__VERIFY"] == "verify_peer"
        assert env["EMQX_LISTENERS__SSL__DEFAULT__SSL_OPTIONS__FAIL_IF_NO_PEER_CERT"] == "true"
        assert env["EMQX_LISTENERS__SSL__DEFAULT__SSL_OPTIONS__VERSIONS"] == "[tlsv1.3]"
        for plain in ("TCP", "WS", "WSS"):
            assert env[f"EMQX_LISTENERS__{plain}__DEFAULT__ENABLE"] == "false"
        assert env["EMQX_DASHBOARD__LISTENERS__HTTP__ENABLE"] == "false"
        assert env["EMQX_MQTT__PEER_CERT_AS_USERNAME"] == "dn"
        assert env["EMQX_MQTT__PEER_CERT_AS_CLIENTID"] == "dn"
        assert env["EMQX_AUTHORIZATION__NO_MATCH"] == "deny"
        assert '"/pki/broker/emqx-acl.conf"' in env["EMQX_AUTHORIZATION__SOURCES"]
        assert "/pki/broker/cookie" in " ".join(service["entrypoint"])
        assert "EMQX_NODE__COOKIE" not in env  # never in the repository
        assert not service.get("ports"), "the broker is reached on the compose network only"
    assert len(names) == len(EMQX_NODES)


@pytest.mark.parametrize("nation", ["DE", "FR"])
def test_two_instances_per_country_share_one_configuration(nation: str) -> None:
    services = _cluster()
    instances = [services[f"gateway-{nation.lower()}-{n}"] for n in (1, 2)]
    ids = [_option(s["command"], "--instance") for s in instances]
    assert len(set(ids)) == 2
    [files] = {
        tuple(source for source, t in _binds(s) if t == "/etc/euccs/gateway.toml")
        for s in instances
    }
    [config_file] = files
    config = load_config(DEPLOY / config_file)
    assert config.nation == nation
    assert config.cluster is not None
    mqtt: Any = config.federation.mqtt
    assert mqtt.host == "broker"  # any EMQX node
    # The journal is the postgres service's database, as that service creates it.
    assert config.journal_url == "postgresql://euccs@postgres:5432/euccs"
    env = services["postgres"]["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("euccs", "euccs")
    for instance in instances:
        assert instance["environment"]["PGPASSFILE"] == "/pki/postgres/pgpass"
        assert ("pki", "/pki") in [tuple(str(v).split(":")[:2]) for v in instance["volumes"]]


def test_germany_is_split_over_two_gateways_each_at_home_on_one_instance() -> None:
    services = _cluster()
    homes = {}
    for instance in ("gateway-de-1", "gateway-de-2"):
        service = services[instance]
        binds = dict((target, source) for source, target in _binds(service))
        assert binds["/etc/euccs/gateway.toml"] == "./de-cluster.toml"
        assert binds["/etc/euccs/gateway-2.toml"] == "./de2-cluster.toml"
        command = service["command"]
        assert [command[i + 1] for i, a in enumerate(command) if a == "-c"] == [
            "/etc/euccs/gateway.toml",
            "/etc/euccs/gateway-2.toml",
        ]
        homes[_option(command, "--instance")] = instance
    de, de2 = (load_config(DEPLOY / f) for f in ("de-cluster.toml", "de2-cluster.toml"))
    assert (de.federation_member, de2.federation_member) == ("DE", "DE-2")
    assert (de.federation.siblings, de2.federation.siblings) == (("DE-2",), ("DE",))
    assert de.cluster is not None and de2.cluster is not None
    # Each German gateway is at home on one of the two instances, not the same one.
    assert {de.cluster.home, de2.cluster.home} == set(homes)
    # Ports of their own in one process; distinct certificates, radio networks, schemas.
    assert de.api is not None and de2.api is not None
    assert (de.api.port, de2.api.port) == (8443, 8447)
    assert de.api.metrics_port != de2.api.metrics_port
    assert de.name != de2.name and de.journal_url == de2.journal_url
    assert de.federation.mqtt.cert != de2.federation.mqtt.cert  # type: ignore[union-attr]
    assert "sim-de-2:" in de2.adapters[0].url
    sim = services["sim-de-2"]["command"]
    assert _option(sim, "--radio-issi") == de2.adapters[0].radio_issi
    assert _option(sim, "--units").split(",") == [u.issi for u in de2.units]
    # France reaches DE-2's units through aliases naming it.
    fr = load_config(DEPLOY / "fr-cluster.toml")
    assert fr.federation.partners == ("DE", "DE-2")
    assert {a.unit for a in fr.aliases if a.member == "DE-2"} == {u.unit for u in de2.units}


@pytest.mark.parametrize("nation", ["de", "fr"])
def test_the_cluster_configuration_differs_from_the_single_one_only_where_it_must(
    nation: str,
) -> None:
    single = load_config(DEPLOY / f"{nation}.toml")
    cluster = load_config(DEPLOY / f"{nation}-cluster.toml")
    assert single.cluster is None and cluster.cluster is not None
    assert single.journal_path is not None and cluster.journal_url is not None
    assert cluster.federation.mqtt.host == "broker"  # type: ignore[union-attr]
    assert single.federation.mqtt.host == "mosquitto"  # type: ignore[union-attr]
    for field in ("name", "nation", "adapters", "units", "groups", "api", "delivery"):
        assert getattr(single, field) == getattr(cluster, field), field
    # The cluster adds aliases of Germany's second gateway's units, nothing else.
    added = set(cluster.aliases) - set(single.aliases)
    assert set(single.aliases) <= set(cluster.aliases)
    assert all(a.member == "DE-2" for a in added)


def test_cluster_ports_are_published_on_loopback_only_and_distinct() -> None:
    published = [str(port) for service in _cluster().values() for port in service.get("ports", [])]
    assert sorted(published) == [
        *(f"127.0.0.1:{p}:8443" for p in (8443, 8444, 8445, 8446)),
        "127.0.0.1:8447:8447",
        "127.0.0.1:8448:8447",
    ]


def test_cluster_mounted_files_exist() -> None:
    for name, service in _cluster().items():
        for source, _target in _binds(service):
            assert (DEPLOY / source).is_file(), f"{name}: {source}"


_EMQX_RULE = re.compile(
    r'\{allow, \{username, "(CN=[^"]+)"\}, (publish|subscribe|all), \["([^"]+)"\]\}\.'
)


def test_the_minted_files_are_those_the_cluster_names(tmp_path: Path) -> None:
    pki = _mint(tmp_path)
    services = _cluster()
    named = {
        value
        for node in EMQX_NODES
        for value in services[node]["environment"].values()
        if str(value).startswith("/pki/")
    } | {services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"], "/pki/broker/cookie"}
    named |= {services[g]["environment"]["PGPASSFILE"] for g in CLUSTER_GATEWAYS}
    for path in named:
        assert (pki / path.removeprefix("/pki/")).is_file(), path
    password = (pki / "postgres" / "password").read_text().strip()
    assert len(password) >= 32
    assert (pki / "postgres" / "pgpass").read_text() == f"postgres:5432:euccs:euccs:{password}\n"
    for secret in ("postgres/password", "postgres/pgpass", "broker/cookie"):
        assert (pki / secret).stat().st_mode & 0o077 == 0, secret
    # The EMQX ACL: rule lines only, the same rules as Mosquitto's, and deny at the end.
    lines = [
        line
        for line in (pki / "broker" / "emqx-acl.conf").read_text().splitlines()
        if not line.startswith("%%")
    ]
    assert lines[-1] == "{deny, all}."
    rules = [_EMQX_RULE.fullmatch(line) for line in lines[:-1]]
    assert all(rules), lines
    de = "CN=gw-de-kehl,OU=gateway,O=EUCCS,C=DE"
    assert [(m.group(2), m.group(3)) for m in rules if m and m.group(1) == de] == [
        ("publish", "euccs/v1/to/+/from/DE/#"),
        ("subscribe", "euccs/v1/to/DE/#"),
        ("all", "euccs/v1/gateways/DE"),
        ("subscribe", "euccs/v1/gateways/+"),
    ]
    de2 = "CN=gw-de-offenburg,OU=gateway,O=EUCCS,C=DE"
    assert [(m.group(2), m.group(3)) for m in rules if m and m.group(1) == de2] == [
        ("publish", "euccs/v1/to/+/from/DE-2/#"),
        ("subscribe", "euccs/v1/to/DE-2/#"),
        ("all", "euccs/v1/gateways/DE-2"),
        ("subscribe", "euccs/v1/gateways/+"),
    ]
    assert {m.group(1) for m in rules if m} == {
        de,
        de2,
        "CN=gw-fr-strasbourg,OU=gateway,O=EUCCS,C=FR",
    }


def test_the_emqx_acl_refuses_bad_names() -> None:
    with pytest.raises(ValueError):
        generate_emqx_acl({"de": "gw"})
    with pytest.raises(ValueError):
        generate_emqx_acl({"DE": ['gw", all']})
