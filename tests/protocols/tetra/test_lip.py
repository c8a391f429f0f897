from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra import LocationReport, decode_location, decode_sds, encode_sds
from protocols.tetra._bits import BitWriter
from protocols.tetra._lip import _velocity, _velocity_code


def test_known_short_report() -> None:
    report = decode_sds(bytes.fromhex("0A0018BA81D6DED8288000"), 84)
    assert isinstance(report, LocationReport)
    assert report.velocity_kmh == 20.0
    assert report.direction_deg == 90.0
    assert report.latitude == pytest.approx(41.385101, abs=1e-4)


def test_user_defined_data_and_velocity_table() -> None:
    report = LocationReport(latitude=1.0, longitude=2.0, reason=None, user_data=0x42)
    decoded = decode_sds(*encode_sds(report))
    assert isinstance(decoded, LocationReport)
    assert decoded.user_data == 0x42 and decoded.reason is None
    assert _velocity(127) is None
    assert _velocity(29) == pytest.approx(16 * 1.038**16)
    assert _velocity_code(2000.0) == 126
    with pytest.raises(LocalProtocolError):
        _velocity_code(-1.0)
    with pytest.raises(LocalProtocolError, match="reason"):
        encode_sds(LocationReport(latitude=None, longitude=None, reason=None))


def test_zero_zero_fix_is_not_no_fix() -> None:
    decoded = decode_sds(*encode_sds(LocationReport(latitude=0.0, longitude=0.0)))
    assert isinstance(decoded, LocationReport)
    assert decoded.latitude is not None


def _long(*fields: tuple[int, int]) -> tuple[bytes, int]:
    writer = BitWriter()
    for value, bits in [(0x0A, 8), (1, 2), (3, 4), *fields]:
        writer.write(value, bits)
    return writer.to_bytes()


