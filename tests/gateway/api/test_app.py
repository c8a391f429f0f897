"""Error answers of the API application: what a client is told, and what only the log keeps.

A refused certificate, a journal that cannot take custody and an internal error are
answered with a stable code, a short explanation and a log reference; the full cause (the
certificate's serial and subject, the journal's file or database, exception texts) is in
the log line carrying that reference, never in the answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog

import certs
from certs.identity import serial_text
from certs.testing import BadKind
from gateway.journal import JournalError
from tests.gateway.api.conftest import Api

FR_UNIT = "fr.sdis67.vsav-strasbourg-1"
JOURNAL_FILE = "/var/lib/euccs/state/gw-de-kehl.journal.sqlite3"
DATABASE = "postgresql://euccs@db-1.ops.internal:5432/euccs (schema gw_de)"


async def _get_raw(
    api: Api, path: str, credential: certs.Credential
) -> tuple[int, str, dict[str, Any]]:
    async with api.session(credential) as s, s.get(path) as r:
        text = await r.text()
        return r.status, text, json.loads(text)


def _logged(logs: list[MutableMapping[str, Any]], event: str, ref: str) -> MutableMapping[str, Any]:
    [line] = [e for e in logs if e["event"] == event and e.get("ref") == ref]
    return line


def _serial(credential: certs.Credential) -> str:
    return serial_text(credential.serial)


async def test_a_certificate_of_the_wrong_role_is_refused_without_its_serial(api: Api) -> None:
    gateway = api.pki.gateways["DE"]
    with structlog.testing.capture_logs() as logs:
        status, text, body = await _get_raw(api, "/api/v1/units", gateway)
    assert status == 403
    assert body["error"] == "forbidden"
    assert body["detail"].startswith("client certificate refused (wrong-role): ")
    assert _serial(gateway) not in text and "serial" not in text
    assert "euccs://DE/gateway" not in text  # the refused certificate is not described back
    ref = body["ref"]
    assert ref in body["detail"]
    line = _logged(logs, "api.certificate_refused", ref)
    assert line["reason"] == "wrong-role" and line["status"] == 403
    assert _serial(gateway) in line["error"]  # the operator has the full cause
    assert api.server.recorder.api_rejections["forbidden"] == 1


async def test_a_certificate_without_identity_is_refused_without_its_serial_or_subject(
    api: Api,
) -> None:
    credential = api.bad[BadKind.MISSING_IDENTITY]
    with structlog.testing.capture_logs() as logs:
        status, text, body = await _get_raw(api, "/api/v1/units", credential)
    assert status == 401
    assert body["error"] == "unauthenticated"
    assert body["detail"].startswith("client certificate refused (missing-identity): ")
    assert _serial(credential) not in text and "serial" not in text
    assert "CN=" not in text and "O=EUCCS" not in text
    line = _logged(logs, "api.certificate_refused", body["ref"])
    assert line["reason"] == "missing-identity" and _serial(credential) in line["error"]


@pytest.mark.parametrize("location", [JOURNAL_FILE, DATABASE])
async def test_custody_the_journal_refuses_is_503_without_the_journals_location(
    api: Api, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    def refusing(**_kwargs: Any) -> asyncio.Future[list[int] | None]:
        future: asyncio.Future[list[int] | None] = asyncio.get_running_loop().create_future()
        future.set_exception(JournalError(f"{location}: commit failed: disk I/O error"))
        return future

    monkeypatch.setattr(api.fed.de, "_submit_commit", refusing)
    with structlog.testing.capture_logs() as logs:
        async with (
            api.session() as s,
            s.post("/api/v1/messages", json={"to": {"unit": FR_UNIT}, "text": "x"}) as r,
        ):
            status, text = r.status, await r.text()
    body = json.loads(text)
    assert status == 503 and body["error"] == "unavailable"
    assert body["detail"].startswith("the journal cannot take custody now")
    for secret in ("/var/lib", "sqlite3", "postgresql", "db-1", "euccs@", "gw_de", "I/O"):
        assert secret not in text
    line = _logged(logs, "api.custody_refused", body["ref"])
    assert line["identity"] == "euccs://DE/console/console-1"
    # The operator has the full cause: the gateway logs it where custody was refused.
    assert any(e["event"] == "custody.refused" and location in e["error"] for e in logs)
    assert api.server.recorder.api_rejections["unavailable"] == 1


async def test_an_internal_error_is_answered_with_a_log_reference_only(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(_gateway: Any) -> Any:
        raise RuntimeError(f"cannot read {JOURNAL_FILE}")

    monkeypatch.setattr("gateway.api.app.units_view", crash)
    with structlog.testing.capture_logs() as logs:
        async with api.session() as s, s.get("/api/v1/units") as r:
            status, text = r.status, await r.text()
    body = json.loads(text)
    assert status == 500 and body["error"] == "internal_error"
    assert JOURNAL_FILE not in text and "RuntimeError" not in text
    assert body["ref"] in body["detail"]
    line = _logged(logs, "api.internal_error", body["ref"])
    assert line["path"] == "/api/v1/units" and line["log_level"] == "error"
