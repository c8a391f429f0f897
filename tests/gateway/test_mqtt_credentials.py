"""Bad credentials, ACL refusals and forged batches against a real Mosquitto broker.

Every bad credential must fail cleanly (state "bad credentials", ``send`` raises
LinkError) and deliver nothing; a gateway with valid credentials cannot publish under
another country's origin, and forged or tampered batches are rejected and counted.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import certs
from adapters._link import LinkState
from certs.testing import BadKind
from gateway.mqtt_acl import data_topic
from gateway.mqtt_batch import encode_batch
from gateway.mqtt_link import MqttFederationLink
from protocols.errors import LinkError
from protocols.schema import v1
from tests.interop import mosquitto
from tests.interop.helpers import envelope, serving
from tests.interop.mosquitto import MqttWorld

pytestmark = pytest.mark.interop
mqtt_world = mosquitto.mqtt_world
_EPOCHS = itertools.count(1000)


def _link(world: MqttWorld, nation: str, **kwargs: object) -> MqttFederationLink:
    settings = kwargs.pop("settings", None) or world.settings(nation)
    kwargs.setdefault("epoch", next(_EPOCHS))
    return MqttFederationLink(nation, settings, **kwargs)  # type: ignore[arg-type]


async def _assert_refused(world: MqttWorld, link: MqttFederationLink) -> str:
    """Run ``link`` until it reports bad credentials; return its reason."""
    fr = _link(world, "FR")
    async with serving(fr) as fr_inbox, serving(link):
        await fr.wait_until(lambda: fr.connected)
        await link.wait_until(lambda: link.state is LinkState.BAD_CREDENTIALS)
        with pytest.raises(LinkError):
            await link.send("FR", envelope("DE", "FR", "must not arrive"))
        assert link.counters["bad_credentials"] == 1  # long backoff: no hammering
        reason = link.reason
    assert fr_inbox.received == []
    assert reason
    print(reason)
    return reason


BROKER_REFUSES = [
    BadKind.UNKNOWN_CA,
    BadKind.EXPIRED,
    BadKind.NOT_YET_VALID,
    BadKind.REVOKED,
    BadKind.FOREIGN_IDENTITY,  # wrong country for its CA
    BadKind.FOREIGN_SUBJECT,  # the subject (the ACL's username) of another country's gateway
]


@pytest.mark.parametrize("kind", BROKER_REFUSES, ids=str)
async def test_the_broker_refuses_bad_certificates(mqtt_world: MqttWorld, kind: BadKind) -> None:
    credential = mqtt_world.bad[kind]
    nation = credential.identity.country
    link = MqttFederationLink(
        nation,
        mqtt_world.credential_settings(credential),
        check_own_certificate=False,  # let the broker be the one that refuses
    )
    await _assert_refused(mqtt_world, link)
    assert link.state is LinkState.STOPPED


@pytest.mark.parametrize("kind", BROKER_REFUSES, ids=str)
async def test_the_link_refuses_its_own_bad_certificate_early(
    mqtt_world: MqttWorld, kind: BadKind
) -> None:
    credential = mqtt_world.bad[kind]
    link = MqttFederationLink(
        credential.identity.country, mqtt_world.credential_settings(credential)
    )
    reason = await _assert_refused(mqtt_world, link)
    assert "our own certificate is refused" in reason


def _no_client_certificate(world: MqttWorld) -> Callable[[], ssl.SSLContext]:
    def build() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(cafile=world.federation.bundle_dir / "cafile.pem")
        return context

    return build


def _tls12(world: MqttWorld) -> Callable[[], ssl.SSLContext]:
    def build() -> ssl.SSLContext:
        de = world.federation.gateways["DE"]
        context = certs.client_context(de.cert, de.key, world.federation.bundle())
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context

    return build


@pytest.mark.parametrize("make", [_no_client_certificate, _tls12], ids=["no-cert", "tls1.2"])
async def test_the_broker_refuses_bad_tls(
    mqtt_world: MqttWorld, make: Callable[[MqttWorld], Callable[[], ssl.SSLContext]]
) -> None:
    link = MqttFederationLink("DE", mqtt_world.settings("DE"), tls_context=make(mqtt_world))
    await _assert_refused(mqtt_world, link)


async def test_a_broker_with_an_unexpected_identity_is_refused(mqtt_world: MqttWorld) -> None:
    settings = mqtt_world.settings("DE", broker_identities=("euccs://DE/gateway/another-broker",))
    reason = await _assert_refused(mqtt_world, MqttFederationLink("DE", settings))
    assert "another-broker" in reason


async def test_publishing_under_another_origin_is_refused_by_the_acl(
    mqtt_world: MqttWorld,
) -> None:
    de, fr = _link(mqtt_world, "DE"), _link(mqtt_world, "FR")
    async with serving(de), serving(fr) as fr_inbox:
        await de.wait_until(lambda: de.reachable("FR"))
        await fr.wait_until(lambda: fr.connected)
        client, credentials = de._client, de._credentials
        assert client is not None and credentials is not None
        for src in ("IT", "FR"):
            batch = encode_batch(
                [envelope("DE", "FR", "spoofed")],
                src=src,
                dest="FR",
                signer=credentials.signer,
                now=de.clock(),
                batch_id=os.urandom(16),
            )
            with pytest.raises(LinkError, match="Not authorized"):
                await client.publish_acked(
                    data_topic("FR", src, v1.PRIORITY_ROUTINE), batch, timeout=5
                )
        # and presence of another country
        with pytest.raises(LinkError, match="Not authorized"):
            await client.publish_acked("euccs/v1/gateways/FR", b"{}", retain=True, timeout=5)
        await de.send("FR", envelope("DE", "FR", "legit"))  # the link itself still works
        await fr_inbox.wait_for(1)
    assert fr_inbox.texts() == ["legit"]
    assert fr.counters["batches_received"] == 1


async def test_forged_and_tampered_batches_are_rejected_and_counted(
    mqtt_world: MqttWorld,
) -> None:
    """IT has valid credentials and tries everything the ACL lets it publish."""
    it, fr = _link(mqtt_world, "IT"), _link(mqtt_world, "FR")
    de = _link(mqtt_world, "DE")
    async with serving(it), serving(de), serving(fr) as fr_inbox:
        await it.wait_until(lambda: it.reachable("FR"))
        await de.wait_until(lambda: de.reachable("FR"))
        client, credentials = it._client, it._credentials
        de_credentials = de._credentials
        assert client is not None and credentials is not None and de_credentials is not None
        topic = data_topic("FR", "IT", v1.PRIORITY_ROUTINE)

        def batch(envelopes: list[bytes], *, signer: object = None, src: str = "IT") -> bytes:
            return encode_batch(
                envelopes,
                src=src,
                dest="FR",
                signer=signer or credentials.signer,  # type: ignore[arg-type]
                now=it.clock(),
                batch_id=os.urandom(16),
            )

        # mis-attributed: signed by IT, claims a German origin -> the envelope is dropped
        await client.publish_acked(
            topic, batch([envelope("DE", "FR", "forged"), envelope("IT", "FR", "ok-1")]), timeout=5
        )
        # tampered: a byte flipped after signing
        good = bytearray(batch([envelope("IT", "FR", "tampered")]))
        good[-80] ^= 0x01
        await client.publish_acked(topic, bytes(good), timeout=5)
        # a German batch replayed by IT on its own topic
        await client.publish_acked(
            topic,
            batch([envelope("DE", "FR", "stolen")], signer=de_credentials.signer, src="DE"),
            timeout=5,
        )
        # signed by DE's key but claiming to come from IT
        await client.publish_acked(
            topic,
            batch([envelope("DE", "FR", "wrong signer")], signer=de_credentials.signer),
            timeout=5,
        )
        # garbage
        await client.publish_acked(topic, b"\x00garbage", timeout=5)
        # a replay of a valid batch
        valid = batch([envelope("IT", "FR", "ok-2")])
        await client.publish_acked(topic, valid, timeout=5)
        await client.publish_acked(topic, valid, timeout=5)
        await client.publish_acked(topic, batch([envelope("IT", "FR", "ok-3")]), timeout=5)
        await fr_inbox.wait_for(3)
        await fr.wait_until(lambda: fr.counters["rejected_replay"] == 1)
    assert fr_inbox.texts() == ["ok-1", "ok-2", "ok-3"]
    assert {sender for sender, _ in fr_inbox.received} == {"IT"}
    assert fr.counters["dropped_misattributed"] == 1
    assert fr.counters["rejected_bad_signature"] == 1
    assert fr.counters["rejected_topic_mismatch"] == 1
    assert fr.counters["rejected_signer_mismatch"] == 1
    assert fr.counters["rejected_malformed"] == 1
    assert fr.counters["rejected_replay"] == 1
    assert fr.state is LinkState.STOPPED  # stopped by us, never crashed


async def test_reload_picks_up_a_revocation(mqtt_world: MqttWorld, tmp_path: object) -> None:
    """A reloaded bundle with a new CRL applies at once to batch signers."""
    fr = _link(mqtt_world, "FR")
    async with serving(fr):
        await fr.wait_until(lambda: fr.connected)
        verifier = fr._verifier
        assert verifier is not None
        before = verifier.bundle
        fr.reload()
        await fr.wait_until(lambda: fr.connected and fr._verifier is verifier)
        assert verifier.bundle is not before
    await asyncio.sleep(0)


async def test_a_certificate_expiring_while_connected_takes_the_link_off_the_backbone(
    mqtt_world: MqttWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partners drop batches signed with an expired certificate: no silent black hole."""
    now = datetime.now(UTC)
    issued = mqtt_world.federation.ca("DE").issue(
        certs.Role.GATEWAY,
        mqtt_world.federation.gateways["DE"].identity.name,  # the name the broker's ACL knows
        now=now,
        out=tmp_path / "short-lived",
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(seconds=3),
    )
    monkeypatch.setattr("gateway.mqtt_link.OWN_CHECK_INTERVAL", 0.5)
    link = MqttFederationLink("DE", mqtt_world.credential_settings(certs.Credential.of(issued)))
    fr = _link(mqtt_world, "FR")
    async with serving(fr), serving(link):
        await link.wait_until(lambda: link.reachable("FR"))
        await link.send("FR", envelope("DE", "FR", "while valid"))
        await link.wait_until(lambda: link.state is LinkState.BAD_CREDENTIALS, timeout=15)
        assert "our own certificate is refused" in link.reason
        with pytest.raises(LinkError):
            await link.send("FR", envelope("DE", "FR", "after expiry"))


async def test_a_gateway_the_broker_acl_does_not_know_is_told_so_without_hammering(
    mqtt_world: MqttWorld, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    issued = mqtt_world.federation.ca("DE").issue(
        certs.Role.GATEWAY, "gw-not-in-the-acl", now=now, out=tmp_path / "unlisted"
    )
    link = MqttFederationLink("DE", mqtt_world.credential_settings(certs.Credential.of(issued)))
    reason = await _assert_refused(mqtt_world, link)
    assert "cannot announce our presence" in reason
    assert "Not authorized" in reason
