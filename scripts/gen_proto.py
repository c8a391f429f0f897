"""Regenerate the Python code and typed stubs of the common schema.

Usage: ``python scripts/gen_proto.py [OUT_DIR]``. Without OUT_DIR the files are
written next to the ``.proto`` files in ``protocols/schema/``; tests call it with
a temporary OUT_DIR and compare, so stale generated code fails the suite.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "protocols" / "schema"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) with the mypy-protobuf plugin into ``out_dir``."""
    protos = sorted(SCHEMA.rglob("*.proto"))
    plugin = Path(sys.executable).parent / "protoc-gen-mypy"
    env_path = f"{plugin.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path
    args = [
        "protoc",
        f"-I{SCHEMA}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    return sorted(p for p in out_dir.rglob("*_pb2.py*"))


def main() -> None:
    """Entry point."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA
    for path in generate(out):
        print(path.relative_to(out))


if __name__ == "__main__":
    main()
