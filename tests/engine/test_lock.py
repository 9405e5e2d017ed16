"""One engine per data folder."""

from __future__ import annotations

import pytest

from engine.app import Engine
from engine.errors import EngineLocked
from tests.engine.conftest import EngineFactory


async def test_a_second_engine_on_the_same_folder_refuses_clearly(
        make_engine: EngineFactory, data_dir) -> None:
    first = await make_engine()
    second = Engine(data_dir, settings=first.settings, registry=first.registry)
    with pytest.raises(EngineLocked, match="already running on"):
        await second.start()
    assert first.started
    await first.aclose()
    await second.start()  # the lock went with the first engine
    await second.aclose()
