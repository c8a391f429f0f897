"""The broker fixture itself: TLS 1.3 listener on a free port, generated ACL, clean stop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.mqtt_acl import broker_username, generate_acl
from gateway.mqtt_broker import BrokerError, MosquittoBroker
from tests.interop.mosquitto import MqttWorld

pytestmark = pytest.mark.interop


def test_broker_listens_with_tls_and_the_generated_acl(mqtt_world: MqttWorld) -> None:
    broker = mqtt_world.broker
    assert broker.running
    assert broker.port not in (0, 1883)
    with socket.create_connection((broker.host, broker.port), timeout=5):
        pass
    conf = (broker.directory / "mosquitto.conf").read_text()
    for line in (
        "require_certificate true",
        "use_subject_as_username true",
        "tls_version tlsv1.3",
        "allow_anonymous false",
        "crlfile ",
    ):
        assert line in conf
    acl = (broker.directory / "acl").read_text()
    de = mqtt_world.federation.gateways["DE"].identity
    assert f"user {broker_username(de)}" in acl
    assert "topic write euccs/v1/to/+/from/DE/#" in acl


def _alive(broker: MosquittoBroker) -> bool:
    return broker.running


def test_a_second_broker_gets_another_port_and_stops(tmp_path: Path, mqtt_world: MqttWorld) -> None:
    other = MosquittoBroker.for_federation(
        mqtt_world.federation,
        mqtt_world.federation.bundle(),
        mqtt_world.broker_credential,
        tmp_path / "b2",
    )
    with other:
        assert _alive(other) and other.port != mqtt_world.broker.port
    assert not _alive(other)
    other.stop()  # idempotent


def test_a_broker_that_cannot_start_reports_its_log(tmp_path: Path, mqtt_world: MqttWorld) -> None:
    broken = MosquittoBroker(
        tmp_path / "bad",
        cafile=tmp_path / "missing-ca.pem",
        certfile=mqtt_world.broker_credential.cert,
        keyfile=mqtt_world.broker_credential.key,
        acl=generate_acl({"DE": "gw-de"}),
        ready_timeout=5,
    )
    with pytest.raises(BrokerError, match="did not start"):
        broken.start()
    assert not broken.running


def test_generate_acl_rejects_bad_names() -> None:
    with pytest.raises(ValueError):
        generate_acl({"de": "gw"})
    with pytest.raises(ValueError):
        generate_acl({"DE": ["GW DE"]})
    assert generate_acl({"FR": ["gw-b", "gw-a"]}).index("gw-a") < generate_acl(
        {"FR": ["gw-b", "gw-a"]}
    ).index("gw-b")
