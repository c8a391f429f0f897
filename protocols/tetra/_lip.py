"""Location Information Protocol reports (ETSI TS 100 392-18-1, PID 0x0A).

Decodes and encodes the SHORT LOCATION REPORT (PDU type 00, 6.2.1) and the LONG
LOCATION REPORT (PDU type 01, extension 0011, 6.2.2). Rule 1: pure functions, no
I/O. Rule 2: malformed or unsupported reports raise
:class:`~protocols.errors.RemoteProtocolError`; other LIP PDUs are not location
reports and are left to the caller (:func:`is_location_report`).
"""

from __future__ import annotations

import math

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tetra._bits import BitReader, BitWriter
from protocols.tetra._events import DeliveryStatus, LocationReport

__all__ = ["LIP_PID", "decode_location", "encode_location", "is_location_report"]

LIP_PID = 0x0A
_SHORT, _WITH_EXTENSION = 0, 1
_LONG_REPORT = 0x3
_VELOCITY_UNKNOWN = 127

# Location shapes (TS 100 392-18-1 table 6.79) this codec understands.
_NO_SHAPE, _POINT, _CIRCLE, _POINT_ALT, _CIRCLE_ALT, _CIRCLE_ALT_UNC = 0, 1, 2, 4, 5, 7
_POINT_ERROR = 10
# Velocity types (table 6.124) this codec understands.
_NO_VELOCITY, _HORIZONTAL, _HORIZONTAL_UNC, _HORIZONTAL_DIR = 0, 1, 2, 5


def is_location_report(payload: bytes, bits: int) -> bool:
    """Tell whether a PID 0x0A payload is a short or long location report (PDU type, 6.1)."""
    reader = BitReader(payload, bits, 8)
    if reader.remaining < 6:
        return False
    pdu_type = reader.read(2)
    return pdu_type == _SHORT or (pdu_type == _WITH_EXTENSION and reader.read(4) == _LONG_REPORT)


# --------------------------------------------------------------------------- field codings


def _velocity(code: int) -> float | None:
    # TS 100 392-18-1 6.3.39 (horizontal velocity): K <= 28 -> K km/h;
    # 29..126 -> v = C * (1 + x)^(K - A) + B with C = 16, x = 0.038, A = 13, B = 0;
    # 127 -> not known.
    if code == _VELOCITY_UNKNOWN:
        return None
    if code <= 28:
        return float(code)
    return 16.0 * 1.038 ** (code - 13)


def _velocity_code(kmh: float | None) -> int:
    if kmh is None:
        return _VELOCITY_UNKNOWN
    if kmh < 0 or math.isnan(kmh):
        raise LocalProtocolError(f"velocity_kmh={kmh!r} must be a positive number.")
    if kmh < 28.5:
        return round(kmh)
    code = round(13 + math.log(kmh / 16.0) / math.log(1.038))
    return min(max(code, 29), 126)


def _lon_lat(reader: BitReader) -> tuple[float | None, float | None]:
    # 6.3.50 longitude: 25 bits two's complement, degrees = raw * 360 / 2^25.
    # 6.3.46 latitude: 24 bits two's complement, degrees = raw * 180 / 2^24.
    lon = reader.read_signed(25, "longitude")
    lat = reader.read_signed(24, "latitude")
    if lon == 0 and lat == 0:
        return None, None  # "no position fix" sentinel
    return lat * 180.0 / (1 << 24), lon * 360.0 / (1 << 25)


def _write_lon_lat(writer: BitWriter, report: LocationReport) -> None:
    if report.latitude is None or report.longitude is None:
        writer.write(0, 49)
        return
    lon = min(round(report.longitude * (1 << 25) / 360.0), (1 << 24) - 1)
    lat = min(round(report.latitude * (1 << 24) / 180.0), (1 << 23) - 1)
    if lon == 0 and lat == 0:
        lat = 1  # keep a real fix at 0/0 distinct from the no-fix sentinel
    writer.write_signed(lon, 25, "longitude")
    writer.write_signed(lat, 24, "latitude")


