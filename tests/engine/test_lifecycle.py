"""Services hear when their areas stop and when the engine stops; backups are made; an
area's states change only along the lifecycle's table, each change recorded and said."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from engine import lifecycle as life
from engine.app import Engine
from engine.areas import AreaSpec
from engine.backup import backup_dir, list_backups
from engine.bus import (
    ACCOUNT_CHANGED,
    ACCOUNT_NEEDS_RECONNECT,
    AREA_STATE,
    NOTIFICATION,
    Message,
)
from engine.errors import LifecycleError, ValidationError
from engine.storage.db import migrate_sync, open_async
from engine.storage.schema import areas as areas_table
from engine.storage.schema import utcnow
from tests.engine import probe
from tests.engine.conftest import EngineFactory, next_message

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


# ---------------------------------------------------------------------- area states

PAIRS = [(a, b) for a in life.STATES for b in life.STATES]


@dataclass
class _Stub:
    id: str = "a1"
    state: str = life.DRAFT


@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_pair_of_states_is_allowed_or_refused_by_the_table(before: str,
                                                                 after: str) -> None:
    area = _Stub(state=before)
    if after in life.ALLOWED[before]:
        record = life.transition(area, after, "because")
        assert area.state == after
        assert (record.from_state, record.to_state, record.cause) == (before, after,
                                                                      "because")
        assert record.at.tzinfo is not None
    else:
        with pytest.raises(LifecycleError) as raised:
            life.transition(area, after, "because")
        assert area.state == before  # refused: nothing changed
        message = str(raised.value)
        assert life.LABELS[before] in message and life.LABELS[after] in message


def test_every_state_can_be_left_and_reached() -> None:
    reached = {b for targets in life.ALLOWED.values() for b in targets}
    assert reached == set(life.STATES) - {life.DRAFT}
    assert all(life.ALLOWED[s] for s in life.STATES)


async def test_transitions_are_recorded_published_and_kept_across_a_restart(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    heard: list[Message] = []
    engine.bus.subscribe(AREA_STATE, heard.append)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await engine.set_enabled(area.id, False)
    await engine.set_enabled(area.id, True)
    assert [(m.data["from"], m.data["to"], m.data["cause"]) for m in heard] == [
        ("draft", "active", "created"), ("active", "off", "turned off"),
        ("off", "active", "turned on")]
    await engine.aclose()
    engine = await make_engine()
    status = await engine.lifecycle(area.id)
    assert status.state == "active" and status.label == "active"
    assert [(t.from_state, t.to_state) for t in status.history] == [
        ("off", "active"), ("active", "off"), ("draft", "active")]


async def test_a_pause_after_failures_is_a_recorded_transition_with_one_notification(
        make_engine: EngineFactory) -> None:
    engine = await make_engine(pause_after_failures=1)
    area = await engine.create_area(AreaSpec.from_dict({
        **AREA, "reactions": [{"service": "probe", "reaction": "fail", "params": {}}]}))
    notes: list[Message] = []
    engine.bus.subscribe(NOTIFICATION, notes.append)
    paused = next_message(engine, AREA_STATE, lambda m: m.data["to"] == "paused")
    await engine.run_now(area.id, {"title": "x"})
    message = await paused
    assert message.data["from"] == "active"
    assert "1 runs in a row failed" in message.data["cause"]
    await engine.wait_idle()
    assert len(notes) == 1 and "paused" in notes[0].data["title"]
    status = await engine.lifecycle(area.id)
    assert status.state == "paused"
    assert status.history[0].to_state == "paused"
    with pytest.raises(LifecycleError, match="paused after failures"):
        await engine.wake(area.id)


async def test_prune_keeps_the_newest_transitions_of_each_area(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    for _ in range(4):
        await engine.set_enabled(area.id, False)
        await engine.set_enabled(area.id, True)
    assert len(await engine.store.transitions(area.id)) == 9
    removed = await engine.store.prune(30, 30, 100, transitions_per_area=3)
    assert removed == 6
    kept = await engine.store.transitions(area.id)
    assert [(t.from_state, t.to_state) for t in kept] == [
        ("off", "active"), ("active", "off"), ("off", "active")]


def test_an_old_database_maps_its_areas_to_active_off_and_paused(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from engine.storage.db import alembic_config, open_sync

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = open_sync(url)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        for area_id, enabled, reason in (("on", 1, None), ("off", 0, None),
                                         ("paused", 1, "3 runs in a row failed")):
            conn.execute(text(
                "insert into areas (id, name, enabled, trigger, reactions, catch_up, "
                "failure_streak, paused_reason, created_at, updated_at) values (:id, :id, "
                ":enabled, '{}', '[]', 'skip', 0, :reason, '2026-01-01', '2026-01-01')"),
                {"id": area_id, "enabled": enabled, "reason": reason})
    engine.dispose()
    migrate_sync(url)
    engine = open_sync(url)
    with engine.connect() as conn:
        states: dict[str, str] = dict(conn.execute(text("select id, state from areas")).all())
    engine.dispose()
    assert states == {"on": "active", "off": "off", "paused": "paused"}


# ---------------------------------------------------------------------- at a date and time


def _at(when: datetime) -> dict[str, Any]:
    return {"name": "Capsule",
            "trigger": {"service": "timer", "trigger": "at",
                        "params": {"at": when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                                   "timezone": "UTC"}},
            "reactions": [{"service": "probe", "reaction": "record",
                           "params": {"text": "late by {{ trigger.late_by }}"}}]}


async def test_at_in_the_future_fires_once_then_the_area_is_done(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    notes: list[Message] = []
    engine.bus.subscribe(NOTIFICATION, notes.append)
    done = next_message(engine, AREA_STATE, lambda m: m.data["to"] == "done")
    # (whether it is still waiting when create_area returns depends on the machine's
    # load: a loaded CI took over a second to save it; what it must do is fire once, on time)
    area = await engine.create_area(AreaSpec.from_dict(_at(utcnow() + timedelta(seconds=2))))
    message = await done
    assert message.data["cause"] == "it ran at its date and time"
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["late by 0"]
    assert engine.scheduler.next_fire(area.id) is None
    assert [n.data["title"] for n in notes] == ["“Capsule” is done"]
    await engine.aclose()
    engine = await make_engine()  # done stays done: nothing fires again
    await engine.wait_idle()
    assert engine.area(area.id).state == "done"
    assert len(probe.controls.received) == 1


async def test_at_missed_while_stopped_fires_once_late_at_the_next_start(
        make_engine: EngineFactory) -> None:
    engine = await make_engine()
    area = await engine.create_area(AreaSpec.from_dict(_at(utcnow() + timedelta(hours=1))))
    await engine.aclose()
    # Hookline stays closed past the moment, which came two hours ago
    spec = _at(utcnow() - timedelta(hours=2))
    db = open_async(engine.url)
    async with db.begin() as conn:
        await conn.execute(update(areas_table).where(areas_table.c.id == area.id).values(
            trigger={"service": "timer", "trigger": "at", "params": spec["trigger"]["params"]}))
    await db.dispose()
    engine = await make_engine()
    await engine.wait_idle()
    [run] = await engine.store.runs(area.id)
    assert run["status"] == "succeeded"
    assert run["trigger_payload"]["catch_up"] is True
    assert 7190 <= run["trigger_payload"]["late_by"] <= 7300
    status = await engine.lifecycle(area.id)
    assert status.state == "done" and "late" in status.history[0].cause
    await engine.aclose()
    engine = await make_engine()
    await engine.wait_idle()
    assert len(await engine.store.runs(area.id)) == 1


async def test_at_a_moment_already_past_is_refused(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="is already past"):
        await engine.create_area(AreaSpec.from_dict(_at(utcnow() - timedelta(minutes=5))))


async def test_an_area_needs_an_account_while_its_account_must_be_reconnected(
        engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    area.spec.reactions[0].account = "acc-1"  # as if it acted as that account
    notes: list[Message] = []
    engine.bus.subscribe(NOTIFICATION, notes.append)
    needs = next_message(engine, AREA_STATE, lambda m: m.data["to"] == "needs_account")
    engine.bus.publish(ACCOUNT_NEEDS_RECONNECT, account_id="acc-1", service_id="probe",
                       name="me", error="token revoked")
    message = await needs
    assert message.data["cause"] == "its account “me” must be reconnected (token revoked)"
    assert [n.data["title"] for n in notes] == ["“Items” needs an account"]
    assert engine.scheduler.next_fire(area.id) is None  # it stopped polling
    back = next_message(engine, AREA_STATE, lambda m: m.data["from"] == "needs_account")
    engine.bus.publish(ACCOUNT_CHANGED, account_id="acc-1", service_id="probe", name="me",
                       change="reconnected", note="")
    assert (await back).data["to"] == "active"
    assert engine.scheduler.next_fire(area.id) is not None
