"""The observers' tests: a real Mosquitto, a webhook area and deliveries to it."""

from __future__ import annotations

import aiohttp

from engine.app import Engine
from tests.fixtures.mqtt import (  # noqa: F401  (fixtures are found by name)
    mosquitto_with_login,
    start_mosquitto,
)

#: A webhook area whose reaction the test controls (tests/engine/probe.py).
HOOK = {
    "name": "Door bell!",
    "trigger": {"service": "probe", "trigger": "hook"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}


async def deliver(engine: Engine, area_id: str, title: str) -> None:
    """POST one delivery to the area's webhook address, as a sender would."""
    url = await engine.webhook_url(area_id)
    assert url is not None
    async with aiohttp.ClientSession() as session, session.post(
            url, json={"title": title}) as response:
        assert response.status == 202
