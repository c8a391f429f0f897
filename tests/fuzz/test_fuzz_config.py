"""Fuzz :func:`gateway.config.parse_config`: only :class:`ConfigError` may escape.

Seeds are the demo configurations (TETRA and MCData) and one that sets every optional
table. Mutations replace values with hostile TOML literals (inf, nan, huge numbers, wrong
types), drop, duplicate or swap lines, and mutate bytes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.config import GatewayConfig, parse_config
from gateway.demo_configs import demo_config_text
from protocols.errors import ConfigError
from tests.fuzz._fuzz import Tally, fuzz_settings, mutated

_EXTRA = """
[delivery.expiry_seconds]
emergency = 600.0
routine = 3600

[journal]
path = "/var/lib/euccs/journal.db"

[presence]
lease = 300
offline_after = 600
coalesce_interval = 1.0
max_units = 1000
max_alerts = 100

[policy]
default = "deny"
[[policy.rules]]
name = "fire service"
nation = "FR"
organisation = "sdis67"
units = ["de.bos.*"]
groups = ["xb.kehl-strasbourg"]
emergency = true

[rate_limits]
messages_per_second = 200
burst = 400
max_peers = 64
[rate_limits.peers.FR]
burst = 10

[liveness]
canary_interval = 30
canary_timeout = 90

[api]
listen = "127.0.0.1:8443"
metrics_listen = "[::1]:9100"
cert = "api.pem"
key = "api.key"
bundle = "bundle"
max_body_bytes = 65536
message_log_size = 100

[federation.mqtt]
host = "broker.example"
port = 8883
cert = "gw.pem"
key = "gw.key"
bundle = "bundle"
broker_identity = "euccs://DE/gateway/mqtt-broker"
keepalive = 30
session_expiry = 3600
batch_max_envelopes = 64
batch_max_bytes = 262144
linger_ms = 5
replay_window = 300
"""


_DELIVERY = """queue_max_messages = 1000
queue_max_bytes = 1048576
window = 8
ack_timeout = 2.0
dedup_window = 86400
stored_report = true
allow_unlisted_units = false"""


def _full() -> str:
    text = demo_config_text("DE", partner="FR", pei_port=7001, delivery=_DELIVERY)
    text = text.replace('transport = "local"', 'transport = "mqtt"', 1)
    return text + _EXTRA


SEEDS = [
    demo_config_text("DE", partner="FR", pei_port=7001),
    demo_config_text("FR", partner="DE", pei_port=7002),
    demo_config_text("BE", partners=["DE", "FR"], sip_peer_port=5080),
    _full(),
    _full(),
    _full(),
]
NUMBERS = ("inf", "-inf", "nan", "1e308", "99999999999999999999", "0", "-1", "0.5", "1e-9")
VALUES = (
    "inf",
    "-inf",
    "nan",
    "+nan",
    "0",
    "-1",
    "1e308",
    "1e-308",
    "99999999999999999999",
    "9223372036854775807",
    "0.5",
    "true",
    '""',
    '" "',
    '"\\u0000"',
    '"x"',
    '"0x8003"',
    "[]",
    "[1, 2]",
    '["FR", "FR"]',
    "{}",
    "{ code = 1 }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
)
KEYS = ("x ", "name ", '"0x0001" ', "a.b ", "path ", "peers.FR ")
TOKENS = (b"\n", b"[", b"]", b"[[", b"]]", b"=", b'"', b".", b",", b"#", b"\\", b"'''", b"\x00")


@st.composite
def _configs(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=300))
    lines = draw(st.sampled_from(SEEDS)).splitlines()
    for _ in range(draw(st.sampled_from((1, 1, 1, 2, 3, 4)))):
        op = draw(st.sampled_from(("value", "value", "value", "drop", "dup", "swap", "key")))
        assignments = [i for i, line in enumerate(lines) if "=" in line]
        if op in ("value", "key") and assignments:
            index = draw(st.sampled_from(assignments))
        else:
            index = draw(st.integers(0, len(lines) - 1))
        key, equals, value = lines[index].partition("=")
        if op == "value" and equals:
            numeric = value.strip()[:1].isdigit() and draw(st.booleans())
            lines[index] = f"{key}= {draw(st.sampled_from(NUMBERS if numeric else VALUES))}"
        elif op == "key" and equals:
            lines[index] = draw(st.sampled_from(KEYS)) + lines[index][len(key) :]
        elif op == "drop":
            del lines[index]
        elif op == "dup":
            lines.insert(index, lines[index])
        elif op == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        if not lines:
            lines = [""]
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 3)) == 0:
        raw = draw(mutated([text.encode("utf-8")], TOKENS, max_size=16384, max_mutations=3))
        text = raw.decode("utf-8", errors="replace")
    return text


def test_parse_config() -> None:
    tally = Tally()

    @fuzz_settings
    @given(_configs())
    def run(text: str) -> None:
        try:
            config = parse_config(text, source="fuzz.toml")
        except ConfigError as exc:
            assert str(exc).startswith("fuzz.toml: "), str(exc)
            tally.refused(exc)
        else:
            assert isinstance(config, GatewayConfig)
            tally("parsed")

    run()
    tally.expect("parsed", "refused")
