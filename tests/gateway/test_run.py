"""`euccs-gw run` as an operator runs it: a real process, configuration files, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from adapters.tetra import TetraNetworkSimulator
from gateway.demo_configs import GATEWAY_RADIO, demo_config_text
from protocols.tetra import SdsReport, TextSds
from tests.processes import start_gateways

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Patient name Jean Dupont"


def _initialised(sim: TetraNetworkSimulator) -> bool:
    return any(c.name == "+CMGS" and c.test for c in sim.commands)


async def test_run_two_gateways_from_files_and_stop_on_sigterm(tmp_path: Path) -> None:
    async with (
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["DE"], units=["2001"]) as sim_de,
        TetraNetworkSimulator(radio_issi=GATEWAY_RADIO["FR"], units=["1001"]) as sim_fr,
    ):
        de, fr = tmp_path / "de.toml", tmp_path / "fr.toml"
        de.write_text(demo_config_text("DE", partner="FR", pei_port=sim_de.port), encoding="utf-8")
        fr.write_text(demo_config_text("FR", partner="DE", pei_port=sim_fr.port), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            "-c",
            str(de),
            "-c",
            str(fr),
            "--state-dir",
            str(tmp_path / "state"),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(20):
                await sim_de.wait_for(lambda: _initialised(sim_de))
                await sim_fr.wait_for(lambda: _initialised(sim_fr))
                mr = await sim_de.send_text("2001", "9001001", SECRET, report_request=1)
                await sim_de.wait_for(lambda: len(sim_de.reports.get("2001", [])) == 2)
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()[-2000:]
    [(_src, text)] = sim_fr.received["1001"]
    assert isinstance(text, TextSds)
    assert text.text.endswith(SECRET)
    [(_src, stored), (_src, report)] = sim_de.reports["2001"]
    assert isinstance(stored, SdsReport)
    assert isinstance(report, SdsReport)
    assert (stored.delivery_status, stored.message_reference) == (0x21, mr)
    assert (report.delivery_status, report.message_reference) == (0, mr)
    assert (tmp_path / "state" / "gw-de-kehl.journal.sqlite3").exists()
    lines = [json.loads(line) for line in err.decode().splitlines()]
    events = {line["event"] for line in lines}
    assert {"gateway.started", "gateway.stopping"} <= events
    assert all(line["level"] in {"info", "warning", "error", "debug"} for line in lines)
    assert SECRET not in err.decode()  # no payload text in logs


async def test_run_exits_1_when_a_gateway_cannot_run(tmp_path: Path) -> None:
    """A gateway that stops on its own ends the process (a supervisor restarts it)."""
    config = tmp_path / "de.toml"
    config.write_text(
        demo_config_text("DE", partner="FR", pei_port=9)
        + f'\n[journal]\npath = "{tmp_path / "missing" / "dir" / "j.sqlite3"}"\n',
        encoding="utf-8",
    )
    (tmp_path / "missing").write_text("a file where the journal's folder should be")
    proc = await start_gateways([config], tmp_path / "state", stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err.decode()[-2000:]
    assert "Traceback" not in err.decode(), "a failed gateway is logged, not a crash"
    failed = [json.loads(line) for line in err.decode().splitlines() if "gateway.failed" in line]
    assert failed and "journal" in failed[0]["error"].lower()