def _altitude(reader: BitReader) -> float:
    # 6.3.3 altitude: type (1) + value (11); 1..1201 -> -200..1000 m (1 m),
    # 1202..1926 -> 1002..2450 m (2 m), 1927..2047 -> 2525..11525 m (75 m).
    reader.read(1, "altitude type")
    value = reader.read(11, "altitude")
    if value == 0:
        raise RemoteProtocolError(
            "Altitude value 0 is reserved.", reason_code=DeliveryStatus.CORRUPT_INFORMATION_ELEMENT
        )
    if value <= 1201:
        return float(value - 201)
    if value <= 1926:
        return float(2 * value - 1402)
    return float(75 * value - 142000)


def _altitude_code(metres: float) -> int:
    if metres <= 1000:
        return min(max(round(metres) + 201, 1), 1201)
    if metres < 2487.5:  # up to halfway across the gap between 2450 m and 2525 m
        return min(max(round((metres + 1402) / 2), 1202), 1926)
    return min(max(round((metres + 142000) / 75), 1927), 2047)


def _uncertainty_to_error(code: int) -> int:
    # 6.3.42 horizontal position uncertainty r = 2 * 1.2^(K + 5) - 4 metres, mapped
    # onto the position error classes of 6.3.63 (<2 m, <20 m, ... > 200 km).
    radius = 2 * 1.2 ** (code + 5) - 4
    for error, limit in enumerate((2.0, 20.0, 200.0, 2000.0, 20000.0, 200000.0)):
        if radius < limit:
            return error
    return 6


# --------------------------------------------------------------------------- decode


def decode_location(payload: bytes, bits: int) -> LocationReport:
    """Decode a short or long location report (``payload`` starts with PID 0x0A).

    Raises:
        RemoteProtocolError: Truncated report or a field this codec cannot decode.
    """
    reader = BitReader(payload, bits, 8)
    if reader.read(2, "PDU type") == _SHORT:
        return _decode_short(reader)
    reader.read(4, "PDU type extension")
    return _decode_long(reader)


def _decode_short(reader: BitReader) -> LocationReport:
    # TS 100 392-18-1 6.2.1 SHORT LOCATION REPORT (76 bits after the PID).
    time_elapsed = reader.read(2, "time elapsed")
    latitude, longitude = _lon_lat(reader)
    position_error = reader.read(3, "position error")
    velocity = _velocity(reader.read(7, "horizontal velocity"))
    direction = reader.read(4, "direction of travel") * 22.5
    user_defined = reader.read(1, "type of additional data")
    extra = reader.read(8, "reason for sending")
    return LocationReport(
        latitude=latitude,
        longitude=longitude,
        position_error=position_error,
        velocity_kmh=velocity,
        direction_deg=direction,
        reason=None if user_defined else extra,
        user_data=extra if user_defined else None,
        time_elapsed=time_elapsed,
    )


def _decode_shape(reader: BitReader) -> tuple[float | None, float | None, int, float | None]:
    # 6.3.54 location shape (table 6.79) -> latitude, longitude, position error, altitude.
    shape = reader.read(4, "location shape")
    if shape == _NO_SHAPE:
        return None, None, 7, None
    if shape not in (_POINT, _CIRCLE, _POINT_ALT, _CIRCLE_ALT, _CIRCLE_ALT_UNC, _POINT_ERROR):
        raise RemoteProtocolError(
            f"LIP location shape {shape} is not supported by this decoder.",
            reason_code=DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
        )
    latitude, longitude = _lon_lat(reader)
    error, altitude = 7, None
    if shape in (_CIRCLE, _CIRCLE_ALT, _CIRCLE_ALT_UNC):
        error = _uncertainty_to_error(reader.read(6, "horizontal position uncertainty"))
    if shape in (_POINT_ALT, _CIRCLE_ALT, _CIRCLE_ALT_UNC):
        altitude = _altitude(reader)
    if shape == _CIRCLE_ALT_UNC:
        reader.read(3, "altitude uncertainty")
    if shape == _POINT_ERROR:
        error = reader.read(3, "position error")
    return latitude, longitude, error, altitude


def _decode_velocity(reader: BitReader) -> tuple[float | None, float | None]:
    # 6.3.86 velocity type (table 6.124).
    kind = reader.read(3, "velocity type")
    if kind == _NO_VELOCITY:
        return None, None
    if kind not in (_HORIZONTAL, _HORIZONTAL_UNC, _HORIZONTAL_DIR):
        raise RemoteProtocolError(
            f"LIP velocity type {kind} is not supported by this decoder.",
            reason_code=DeliveryStatus.PROTOCOL_NOT_SUPPORTED,
        )
    velocity = _velocity(reader.read(7, "horizontal velocity"))
    if kind == _HORIZONTAL_UNC:
        reader.read(3, "horizontal velocity uncertainty")
    if kind == _HORIZONTAL_DIR:
        return velocity, reader.read(8, "direction of travel extended") * 360.0 / 256
    return velocity, None