def test_long_report_shapes() -> None:
    # time of position, circle (uncertainty 10), velocity with uncertainty, reason 3
    data, bits = _long(
        (2, 2),
        (0, 22),
        (2, 4),
        (100, 25),
        (200, 24),
        (10, 6),
        (2, 3),
        (5, 7),
        (1, 3),
        (1, 1),
        (0, 1),
        (3, 8),
    )
    report = decode_sds(data, bits)
    assert isinstance(report, LocationReport)
    assert report.long_report and report.acknowledgement_request
    assert report.position_error == 2  # r = 2 * 1.2^15 - 4 = 26.8 m: class "< 200 m"
    assert report.velocity_kmh == 5.0 and report.direction_deg is None
    # circle + altitude + altitude uncertainty, huge uncertainty, high altitude
    data, bits = _long(
        (0, 2),
        (7, 4),
        (100, 25),
        (200, 24),
        (63, 6),
        (0, 1),
        (2000, 11),
        (0, 3),
        (0, 3),
        (0, 1),
        (0, 1),
        (3, 8),
    )
    report = decode_sds(data, bits)
    assert isinstance(report, LocationReport)
    assert report.position_error == 6
    assert report.altitude_m == 75 * 2000 - 142000


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (((3, 2),), "reserved"),
        (((0, 2), (3, 4)), "shape 3"),
        (((0, 2), (0, 4), (3, 3)), "velocity type 3"),
        (((0, 2), (4, 4), (0, 25), (0, 24), (0, 1), (0, 11)), "Altitude value 0"),
    ],
)
def test_long_report_refusals(fields: tuple[tuple[int, int], ...], match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        decode_sds(*_long(*fields))


lat = st.floats(-90, 90, allow_nan=False)
lon = st.floats(-180, 180, allow_nan=False)
velocity = st.none() | st.floats(0, 1000, allow_nan=False)
direction = st.floats(0, 359.9, allow_nan=False)


def _close_angle(a: float, b: float, tol: float) -> bool:
    return abs((a - b + 180) % 360 - 180) <= tol


@given(lat, lon, st.integers(0, 7), velocity, direction, st.integers(0, 3), st.integers(0, 255))
def test_short_round_trip(
    la: float, lo: float, err: int, v: float | None, d: float, te: int, reason: int
) -> None:
    report = LocationReport(
        latitude=la,
        longitude=lo,
        position_error=err,
        velocity_kmh=v,
        direction_deg=d,
        time_elapsed=te,
        reason=reason,
    )
    data, bits = encode_sds(report)
    assert bits == 84
    out = decode_sds(data, bits)
    assert isinstance(out, LocationReport)
    assert out.latitude is not None and out.longitude is not None
    assert abs(out.latitude - la) <= 2 * 180 / 2**24  # 0/0 keeps 1 LSB off the no-fix sentinel
    assert _close_angle(out.longitude, lo, 360 / 2**25 + 1e-9)
    assert (out.position_error, out.time_elapsed, out.reason) == (err, te, reason)
    assert out.direction_deg is not None and _close_angle(out.direction_deg, d, 11.25 + 1e-9)
    if v is None:
        assert out.velocity_kmh is None
    else:
        assert out.velocity_kmh is not None
        assert math.isclose(out.velocity_kmh, v, rel_tol=0.02, abs_tol=0.5)


@given(
    lat,
    lon,
    st.integers(0, 7),
    velocity,
    st.none() | direction,
    st.none() | st.integers(0, 3),
    st.none() | st.floats(-200, 11000, allow_nan=False),
    st.booleans(),
)
def test_long_round_trip(
    la: float,
    lo: float,
    err: int,
    v: float | None,
    d: float | None,
    te: int | None,
    alt: float | None,
    ack: bool,
) -> None:
    report = LocationReport(
        latitude=la,
        longitude=lo,
        position_error=err,
        velocity_kmh=v,
        direction_deg=d,
        time_elapsed=te,
        long_report=True,
        altitude_m=alt,
        acknowledgement_request=ack,
    )
    out = decode_sds(*encode_sds(report))
    assert isinstance(out, LocationReport)
    assert out.long_report and out.acknowledgement_request == ack and out.time_elapsed == te
    assert (
        out.latitude is not None and abs(out.latitude - la) <= 2 * 180 / 2**24
    )  # 0/0 keeps 1 LSB off the no-fix sentinel
    if alt is None:
        assert out.position_error == err and out.altitude_m is None
    else:
        assert out.altitude_m is not None and abs(out.altitude_m - alt) <= 38
    if d is not None:
        assert out.direction_deg is not None and _close_angle(out.direction_deg, d, 0.71)
    if v is None:
        assert out.velocity_kmh is None
    else:
        assert out.velocity_kmh is not None
        assert math.isclose(out.velocity_kmh, v, rel_tol=0.02, abs_tol=0.5)


def test_long_no_fix() -> None:
    report = LocationReport(latitude=None, longitude=None, long_report=True)
    assert decode_sds(*encode_sds(report)) == LocationReport(
        latitude=None, longitude=None, long_report=True, position_error=7
    )


def test_location_declaring_more_bits_than_it_carries_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="declares 100 bits but carries 8"):
        decode_location(b"\x0a", 100)
    with pytest.raises(RemoteProtocolError, match="declares -1 bits"):
        decode_location(b"\x0a", -1)


@pytest.mark.parametrize(
    ("metres", "sent"),
    [
        (2450.0, 2450.0),
        (2451.0, 2450.0),  # in the gap between the 2 m and the 75 m steps: the nearer end
        (2487.0, 2450.0),
        (2488.0, 2525.0),
        (2524.0, 2525.0),
        (1001.0, 1002.0),
        (-500.0, -200.0),
        (20000.0, 11525.0),
    ],
)
def test_an_altitude_is_sent_as_the_nearest_value_the_code_can_carry(
    metres: float, sent: float
) -> None:
    report = LocationReport(latitude=48.5, longitude=7.7, long_report=True, altitude_m=metres)
    out = decode_sds(*encode_sds(report))
    assert isinstance(out, LocationReport)
    assert out.altitude_m == sent
