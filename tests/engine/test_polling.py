"""Polling: first poll primes, new items fire once, memory survives restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from engine.app import Engine
from engine.areas import AreaSpec
from engine.catalog.context import PollContext
from engine.catalog.service import Item
from engine.errors import RateLimited, StorageError, TransientError
from engine.poller import oldest_first
from tests.engine import probe
from tests.engine.conftest import EngineFactory

AREA = {
    "name": "Items to record",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}


def items(n: int, start: int = 0) -> list[Item]:
    # Newest first, as feeds and APIs list them.
    return [Item(f"k{i}", {"title": f"item {i}", "n": i})
            for i in reversed(range(start, start + n))]


async def poll(engine: Engine, area_id: str) -> int:
    area = engine.area(area_id)
    spec = engine.registry.trigger("probe", "items")
    return await engine.poller.poll(area, spec, area.spec.trigger.params, 3600)


async def test_first_poll_over_500_existing_items_fires_nothing(engine: Engine) -> None:
    probe.controls.items = items(500)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    assert await poll(engine, area.id) == 0
    await engine.wait_idle()
    assert await engine.store.runs(area.id) == []
    assert await engine.store.seen_count(area.id) == 500


async def test_new_items_fire_once_oldest_first(engine: Engine) -> None:
    probe.controls.items = items(3)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)
    probe.controls.items = items(5)  # two new: item 3 and item 4
    assert await poll(engine, area.id) == 2
    assert await poll(engine, area.id) == 0
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["item 3", "item 4"]


async def test_an_item_seen_under_an_earlier_key_does_not_fire_again(engine: Engine) -> None:
    """A service that changes how it spells its keys (after an upgrade) names the earlier
    spelling as an alias: what was seen under it does not fire again, what is new does,
    and the new keys are what is remembered from then on."""
    probe.controls.items = [Item("http://old/b", {"title": "b"}),
                            Item("caf\udce9.txt", {"title": "odd"})]
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)
    probe.controls.items = [Item("c", {"title": "c"}, aliases=("http://old/c",)),
                            Item("b", {"title": "b"}, aliases=("http://old/b",)),
                            Item("café.txt", {"title": "odd"}, aliases=("caf\udce9.txt",))]
    assert await poll(engine, area.id) == 1
    probe.controls.items = [Item("c", {"title": "c"}), Item("b", {"title": "b"}),
                            Item("café.txt", {"title": "odd"})]
    assert await poll(engine, area.id) == 0
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["c"]


async def test_the_seen_key_cleanup_never_refires_what_the_source_still_shows(
        engine: Engine) -> None:
    """A folder of 5,100 files primes 5,100 keys of one time; the cleanup (keep 5,000)
    forgot all of them and the next poll fired 5,100 runs. Keys the source still shows
    are kept, past the bound; the ones it no longer shows are what goes."""
    probe.controls.items = items(5100)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    # Only the test's own polls: the scheduler's first one (due 0.2 s after creation,
    # late on a busy machine) could take the 200 new files before the test looks.
    engine.scheduler.remove(area.id)
    await poll(engine, area.id)
    await engine.store.prune(14, 90, 1000, seen_per_area=5000)
    assert await poll(engine, area.id) == 0
    assert await engine.store.seen_count(area.id) == 5100
    # the folder moves on: 200 new files, the old ones gone
    probe.controls.items = items(200, start=10_000)
    assert await poll(engine, area.id) == 200
    await engine.store.prune(14, 90, 1000, seen_per_area=150)
    assert await engine.store.seen_count(area.id) == 200  # all shown: kept past the bound
    assert await poll(engine, area.id) == 0
    await engine.wait_idle()
    assert len(await engine.store.runs(area.id, limit=1000)) == 200


async def test_new_items_fire_by_their_own_time_whatever_the_listing_order(
        engine: Engine) -> None:
    """A feed that lists oldest first fired F before E (the poller reversed whatever it
    got); items that carry their time fire by it, ties in the source's order."""
    day = datetime(2026, 12, 1, tzinfo=UTC)

    def item(name: str, hours: int) -> Item:
        return Item(name, {"title": name, "n": hours}, at=day + timedelta(hours=hours))

    probe.controls.items = [item("A", 0)]
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)
    probe.controls.items = [item("A", 0), item("E", 4), item("F", 5), item("D", 3),
                            item("G1", 6), item("G2", 6)]
    assert await poll(engine, area.id) == 5
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["D", "E", "F", "G1", "G2"]


def test_equal_times_fire_in_the_listings_own_direction() -> None:
    """Ties among items that carry their time: a feed that lists newest first fired the
    newer of two items of the same second first; it now fires them as it would without
    times, oldest first. A listing that runs oldest first keeps its order."""
    day = datetime(2026, 12, 1, tzinfo=UTC)

    def item(name: str, hours: int) -> Item:
        return Item(name, {"title": name}, at=day + timedelta(hours=hours))

    newest_first = [item("C2", 2), item("C1", 2), item("B", 1), item("A2", 0), item("A1", 0)]
    # (the same items listed oldest first: A1 A2 B C1 C2)
    assert [i.key for i in oldest_first(newest_first)] == ["A1", "A2", "B", "C1", "C2"]
    assert [i.key for i in oldest_first(newest_first[::-1])] == ["A1", "A2", "B", "C1", "C2"]
    same_second = [item("3", 0), item("2", 0), item("1", 0)]  # as a feed lists them
    assert [i.key for i in oldest_first(same_second)] == ["1", "2", "3"]


