"""The command line as a user runs it: real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = Path(os.environ.get("EUCCS_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance"))


def cli(*args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def _vectors() -> list[dict[str, Any]]:
    files = sorted(CONFORMANCE.glob("*.jsonl"))
    assert files, f"no conformance vectors in {CONFORMANCE}"
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, float) and not isinstance(expected, bool):
        return isinstance(actual, int | float) and abs(actual - expected) <= 1e-4
    if isinstance(expected, int) and not isinstance(expected, bool):
        return type(actual) is int and actual == expected
    return bool(expected == actual)


def test_decode_pei_runs_every_conformance_vector_through_the_command() -> None:
    failures = []
    for vector in _vectors():
        proc = cli("decode", "pei", stdin=vector["input"].encode("latin-1"))
        lines = proc.stdout.decode().splitlines()
        events = [json.loads(line) for line in lines]
        ok = (
            proc.returncode == 0
            and len(events) == len(vector["expect"])
            and all(_subset(e, a) for e, a in zip(vector["expect"], events, strict=True))
        )
        if not ok:
            failures.append((vector["id"], proc.returncode, events, proc.stderr.decode()[-300:]))
    assert not failures, failures


def test_decode_pei_survives_garbage() -> None:
    garbage = bytes(range(256)) * 4 + b"+CTSDSR: 12,1,0,2,0,99999\r\nZZ\r\n+CMGS: x\r\n"
    proc = cli("decode", "pei", stdin=garbage)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert events
    assert all(e["event"] == "decode_error" and e["reason"] for e in events)


def test_decode_pei_reads_a_file_as_it_reads_standard_input(tmp_path: Path) -> None:
    capture = tmp_path / "capture.txt"
    capture.write_bytes("".join(v["input"] for v in _vectors()[:5]).encode())
    from_file = cli("decode", "pei", str(capture))
    assert from_file.returncode == 0
    assert from_file.stdout == cli("decode", "pei", stdin=capture.read_bytes()).stdout != b""
    missing = cli("decode", "pei", str(tmp_path / "none.txt"))
    assert missing.returncode == 2
    assert b"cannot read" in missing.stderr and b"Traceback" not in missing.stderr


def test_broker_acl_writes_what_the_broker_runs_with(tmp_path: Path) -> None:
    from gateway.mqtt_acl import generate_acl, generate_emqx_acl

    out = tmp_path / "acl"
    made = cli("broker", "acl", "DE=kehl", "FR=strasbourg,strasbourg-2", "--out", str(out))
    assert made.returncode == 0, made.stderr
    expected = {"DE": ["kehl"], "FR": ["strasbourg", "strasbourg-2"]}
    assert out.read_text() == generate_acl(expected)
    emqx = cli("broker", "acl", "DE=kehl", "FR=strasbourg,strasbourg-2", "--emqx")
    assert emqx.stdout.decode().rstrip("\n") == generate_emqx_acl(expected).rstrip("\n")
    for wrong in ("DE", "DE=KEHL", "DEU=kehl", "DE-=kehl"):
        refused = cli("broker", "acl", wrong)
        assert refused.returncode == 2 and refused.stderr.startswith(b"error: ")
    split = cli("broker", "acl", "DE=kehl", "de-2=kehl-2")
    assert split.returncode == 0, split.stderr
    assert split.stdout.decode().rstrip("\n") == generate_acl(
        {"DE": ["kehl"], "DE-2": ["kehl-2"]}
    ).rstrip("\n")


def test_config_check_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "de.toml"
    bad.write_text('[gateway]\nname = "gw"\nnation = "DE"\nnaton = "x"\n', encoding="utf-8")
    proc = cli("config", "check", str(bad))
    assert proc.returncode == 2
    assert "gateway.naton: unknown key. Did you mean 'nation'?" in proc.stderr.decode()


def _mqtt_config(tmp_path: Path, cert: Path, key: Path, bundle: Path) -> Path:
    config = tmp_path / "de.toml"
    config.write_text(
        '[gateway]\nname = "gw-de"\nnation = "DE"\n\n'
        '[federation]\ntransport = "mqtt"\npartners = ["FR"]\n\n'
        f'[federation.mqtt]\nhost = "127.0.0.1"\ncert = "{cert}"\nkey = "{key}"\n'
        f'bundle = "{bundle}"\n',
        encoding="utf-8",
    )
    return config


def test_config_check_and_run_refuse_a_certificate_that_is_not_there(tmp_path: Path) -> None:
    from certs import mint_federation

    pki = mint_federation(tmp_path / "pki", now=datetime.now(UTC))
    de = pki.gateways["DE"]
    good = _mqtt_config(tmp_path, de.cert, de.key, pki.bundle_dir)
    assert cli("config", "check", str(good)).returncode == 0
    typo = de.cert.with_suffix(".crt")
    bad = _mqtt_config(tmp_path, typo, de.key, pki.bundle_dir)
    checked = cli("config", "check", str(bad))
    assert checked.returncode == 2
    assert (
        f"federation.mqtt.cert: certificate file {typo} does not exist" in checked.stderr.decode()
    )
    assert cli("config", "check", "--no-files", str(bad)).returncode == 0  # a template
    ran = cli("run", "-c", str(bad), "--state-dir", str(tmp_path / "state"))
    assert ran.returncode == 2  # before anything starts, without a traceback
    assert "federation.mqtt.cert" in ran.stderr.decode()
    assert b"Traceback" not in ran.stderr and not (tmp_path / "state").exists()
    not_a_key = _mqtt_config(tmp_path, de.cert, de.cert, pki.bundle_dir)
    assert "federation.mqtt.key: " in cli("config", "check", str(not_a_key)).stderr.decode()


def test_demo_refuses_a_duration_too_short_for_its_script() -> None:
    proc = cli("demo", "--duration", "0")
    assert proc.returncode == 2
    assert "--duration must be between 5 and 86400 s" in proc.stderr.decode()


@pytest.mark.slow
def test_demo_json_summary_is_healthy() -> None:
    proc = cli("demo", "--duration", "6", "--json", timeout=90)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    summary = json.loads(proc.stdout.decode().splitlines()[-1])
    assert summary["sent"] > 0
    assert summary["delivered"] == summary["sent"]
    assert summary["receipts"] == summary["sent"]
    assert summary["lost"] == 0
    assert summary["errors"] == 0
    assert summary["by_kind"]["emergency"] == 2  # a TETRA emergency and an MCData alert
    # TETRA <-> MCData in both directions, nothing lost on any path.
    assert set(summary["paths"]) >= {"tetra->tetra", "tetra->mcdata", "mcdata->tetra"}
    for path in summary["paths"].values():
        assert path["delivered"] == path["sent"] > 0
    # France was cut off mid-run; the German backlog drained, the emergency first.
    outage = summary["outage"]
    assert outage["nation"] == "FR"
    assert outage["backlog"] >= 2
    assert outage["drain_order"][0] == "EMERGENCY x1"
    drained = sum(int(run.rsplit(" x", 1)[1]) for run in outage["drain_order"])
    assert drained == outage["backlog"]  # every message of the backlog, and only those
    assert "OUTAGE" in proc.stderr.decode()
    # Each country's control-room console is served during the demo, and it says where.
    assert "DE control-room console: https://127.0.0.1:" in proc.stderr.decode()
    assert "accepted" in proc.stderr.decode()


def test_a_late_outage_signal_does_not_kill_a_stopping_demo(tmp_path: Path) -> None:
    env_file = tmp_path / "loadtest.env"
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--serve", str(env_file), "--duration", "2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists():  # serving
            assert demo.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        while env_file.exists():  # stopping: the file goes first
            assert time.monotonic() < deadline
            time.sleep(0.01)
        demo.send_signal(signal.SIGUSR2)  # the restore command of a shape that ran late
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    from certs import mint_federation

    pki = mint_federation(tmp_path / "pki", now=datetime.now(UTC))
    reader = subprocess.Popen(
        ["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert reader.stdin is not None
    inspect = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "certs", "inspect", *[str(pki.bundle_dir)] * 50],
        cwd=ROOT,
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    reader.stdin.close()
    reader.wait()
    assert inspect.returncode == 141
    assert b"Traceback" not in inspect.stderr


def test_config_check_checks_the_gateways_of_a_split_country_together(tmp_path: Path) -> None:
    from gateway.demo_configs import split_config_text

    de, de2, fr = (tmp_path / f"{m}.toml" for m in ("de", "de2", "fr"))
    de.write_text(split_config_text("DE", 1))
    de2.write_text(split_config_text("DE-2", 1))
    fr.write_text(split_config_text("FR", 1))
    ok = cli("config", "check", "--no-files", str(de), str(de2), str(fr))
    assert ok.returncode == 0, ok.stderr
    assert "(DE-2)" in ok.stdout.decode() and "siblings DE" in ok.stdout.decode()
    de2.write_text(split_config_text("DE-2", 1).replace('siblings = ["DE"]', "siblings = []"))
    lopsided = cli("config", "check", "--no-files", str(de), str(de2))
    assert lopsided.returncode == 2
    assert "does not list DE in federation.siblings" in lopsided.stderr.decode()
    de2.write_text(split_config_text("DE-2", 1).replace('name = "gw-de-2"', 'name = "gw-de"'))
    named = cli("config", "check", "--no-files", str(de), str(de2))
    assert named.returncode == 2 and "name the same gateway" in named.stderr.decode()
