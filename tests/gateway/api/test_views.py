"""Readiness as ``/readyz`` reports it: why not ready, without the gateway's internals."""

from __future__ import annotations

import json

import aiohttp

from gateway.api.views import readiness
from tests.gateway.api.conftest import ApiFactory

JOURNAL_FILE = "/var/lib/euccs/state/gw-de-kehl.journal.sqlite3"
DATABASE = "postgresql://euccs@db-1.ops.internal:5432/euccs (schema gw_de)"
JOURNAL_FAILING = "the journal is failing (cause in the gateway log: journal.write_failed)"


async def test_a_failing_journal_is_named_without_its_file_or_database(
    make_api: ApiFactory,
) -> None:
    async with make_api(metrics_host="127.0.0.1", metrics_port=0) as api:
        gateway = api.fed.de
        assert api.server.metrics_url is not None
        for location in (JOURNAL_FILE, DATABASE):
            gateway.journal_error = (gateway.monotonic(), f"{location}: commit failed: I/O error")
            assert readiness(gateway) == [JOURNAL_FAILING]
            # Both listeners: the mTLS one and the plain-HTTP monitoring one.
            async with api.session() as s, s.get("/readyz") as r:
                status, text = r.status, await r.text()
            async with aiohttp.ClientSession(api.server.metrics_url) as s, s.get("/readyz") as r:
                assert (r.status, await r.text()) == (status, text)
            assert status == 503
            assert json.loads(text)["reasons"] == [JOURNAL_FAILING]
            for secret in ("/var/lib", "sqlite3", "postgresql", "db-1", "euccs@", "I/O"):
                assert secret not in text
            assert "journal.write_failed" in text  # where the operator finds the cause
