"""Fixtures of the web console's browser tests: the system Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENSURE_CHROMIUM = ROOT / "scripts" / "ensure-chromium"


def find_chromium() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), if on PATH."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the system Chromium; installs it with scripts/ensure-chromium if missing.

    Playwright never downloads a browser here: it drives this executable. Skips when
    Chromium cannot be had, except under CI (``CI`` set), where set-up has run and a
    missing browser is an error, not a reason to skip.
    """
    path = find_chromium()
    if path is None:
        result = subprocess.run(
            [str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=600, check=False
        )
        path = find_chromium()
        if path is None:
            message = (
                "Chromium not found and scripts/ensure-chromium could not install it "
                f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    return path
