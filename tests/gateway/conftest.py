"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gateway.federation import Federation, federation


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    async with federation(tmp_path) as running:
        yield running
