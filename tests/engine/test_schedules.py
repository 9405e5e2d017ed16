"""Timed areas: they fire on time, and runs missed while closed are never dropped silently."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import NOTIFICATION, RUN_FINISHED
from engine.errors import StorageError
from engine.storage.db import open_sync
from engine.storage.schema import trigger_state, utcnow
from tests.engine.conftest import EngineFactory, next_message


def every(interval: str, catch_up: str = "skip") -> AreaSpec:
    return AreaSpec.from_dict({
        "name": f"Every {interval}",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": interval}},
        "catch_up": catch_up,
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "tick {{ trigger.scheduled_for }}"}}],
    })


async def test_a_timer_area_fires_with_its_scheduled_time(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    finished = next_message(engine, RUN_FINISHED)
    area = await engine.create_area(every("1s"))
    message = await finished
    assert message.data["status"] == "succeeded"
    [run] = await engine.store.runs(area.id, limit=1)
    payload = run["trigger_payload"]
    scheduled = datetime.fromisoformat(payload["scheduled_for"])
    fired = datetime.fromisoformat(payload["fired_at"])
    assert timedelta(0) <= fired - scheduled < timedelta(seconds=2)
    assert payload["catch_up"] is False


async def _closed_for_three_hours(make_engine: EngineFactory, catch_up: str
                                  ) -> tuple[Engine, str]:
    engine = await make_engine()
    area = await engine.create_area(every("1h", catch_up))
    await engine.aclose()
    # The app was closed for three hours after the area last fired.
    sync = open_sync(engine.url)
    with sync.begin() as conn:
        conn.execute(trigger_state.insert().values(
            area_id=area.id, state={}, primed=True,
            last_fired_at=utcnow() - timedelta(hours=3, minutes=1)))
    sync.dispose()
    return await make_engine(), area.id


async def test_missed_runs_are_recorded_when_catch_up_is_skip(
        make_engine: EngineFactory) -> None:
    engine, area_id = await _closed_for_three_hours(make_engine, "skip")
    [run] = await engine.store.runs(area_id)
    assert run["status"] == "missed"
    assert run["trigger_payload"]["missed"] == 3
    assert "3 scheduled times were missed" in run["error"]


async def test_missed_runs_fire_once_when_catch_up_is_once(
        make_engine: EngineFactory) -> None:
    engine, area_id = await _closed_for_three_hours(make_engine, "once")
    await engine.wait_idle()
    [run] = await engine.store.runs(area_id)
    assert run["status"] == "succeeded"
    assert run["trigger_payload"]["catch_up"] is True
    assert run["trigger_payload"]["missed"] == 3


async def test_an_interval_keeps_its_cadence_across_a_restart(
        make_engine: EngineFactory) -> None:
    engine, area_id = await _closed_for_three_hours(make_engine, "skip")
    next_fire = engine.scheduler.next_fire(area_id)
    assert next_fire is not None
    # Last fired 3h01m ago, hourly: the next one is 59 minutes from now, not an hour.
    assert timedelta(minutes=58) < next_fire - utcnow() < timedelta(minutes=60)


async def test_areas_on_the_same_schedule_share_one_job(make_engine: EngineFactory) -> None:
    engine = await make_engine()

    def daily(name: str) -> AreaSpec:
        return AreaSpec.from_dict({
            "name": name,
            "trigger": {"service": "timer", "trigger": "daily_at",
                        "params": {"time": "07:00", "timezone": "Europe/Paris"}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": name}}],
        })

    areas = [await engine.create_area(daily(f"Morning {i}")) for i in range(3)]
    jobs = [j for j in engine.scheduler._aps.get_jobs() if j.id.startswith("fire:")]
    assert len(jobs) == 1
    await engine.remove_area(areas[0].id)
    assert engine.scheduler.next_fire(areas[1].id) == jobs[0].next_run_time
    for area in areas[1:]:
        await engine.remove_area(area.id)
    assert not [j for j in engine.scheduler._aps.get_jobs() if j.id.startswith("fire:")]


async def test_every_area_of_a_shared_schedule_fires_with_its_own_run(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    areas = [await engine.create_area(AreaSpec.from_dict({
        "name": f"Noon {i}",
        "trigger": {"service": "timer", "trigger": "daily_at", "params": {"time": "12:00"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "noon {{ trigger.scheduled_for }}"}}],
    })) for i in range(3)]
    [job] = [j for j in engine.scheduler._aps.get_jobs() if j.id.startswith("fire:")]
    await job.func()  # the schedule comes due
    await engine.wait_idle()
    for area in areas:
        [run] = await engine.store.runs(area.id)
        assert run["status"] == "succeeded"
        assert run["steps"][0]["params"]["title"].startswith("noon ")
        state = await engine.store.trigger_state(area.id)
        assert state is not None and state["last_fired_at"] is not None
    assert len({r["event_id"] for a in areas for r in await engine.store.runs(a.id)}) == 3


async def test_a_timer_that_cannot_be_saved_is_said_once_and_runs_again_later(
        make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Noon",
        "trigger": {"service": "timer", "trigger": "daily_at", "params": {"time": "12:00"}},
        "reactions": [{"service": "notify", "reaction": "notify", "params": {"title": "noon"}}],
    }))
    [job] = [j for j in engine.scheduler._aps.get_jobs() if j.id.startswith("fire:")]
    notices: list[dict[str, object]] = []
    engine.bus.subscribe(NOTIFICATION, lambda m: notices.append(m.data))
    real_append = engine.journal.append

    async def full_disk(*args: object, **kwargs: object) -> object:
        raise StorageError("could not save to the database: database or disk is full")

    monkeypatch.setattr(engine.journal, "append", full_disk)
    await job.func()  # due while the disk is full: no run, no traceback, one notice
    await job.func()
    assert [(n["title"], n["level"]) for n in notices] == [("Timers are not running", "error")]
    assert "“Noon” did not run: could not save" in str(notices[0]["body"])
    monkeypatch.setattr(engine.journal, "append", real_append)
    await job.func()
    await engine.wait_idle()
    assert [r["status"] for r in await engine.store.runs(area.id)] == ["succeeded"]
