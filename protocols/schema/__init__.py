"""The federation's common schema (``euccs.v1``), generated from ``euccs/v1/envelope.proto``.

``protocols.schema.v1`` is the generated module; regenerate it with
``make proto`` after editing the ``.proto`` file (a test fails while the
generated code is stale).

This module does no I/O. :func:`require_fast_backend` is called by every entry
point at startup: the pure-Python protobuf backend is about thirty times slower
than upb, and a gateway silently running on it would miss its latency targets.
"""

from __future__ import annotations

from google.protobuf.internal import api_implementation

from protocols.errors import ConfigError
from protocols.schema.euccs.v1 import envelope_pb2 as v1

__all__ = ["SCHEMA_VERSION", "backend", "require_fast_backend", "v1"]

#: Value of ``Envelope.schema_version`` written by this build.
SCHEMA_VERSION = 1


def backend() -> str:
    """Return the protobuf backend in use: ``"upb"``, ``"cpp"`` or ``"python"``."""
    return str(api_implementation.Type())


def require_fast_backend() -> None:
    """Raise :class:`ConfigError` unless protobuf runs on its upb backend."""
    kind = backend()
    if kind != "upb":
        raise ConfigError(
            f"protobuf is running on its {kind!r} backend, not 'upb'. Unset "
            "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION and install the protobuf wheel for "
            "this platform (it ships upb).",
            reply_hint="protobuf backend is not upb",
        )
