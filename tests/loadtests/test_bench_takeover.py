"""loadtests/bench_takeover.py: a short real run (the figures are printed, not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests import bench_takeover
from loadtests._postgres import fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.interop]


async def test_one_then_two_instances_then_a_takeover(tmp_path: Path, postgres_url: str) -> None:
    ttl = 2.0
    result = await bench_takeover.run(1.5, ttl, tmp_path, fresh_database(postgres_url))
    assert result["one_instance_msg_s"] > 0 and result["two_instances_msg_s"] > 0
    assert result["throughput_ratio_two_to_one"] is not None
    # The second instance took its home gateway (DE-2) and did its share of the work.
    assert 0 < result["handback_adapter_s"] < 60
    assert set(result["one_instance_cores"]) == {"de-1", "fr"}
    assert result["two_instances_cores"]["de-2"] > 0
    # The standby took over: its adapter came up, then texts flowed through it again.
    assert 0 < result["takeover_adapter_s"] <= result["takeover_first_delivery_s"] < 60
    assert result["after_takeover_msg_s"] > 0


def test_euccs_gw_bench_instances_runs_this_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import cli

    calls: list[list[str]] = []

    def record(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    monkeypatch.setattr(bench_takeover, "main", record)
    assert cli.main(["bench", "--instances", "--seconds", "4"]) == 0
    assert cli.main(["bench", "--instances"]) == 0
    assert calls == [["--seconds", "4.0"], []]
