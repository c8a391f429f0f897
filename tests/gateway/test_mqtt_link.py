"""MqttFederationLink against a real Mosquitto broker: exchange, urgency, presence, reload."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from adapters._link import LinkState, LinkStateChanged
from certs.identity import parse_identity_uri
from gateway.mqtt_acl import data_topic
from gateway.mqtt_broker import MosquittoBroker
from gateway.mqtt_link import (
    INBOX_GROUP,
    MqttFederationLink,
    _Client,
    _SocketTracker,
    _UrgentFirst,
)
from protocols.errors import LinkError
from protocols.schema import v1
from tests.interop import mosquitto
from tests.interop.helpers import Inbox, envelope, serving, text_of
from tests.interop.mosquitto import MqttWorld

pytestmark = pytest.mark.interop
mqtt_world = mosquitto.mqtt_world


#: The broker keeps retained presence across the module's tests: epochs only grow, as a
#: gateway's journal epoch does.
_EPOCHS = itertools.count(100)


def _link(world: MqttWorld, nation: str, **kwargs: object) -> MqttFederationLink:
    settings = kwargs.pop("settings", None) or world.settings(nation)
    kwargs.setdefault("epoch", next(_EPOCHS))
    return MqttFederationLink(nation, settings, **kwargs)  # type: ignore[arg-type]


async def test_two_gateways_exchange_envelopes_both_ways(mqtt_world: MqttWorld) -> None:
    states: list[LinkStateChanged] = []
    de = _link(mqtt_world, "DE", on_state=states.append)
    fr = _link(mqtt_world, "FR")
    async with serving(de) as de_inbox, serving(fr) as fr_inbox:
        await de.wait_until(lambda: de.reachable("FR"))
        await fr.wait_until(lambda: fr.reachable("DE"))
        await asyncio.gather(
            *(de.send("FR", envelope("DE", "FR", f"de-{i}")) for i in range(20)),
            *(fr.send("DE", envelope("FR", "DE", f"fr-{i}")) for i in range(5)),
        )
        await fr_inbox.wait_for(20)
        await de_inbox.wait_for(5)
    assert sorted(fr_inbox.texts()) == sorted(f"de-{i}" for i in range(20))
    assert {s for s, _ in fr_inbox.received} == {"DE"}
    assert sorted(de_inbox.texts()) == sorted(f"fr-{i}" for i in range(5))
    assert de.counters["envelopes_sent"] == 20
    assert de.counters["batches_sent"] < 20  # concurrent sends share batches
    assert [s.state for s in states][:2] == [LinkState.CONNECTING, LinkState.CONNECTED]
    assert states[-1].state is LinkState.STOPPED
    assert fr.partners["DE"].epoch == de.epoch


async def test_send_fails_cleanly_when_not_connected_or_partner_offline(
    mqtt_world: MqttWorld,
) -> None:
    de = _link(mqtt_world, "DE")
    with pytest.raises(LinkError, match="not connected"):
        await de.send("FR", envelope("DE", "FR", "x"))
    async with serving(de):
        await de.wait_until(lambda: de.connected)
        with pytest.raises(LinkError, match="offline"):
            await de.send("ES", envelope("DE", "ES", "nobody there"))


def _lingering_pair(
    world: MqttWorld, linger: float
) -> tuple[MqttFederationLink, MqttFederationLink]:
    """DE with a batch linger of ``linger`` seconds, and FR."""
    return _link(world, "DE", settings=world.settings("DE", linger=linger)), _link(world, "FR")


async def test_a_quiet_link_sends_at_once_and_a_busy_one_batches_within_the_linger(
    mqtt_world: MqttWorld,
) -> None:
    linger = 1.0
    de, fr = _lingering_pair(mqtt_world, linger)
    async with serving(de), serving(fr) as fr_inbox:
        await de.wait_until(lambda: de.reachable("FR"))
        started = time.monotonic()
        await de.send("FR", envelope("DE", "FR", "alone"))
        assert time.monotonic() - started < linger / 2  # quiet link: no linger
        # Taken in before the emergencies below, which would overtake it (by design) if
        # they reached FR while it still waited in FR's queue.
        await fr_inbox.wait_for(1)
        batches = de.counters["batches_sent"]
        # Within a linger of that batch: these two wait for company, and go together.
        first = asyncio.create_task(de.send("FR", envelope("DE", "FR", "first")))
        second = asyncio.create_task(de.send("FR", envelope("DE", "FR", "second")))
        # Emergencies never wait.
        await de.send("FR", envelope("DE", "FR", "mayday", v1.PRIORITY_EMERGENCY))
        await de.send("FR", envelope("DE", "FR", "peril", v1.PRIORITY_IMMINENT_PERIL))
        await fr_inbox.wait_for(3)
        assert fr_inbox.texts() == ["alone", "mayday", "peril"]
        assert not (first.done() or second.done())
        await asyncio.gather(first, second)
        assert time.monotonic() - started >= linger * 0.9
        await fr_inbox.wait_for(5)
        assert de.counters["batches_sent"] - batches == 3  # two urgent, one of two routine
        await asyncio.sleep(linger)  # quiet again
        again = time.monotonic()
        await de.send("FR", envelope("DE", "FR", "later"))
        assert time.monotonic() - again < linger / 2
        await fr_inbox.wait_for(6)
    assert fr_inbox.texts()[3:] == ["first", "second", "later"]


async def test_a_batch_on_its_way_holds_the_next_one_until_it_is_acknowledged(
    mqtt_world: MqttWorld,
) -> None:
    linger = 0.5
    de, fr = _lingering_pair(mqtt_world, linger)
    async with serving(de), serving(fr) as fr_inbox:
        await de.wait_until(lambda: de.reachable("FR"))
        client: Any = de._client
        publish = client.publish_acked
        release = asyncio.Event()
        started: list[str] = []

        async def slow(topic: str, payload: bytes, **kwargs: Any) -> None:
            started.append(topic)
            if topic.endswith("/routine"):
                await release.wait()  # a slow broker
            await publish(topic, payload, **kwargs)

        client.publish_acked = slow
        first = asyncio.create_task(de.send("FR", envelope("DE", "FR", "first")))
        await asyncio.sleep(1.2 * linger)  # quiet for a linger, but the batch is on its way
        second = asyncio.create_task(de.send("FR", envelope("DE", "FR", "second")))
        await de.send("FR", envelope("DE", "FR", "mayday", v1.PRIORITY_EMERGENCY))
        await fr_inbox.wait_for(1)
        assert fr_inbox.texts() == ["mayday"]  # never held behind routine traffic
        routine = [t for t in started if t.endswith("/routine")]
        assert len(routine) == 1  # "second" waits for company, up to a linger
        release.set()
        await asyncio.gather(first, second)
        await fr_inbox.wait_for(3)
    assert fr_inbox.texts() == ["mayday", "first", "second"]


class _GroupCommitInbox(Inbox):
    """An inbox that, like custody, finishes only when the envelopes of a group commit do.

    Texts starting with "m" wait until ``group`` of them are in progress at once, then all
    finish: an inbox fed one envelope of a batch at a time would never fill a group.
    """

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group
        self.started: list[str] = []
        self._in_progress = 0
        self._committed = asyncio.Event()

    async def __call__(self, sender: str, payload: bytes) -> None:
        text = text_of(payload)
        if text.startswith("m"):
            self.started.append(text)
            self._in_progress += 1
            if self._in_progress == self.group:
                self._committed.set()
            await self._committed.wait()
            self._in_progress -= 1
            if self._in_progress == 0:
                self._committed.clear()
        await super().__call__(sender, payload)


async def test_the_envelopes_of_a_batch_are_taken_in_together_in_their_order(
    mqtt_world: MqttWorld,
) -> None:
    linger = 0.5
    de, fr = _lingering_pair(mqtt_world, linger)
    group = _GroupCommitInbox(group=3)
    async with serving(de), serving(fr, group):
        await de.wait_until(lambda: de.reachable("FR"))
        await de.send("FR", envelope("DE", "FR", "warm"))  # a quiet link: alone, at once
        for round_ in ("a", "b"):
            batches, received = de.counters["batches_sent"], list(group.received)
            # Within a linger of the last batch: the three share one batch.
            sends = [de.send("FR", envelope("DE", "FR", f"m{round_}{i}")) for i in range(3)]
            await asyncio.gather(*sends)
            assert de.counters["batches_sent"] == batches + 1
            await group.wait_for(len(received) + 3)
    expected = ["ma0", "ma1", "ma2", "mb0", "mb1", "mb2"]
    assert group.started == expected  # a group held back the second batch's start
    assert sorted(group.texts()) == [*expected, "warm"]


class _HoldingInbox(Inbox):
    """An inbox that holds texts starting with "hold" until released (a slow commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, sender: str, payload: bytes) -> None:
        if text_of(payload).startswith("hold"):
            self.holding.set()
            await self.release.wait()
        await super().__call__(sender, payload)


