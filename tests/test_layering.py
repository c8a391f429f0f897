"""Dependencies point down (gateway -> adapters -> protocols); protocols does no I/O."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_PROTOCOLS = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "aiomqtt",
    "aiohttp",
    "serial",
    "serial_asyncio",
    "time",
    "datetime",
    "os",
    "subprocess",
    "threading",
    "adapters",
    "gateway",
    "structlog",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if not p.name.endswith("_pb2.py")]


@pytest.mark.parametrize("path", _sources("protocols"), ids=lambda p: str(p.relative_to(ROOT)))
def test_protocols_do_no_io_and_import_nothing_above(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN_IN_PROTOCOLS
    assert not bad, f"{path} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("adapters"), ids=lambda p: str(p.relative_to(ROOT)))
def test_adapters_do_not_import_the_gateway(path: Path) -> None:
    assert "gateway" not in _imports(path)


def test_protocols_are_found() -> None:
    assert len(_sources("protocols")) >= 3
