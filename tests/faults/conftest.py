"""Fixtures of the fault tests: a real Mosquitto broker per module (see tests/interop)."""

from __future__ import annotations

from tests.interop import mosquitto

mqtt_world = mosquitto.mqtt_world