@contextlib.asynccontextmanager
async def _routine_batch_held(
    world: MqttWorld,
) -> AsyncIterator[tuple[MqttFederationLink, MqttFederationLink, _HoldingInbox]]:
    """DE and FR linked, FR's inbox holding DE's text "hold me" (a slow commit)."""
    de, fr = _link(world, "DE"), _link(world, "FR")
    inbox = _HoldingInbox()
    async with serving(de), serving(fr, inbox):
        await de.wait_until(lambda: de.reachable("FR"))
        await de.send("FR", envelope("DE", "FR", "hold me"))
        await asyncio.wait_for(inbox.holding.wait(), 10)
        yield de, fr, inbox


async def test_an_emergency_is_taken_in_while_a_routine_batch_is_still_in_progress(
    mqtt_world: MqttWorld,
) -> None:
    async with _routine_batch_held(mqtt_world) as (de, _fr, inbox):
        await de.send("FR", envelope("DE", "FR", "after me"))  # waits for "hold me"
        await de.send("FR", envelope("DE", "FR", "mayday", v1.PRIORITY_EMERGENCY))
        await de.send("FR", envelope("DE", "FR", "peril", v1.PRIORITY_IMMINENT_PERIL))
        await inbox.wait_for(2)
        assert inbox.texts() == ["mayday", "peril"]  # the routine batch is still held
        inbox.release.set()
        await inbox.wait_for(4)
    assert inbox.texts() == ["mayday", "peril", "hold me", "after me"]


