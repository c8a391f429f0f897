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
