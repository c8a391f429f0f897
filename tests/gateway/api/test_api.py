"""The control-room API end to end: real gateways, simulated radios, real HTTPS with mTLS."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from gateway.api.views import JOURNAL_FAILING
from gateway.journal import JournalError
from protocols.schema import v1
from protocols.tetra import StatusSds
from tests.gateway.api.conftest import Api
from tests.gateway.federation import DE_RTW, FR_VSAV, eventually, texts

FR_UNIT = "fr.sdis67.vsav-strasbourg-1"
GROUP = "xb.kehl-strasbourg"


async def test_units_lists_our_units_and_partner_units(api: Api) -> None:
    status, units = await api.get("/api/v1/units")
    assert status == 200
    by_unit = {u["unit"]: u for u in units}
    ours = by_unit["de.bos.rtw-kehl-1"]
    assert ours["nation"] == "DE" and ours["label"] == "RTW Kehl 1" and ours["local"] is True
    assert set(ours) >= {"availability", "groups", "location", "gateway", "last_heard"}
    partner = by_unit[FR_UNIT]
    assert partner["nation"] == "FR" and partner["label"] == "VSAV Strasbourg 1"
    assert partner["local"] is False


async def test_units_follow_presence_of_remote_units(api: Api) -> None:
    await api.fed.sim_fr.send_text(FR_VSAV, "8002001", "Présent", report_request=0)
    await api.fed.sim_fr.send_location(FR_VSAV, "8002001", 48.58, 7.75)

    async def online() -> bool:
        _, units = await api.get("/api/v1/units")
        unit = next(u for u in units if u["unit"] == FR_UNIT)
        return unit["availability"] == "online" and unit["location"] is not None

    async with asyncio.timeout(10):
        while not await online():  # noqa: ASYNC110 - polling the HTTP API
            await asyncio.sleep(0.1)
    _, units = await api.get("/api/v1/units")
    unit = next(u for u in units if u["unit"] == FR_UNIT)
    assert unit["gateway"] == "gw-fr-strasbourg"
    assert abs(unit["location"]["lat"] - 48.58) < 1e-3
    assert unit["last_heard"].endswith("Z")


async def test_groups(api: Api) -> None:
    status, groups = await api.get("/api/v1/groups")
    assert status == 200
    assert groups == [
        {
            "group": GROUP,
            "nations": ["DE", "FR"],
            "local": [{"adapter": "tetra-de", "gssi": "3001"}],
            "members": [],
        }
    ]


async def test_text_from_the_control_room_reaches_the_french_radio(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/messages",
        {"to": {"unit": FR_UNIT}, "priority": "high", "text": "Zweiter RTW an der Europabrücke"},
    )
    assert status == 202
    message_id = body["message_id"]
    assert len(message_id) == 32
    await eventually(lambda: bool(texts(api.fed.sim_fr, FR_VSAV)), 10)
    [delivered] = texts(api.fed.sim_fr, FR_VSAV)
    assert delivered.text == "[de.controlroom.console-1] Zweiter RTW an der Europabrücke"
    message = await api.wait_state(message_id, "delivered")
    states = [s["state"] for s in message["states"]]
    assert states[:2] == ["accepted", "forwarded"]
    assert states[-1] == "delivered"
    assert message["origin"] == "de.controlroom.console-1"
    assert message["destination"] == FR_UNIT
    assert message["priority"] == "high"
    assert message["direction"] == "outbound"
    assert message["body"] == "text"
    assert message["trace"][0]["gateway"] == "gw-de-kehl"
    assert all(s["at"].endswith("Z") for s in message["states"])
    # The receipt settled the origin record: nothing waits for an SDS-REPORT that cannot go.
    assert bytes.fromhex(message_id) not in api.fed.de.tracker.origins
    assert api.fed.de.counters["reports_sent"] == 0
    status, log = await api.get("/api/v1/messages", params={"limit": "5"})
    assert status == 200
    assert log[0]["message_id"] == message_id and log[0]["state"] == "delivered"


async def test_status_from_the_control_room_is_translated(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/messages", {"to": {"unit": FR_UNIT}, "status": "on-scene"}
    )
    assert status == 202
    await eventually(lambda: bool(api.fed.sim_fr.received.get(FR_VSAV)), 10)
    [(_source, content)] = api.fed.sim_fr.received[FR_VSAV]
    assert content == StatusSds(status=0x8104)  # fr-sdis67: sur les lieux
    await api.wait_state(body["message_id"], "delivered")


async def test_group_message_goes_to_the_partner_group(api: Api) -> None:
    status, body = await api.post("/api/v1/messages", {"to": {"group": GROUP}, "text": "An alle"})
    assert status == 202
    await eventually(lambda: bool(texts(api.fed.sim_fr, "1003")), 10)
    await api.wait_state(body["message_id"], "delivered")


async def test_emergency_appears_in_alerts_and_is_acknowledged(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/messages", {"to": {"group": GROUP}, "emergency": {"lat": 48.57, "lon": 7.79}}
    )
    assert status == 202
    alert_id = body["message_id"]
    status, alerts = await api.get("/api/v1/alerts")
    assert status == 200
    [alert] = [a for a in alerts if a["alert_id"] == alert_id]
    assert alert["direction"] == "outbound"
    assert alert["target"] == {"group": GROUP}
    assert alert["location"] == {"lat": 48.57, "lon": 7.79}
    assert alert["acknowledged"] is False
    status, acked = await api.post(f"/api/v1/alerts/{alert_id}/ack")
    assert status == 200
    assert acked["acknowledged"] is True
    assert acked["acknowledged_by"] == "euccs://DE/console/console-1"
    again_status, again = await api.post(f"/api/v1/alerts/{alert_id}/ack")
    assert (again_status, again["acknowledged_at"]) == (200, acked["acknowledged_at"])
    _, alerts = await api.get("/api/v1/alerts")
    assert next(a for a in alerts if a["alert_id"] == alert_id)["acknowledged"] is True
    status, error = await api.post(f"/api/v1/alerts/{'0' * 32}/ack")
    assert (status, error["error"]) == (404, "not_found")
    status, error = await api.post("/api/v1/alerts/xyz/ack")
    assert (status, error["field"]) == (400, "alert_id")
    # It really went out: the French group radios got the emergency status.
    await eventually(lambda: bool(api.fed.sim_fr.received.get("1003")), 10)


async def test_partner_emergency_is_an_inbound_alert(api: Api) -> None:
    await api.fed.sim_fr.send_status(FR_VSAV, "8002001", 0)  # emergency to the German RTW

    async def inbound() -> list[dict[str, Any]]:
        _, alerts = await api.get("/api/v1/alerts")
        return [a for a in alerts if a["direction"] == "inbound"]

    async with asyncio.timeout(10):
        while not await inbound():  # noqa: ASYNC110 - polling the HTTP API
            await asyncio.sleep(0.05)
    [alert] = await inbound()
    assert alert["origin"] == FR_UNIT and alert["target"] == {"unit": "de.bos.rtw-kehl-1"}
    status, acked = await api.post(f"/api/v1/alerts/{alert['alert_id']}/ack")
    assert status == 200 and acked["acknowledged"] is True
    await eventually(lambda: bool(api.fed.sim_de.received.get(DE_RTW)), 10)


async def test_links(api: Api) -> None:
    status, links = await api.get("/api/v1/links")
    assert status == 200
    [partner] = links["partners"]
    assert partner["nation"] == "FR" and partner["link"] == "up"
    assert set(partner["queue"]["depths"]) == {"routine", "high", "imminent_peril", "emergency"}
    assert partner["canary"]["state"] in ("unknown", "healthy", "degraded")
    [adapter] = links["adapters"]
    assert adapter["name"] == "tetra-de" and adapter["link"] == "connected"
    assert links["journal"]["open"] is True
    assert isinstance(links["journal"]["backlog"], int)


async def test_event_stream_carries_message_and_presence_events(api: Api) -> None:
    events: list[dict[str, Any]] = []

    async def listen(session: aiohttp.ClientSession) -> None:
        async with session.get("/api/v1/events") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))

    async with api.session() as session:
        task = asyncio.create_task(listen(session))
        try:
            await eventually(lambda: any(e["type"] == "hello" for e in events), 5)
            _, body = await api.post("/api/v1/messages", {"to": {"unit": FR_UNIT}, "text": "x"})
            await api.fed.sim_fr.send_text(FR_VSAV, "8002001", "da", report_request=0)
            await eventually(
                lambda: any(
                    e["type"] == "message"
                    and e["message_id"] == body["message_id"]
                    and e["state"] == "delivered"
                    for e in events
                ),
                10,
            )
            await eventually(lambda: any(e["type"] == "presence" for e in events), 10)
        finally:
            task.cancel()
    hello = events[0]
    assert hello["identity"] == "euccs://DE/console/console-1" and hello["nation"] == "DE"
    presence = next(e for e in events if e["type"] == "presence")
    assert presence["unit"] and presence["availability"] in (
        "online",
        "stale",
        "offline",
        "unknown",
    )


async def test_health_and_readiness(api: Api) -> None:
    status, body = await api.get("/healthz")
    assert (status, body["status"], body["member"]) == (200, "ok", "DE")
    status, body = await api.get("/readyz")
    assert (status, body["status"], body["reasons"], body["member"]) == (200, "ready", [], "DE")
    api.fed.bus.cut("FR")
    status, body = await api.get("/readyz")
    assert status == 503
    assert body["reasons"] == ["the federation link to FR is down"]


async def test_a_failing_journal_makes_the_gateway_unready_until_it_recovers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = api.fed.de
    submit = gateway._submit_commit
    refusing = True

    def maybe_refusing(**kwargs: Any) -> asyncio.Future[list[int] | None]:
        if not refusing:
            return submit(**kwargs)
        future: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
        future.set_exception(JournalError("disk full"))
        return future

    monkeypatch.setattr(gateway, "_submit_commit", maybe_refusing)
    monkeypatch.setattr("gateway.api.views.JOURNAL_UNREADY_SECONDS", 1.5)
    about = v1.Envelope(message_id=b"\x5a" * 16)
    about.origin.nation = "FR"
    about.origin.unit = "fr.sdis67.vsav-strasbourg-1"
    receipt = asyncio.create_task(
        gateway._send_receipt(about, v1.DELIVERY_STATE_DELIVERED, remove=[])
    )
    await eventually(lambda: gateway.counters["journal_errors"] >= 1)
    status, body = await api.get("/readyz")
    assert status == 503
    assert JOURNAL_FAILING in body["reasons"]
    refusing = False  # the disk has room again: the retry goes through
    await asyncio.wait_for(receipt, 5)
    await asyncio.sleep(1.5)
    status, body = await api.get("/readyz")
    assert (status, body["reasons"]) == (200, [])


async def test_a_partner_cannot_cancel_our_alerts_or_another_origins(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/messages", {"to": {"group": GROUP}, "emergency": {"lat": 48.57, "lon": 7.79}}
    )
    assert status == 202
    ours = body["message_id"]
    console = "de.controlroom.console-1"  # the origin of our alert
    cancel = v1.Envelope(message_id=b"\x6b" * 16, priority=v1.PRIORITY_EMERGENCY)
    cancel.origin.nation = "FR"
    cancel.origin.unit = console  # FR speaking for a German unit
    cancel.destination.unit.nation = "DE"
    cancel.destination.unit.unit = "de.bos.rtw-kehl-1"
    cancel.emergency.active = False
    await api.fed.fr.link.send("DE", cancel.SerializeToString())
    await eventually(lambda: api.fed.de.counters["federation_misattributed"] == 1)
    _, alerts = await api.get("/api/v1/alerts")
    assert any(a["alert_id"] == ours for a in alerts)