async def test_urgent_messages_are_offered_at_once_and_left_to_the_queue_when_refused() -> None:
    client = _Client("127.0.0.1", tls_context=ssl.create_default_context(), queue_type=_UrgentFirst)
    offered: list[str] = []
    take = True

    def on_urgent(message: Any) -> bool:
        offered.append(message.topic.value)
        return take

    client.on_urgent = on_urgent
    urgent = data_topic("FR", "DE", v1.PRIORITY_EMERGENCY)
    routine = data_topic("FR", "DE", v1.PRIORITY_ROUTINE)
    for topic in (urgent, routine):
        client._on_message(None, None, paho.MQTTMessage(topic=topic.encode()))
    assert offered == [urgent]  # taken at once: not queued
    assert [client._queue.get_nowait().topic.value] == [routine]
    take = False  # e.g. too many urgent messages in progress
    client._on_message(None, None, paho.MQTTMessage(topic=urgent.encode()))
    assert offered == [urgent, urgent]
    assert client._queue.get_nowait().topic.value == urgent  # the queue serves it, urgent first


async def test_a_send_whose_batch_was_cancelled_before_it_ran_fails_instead_of_hanging(
    mqtt_world: MqttWorld,
) -> None:
    de = _link(mqtt_world, "DE")
    fr = _link(mqtt_world, "FR")
    async with serving(de), serving(fr):
        await de.wait_until(lambda: de.reachable("FR"))
        send = asyncio.create_task(de.send("FR", envelope("DE", "FR", "caught out")))
        await asyncio.sleep(0)  # the batch's publish task exists but has not run yet
        de._fail_pending(LinkError("the session ended"))
        with pytest.raises(LinkError):
            await asyncio.wait_for(send, 5.0)
        assert not de._busy


