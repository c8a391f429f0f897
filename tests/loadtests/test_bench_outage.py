"""loadtests/bench_outage.py: a short real run (the figures are printed, not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests import bench_outage


async def test_a_backlog_beyond_the_bound_is_spilled_and_drains_in_order(tmp_path: Path) -> None:
    result = await bench_outage.run(3000, 500, True, tmp_path)
    assert result["refused"] == result["shed"] == 0
    # Beyond the bound every text is spilled; presence updates queued meanwhile (a slow
    # machine's outage lasts long enough for units' leases to run out) take places too.
    spilled = result["spilled_at_end_of_outage"]
    assert 3000 - 500 <= spilled <= 3000 - 500 + result["presence_queued"]
    assert result["delivered_after_outage"] == 3000
    assert result["drained_in_order"] is True
    assert len(result["samples"]) >= 10


async def test_without_spill_the_backlog_beyond_the_bound_is_shed(tmp_path: Path) -> None:
    result = await bench_outage.run(1200, 500, False, tmp_path)
    assert result["spilled_at_end_of_outage"] == 0
    assert result["shed"] >= 1200 - 500
    assert result["delivered_after_outage"] == 1200 - result["shed"]


def test_command_line_prints_a_table_and_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_outage.main(["--messages", "600", "--bound", "200"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["messages", "RSS", "MiB", "journal", "MiB"]
    figures = json.loads(lines[-1])
    assert figures["messages"] == 600 and "samples" not in figures
    # Presence updates queued during the outage (more on a slow machine) take places too.
    spilled = figures["spilled_at_end_of_outage"]
    assert 400 <= spilled <= 400 + figures["presence_queued"]
    assert figures["drained_in_order"] is True
    assert lines[-2].startswith("spill=True bound=200: refused 0, shed 0")
