"""Snooze: an area stops firing until a moment and comes back by itself; deliveries
meanwhile are recorded as skipped, polls remember what they see (or catch up after)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import update

from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import AREA_STATE, RUN_FINISHED
from engine.catalog.service import Item
from engine.cli import main
from engine.errors import LifecycleError
from engine.lifecycle import parse_snooze
from engine.storage.db import open_async
from engine.storage.schema import areas, utcnow
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message

HOOK = {
    "name": "Hook to record",
    "trigger": {"service": "probe", "trigger": "hook"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "got {{ trigger.title }}"}}],
}
ITEMS = {
    "name": "Items to record",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}


def ended(engine: Engine, area_id: str):  # type: ignore[no-untyped-def]
    return next_message(engine, AREA_STATE, lambda m: m.data["area_id"] == area_id
                        and m.data["from"] == "snoozed" and m.data["to"] == "active")


async def test_a_snoozed_webhook_area_records_deliveries_as_skipped_and_wakes_by_itself(
        engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    url = await engine.webhook_url(area.id)
    assert url is not None
    woke = ended(engine, area.id)
    await engine.snooze(area.id, utcnow() + timedelta(seconds=2))  # room for a loaded CI
    status = await engine.lifecycle(area.id)
    assert status.state == "snoozed" and status.next_state == "active"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"title": "during"}) as resp:
            # the sender did its part: 202, so it neither retries nor gives up on us
            assert resp.status == 202
        await engine.wait_idle()
        [skipped] = await engine.store.runs(area.id)
        assert skipped["status"] == "skipped"
        assert skipped["error"].startswith("not run: the area is snoozed until ")
        assert probe.controls.received == []
        message = await woke  # APScheduler's own date job ends the snooze
        assert message.data["cause"] == "the snooze ended"
        finished = next_message(engine, RUN_FINISHED)
        async with session.post(url, json={"title": "after"}) as resp:
            assert resp.status == 202
        assert (await finished).data["status"] == "succeeded"
    assert [r["text"] for r in probe.controls.received] == ["got after"]
    assert engine.area(area.id).snoozed_until is None


async def test_what_a_snoozed_poll_sees_never_fires_afterwards(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(ITEMS))
    spec = engine.registry.trigger("probe", "items")

    async def poll() -> int:
        current = engine.area(area.id)
        return await engine.poller.poll(current, spec, current.spec.trigger.params, 3600)

    probe.controls.items = [Item("k0", {"title": "old"})]
    await poll()  # primes
    await engine.snooze(area.id, utcnow() + timedelta(hours=2))
    probe.controls.items = [Item("k1", {"title": "during"}), Item("k0", {"title": "old"})]
    assert await poll() == 0
    assert (await engine.checks(area.id))[0]["outcome"] == "snoozed"
    await engine.wake(area.id)
    assert await poll() == 0  # remembered while snoozed: it does not fire now
    probe.controls.items.insert(0, Item("k2", {"title": "after"}))
    assert await poll() == 1


async def test_a_poll_snoozed_with_catch_up_fires_what_came_once_it_ends(
        engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(ITEMS))
    spec = engine.registry.trigger("probe", "items")
    current = engine.area(area.id)
    probe.controls.items = [Item("k0", {"title": "old"})]
    await engine.poller.poll(current, spec, current.spec.trigger.params, 3600)
    await engine.snooze(area.id, utcnow() + timedelta(seconds=2), catch_up=True)
    probe.controls.items = [Item("k1", {"title": "during"}), Item("k0", {"title": "old"})]
    job = engine.scheduler._aps.get_job(f"poll:{area.id}")
    polls = probe.controls.polls
    await job.func()  # the scheduled check while snoozed with catch-up: not made
    assert probe.controls.polls == polls
    finished = next_message(engine, RUN_FINISHED)
    await ended(engine, area.id)  # its end asks for a check at once
    assert (await finished).data["status"] == "succeeded"
    assert [r["text"] for r in probe.controls.received] == ["during"]


async def test_a_snooze_that_ended_while_closed_ends_at_the_next_start(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    await engine.snooze(area.id, utcnow() + timedelta(hours=1))
    await engine.aclose()
    # an hour goes by while Hookline is closed
    db = open_async(engine.url)
    async with db.begin() as conn:
        await conn.execute(update(areas).where(areas.c.id == area.id).values(
            snoozed_until=utcnow() - timedelta(minutes=1)))
    await db.dispose()
    engine = await make_engine()
    assert engine.area(area.id).state == "active"
    status = await engine.lifecycle(area.id)
    assert status.history[0].cause == "the snooze ended while Hookline was not running"


async def test_a_snooze_still_running_at_restart_keeps_its_end(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    until = utcnow() + timedelta(hours=1)
    await engine.snooze(area.id, until)
    await engine.aclose()
    engine = await make_engine()
    assert engine.area(area.id).state == "snoozed"
    assert engine.scheduler.next_wake(area.id) == until


def test_snooze_lengths_as_the_user_writes_them() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 12, 6, 15, 0, tzinfo=berlin)
    assert parse_snooze("2h", now, berlin) == now + timedelta(hours=2)
    assert parse_snooze("30m", now, berlin) == now + timedelta(minutes=30)
    assert parse_snooze("until 18:00", now, berlin) == now.replace(hour=18)
    assert parse_snooze("until 09:00", now, berlin) == datetime(2026, 12, 7, 9, 0,
                                                                tzinfo=berlin)
    assert parse_snooze("until tomorrow", now, berlin) == datetime(2026, 12, 7, 8, 0,
                                                                   tzinfo=berlin)
    with pytest.raises(LifecycleError, match="not a snooze"):
        parse_snooze("a while", now, berlin)
    with pytest.raises(LifecycleError, match="already past"):
        parse_snooze("until 2020-01-01 09:00", now, berlin)


def test_snooze_and_wake_from_the_command_line(data_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = data_dir.parent / "area.json"
    source.write_text(json.dumps({
        "name": "Hourly note", "trigger": {"service": "timer", "trigger": "every",
                                           "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "t", "message": "m"}}]}))
    assert main(["areas", "import", str(source)]) == 0
    capsys.readouterr()
    assert main(["areas", "snooze", "Hourly note", "until", "tomorrow"]) == 0
    assert "is snoozed; next: active at " in capsys.readouterr().out
    assert main(["areas", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["state"] == "snoozed"
    assert main(["areas", "show", "Hourly note", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "snoozed" and shown["next_change"].startswith("active at ")
    assert "active -> snoozed: snoozed until " in shown["transitions"][0]
    assert main(["areas", "wake", "Hourly note"]) == 0
    assert capsys.readouterr().out.endswith("is active\n")
    assert main(["areas", "wake", "Hourly note"]) != 0
    assert "is not snoozed (it is active)" in capsys.readouterr().err


async def test_a_snooze_in_the_past_is_refused(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    with pytest.raises(LifecycleError, match="already past"):
        await engine.snooze(area.id, utcnow() - timedelta(seconds=1))
