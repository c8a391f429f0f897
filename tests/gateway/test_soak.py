"""``euccs-gw soak``: the verdict on synthetic samples, and one short real run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.soak import COLUMNS, Sample, fitted_growth, steady_part, verdict

_MIB = 1024 * 1024


def _samples(
    n: int = 60,
    *,
    rss: float = 0.0,
    fds: float = 0.0,
    journal: float = 0.0,
    entries: float = 0.0,
    noise: bool = True,
) -> list[Sample]:
    """``n`` samples 10 s apart; each metric grows by the given amount per sample."""
    out = []
    for i in range(n):
        wobble = ((i * 7) % 5 - 2) if noise else 0  # deterministic jitter in -2..2
        out.append(
            Sample(
                t_s=10.0 * (i + 1),
                rss_bytes=int(80 * _MIB + rss * i + wobble * 256 * 1024),
                fds=int(30 + fds * i + (wobble > 1)),
                queued=abs(wobble),
                in_flight=abs(wobble),
                journal_bytes=int(12 * _MIB + journal * i + wobble * 4096),
                journal_entries=int(5 + entries * i + abs(wobble)),
                sent=50 * 10 * (i + 1),
                delivered=50 * 10 * (i + 1) - abs(wobble),
                tasks=50,
            )
        )
    return out


def test_fitted_growth_of_a_line_and_of_noise() -> None:
    assert fitted_growth([0, 1, 2, 3], [10, 12, 14, 16]) == pytest.approx(6.0)
    assert fitted_growth([0, 1, 2, 3], [5, 4, 5, 4]) == pytest.approx(-0.6)
    assert fitted_growth([1.0], [3.0]) == 0.0
    assert fitted_growth([2.0, 2.0], [1.0, 9.0]) == 0.0


def test_warm_up_is_left_out() -> None:
    samples = _samples(10)  # 10 s .. 100 s
    part = steady_part(samples, duration=100.0)
    assert [s.t_s for s in part] == [30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]


def test_steady_run() -> None:
    steady, text, growth = verdict(_samples())
    assert steady
    assert text == "steady"
    assert set(growth) == {"rss_bytes", "fds", "journal_bytes", "journal_entries"}
    assert abs(growth["rss_bytes"]["growth"]) < 1 * _MIB


def test_memory_spike_in_the_warm_up_does_not_count() -> None:
    samples = _samples()
    spiked = [
        Sample(**{**s.__dict__, "rss_bytes": s.rss_bytes + (200 * _MIB if s.t_s < 100 else 0)})
        for s in samples
    ]
    assert verdict(spiked)[0]


def test_leaking_memory_is_growing() -> None:
    # 256 KiB per sample: about 12 MiB over the steady part; the limit is 2 MiB + 5 %.
    steady, text, growth = verdict(_samples(rss=256 * 1024))
    assert not steady
    assert text.startswith("growing: rss_bytes +")
    assert "MiB" in text
    assert "fds" not in text
    assert growth["rss_bytes"]["growth"] > growth["rss_bytes"]["limit"]


def test_slow_memory_growth_within_the_allowance_is_steady() -> None:
    assert verdict(_samples(rss=16 * 1024))[0]  # < 1 MiB over the steady part


def test_leaking_descriptors_is_growing() -> None:
    steady, text, _growth = verdict(_samples(fds=0.5))  # about 24 descriptors
    assert not steady
    assert "fds +" in text
    assert "rss_bytes" not in text


def test_journal_that_keeps_filling_is_growing() -> None:
    steady, text, _ = verdict(_samples(entries=10, journal=256 * 1024))
    assert not steady
    assert "journal_entries" in text and "journal_bytes" in text


def test_too_few_samples_cannot_be_judged() -> None:
    steady, text, growth = verdict(_samples(3, rss=100 * _MIB))
    assert steady
    assert "too few samples" in text
    assert growth == {}


def test_short_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "soak"
    code = main(
        ["soak", "--duration", "8", "--interval", "1", "--rate", "20", "--out", str(out), "--json"]
    )
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert code == (0 if summary["steady"] else 1)
    assert summary["verdict"].startswith(("steady", "growing: "))
    assert "rss" in captured.err  # progress lines on stderr with --json
    with (out / "soak.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert set(COLUMNS) >= {
        "t_s",
        "rss_bytes",
        "fds",
        "queued",
        "in_flight",
        "journal_bytes",
        "journal_entries",
        "sent",
        "delivered",
    }
    assert len(rows) == 8 == summary["samples"]
    assert all(int(r["fds"]) > 0 for r in rows)
    assert all(int(r["rss_bytes"]) > 0 for r in rows)
    assert int(rows[-1]["journal_bytes"]) > 0
    assert int(rows[-1]["sent"]) > 0 and int(rows[-1]["delivered"]) > 0
    png = (out / "soak.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert summary["png"] == str(out / "soak.png")