async def test_presence_birth_will_and_epochs(mqtt_world: MqttWorld) -> None:
    de = _link(mqtt_world, "DE")
    it = _link(mqtt_world, "IT")
    epoch = it.epoch
    restarts: list[str] = []
    de.on_partner_restart = restarts.append
    async with serving(de):
        async with serving(it):
            await it.wait_until(lambda: it.connected)
            await de.wait_until(lambda: de.reachable("IT"))
            assert de.partners["IT"].epoch == epoch
            assert de.supports("IT", "receipts-batched")  # announced in its presence
            assert not de.supports("IT", "telepathy")
        # graceful stop: retained offline of the same epoch
        await de.wait_until(lambda: not de.reachable("IT"))
        assert de.partners["IT"].epoch == epoch
        # a stale retained birth of an older epoch is ignored
        stale = MqttFederationLink("IT", mqtt_world.settings("IT"), epoch=epoch - 1)
        stale_task = asyncio.create_task(stale.serve(Inbox()))
        try:
            await stale.wait_until(lambda: stale.connected)
            await de.wait_until(lambda: de.counters["presence_stale"] >= 1)
            assert not de.reachable("IT")
        finally:
            stale_task.cancel()
            await asyncio.gather(stale_task, return_exceptions=True)
        # the restarted gateway (newer epoch) wins
        restarted = _link(mqtt_world, "IT")
        assert restarts == [], "a first sighting, an offline or a stale birth is no restart"
        async with serving(restarted):
            await de.wait_until(
                lambda: de.reachable("IT") and de.partners["IT"].epoch == restarted.epoch
            )
        assert restarts == ["IT"]
        assert de.counters["partner_restarts"] == 1


@pytest.mark.parametrize(
    ("features", "supported", "malformed"),
    [
        (None, False, 0),  # a gateway from before features were announced
        ([], False, 0),
        (["receipts-batched", "later-thing"], True, 0),
        ([{"later": "form"}, "receipts-batched"], True, 0),  # names kept, the rest ignored
        ("receipts-batched", False, 1),  # not a list: reachable, but no feature used
    ],
)
def test_a_partner_supports_what_its_presence_announces(
    mqtt_world: MqttWorld, features: object, supported: bool, malformed: int
) -> None:
    de = _link(mqtt_world, "DE")
    body: dict[str, object] = {"nation": "IT", "state": "online", "epoch": 7, "session": 1}
    if features is not None:
        body["features"] = features
    de._on_presence("IT", json.dumps(body).encode(), retained=True)
    assert de.partners["IT"].online
    assert de.supports("IT", "receipts-batched") is supported
    assert not de.supports("ES", "receipts-batched")  # never heard of
    assert de.counters["presence_features_malformed"] == malformed


@pytest.mark.parametrize("extra", [{"at": "noon"}, {"at": None}, {"epoch": "seven"}])
def test_a_malformed_presence_is_counted_and_ignored(
    mqtt_world: MqttWorld, extra: dict[str, object]
) -> None:
    de = _link(mqtt_world, "DE")
    body = {"nation": "IT", "state": "online", "epoch": 7, "session": 1, **extra}
    de._on_presence("IT", json.dumps(body).encode(), retained=True)
    assert "IT" not in de.partners
    assert de.counters["presence_malformed"] == 1


