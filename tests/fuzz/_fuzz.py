"""Shared machinery of the bounded fuzz suite: settings, seed corpora, mutations, tallies.

Every target is a hypothesis test whose inputs are seeds (conformance vectors, encoder
output) mutated by byte flips, insertions of random bytes or protocol tokens, deletions,
duplications, truncations and splices of two seeds, or plain random bytes.

``EUCCS_FUZZ_EXAMPLES`` (default 300) sets the examples per target; ``scripts/fuzz`` raises
it and sets ``EUCCS_FUZZ_RANDOM=1`` so that ``--hypothesis-seed`` chooses the inputs. Without
it the run is derandomized: CI always fuzzes the same inputs.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = [
    "CONFORMANCE_DIR",
    "FUZZ_EXAMPLES",
    "Tally",
    "chunked",
    "conformance_inputs",
    "flipped",
    "fuzz_settings",
    "mutated",
]


def _examples() -> int:
    raw = os.environ.get("EUCCS_FUZZ_EXAMPLES", "300")
    try:
        value = int(raw)
    except ValueError:
        raise RuntimeError(f"EUCCS_FUZZ_EXAMPLES={raw!r} is not a whole number") from None
    # Below ~50 examples a target may never reach both outcomes its tally checks for.
    return max(value, 50)


#: Examples per fuzz target.
FUZZ_EXAMPLES = _examples()
_RANDOM = os.environ.get("EUCCS_FUZZ_RANDOM", "") not in ("", "0")

#: Bounded, deterministic (unless EUCCS_FUZZ_RANDOM) and database-free.
fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=not _RANDOM,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: ``../shared/conformance`` relative to the repository root.
CONFORMANCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"


def conformance_inputs() -> list[bytes]:
    """Return the ``input`` of every vector of every ``*.jsonl`` file, as PEI bytes.

    Raises:
        RuntimeError: The directory is missing or holds no vector.
    """
    directory = Path(os.environ.get("EUCCS_CONFORMANCE_DIR", str(CONFORMANCE_DIR)))
    if not directory.is_dir():
        raise RuntimeError(f"conformance directory {directory} is missing: the fuzz seeds")
    inputs = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                inputs.append(str(json.loads(line)["input"]).encode("latin-1"))
    if not inputs:
        raise RuntimeError(f"no conformance vectors in {directory}")
    return inputs


_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0D, 0x0A, 0x1A, 0x1B, 0x20, 0x2C, 0x3A)


@st.composite
def _mutate_once(
    draw: st.DrawFn, data: bytearray, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> None:
    """Apply one random mutation to ``data`` in place."""
    size = len(data)
    where = draw(st.integers(0, size))
    op = draw(st.sampled_from(("flip", "set", "insert", "token", "delete", "dup", "splice")))
    if op in ("flip", "set") and size:
        index = min(where, size - 1)
        if op == "flip":
            data[index] ^= 1 << draw(st.integers(0, 7))
        else:
            data[index] = draw(st.sampled_from(_INTERESTING_BYTES) | st.integers(0, 255))
    elif op == "insert":
        data[where:where] = draw(st.binary(min_size=1, max_size=16))
    elif op == "token" and tokens:
        data[where:where] = draw(st.sampled_from(tokens))
    elif op == "delete" and size:
        del data[where : where + draw(st.integers(1, 16))]
    elif op == "dup" and size:
        data[where:where] = data[where : where + draw(st.integers(1, 64))]
    elif op == "splice":
        other = draw(st.sampled_from(seeds))
        data[where:] = other[draw(st.integers(0, len(other))) :]


@st.composite
def mutated(
    draw: st.DrawFn,
    seeds: Sequence[bytes],
    tokens: Sequence[bytes] = (),
    *,
    max_size: int = 4096,
    max_mutations: int = 8,
) -> bytes:
    """A seed with up to ``max_mutations`` mutations, sometimes truncated; or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=min(max_size, 512)))
    data = bytearray(draw(st.sampled_from(seeds)))
    count = draw(st.sampled_from((0, 1, 1, 2, 2, 3)) | st.integers(0, max_mutations))
    for _ in range(count):
        draw(_mutate_once(data, seeds, tokens))
        del data[max_size:]
    if draw(st.integers(0, 4)) == 0:
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@st.composite
def flipped(draw: st.DrawFn, seeds: Sequence[bytes], max_flips: int = 3) -> bytes:
    """A seed with 1..``max_flips`` bytes changed in place: framing lengths stay intact."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, max_flips))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] ^= draw(st.integers(1, 255))
    return bytes(data)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random points (sometimes byte by byte); never an empty chunk."""
    if draw(st.integers(0, 7)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    bounds = [0, *(c for c in cuts if c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


class Tally:
    """Counts the outcomes of a target across the run, to prove both paths were fuzzed."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def refused(self, exc: BaseException) -> None:
        """Count a refusal; a refusal must say what was wrong."""
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        self.counts["refused"] += 1

    def expect(self, *outcomes: str) -> None:
        """Assert each of ``outcomes`` occurred at least once."""
        missing = [name for name in outcomes if not self.counts[name]]
        assert not missing, f"never reached {missing}: {dict(self.counts)}"
