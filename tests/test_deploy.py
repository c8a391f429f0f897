"""deploy/compose.yaml: services, mounted files, gateway configurations and the broker's
configuration, checked without a container engine."""

from __future__ import annotations

import os
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


@pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed")
def test_mosquitto_accepts_the_configuration_with_the_minted_pki(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    env = {
        **os.environ,
        "PKI": str(pki),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    subprocess.run(
        ["/bin/sh", str(DEPLOY / "mint-pki.sh")], env=env, check=True, capture_output=True
    )
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