def test_items_without_a_time_are_taken_as_listed_newest_first() -> None:
    listed = items(3)  # k2, k1, k0
    assert [i.key for i in oldest_first(listed)] == ["k0", "k1", "k2"]
    assert oldest_first([]) == []


async def test_restart_with_1000_seen_items_refires_none(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    probe.controls.items = items(1000)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)
    await engine.aclose()

    again = await make_engine()
    assert await poll(again, area.id) == 0
    await again.wait_idle()
    assert await again.store.runs(area.id) == []
    probe.controls.items = items(1001)
    assert await poll(again, area.id) == 1


async def test_changing_the_trigger_primes_again(engine: Engine) -> None:
    probe.controls.items = items(10)
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)
    changed = AreaSpec.from_dict({**AREA, "trigger": {**AREA["trigger"],
                                                      "params": {"feed": "other"}}})
    await engine.update_area(area.id, changed)
    probe.controls.items = items(12)
    assert await poll(engine, area.id) == 0  # a new trigger starts by priming


async def test_failures_are_reported_once_per_streak_and_back_off(engine: Engine) -> None:
    failing: list[str] = []
    recovered: list[str] = []
    engine.bus.subscribe("poll.failing", lambda m: failing.append(m.data["error"]))
    engine.bus.subscribe("poll.recovered", lambda m: recovered.append(m.data["area_id"]))
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    probe.controls.poll_error = TransientError("feed.example is down")
    for _ in range(3):
        await poll(engine, area.id)
    assert failing == ["feed.example is down"]
    assert engine.poller.failing(area.id) == "feed.example is down"
    next_poll = engine.scheduler.next_fire(area.id)
    assert next_poll is not None
    probe.controls.poll_error = RateLimited("slow down", retry_after=120)
    await poll(engine, area.id)
    later = engine.scheduler.next_fire(area.id)
    assert later is not None
    probe.controls.poll_error = None
    await poll(engine, area.id)
    assert recovered == [area.id]
    assert engine.poller.failing(area.id) is None


async def test_a_key_that_is_not_utf8_fires_once_and_holds_nothing_up(engine: Engine) -> None:
    # A file name that is not UTF-8 reaches Python with lone surrogates; as a key it made
    # every poll of the area fail before anything was saved, the other items included.
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)  # primes over nothing
    probe.controls.items = [Item("caf\udce9.txt", {"title": "odd"}),
                            Item("cafe.txt", {"title": "plain"})]
    assert await poll(engine, area.id) == 2
    assert await poll(engine, area.id) == 0  # the same key at the next poll
    await engine.wait_idle()
    assert sorted(r["text"] for r in probe.controls.received) == ["odd", "plain"]
    assert engine.poller.failing(area.id) is None


async def test_an_item_that_cannot_be_saved_is_a_reported_failure_and_comes_again(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    failing: list[str] = []
    engine.bus.subscribe("poll.failing", lambda m: failing.append(m.data["error"]))
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    await poll(engine, area.id)
    probe.controls.items = items(2)
    real_append = engine.journal.append

    async def full_disk(*args: object, **kwargs: object) -> object:
        raise StorageError("could not save to the database: database or disk is full")

    monkeypatch.setattr(engine.journal, "append", full_disk)
    assert await poll(engine, area.id) == 0
    assert failing == ["could not save to the database: database or disk is full"]
    monkeypatch.setattr(engine.journal, "append", real_append)
    assert await poll(engine, area.id) == 2  # nothing was lost: both fire now
    assert engine.poller.failing(area.id) is None


async def test_a_trigger_that_crashes_is_reported_by_name_not_as_a_bare_key(
        engine: Engine) -> None:
    failing: list[str] = []
    engine.bus.subscribe("poll.failing", lambda m: failing.append(m.data["error"]))
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    probe.controls.poll_error = KeyError("login")  # a provider answered another shape
    await poll(engine, area.id)
    assert failing == ["internal error in probe.items: KeyError: 'login' (the details are in "
                       "Hookline's log)"]


async def test_a_trigger_asking_to_be_checked_soon_is_checked_again_at_once(
        engine: Engine) -> None:
    """A listening trigger (MQTT) holds what it received until a check saved it, and
    asks for checks as it receives: one asked for during a check follows it in the same
    scheduled job, and one asked for between checks comes now, not at the interval."""
    probe.controls.items = items(1)
    area = await engine.create_area(AreaSpec.from_dict(AREA))  # hourly
    polled = asyncio.Event()

    def on_poll(ctx: PollContext) -> None:
        polled.set()
        if probe.controls.polls == 2:
            assert ctx.check_soon is not None
            probe.controls.items = items(2)
            ctx.check_soon()  # e.g. a message came while this check ran

    probe.controls.on_poll = on_poll
    async with asyncio.timeout(30):
        await polled.wait()  # the engine's first check, which primes
    assert probe.controls.polls == 1
    polled.clear()
    engine.poller.check_soon(area.id)  # between checks: the next one comes now
    async with asyncio.timeout(30):
        await polled.wait()
        while probe.controls.polls < 3:
            polled.clear()
            await polled.wait()
    # The check asked for during the second one ran right after it, and fired item 1.
    await engine.wait_idle()
    assert [r["text"] for r in probe.controls.received] == ["item 1"]
    assert engine.scheduler.next_fire(area.id) is not None