async def test_last_will_marks_a_vanished_gateway_offline(mqtt_world: MqttWorld) -> None:
    de = _link(mqtt_world, "DE")
    it = _link(mqtt_world, "IT")
    async with serving(de):
        async with serving(it):
            await it.wait_until(lambda: it.connected)
            await de.wait_until(lambda: de.reachable("IT") and de.partners["IT"].epoch == it.epoch)
            client = it._client
            assert client is not None
            sock = client._client.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)  # vanish without DISCONNECT: the will goes out
            it.suspend()  # ... and stay away (its goodbye cannot go out on a closed socket)
        await de.wait_until(lambda: not de.reachable("IT"), timeout=15)
    assert de.partners["IT"].epoch == it.epoch
    assert it.counters["offline_announced"] == 0  # it was the will, not a goodbye


async def test_reload_reconnects_and_keeps_working(mqtt_world: MqttWorld) -> None:
    de = _link(mqtt_world, "DE")
    fr = _link(mqtt_world, "FR")
    async with serving(de), serving(fr) as fr_inbox:
        await de.wait_until(lambda: de.reachable("FR"))
        await de.send("FR", envelope("DE", "FR", "before"))
        session = de.session
        de.reload()
        await de.wait_until(lambda: de.session != session and de.reachable("FR"))
        await de.send("FR", envelope("DE", "FR", "after"))
        await fr_inbox.wait_for(2)
    assert fr_inbox.texts() == ["before", "after"]


async def test_suspend_and_resume(mqtt_world: MqttWorld) -> None:
    de = _link(mqtt_world, "DE")
    fr = _link(mqtt_world, "FR")
    async with serving(de), serving(fr) as fr_inbox:
        await de.wait_until(lambda: de.reachable("FR"))
        fr.suspend()
        await de.wait_until(lambda: not de.reachable("FR"))
        with pytest.raises(LinkError):
            await de.send("FR", envelope("DE", "FR", "held"))
        fr.resume()
        await de.wait_until(lambda: de.reachable("FR"))
        await de.send("FR", envelope("DE", "FR", "released"))
        await fr_inbox.wait_for(1)
    assert fr_inbox.texts() == ["released"]


def _reset_connection() -> tuple[socket.socket, socket.socket]:
    """A client socket whose peer has already reset the connection (RST received)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    accepted.close()  # linger 0: the kernel answers with RST
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            client.getpeername()
        except OSError:
            break
        time.sleep(0.01)
    return client, accepted


def test_tls_socket_orphaned_by_a_reset_before_the_handshake_is_closed() -> None:
    """CPython raises out of wrap_socket without closing the TLS socket it made: no leak."""
    tracker = _SocketTracker(ssl.create_default_context())
    client, _ = _reset_connection()
    fd = client.fileno()
    with pytest.raises(OSError):
        tracker.wrap_socket(client, server_hostname="localhost")
    gc.collect()  # the orphan is finalised here: a ResourceWarning would fail this test
    with pytest.raises(OSError):
        os.fstat(fd)  # its descriptor is closed, not left to the collector's whim
    client.close()


def test_socket_wrapped_after_close_all_is_closed_at_once() -> None:
    """paho's connect thread outlives a timed-out connect: its late socket does not leak."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        context = ssl.create_default_context()
        context.check_hostname = False
        tracker = _SocketTracker(context)
        tracker.close_all()
        with pytest.raises(OSError, match="closed while it was connecting"):
            tracker.wrap_socket(client, do_handshake_on_connect=False)
        assert client.fileno() == -1


class _TwoGateInbox(Inbox):
    """Holds texts starting "hold-r" (routine) and "hold-e" (urgent) until each is released."""

    def __init__(self) -> None:
        super().__init__()
        self.gates = {"hold-r": asyncio.Event(), "hold-e": asyncio.Event()}
        self.waiting = {"hold-r": 0, "hold-e": 0}

    async def __call__(self, sender: str, payload: bytes) -> None:
        gate = text_of(payload)[:6]
        if gate in self.gates:
            self.waiting[gate] += 1
            await self.gates[gate].wait()
            self.waiting[gate] -= 1
        await super().__call__(sender, payload)


