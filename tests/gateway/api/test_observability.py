"""Metrics, the plain-HTTP monitoring listener, the audit trail and the console files."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from gateway.logs import configure_logging
from tests.gateway.api.conftest import Api, ApiFactory
from tests.gateway.federation import FR_VSAV, eventually, texts

FR_UNIT = "fr.sdis67.vsav-strasbourg-1"
SECRET = "Patient Müller, Zimmer 12"


async def test_metrics_cover_traffic_queues_presence_and_latency(api: Api) -> None:
    _, body = await api.post("/api/v1/messages", {"to": {"unit": FR_UNIT}, "text": "Metrik"})
    await api.wait_state(body["message_id"], "delivered")
    await api.fed.sim_fr.send_text(FR_VSAV, "8002001", "zurück", report_request=0)
    await eventually(lambda: api.fed.de.counters["receipts_sent_delivered"] >= 1, 10)
    async with api.session() as s, s.get("/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    assert 'euccs_messages_in_total{priority="routine",source="api"} 1' in text
    assert 'euccs_messages_in_total{priority="routine",source="link:FR"} 1' in text
    assert 'euccs_messages_out_total{destination="link:FR",priority="routine"}' in text
    assert 'euccs_messages_out_total{destination="adapter:tetra-de",priority="routine"} 1' in text
    assert (
        'euccs_end_to_end_latency_seconds_count{measured_at="origin",priority="routine"} 1' in text
    )
    bucket = 'euccs_end_to_end_latency_seconds_bucket{measured_at="origin",priority="routine"'
    assert f'{bucket},le="+Inf"}} 1' in text
    assert 'euccs_hop_latency_seconds_count{gateway="gw-de-kehl",stage="link"} 1' in text
    assert 'euccs_queue_depth{priority="emergency",queue="egress:FR"} 0' in text
    assert 'euccs_queue_spilled{queue="egress:FR"} 0' in text
    assert "euccs_journal_backlog " in text
    commits = _sample(text, "euccs_journal_commits_total")
    operations = _sample(text, "euccs_journal_operations_total")
    assert 1 <= commits <= operations  # custody of the message, its receipt, ...
    assert 'euccs_presence_units{availability="online",scope="remote"}' in text
    assert 'euccs_link_up{path="federation:FR"} 1' in text
    assert "# TYPE euccs_api_tls_handshake_failures_total counter" in text
    # Every sample line is "name{labels} value" with a float value.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


async def test_plain_http_monitoring_listener(make_api: ApiFactory) -> None:
    async with make_api(metrics_host="127.0.0.1", metrics_port=0) as api:
        assert api.server.metrics_url is not None
        async with aiohttp.ClientSession(api.server.metrics_url) as s:
            async with s.get("/metrics") as r:
                assert r.status == 200
                assert "euccs_queue_depth" in await r.text()
            async with s.get("/readyz") as r:
                assert r.status == 200
            async with s.get("/api/v1/units") as r:
                assert r.status == 404  # the API itself is only on the mTLS listener


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


def _audit(stream: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "audit"]


async def test_audit_trail_has_every_state_and_no_text_by_default(
    make_api: ApiFactory, log_lines: io.StringIO
) -> None:
    async with make_api() as api:
        _, body = await api.post("/api/v1/messages", {"to": {"unit": FR_UNIT}, "text": SECRET})
        await api.wait_state(body["message_id"], "delivered")
    lines = [a for a in _audit(log_lines) if a.get("message_id") == body["message_id"]]
    assert [a["state"] for a in lines][:2] == ["accepted", "forwarded"]
    assert lines[-1]["state"] == "delivered"
    first = lines[0]
    assert first["event"] == "audit.message"
    assert first["origin"] == "de.controlroom.console-1"
    assert first["destination"] == FR_UNIT
    assert first["priority"] == "routine"
    assert first["hop"] == "gw-de-kehl"
    assert SECRET not in log_lines.getvalue()
    assert all("text" not in a for a in lines)


async def test_audit_trail_includes_text_when_switched_on(
    make_api: ApiFactory, log_lines: io.StringIO
) -> None:
    async with make_api(include_payload_in_audit=True) as api:
        _, body = await api.post("/api/v1/messages", {"to": {"unit": FR_UNIT}, "text": SECRET})
        await api.wait_state(body["message_id"], "delivered")
        await eventually(lambda: bool(texts(api.fed.sim_fr, FR_VSAV)))
    lines = [a for a in _audit(log_lines) if a.get("message_id") == body["message_id"]]
    assert lines and all(a["text"] == SECRET for a in lines)


async def test_console_files_are_served_at_the_root(make_api: ApiFactory, tmp_path: Path) -> None:
    console = tmp_path / "console"
    console.mkdir()
    (console / "index.html").write_text("<html>console</html>", encoding="utf-8")
    (console / "app.js").write_text("console.log(1)", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    async with make_api(console_dir=console) as api, api.session() as s:
        async with s.get("/") as r:
            assert r.status == 200 and "console" in await r.text()
        async with s.get("/app.js") as r:
            assert r.status == 200
        async with s.get("/%2e%2e/secret.txt") as r:
            assert r.status == 404
        async with s.get("/missing.css") as r:
            assert r.status == 404 and (await r.json())["error"] == "not_found"
        async with s.get("/openapi.json") as r:
            assert "/{path}" in (await r.json())["paths"]


def _sample(text: str, name: str) -> float:
    """The value of the unlabelled sample ``name`` in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split(" ", 1)[1])
    raise AssertionError(f"{name} is not in the exposition")
