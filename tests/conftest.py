"""Fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_as_found() -> Iterator[None]:
    """Undo logging configuration a test made (the demo configures it), for the next test."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for this test session (``scripts/ensure-postgres``)."""
    from loadtests._postgres import find_bindir, running_postgres

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed: run scripts/ensure-postgres")
    with running_postgres(bindir) as cluster:
        yield cluster.url