async def test_emergencies_beyond_the_bound_in_progress_keep_their_order(
    mqtt_world: MqttWorld,
) -> None:
    de, fr = _link(mqtt_world, "DE"), _link(mqtt_world, "FR")
    inbox = _TwoGateInbox()
    emergency = v1.PRIORITY_EMERGENCY
    async with serving(de), serving(fr, inbox):
        await de.wait_until(lambda: de.reachable("FR"))
        await de.send("FR", envelope("DE", "FR", "hold-r"))  # the queue's reader is busy
        for i in range(INBOX_GROUP):  # the most emergencies taken in at once
            await de.send("FR", envelope("DE", "FR", f"hold-e{i}", emergency))
        async with asyncio.timeout(10):  # (wait_until wakes on link events only)
            while inbox.waiting["hold-e"] != INBOX_GROUP:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await de.send("FR", envelope("DE", "FR", "first", emergency))  # waits in the queue
        inbox.gates["hold-e"].set()  # places are free again, "first" still waits
        await inbox.wait_for(INBOX_GROUP)
        await de.send("FR", envelope("DE", "FR", "second", emergency))
        await asyncio.sleep(0.2)
        inbox.gates["hold-r"].set()
        await inbox.wait_for(INBOX_GROUP + 3)
    texts = inbox.texts()
    assert texts.index("first") < texts.index("second")


async def test_the_queue_of_received_messages_is_bounded_in_bytes_urgent_ones_get_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.mqtt_link.QUEUE_MAX_BYTES", 100)
    client = _Client("127.0.0.1", tls_context=ssl.create_default_context(), queue_type=_UrgentFirst)
    dropped: list[str] = []
    client.on_dropped = lambda message: dropped.append(message.topic.value)
    client.on_urgent = lambda _message: False  # as when too many are in progress
    urgent = data_topic("FR", "DE", v1.PRIORITY_EMERGENCY)
    routine = data_topic("FR", "DE", v1.PRIORITY_ROUTINE)

    def arrive(topic: str) -> None:
        message = paho.MQTTMessage(topic=topic.encode())
        message.payload = b"x" * 60
        client._on_message(None, None, message)

    arrive(routine)
    arrive(routine)  # 120 bytes > 100: dropped, its sender sends it again
    assert dropped == [routine]
    arrive(urgent)
    arrive(urgent)  # 180 bytes <= 200: urgent messages may fill twice as much
    arrive(urgent)  # 240 > 200
    assert dropped == [routine, urgent]
    queue = client._queue
    assert isinstance(queue, _UrgentFirst)
    assert (queue.qsize(), queue.bytes, queue.urgent) == (3, 180, 2)
    assert [queue.get_nowait().topic.value for _ in range(3)] == [urgent, urgent, routine]
    assert (queue.bytes, queue.urgent) == (0, 0)


async def test_a_reload_takes_in_what_was_queued_before_the_session_ends(
    mqtt_world: MqttWorld,
) -> None:
    async with _routine_batch_held(mqtt_world) as (de, fr, inbox):
        await de.send("FR", envelope("DE", "FR", "queued"))  # acknowledged by the broker
        await asyncio.sleep(0.2)  # in FR's queue, behind the message being taken in
        fr.reload()
        await inbox.wait_for(1)
        assert inbox.texts() == ["queued"]  # not left to a retransmission
        async with asyncio.timeout(5):
            while fr.counters["taken_at_session_end"] != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)


