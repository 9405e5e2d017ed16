"""Active windows: an area fires only inside "active from … until …" and its weekly
"only during"; outside it waits for the next opening, which is computed in local time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml
from sqlalchemy import update

from engine.areas import AreaSpec
from engine.bus import AREA_STATE
from engine.errors import ValidationError
from engine.storage.db import open_async
from engine.storage.schema import areas, utcnow
from engine.windows import Window, parse
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {"only_during": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00",
                          "until": "18:00", "timezone": "Europe/Berlin"}}


def _hook(**window: Any) -> dict[str, Any]:
    return {"name": "Hook to record", "trigger": {"service": "probe", "trigger": "hook"},
            "reactions": [{"service": "probe", "reaction": "record",
                           "params": {"text": "got {{ trigger.title }}"}}], **window}


def test_outside_office_hours_it_waits_until_monday_across_the_dst_change() -> None:
    window = parse(OFFICE)
    friday_evening = datetime(2027, 3, 26, 19, 0, tzinfo=BERLIN)  # CET, +01:00
    assert not window.is_open(friday_evening)
    monday = window.next_change(friday_evening)
    # the clocks went forward on Sunday: Monday 09:00 is CEST, 07:00 UTC (not 08:00)
    assert monday == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert monday is not None and window.is_open(monday)
    assert window.next_change(monday) == datetime(2027, 3, 29, 18, 0, tzinfo=BERLIN)
    assert not window.is_open(datetime(2027, 3, 27, 10, 0, tzinfo=BERLIN))  # Saturday


def test_a_window_past_midnight_and_one_with_an_end() -> None:
    night = parse({"only_during": {"days": ["sat"], "from": "22:00", "until": "02:00",
                                   "timezone": "Europe/Berlin"}})
    assert night.is_open(datetime(2027, 1, 3, 1, 0, tzinfo=BERLIN))  # Sunday 01:00
    ended = parse({"active_until": "2027-01-01 00:00+00:00"})
    at = datetime(2027, 1, 1, tzinfo=UTC)
    assert ended.ended(at) and ended.next_change(at) is None


@pytest.mark.parametrize(("data", "where", "says"), [
    ({"only_during": {"days": ["mon", "funday"], "from": "09:00", "until": "18:00"}},
     "only_during.days", "use days of the week"),
    ({"only_during": {"days": ["mon"], "from": "9h", "until": "18:00"}},
     "only_during.from", "is not a time of day"),
    ({"active_from": "2027-02-01 09:00", "active_until": "2027-01-01 09:00"},
     "active_until", "must come after active_from"),
    ({"active_from": "soon"}, "active_from", "is not a date and time"),
])
def test_a_wrong_window_is_refused_saying_where(data: dict[str, Any], where: str,
                                                says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        AreaSpec.from_dict(_hook(**data))
    assert raised.value.where == where and says in raised.value.problem


def test_area_files_keep_the_window_through_export_and_import() -> None:
    text = yaml.safe_dump(_hook(**OFFICE, active_from="2027-01-01 09:00+01:00",
                                catch_up_after_snooze=True))
    text = text.replace("'18:00'", "18:00")  # as a user types it: YAML reads 1080
    spec = AreaSpec.from_dict(yaml.safe_load(text))
    exported = spec.to_dict()
    assert exported["only_during"] == OFFICE["only_during"]
    assert exported["active_from"] == "2027-01-01T09:00:00+01:00"
    assert exported["catch_up_after_snooze"] is True
    assert AreaSpec.from_dict(exported).window == spec.window


async def test_an_area_waits_for_its_window_then_fires_then_is_done(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    now = utcnow()
    opened = next_message(engine, AREA_STATE, lambda m: m.data["to"] == "active"
                          and m.data["from"] == "waiting")
    done = next_message(engine, AREA_STATE, lambda m: m.data["to"] == "done")
    # seconds, not tenths: on a loaded CI saving the area on PostgreSQL took over 0.6 s
    area = await engine.create_area(AreaSpec.from_dict(_hook(
        active_from=(now + timedelta(seconds=2)).isoformat(),
        active_until=(now + timedelta(seconds=4)).isoformat())))
    status = await engine.lifecycle(area.id)
    assert status.state == "waiting" and status.label == "waiting for its window"
    assert status.next_state == "active" and status.next_change is not None
    url = await engine.webhook_url(area.id)
    assert url is not None
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"title": "early"}) as resp:
            assert resp.status == 202
        await engine.wait_idle()
        [skipped] = await engine.store.runs(area.id)
        assert skipped["status"] == "skipped"
        assert skipped["error"] == "not run: the area is waiting for its window"
        assert (await opened).data["cause"] == "its window opened"
        async with session.post(url, json={"title": "inside"}) as resp:
            assert resp.status == 202
        await engine.wait_idle()
        assert [r["text"] for r in probe.controls.received] == ["got inside"]
        assert (await done).data["cause"] == "its active window ended"
        async with session.post(url, json={"title": "late"}) as resp:
            assert resp.status == 409  # done: its address says it takes no more
            assert "done" in (await resp.json())["error"]


async def test_a_window_that_opened_while_closed_is_applied_at_start(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(_hook(
        active_from=(utcnow() + timedelta(hours=1)).isoformat())))
    assert engine.area(area.id).state == "waiting"
    await engine.aclose()
    db = open_async(engine.url)  # an hour goes by while Hookline is closed
    async with db.begin() as conn:
        await conn.execute(update(areas).where(areas.c.id == area.id).values(
            window={"active_from": (utcnow() - timedelta(minutes=1)).isoformat()}))
    await db.dispose()
    engine = await make_engine()
    assert engine.area(area.id).state == "active"
    status = await engine.lifecycle(area.id)
    assert status.history[0].cause == "its window opened while Hookline was not running"


def test_no_window_is_always_open() -> None:
    assert not Window() and Window().is_open(utcnow())
