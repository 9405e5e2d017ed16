"""A real Mosquitto for the MQTT events tests."""

from tests.fixtures.mqtt import (  # noqa: F401  (fixtures are found by name)
    mosquitto_with_login,
    start_mosquitto,
)