async def test_the_broker_never_signs_a_batch_even_when_its_identity_is_not_configured(
    mqtt_world: MqttWorld,
) -> None:
    de = _link(mqtt_world, "DE", settings=mqtt_world.settings("DE", broker_identities=()))
    async with serving(de):
        await de.wait_until(lambda: de.state is LinkState.CONNECTED)
        assert de._verifier is not None
        # The broker's certificate is a gateway certificate of DE: it could sign DE's batches.
        assert parse_identity_uri(mqtt_world.broker_identity) in de._verifier.forbidden


async def test_any_node_of_a_pinned_broker_cluster_is_accepted_and_none_may_sign(
    mqtt_world: MqttWorld,
) -> None:
    nodes = ("euccs://DE/gateway/emqx-1", mqtt_world.broker_identity)
    de = _link(mqtt_world, "DE", settings=mqtt_world.settings("DE", broker_identities=nodes))
    async with serving(de):
        await de.wait_until(lambda: de.state is LinkState.CONNECTED)
        assert de._verifier is not None
        assert {parse_identity_uri(uri) for uri in nodes} <= de._verifier.forbidden


async def test_a_broker_serving_with_our_own_certificate_is_refused_loudly(
    mqtt_world: MqttWorld, tmp_path: Path
) -> None:
    """Its identity may not sign batches: with ours, every partner would drop our traffic."""
    world = mqtt_world.federation
    own = world.gateways["DE"]
    broker = MosquittoBroker.for_federation(world, world.bundle(), own, tmp_path / "broker")
    broker.start()
    try:
        settings = mqtt_world.settings("DE", host=broker.host, port=broker.port)
        de = _link(mqtt_world, "DE", settings=replace(settings, broker_identities=()))
        async with serving(de):
            await de.wait_until(lambda: de.state is LinkState.BAD_CREDENTIALS)
            assert "own identity" in de.reason
    finally:
        broker.stop()


async def test_a_disconnect_the_broker_never_completes_does_not_hold_up_the_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiomqtt waits for the broker's close after DISCONNECT without a bound; the link not."""
    import aiomqtt

    async def never(*_args: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(aiomqtt.Client, "__aexit__", never)
    monkeypatch.setattr("gateway.mqtt_link.DISCONNECT_TIMEOUT", 0.2)
    client = _Client("127.0.0.1", tls_context=ssl.create_default_context())
    began = time.monotonic()
    await asyncio.wait_for(client.__aexit__(None, None, None), 5)
    assert time.monotonic() - began < 2
    assert client._disconnected.done()


async def test_a_stop_that_arrives_with_a_broker_reply_still_stops_the_link(
    mqtt_world: MqttWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's wait_for (aiomqtt's CONNACK and SUBACK waits) can swallow a cancel.

    Here the subscription step swallows it, as wait_for does when the SUBACK comes with the
    cancellation; the link must stop anyway, not go on into a session for ever.
    """
    joining = asyncio.Event()
    original = MqttFederationLink._join

    async def swallowing_join(self: MqttFederationLink, client: _Client) -> None:
        joining.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)  # the stop lands here, and is lost
        await original(self, client)

    monkeypatch.setattr(MqttFederationLink, "_join", swallowing_join)
    de = _link(mqtt_world, "DE")
    task = asyncio.create_task(de.serve(Inbox()))
    await asyncio.wait_for(joining.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done, "the link went on after its stop"
    assert task.cancelled()
    assert de.state is LinkState.STOPPED


async def test_a_disconnect_aiomqtt_gives_up_on_still_closes_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiomqtt's own wait (the client's timeout) ends in MqttError: closed here, not raised."""
    import aiomqtt

    async def timed_out(*_args: Any) -> None:
        raise aiomqtt.MqttError("Operation timed out")

    closed: list[bool] = []
    monkeypatch.setattr(aiomqtt.Client, "__aexit__", timed_out)
    client = _Client("127.0.0.1", tls_context=ssl.create_default_context())
    monkeypatch.setattr(client._client, "_sock_close", lambda: closed.append(True))
    await client.__aexit__(None, None, None)
    assert closed and client._disconnected.done()
