"""A real Mosquitto broker with mutual TLS and the generated federation ACL, for tests.

Importable on its own (not only through the fixtures): ``MqttWorld.create(tmp)`` mints a
federation (DE, FR, IT), the broker's certificate (role gateway, DE's CA) and the bad
credentials of DE, then starts the broker on a free port. ``world.settings("DE")`` returns
:class:`gateway.mqtt_link.MqttSettings` for a country's gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

import certs
from certs.testing import BadKind, mint_bad_credentials
from gateway.mqtt_broker import MosquittoBroker, mint_broker_credential
from gateway.mqtt_link import MqttSettings

COUNTRIES = ("DE", "FR", "IT")


@dataclass
class MqttWorld:
    """A minted federation and a broker serving it."""

    federation: certs.Federation
    broker_credential: certs.Credential
    bad: dict[BadKind, certs.Credential]
    broker: MosquittoBroker
    now: datetime

    @classmethod
    def create(cls, directory: Path) -> MqttWorld:
        now = datetime.now(UTC)
        federation = certs.mint_federation(directory / "pki", COUNTRIES, now=now)
        broker_credential = mint_broker_credential(federation, now=now, country="DE")
        bad = mint_bad_credentials(federation, now=now, country="DE")  # rewrites the bundle
        broker = MosquittoBroker.for_federation(
            federation, federation.bundle(), broker_credential, directory / "broker"
        )
        broker.start()
        return cls(federation, broker_credential, bad, broker, now)

    @property
    def broker_identity(self) -> str:
        return self.broker_credential.identity.uri

    def settings(self, country: str, **overrides: object) -> MqttSettings:
        credential = self.federation.gateways[country]
        settings = MqttSettings(
            host=self.broker.host,
            port=self.broker.port,
            cert=credential.cert,
            key=credential.key,
            bundle=self.federation.bundle_dir,
            broker_identities=(self.broker_identity,),
            keepalive=10,
            connect_timeout=5.0,
            reconnect_base=0.05,
            reconnect_cap=0.5,
            bad_credentials_delay=30.0,
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    def credential_settings(
        self, credential: certs.Credential, **overrides: object
    ) -> MqttSettings:
        return self.settings("DE", cert=credential.cert, key=credential.key, **overrides)

    def close(self) -> None:
        self.broker.stop()


@pytest.fixture(scope="module")
def mqtt_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttWorld]:
    """A running broker and its federation, for one test module."""
    world = MqttWorld.create(tmp_path_factory.mktemp("mqtt"))
    try:
        yield world
    finally:
        world.close()
        print(world.broker.log())
