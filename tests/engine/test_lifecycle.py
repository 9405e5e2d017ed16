"""Services hear when their areas stop and when the engine stops; backups are made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.backup import backup_dir, list_backups
from tests.engine import probe
from tests.engine.conftest import EngineFactory

AREA = {
    "name": "Items",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record", "params": {"text": "x"}}],
}


@pytest.fixture
def stops() -> Iterator[list[Any]]:
    calls: list[Any] = []

    async def on_area_stop(area_id: str, *, forget: bool = False) -> None:
        calls.append((area_id, forget))

    async def on_close() -> None:
        calls.append("closed")

    probe.service.on_area_stop = on_area_stop
    probe.service.on_close = on_close
    yield calls
    probe.service.on_area_stop = None
    probe.service.on_close = None


async def test_a_service_hears_when_its_areas_stop(make_engine: EngineFactory,
                                                   stops: list[Any]) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await engine.set_enabled(area.id, False)
    assert stops[-1] == (area.id, False)
    await engine.remove_area(area.id)
    assert stops[-1] == (area.id, True)  # removed: the far side may forget it too
    await engine.aclose()
    assert stops[-1] == "closed"


async def test_the_daily_backup_copies_the_database(engine: Engine) -> None:
    await engine.create_area(AreaSpec.from_dict(AREA))
    await engine._backup()
    [copy] = list_backups(backup_dir(engine.data_dir))
    assert copy.stat().st_size > 0
    await engine._backup()  # the newest is less than a day old: no second copy
    assert list_backups(backup_dir(engine.data_dir)) == [copy]
