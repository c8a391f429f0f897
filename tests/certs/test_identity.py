from __future__ import annotations

import re

import pytest

from certs import PeerIdentity, Role, parse_identity_uri
from certs.identity import parse_serial, serial_text


def test_parse_identity_uri_round_trip() -> None:
    identity = parse_identity_uri("euccs://DE/gateway/kehl")
    assert identity == PeerIdentity("DE", Role.GATEWAY, "kehl")
    assert identity.uri == "euccs://DE/gateway/kehl"
    assert str(identity) == identity.uri


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("https://DE/gateway/kehl", "not a federation identity"),
        ("euccs://de/gateway/kehl", "not a country code"),
        ("euccs://DE/pilot/kehl", "role 'pilot' is not one of"),
        ("euccs://DE/gateway/Kehl", "not a valid name"),
        ("euccs://DE/gateway/kehl/extra", "not a federation identity"),
        ("euccs://DE/gateway/", "not a valid name"),
    ],
)
def test_parse_identity_uri_rejects(uri: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_identity_uri(uri)


def test_serial_formats() -> None:
    assert serial_text(0x1A2B) == "0x1A2B"
    assert parse_serial("0x1a2b") == 0x1A2B
    assert parse_serial("1a:2b") == 0x1A2B
    assert parse_serial("6699") == 6699
    with pytest.raises(ValueError, match="not a serial number"):
        parse_serial("zz")
