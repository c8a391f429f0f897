import filecmp
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from protocols.schema import SCHEMA_VERSION, backend, require_fast_backend, v1

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2.py*"))
    assert generated == [Path("euccs/v1/envelope_pb2.py"), Path("euccs/v1/envelope_pb2.pyi")]
    for rel in generated:
        committed = ROOT / "protocols" / "schema" / rel
        assert filecmp.cmp(tmp_path / rel, committed, shallow=False), (
            f"{committed} is stale: run `make proto` and commit the result"
        )


def test_fast_backend_in_use() -> None:
    assert backend() == "upb"
    require_fast_backend()


def test_slow_backend_fails_loudly_at_startup() -> None:
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", "x.toml"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert "not 'upb'" in proc.stderr


def test_envelope_round_trip_all_bodies() -> None:
    env = v1.Envelope(
        schema_version=SCHEMA_VERSION,
        message_id=b"\x01" * 16,
        priority=v1.PRIORITY_EMERGENCY,
        created_at_us=1,
        expires_at_us=2,
    )
    env.origin.nation = "DE"
    env.destination.unit.unit = "fr.sdis67.vsav-1"
    env.trace.add(gateway="gw-de", nation="DE", received_at_us=1, forwarded_at_us=2)
    bodies: dict[str, Callable[[v1.Envelope], None]] = {
        "text": lambda e: setattr(e.text, "text", "hallo ä €"),
        "status": lambda e: setattr(e.status, "code", "on-scene"),
        "location": lambda e: setattr(e.location.location, "latitude", 48.5),
        "emergency": lambda e: setattr(e.emergency, "active", True),
        "receipt": lambda e: setattr(e.receipt, "state", v1.DELIVERY_STATE_READ),
        "presence": lambda e: setattr(e.presence, "availability", v1.AVAILABILITY_STALE),
    }
    for name, fill in bodies.items():
        msg = v1.Envelope()
        msg.CopyFrom(env)
        fill(msg)
        back = v1.Envelope.FromString(msg.SerializeToString())
        assert back == msg
        assert back.WhichOneof("body") == name
