"""Fixtures of the interop tests: one real Mosquitto broker per test module."""

from __future__ import annotations

from tests.interop import mosquitto

mqtt_world = mosquitto.mqtt_world
