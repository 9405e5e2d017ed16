"""A real engine for the service tests that go through one (MQTT, Telegram): the
registry without plugins, no webhook listener, quick retries."""

from __future__ import annotations

from pathlib import Path

from engine.app import Engine
from engine.registry import Registry
from engine.settings import Settings


async def start_engine(data_dir: Path) -> Engine:
    engine = Engine(
        data_dir,
        settings=Settings.from_mapping({"retry_delay": 0.01}),
        registry=Registry.load(plugins=False),
        listen=False,
    )
    await engine.start()
    return engine
