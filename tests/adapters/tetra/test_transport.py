"""PEI URL parsing (tcp:// and serial://)."""

from __future__ import annotations

import pytest

from adapters.tetra import parse_pei_url
from protocols.errors import ConfigError


def test_tcp_url() -> None:
    endpoint = parse_pei_url("tcp://radio.example:4001")
    assert (endpoint.scheme, endpoint.host, endpoint.port) == ("tcp", "radio.example", 4001)


def test_serial_url_with_defaults_and_options() -> None:
    endpoint = parse_pei_url("serial:///dev/ttyUSB0")
    assert endpoint.device == "/dev/ttyUSB0"
    assert dict(endpoint.serial_options) == {"baudrate": 38400}
    endpoint = parse_pei_url("serial:///dev/ttyS1?baudrate=9600&parity=e&rtscts=1")
    assert dict(endpoint.serial_options) == {"baudrate": 9600, "parity": "E", "rtscts": True}


@pytest.mark.parametrize(
    "url",
    [
        "tcp://host",
        "tcp://host:0",
        "tcp://host:99999",
        "tcp://:4001",
        "serial://dev/ttyUSB0",
        "serial:///dev/ttyUSB0?baudrate=fast",
        "serial:///dev/ttyUSB0?speed=9600",
        "serial:///dev/ttyUSB0?parity=x",
        "udp://host:1",
        "/dev/ttyUSB0",
    ],
)
def test_bad_urls_name_the_value(url: str) -> None:
    with pytest.raises(ConfigError, match="url="):
        parse_pei_url(url)
