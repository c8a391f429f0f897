"""THREAT_MODEL.md names the test behind every mitigation: each of them must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "THREAT_MODEL.md").read_text(encoding="utf-8")
    references = REFERENCE.findall(text)
    assert len(references) >= 30, "the threat model names too few tests"
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).exists() or name not in _tests_in(ROOT / path)
    ]
    assert missing == []


def test_every_boundary_has_its_stride_table() -> None:
    text = (ROOT / "THREAT_MODEL.md").read_text(encoding="utf-8")
    boundaries = re.findall(r"^## Boundary \d: (.+)$", text, flags=re.MULTILINE)
    assert len(boundaries) == 6
    for section in text.split("## Boundary ")[1:]:
        assert "| STRIDE | threat | mitigation | test |" in section
