"""The locust scenarios run headless against ``euccs-gw demo --serve`` and stay working."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.stat().st_size > 0):
        assert process.poll() is None, "the demo exited before serving"
        assert time.monotonic() < deadline, "the demo did not write its environment"
        time.sleep(0.1)


def _received_total(env: dict[str, str]) -> int:
    """Messages the demo's simulated radios and MCData users received, over all of them."""
    total = 0
    controls = env["EUCCS_TETRA_CONTROL"].split(",") + env["EUCCS_MCDATA_CONTROL"].split(",")
    for entry in controls:
        url = entry.partition("=")[2]
        if entry in env["EUCCS_TETRA_CONTROL"]:
            with urllib.request.urlopen(url + "/radios") as r:
                paths = [f"/radios/{radio['issi']}/received" for radio in json.load(r)["radios"]]
        else:
            with urllib.request.urlopen(url + "/users") as r:
                paths = [f"/users/{user}/received" for user in json.load(r)["users"]]
        for path in paths:
            with urllib.request.urlopen(url + path) as r:
                total += json.load(r)["count"]
    return total


@pytest.mark.slow
@pytest.mark.interop
def test_locust_scenarios_against_the_demo(tmp_path: Path) -> None:
    env_file = tmp_path / "loadtest.env"
    narration = tmp_path / "demo.log"
    with narration.open("wb") as narrated:  # the child keeps its own descriptor
        demo = subprocess.Popen(
            [
                *(sys.executable, "-m", "gateway.cli", "demo"),
                *("--serve", str(env_file), "--duration", "60"),
            ],
            cwd=ROOT,
            stdout=narrated,
            stderr=subprocess.DEVNULL,
        )
    try:
        _wait_for_file(env_file, demo, 20)
        served = {
            key: shlex.split(value)[0]  # the file is sourced by a shell: its values are quoted
            for key, _, value in (line.partition("=") for line in env_file.read_text().splitlines())
            if value
        }
        env = os.environ | served | {"EUCCS_THINK_TIME": "0.1,0.3"}
        env.pop("EUCCS_SHAPE", None)
        prefix = tmp_path / "run"
        html = tmp_path / "report.html"
        locust = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                "loadtests/locustfile.py",
                "--headless",
                "-u",
                "5",
                "-r",
                "5",
                "-t",
                "5s",
                "--csv",
                str(prefix),
                "--html",
                str(html),
                "--exit-code-on-error",
                "0",
                "--only-summary",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=40,
            check=False,
        )
        assert locust.returncode == 0, locust.stderr.decode(errors="replace")[-2000:]
        with (tmp_path / "run_stats.csv").open(newline="") as f:
            rows = [row for row in csv.DictReader(f) if row["Name"] != "Aggregated"]
        requests = {row["Name"]: int(row["Request Count"]) for row in rows}
        failures = {row["Name"]: int(row["Failure Count"]) for row in rows}
        for kind in ("tetra", "mcdata", "api"):
            assert sum(n for name, n in requests.items() if name.startswith(kind + " ")) > 0, (
                kind,
                requests,
            )
        assert all(n == 0 for n in failures.values()), failures  # emergencies included
        assert html.exists() and html.stat().st_size > 0
        assert "tetra text" in requests or "tetra status" in requests
        # Traffic crossed the federation: far-side radios and users received some of it.
        deadline = time.monotonic() + 10
        while _received_total(served) == 0:
            assert time.monotonic() < deadline, "nothing reached any far-side unit"
            time.sleep(0.2)
        # The commands the LinkOutage shape runs cut France's link and restore it.
        for command, said in (
            ("EUCCS_OUTAGE_COMMAND", "OUTAGE: France's federation link is down"),
            ("EUCCS_RESTORE_COMMAND", "France's link is restored"),
        ):
            subprocess.run(shlex.split(served[command]), check=True, timeout=10)
            deadline = time.monotonic() + 10
            while said not in narration.read_text(errors="replace"):
                assert time.monotonic() < deadline, f"{command} did nothing"
                time.sleep(0.1)
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=15)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0
    assert not env_file.exists()  # its ports and certificate paths are gone with the demo


def test_locust_stops_at_once_when_a_simulator_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    env = os.environ | {"EUCCS_TETRA_CONTROL": f"DE=http://127.0.0.1:{port}"}
    locust = subprocess.run(
        [
            *(sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless"),
            *("-u", "1", "-r", "1", "-t", "20s", "--only-summary", "TetraRadio"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert locust.returncode == 2
    assert f"not reachable: TETRA simulator DE at http://127.0.0.1:{port}" in locust.stderr.decode()
