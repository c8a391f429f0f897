"""Strict validation of ``POST /api/v1/messages`` bodies: pure, no gateway access.

Shape errors (not an object, unknown or missing field, wrong type, value out of range)
raise :class:`InvalidBody`, answered with 400 and a message naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_TEXT", "PRIORITIES", "InvalidBody", "Submission", "parse_submission"]

#: Longest text accepted (characters); long texts are split into SDS segments downstream.
MAX_TEXT = 1000
#: API priority names, least urgent first.
PRIORITIES = ("routine", "high", "imminent_peril", "emergency")
_TOP = ("to", "priority", "text", "status", "emergency")
_BODIES = ("text", "status", "emergency")
_STATUS = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


class InvalidBody(ValueError):
    """A request body does not have the documented shape.

    Attributes:
        field: The offending field (dotted path), or ``""`` for the whole body.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class Submission:
    """A validated message request."""

    target_kind: str  # "unit" or "group"
    target: str
    priority: str
    kind: str  # "text", "status" or "emergency"
    text: str | None = None
    status: str | None = None
    lat: float | None = None
    lon: float | None = None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _unknown(data: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidBody(f"{prefix}{key}", f"unknown field (allowed: {', '.join(allowed)})")


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidBody(field, f"expected a string, got {_kind(value)}")
    return value


def _coordinate(data: dict[str, Any], key: str, bound: float) -> float | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBody(f"emergency.{key}", f"expected a number, got {_kind(value)}")
    if isinstance(value, int) and not -bound <= value <= bound:  # also a huge integer
        raise InvalidBody(f"emergency.{key}", f"outside -{bound:g}..{bound:g}")
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise InvalidBody(f"emergency.{key}", f"{value} is outside -{bound:g}..{bound:g}")
    return float(value)


def _text(value: object) -> str:
    text = _string(value, "text")
    if not text.strip():
        raise InvalidBody("text", "must not be empty")
    if len(text) > MAX_TEXT:
        raise InvalidBody("text", f"{len(text)} characters; at most {MAX_TEXT}")
    if any(ord(c) < 0x20 and c not in "\n\t" for c in text) or any(map(_hidden, text)):
        # A carriage return or a direction override could rewrite the sender shown on a
        # radio's display ("[de.controlroom.x] ..."); a lone surrogate is no text at all.
        raise InvalidBody("text", "control, direction or surrogate characters are not allowed")
    return text


def _hidden(c: str) -> bool:
    """DEL and C1 controls, bidirectional overrides and isolates, surrogates."""
    code = ord(c)
    return (
        0x7F <= code <= 0x9F
        or 0x202A <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
        or 0xD800 <= code <= 0xDFFF
    )


def _emergency(value: object) -> tuple[float | None, float | None]:
    if not isinstance(value, dict):
        raise InvalidBody("emergency", f"expected an object, got {_kind(value)}")
    _unknown(value, ("lat", "lon"), "emergency.")
    lat = _coordinate(value, "lat", 90.0)
    lon = _coordinate(value, "lon", 180.0)
    if (lat is None) != (lon is None):
        raise InvalidBody("emergency", "give both lat and lon, or neither")
    return lat, lon


def parse_submission(data: object) -> Submission:
    """Validate a decoded JSON body.

    Raises:
        InvalidBody: The body does not have the documented shape.
    """
    if not isinstance(data, dict):
        raise InvalidBody("", f"the body must be a JSON object, got {_kind(data)}")
    _unknown(data, _TOP, "")
    if "to" not in data:
        raise InvalidBody("to", "required field is missing")
    to = data["to"]
    if not isinstance(to, dict):
        raise InvalidBody("to", f'expected an object like {{"unit": "..."}}, got {_kind(to)}')
    _unknown(to, ("unit", "group"), "to.")
    if len(to) != 1:
        raise InvalidBody("to", 'exactly one of "unit" and "group" is required')
    [(target_kind, raw_target)] = to.items()
    target = _string(raw_target, f"to.{target_kind}")
    if not _NAME.match(target):
        raise InvalidBody(f"to.{target_kind}", f"{target!r} is not a federation identity")
    present = [key for key in _BODIES if key in data]
    if len(present) != 1:
        raise InvalidBody(
            "|".join(_BODIES),
            "exactly one of text, status and emergency is required"
            + (f" (got {', '.join(present)})" if present else ""),
        )
    kind = present[0]
    priority = data.get("priority")
    if priority is not None:
        priority = _string(priority, "priority")
        if priority not in PRIORITIES:
            raise InvalidBody("priority", f"{priority!r} is not one of {', '.join(PRIORITIES)}")
    text = status = None
    lat = lon = None
    if kind == "text":
        text = _text(data["text"])
    elif kind == "status":
        status = _string(data["status"], "status")
        if not _STATUS.match(status):
            raise InvalidBody("status", f"{status!r} is not a status code like 'on-scene'")
    else:
        lat, lon = _emergency(data["emergency"])
        if priority not in (None, "emergency"):
            raise InvalidBody("priority", "an emergency always has priority emergency")
        priority = "emergency"
    return Submission(
        target_kind=target_kind,
        target=target,
        priority=priority or "routine",
        kind=kind,
        text=text,
        status=status,
        lat=lat,
        lon=lon,
    )
