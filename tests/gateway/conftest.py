"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.gateway.federation import Federation, federation


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    async with federation(tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for this test session (``scripts/ensure-postgres``)."""
    from tests.postgres import find_bindir, running_postgres

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed: run scripts/ensure-postgres")
    with running_postgres(bindir) as cluster:
        yield cluster.url
