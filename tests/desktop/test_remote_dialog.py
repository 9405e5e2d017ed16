"""Which engine the app opens on: one that would only stand by is refused at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.remote_dialog import open_engine
from engine.app import Engine
from engine.errors import HooklineError
from engine.settings import Settings


async def test_the_app_says_another_engine_is_active_instead_of_waiting_empty(
        postgres_url: str, tmp_path: Path) -> None:
    """On a PostgreSQL database another engine holds, the app's own engine would stand
    by and its window wait, empty, until that one stops: it says so and how to use that
    engine from here, at once."""
    settings = Settings.from_mapping({"database_url": postgres_url, "listener_port": 0})
    active = Engine(tmp_path / "server", settings=settings)
    await active.start()
    try:
        said: list[str] = []
        with pytest.raises(HooklineError, match="Another Hookline engine is active") as why:
            await open_engine(Engine(tmp_path / "laptop", settings=settings),
                              tmp_path / "laptop", said.append)
        assert "hookline remote connect" in str(why.value)
        assert said == []
    finally:
        await active.aclose()
    # once it has stopped, the app's engine opens on the database
    thread = await open_engine(Engine(tmp_path / "laptop", settings=settings),
                               tmp_path / "laptop", said.append)
    try:
        assert thread.engine.role == "active"
    finally:
        await thread.stop()
