"""Crashes the fuzz suite found, fixed, and kept as regression tests."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.demo_configs import demo_config_text
from protocols.errors import ConfigError, RemoteProtocolError
from protocols.tetra import decode_location
from tests.fuzz.test_fuzz_config import SEEDS

_FULL = SEEDS[-1]  # every optional table set, federation over MQTT

_NON_FINITE = [
    (table_key, value)
    for table_key in (
        "queue_max_messages = 1000",
        "queue_max_bytes = 1048576",
        "window = 8",
        "port = 8883",
        "batch_max_envelopes = 64",
        "keepalive = 30",
        "session_expiry = 3600",
        "batch_max_bytes = 262144",
        "max_body_bytes = 65536",
        "message_log_size = 100",
    )
    for value in ("inf", "nan")
]


# Found by fuzzing: a non-finite number (inf/nan) reached int() in a config parser.
@pytest.mark.parametrize(("line", "value"), _NON_FINITE)
def test_non_finite_number_is_a_config_error(line: str, value: str) -> None:
    assert line in _FULL
    key = line.partition("=")[0]
    with pytest.raises(ConfigError, match=key.strip()):
        parse_config(_FULL.replace(line, f"{key}= {value}", 1))


def test_demo_config_still_parses() -> None:
    assert parse_config(demo_config_text("DE", partner="FR", pei_port=7001)).nation == "DE"


# Found by fuzzing: more bits declared than carried reached a negative shift.
def test_location_bits_beyond_payload_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_location(b"\x0a", 100)
