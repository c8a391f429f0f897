"""Conformance vectors of ``shared/conformance/*.jsonl`` against :class:`PeiJsonDecoder`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from protocols.tetra import PeiJsonDecoder

_DEFAULT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "conformance"


def _conformance_dir() -> Path:
    return Path(os.environ.get("EUCCS_CONFORMANCE_DIR", str(_DEFAULT_DIR)))


def _load() -> list[tuple[str, dict[str, object]]]:
    directory = _conformance_dir()
    if not directory.is_dir():
        return []
    vectors = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                vector = json.loads(line)
                vectors.append((f"{path.stem}:{vector.get('id', number)}", vector))
    return vectors


VECTORS = _load()


def test_conformance_dir_present() -> None:
    directory = _conformance_dir()
    assert directory.is_dir(), f"conformance directory {directory} is missing"
    assert VECTORS, f"no vectors in {directory}"


def _matches(expected: object, actual: object) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, float) and not isinstance(actual, bool):
        return isinstance(actual, int | float) and math.isclose(expected, actual, abs_tol=1e-4)
    if isinstance(expected, int) and not isinstance(expected, bool):
        return type(actual) is int and actual == expected
    return type(actual) is type(expected) and actual == expected


def _decode(data: bytes, *, bytewise: bool) -> list[dict[str, object]]:
    decoder = PeiJsonDecoder()
    events: list[dict[str, object]] = []
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    for event in events:
        json.dumps(event)  # must be JSON-serialisable
    return events


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("vector_id", "vector"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector(vector_id: str, vector: dict[str, object], bytewise: bool) -> None:
    data = str(vector["input"]).encode("latin-1")
    expected = vector["expect"]
    assert isinstance(expected, list)
    events = _decode(data, bytewise=bytewise)
    assert len(events) == len(expected), (vector_id, events)
    for want, got in zip(expected, events, strict=True):
        assert _matches(want, got), (vector_id, want, got)