def _decode_long(reader: BitReader) -> LocationReport:
    # TS 100 392-18-1 6.2.2 LONG LOCATION REPORT.
    time_type = reader.read(2, "time type")
    time_elapsed = None
    if time_type == 1:
        time_elapsed = reader.read(2, "time elapsed")
    elif time_type == 2:
        reader.read(22, "time of position")  # day 5, hour 5, minute 6, second 6
    elif time_type == 3:
        raise RemoteProtocolError(
            "LIP time type 3 is reserved.", reason_code=DeliveryStatus.CORRUPT_INFORMATION_ELEMENT
        )
    latitude, longitude, error, altitude = _decode_shape(reader)
    velocity, direction = _decode_velocity(reader)
    ack = bool(reader.read(1, "acknowledgement request"))
    user_defined = reader.read(1, "type of additional data")
    extra = reader.read(8, "reason for sending")
    return LocationReport(
        latitude=latitude,
        longitude=longitude,
        position_error=error,
        velocity_kmh=velocity,
        direction_deg=direction,
        reason=None if user_defined else extra,
        user_data=extra if user_defined else None,
        time_elapsed=time_elapsed,
        long_report=True,
        altitude_m=altitude,
        acknowledgement_request=ack,
    )


# --------------------------------------------------------------------------- encode


def _write_additional(writer: BitWriter, report: LocationReport) -> None:
    if report.reason is not None:
        writer.write(0, 1)
        writer.write(report.reason, 8, "reason for sending")
    elif report.user_data is not None:
        writer.write(1, 1)
        writer.write(report.user_data, 8, "user-defined data")
    else:
        raise LocalProtocolError("A location report needs a reason or user-defined data.")


def _direction_code(direction: float | None) -> int:
    # 6.3.17: direction of travel value = trunc((direction + 11.25) / 22.5), modulo 16.
    return 0 if direction is None else int(((direction % 360.0) + 11.25) // 22.5) % 16


def encode_location(report: LocationReport) -> tuple[bytes, int]:
    """Encode ``report`` with PID 0x0A (short unless ``report.long_report``).

    Raises:
        LocalProtocolError: A field cannot be represented.
    """
    writer = BitWriter()
    writer.write(LIP_PID, 8)
    if report.long_report:
        _encode_long(writer, report)
    else:
        writer.write(_SHORT, 2)
        writer.write(3 if report.time_elapsed is None else report.time_elapsed, 2)
        _write_lon_lat(writer, report)
        writer.write(report.position_error, 3)
        writer.write(_velocity_code(report.velocity_kmh), 7)
        writer.write(_direction_code(report.direction_deg), 4)
        _write_additional(writer, report)
    return writer.to_bytes()


def _encode_long(writer: BitWriter, report: LocationReport) -> None:
    writer.write(_WITH_EXTENSION, 2)
    writer.write(_LONG_REPORT, 4)
    if report.time_elapsed is None:
        writer.write(0, 2)
    else:
        writer.write(1, 2)
        writer.write(report.time_elapsed, 2)
    if report.latitude is None:
        writer.write(_NO_SHAPE, 4)
    elif report.altitude_m is not None:
        writer.write(_POINT_ALT, 4)
        _write_lon_lat(writer, report)
        writer.write(0, 1)  # altitude type: WGS84 ellipsoid
        writer.write(_altitude_code(report.altitude_m), 11)
    else:
        writer.write(_POINT_ERROR, 4)
        _write_lon_lat(writer, report)
        writer.write(report.position_error, 3)
    if report.velocity_kmh is None and report.direction_deg is None:
        writer.write(_NO_VELOCITY, 3)
    elif report.direction_deg is None:
        writer.write(_HORIZONTAL, 3)
        writer.write(_velocity_code(report.velocity_kmh), 7)
    else:
        writer.write(_HORIZONTAL_DIR, 3)
        writer.write(_velocity_code(report.velocity_kmh), 7)
        writer.write(round((report.direction_deg % 360.0) * 256 / 360.0) % 256, 8)
    writer.write(int(report.acknowledgement_request), 1)
    _write_additional(writer, report)
