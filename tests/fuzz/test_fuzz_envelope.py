"""Fuzz protobuf envelope parsing exactly as the gateway's federation inbox does it.

``v1.Envelope().ParseFromString`` either parses or raises ``DecodeError``; a parsed
envelope can be inspected (body, origin, trace) and serialized again.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from hypothesis import given

from protocols.schema import v1
from tests.fuzz._fuzz import Tally, fuzz_settings, mutated


def _seeds() -> list[bytes]:
    text = v1.Envelope(schema_version=1, message_id=b"m" * 16, priority=v1.PRIORITY_HIGH)
    text.origin.nation = "DE"
    text.origin.unit = "de.bos.rtw-kehl-1"
    text.destination.unit.unit = "fr.sdis67.vsav-strasbourg-1"
    text.text.text = "Grüße über die Grenze"
    text.trace.add(gateway="gw-de-kehl", nation="DE", received_at_us=1, forwarded_at_us=2)
    status = v1.Envelope(schema_version=1, message_id=b"s" * 16, origin_reference=42)
    status.status.code = "available-radio"
    status.status.tetra_value = 0x8002
    location = v1.Envelope(schema_version=1, message_id=b"l" * 16, created_at_us=-5)
    location.location.location.latitude = 48.57
    location.location.location.altitude_m = 140.0
    location.location.location.speed_kmh = 42.5
    emergency = v1.Envelope(schema_version=1, message_id=b"e" * 16, expires_at_us=2**62)
    emergency.emergency.active = True
    emergency.emergency.text = "Mayday"
    receipt = v1.Envelope(schema_version=1, message_id=b"r" * 16, conversation_id=b"c" * 16)
    receipt.receipt.message_id = b"m" * 16
    receipt.receipt.state = v1.DELIVERY_STATE_FAILED
    receipt.receipt.reason = "no route"
    presence = v1.Envelope(schema_version=1, message_id=b"p" * 16)
    presence.presence.unit.nation = "FR"
    presence.presence.groups.extend(["xb.rhine.fire", "xb.kehl-strasbourg"])
    presence.presence.availability = v1.AVAILABILITY_ONLINE
    return [
        message.SerializeToString()
        for message in (text, status, location, emergency, receipt, presence)
    ]


SEEDS = _seeds()
TOKENS = (b"\x0a", b"\x12", b"\xa2\x01", b"\xff\xff\xff\xff\x0f", b"\x80", b"\x00", b"\xc3\x28")


def test_envelope_parse() -> None:
    tally = Tally()

    @fuzz_settings
    @given(mutated(SEEDS, TOKENS, max_size=2048))
    def run(payload: bytes) -> None:
        envelope = v1.Envelope()
        try:
            envelope.ParseFromString(payload)
        except DecodeError as exc:
            tally.refused(exc)
            return
        assert envelope.WhichOneof("body") in (
            None,
            "text",
            "status",
            "location",
            "emergency",
            "receipt",
            "presence",
            "canary",
        )
        assert isinstance(envelope.origin.nation, str)
        assert all(isinstance(hop.gateway, str) for hop in envelope.trace)
        wire = envelope.SerializeToString(deterministic=True)
        again = v1.Envelope()
        again.ParseFromString(wire)
        assert again.SerializeToString(deterministic=True) == wire  # NaN-safe equality
        tally("parsed")

    run()
    tally.expect("parsed", "refused")
