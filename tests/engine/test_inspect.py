"""Check now (what each item a trigger returns would do, firing nothing and saving
nothing) and Find an item (whether and when Hookline saw it, and its run)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.catalog.context import PollContext
from engine.catalog.service import Item
from engine.cli import main
from engine.errors import HooklineError
from engine.inspect import FILTERED, FIRST_CHECK, NEW, SEEN, not_seen
from engine.storage.db import open_sync
from engine.storage.schema import events, polls, runs, seen_keys, trigger_state
from tests.engine import probe

AREA: dict[str, Any] = {
    "name": "Python blog",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}


def items(*numbers: int) -> list[Item]:
    """Feed items, newest first as feeds list them."""
    return [Item(f"post-{n}", {"id": f"post-{n}", "title": f"Release {n} is out", "n": n,
                               "link": f"https://blog.example/posts/{n}"})
            for n in numbers]


async def create(engine: Engine, **extra: Any) -> Area:
    """A polling area whose scheduled checks wait an hour: the test makes each check."""
    area = await engine.create_area(AreaSpec.from_dict({**AREA, **extra}))
    engine.scheduler.delay_poll(area.id, 3600)
    return area


async def poll(engine: Engine, area: Area) -> None:
    """A real check, as the scheduler makes it; its runs are finished on return."""
    spec = engine.registry.trigger("probe", "items")
    await engine.poller.poll(engine.area(area.id), spec, area.spec.trigger.params, 3600)
    await engine.wait_idle()


async def fired_once(engine: Engine) -> tuple[Area, dict[str, Any]]:
    """An area primed with post 1 whose next check found post 2 and ran it."""
    area = await create(engine)
    probe.controls.items = items(1)
    await poll(engine, area)
    probe.controls.items = items(2, 1)
    await poll(engine, area)
    [run] = await engine.store.runs(area.id)
    return area, run


def by_key(verdicts: list[Any]) -> dict[str | None, Any]:
    return {v.key: v for v in verdicts}


async def test_an_item_not_seen_yet_would_fire(engine: Engine) -> None:
    area = await create(engine)
    probe.controls.items = items(1)
    await poll(engine, area)
    probe.controls.items = items(2, 1)

    verdict = by_key(await engine.check_now(area.id))["post-2"]

    assert (verdict.verdict, verdict.reason) == (NEW, "new — would fire")
    assert verdict.title == "Release 2 is out"
    assert probe.controls.received == []  # nothing fired


async def test_an_item_that_fired_says_when_and_which_run(engine: Engine) -> None:
    area, run = await fired_once(engine)
    [event] = [e for e in await _rows(engine, events) if e["id"] == run["event_id"]]

    verdict = by_key(await engine.check_now(area.id))["post-2"]

    when = f"{event['received_at'].astimezone():%Y-%m-%d %H:%M}"
    assert verdict.verdict == SEEN
    assert verdict.reason == f"already seen on {when} (fired then: run #{run['id']} (succeeded))"
    assert (verdict.run_id, verdict.run_status) == (run["id"], "succeeded")


async def test_an_item_there_at_the_first_check_says_so(engine: Engine) -> None:
    area = await create(engine)
    probe.controls.items = items(1)
    await poll(engine, area)
    [first] = await engine.checks(area.id)
    probe.controls.items = items(2, 1)
    await poll(engine, area)

    verdict = by_key(await engine.check_now(area.id))["post-1"]

    when = f"{first['at'].astimezone():%Y-%m-%d %H:%M}"
    assert verdict.verdict == SEEN
    assert verdict.reason == f"already seen on {when} (was there at the first check)"
    assert verdict.run_id is None


async def test_a_new_item_the_condition_turns_away_says_which_condition(
        engine: Engine) -> None:
    condition = "{{ trigger.n > 5 }}"
    area = await create(engine, condition=condition)
    probe.controls.items = items(1)
    await poll(engine, area)
    probe.controls.items = items(9, 2, 1)

    verdicts = by_key(await engine.check_now(area.id))

    assert verdicts["post-2"].verdict == FILTERED
    assert verdicts["post-2"].reason == (f"would be filtered out: the condition {condition} "
                                         "is false for it")
    assert verdicts["post-9"].verdict == NEW


async def test_before_the_first_check_every_item_would_be_remembered(engine: Engine) -> None:
    area = await create(engine, enabled=False)  # never checked
    probe.controls.items = items(2, 1)

    verdicts = await engine.check_now(area.id)

    assert [v.verdict for v in verdicts] == [FIRST_CHECK, FIRST_CHECK]
    assert verdicts[0].reason.startswith("first check: would be remembered as already there")


async def test_check_now_changes_nothing_and_asks_the_trigger_as_a_dry_run(
        engine: Engine) -> None:
    area = await create(engine, condition="{{ trigger.n != 3 }}")
    probe.controls.items = items(1)
    await poll(engine, area)
    probe.controls.items = items(2, 1)
    await poll(engine, area)
    asked: list[PollContext] = []

    def keep(ctx: PollContext) -> None:
        asked.append(ctx)
        ctx.state["cursor"] = "moved"  # what a trigger may do to its state

    probe.controls.on_poll = keep
    probe.controls.items = items(4, 3, 2, 1)
    before = await _everything(engine)

    verdicts = await engine.check_now(area.id)
    await engine.wait_idle()

    assert [v.verdict for v in verdicts] == [NEW, FILTERED, SEEN, SEEN]
    assert await _everything(engine) == before  # keys, state, events, runs, history
    assert len(probe.controls.received) == 1  # only the real check's run
    [ctx] = asked
    assert ctx.dry_run and ctx.check_soon is None  # held messages are not taken
    assert ctx.state == {"cursor": "moved"}  # a throwaway state: the saved one is kept


async def test_check_now_of_a_trigger_that_fires_by_itself_says_what_it_is_for(
        engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Every hour", "trigger": {"service": "timer", "trigger": "every",
                                          "params": {"interval": "1h"}},
        "reactions": [{"service": "probe", "reaction": "record", "params": {"text": "x"}}]}))
    with pytest.raises(HooklineError, match=r"“Every hour” is not checked: .* Check now is "
                                            r"for triggers that look for new items"):
        await engine.check_now(area.id)


# ---------------------------------------------------------------------- find


async def test_find_an_item_that_fired_by_its_id_link_or_a_bit_of_its_title(
        engine: Engine) -> None:
    area, run = await fired_once(engine)

    for fragment in ("https://blog.example/posts/2", "RELEASE 2", "post-2"):
        [found] = await engine.find_item(fragment)
        when = f"{found.seen_at.astimezone():%Y-%m-%d %H:%M}"
        assert found.answer == (f"seen on {when} by “Python blog”; it fired: "
                                f"run #{run['id']} (succeeded)"), fragment
        assert (found.run_id, found.event_id) == (run["id"], run["event_id"])
    [found] = await engine.find_item("release 2", area.id)
    assert (found.field, found.value) == ("title", "Release 2 is out")
    [found] = await engine.find_item("post-1")  # its id is its key: it would show
    assert found.answer.startswith("seen at the first check on ")


async def test_a_key_no_payload_shows_is_not_claimed_as_the_first_checks(
        engine: Engine) -> None:
    area = await create(engine)
    probe.controls.items = [Item("k1", {"title": "one"})]
    await poll(engine, area)
    probe.controls.items = [Item("k2", {"title": "two"}), Item("k1", {"title": "one"})]
    await poll(engine, area)

    [found] = await engine.find_item("k2")  # it fired, but nothing ties the key to it

    assert found.answer.startswith("seen by “Python blog” (still there on ")
    assert "it was there at the first check, or it fired with a payload" in found.answer
    assert [f.run_id is not None for f in await engine.find_item("two")] == [True]


async def test_find_an_item_that_was_there_at_the_first_check(engine: Engine) -> None:
    area = await create(engine)
    probe.controls.items = items(1)
    await poll(engine, area)
    [first] = await engine.checks(area.id)

    [found] = await engine.find_item("post-1")

    when = f"{first['at'].astimezone():%Y-%m-%d %H:%M}"
    assert found.answer == (f"seen at the first check on {when} by “Python blog”, so it "
                            "did not fire")
    assert not found.fired and found.run_id is None


async def test_find_an_item_never_seen_says_so_and_what_is_kept(engine: Engine) -> None:
    area = await create(engine)
    probe.controls.items = items(1)
    await poll(engine, area)

    assert await engine.find_item("xyz") == []
    assert await engine.find_item("title") == []  # a field's name is not a match
    assert not_seen("xyz", 30) == (
        "not seen: Hookline has no event or key matching 'xyz' (it keeps the newest 5,000 "
        "keys per automation and events for 30 days; older ones may have been cleaned up)")


async def test_find_among_10000_events_gives_the_newest_50(engine: Engine) -> None:
    area = await create(engine)
    db = open_sync(engine.url)
    try:
        with db.begin() as conn:
            conn.execute(events.insert(), [
                {"id": n, "area_id": area.id, "source": "poll", "status": "done",
                 "payload": {"title": f"Weekly notes {n}", "n": n,
                             "link": f"https://blog.example/notes/{n}"},
                 "received_at": datetime(2026, 12, 1, 10, tzinfo=UTC)}
                for n in range(1, 10_001)])
    finally:
        db.dispose()

    started = time.perf_counter()
    found = await engine.find_item("weekly NOTES")
    took = time.perf_counter() - started
    print(f"find over 10,000 events took {took * 1000:.0f} ms")  # kept reasonable, not asserted

    assert len(found) == 50
    assert [f.event_id for f in found] == list(range(10_000, 9_950, -1))
    started = time.perf_counter()
    assert await engine.find_item("weekly notes 0") == []  # every event read, none held it
    print(f"a search that finds nothing among them took "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")
    [one] = await engine.find_item("notes/4321", area.id)
    assert one.value == "https://blog.example/notes/4321"
    assert "its run is no longer kept" in one.answer


# ---------------------------------------------------------------------- the command line


async def test_while_an_engine_runs_the_command_line_asks_it(engine: Engine) -> None:
    from engine.control import ControlClient

    area = await create(engine)
    probe.controls.items = items(1)
    await poll(engine, area)
    probe.controls.items = items(2, 1)
    client = ControlClient(engine.data_dir)

    checked = await client.call("POST", "/command/check-now", {"area": "Python blog"})
    found = await client.call("POST", "/command/find-item", {"text": "post-1", "area": None})

    assert [v["verdict"] for v in checked["result"]] == [NEW, SEEN]
    assert found["result"][0]["answer"].startswith("seen at the first check on ")


def test_the_command_line_checks_a_folder_now_and_finds_a_file(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "old-invoice.pdf").write_text("old")
    area = {"name": "Invoices",
            "trigger": {"service": "files", "trigger": "file_created",
                        "params": {"folder": str(folder)}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": "{{ trigger.name }}"}}]}

    async def prime() -> None:
        engine = Engine(data_dir, offline=True)
        await engine.start()
        try:
            made = await engine.create_area(AreaSpec.from_dict(area))
            spec = engine.registry.trigger("files", "file_created")
            params = await engine._trigger_params(made, spec)
            await engine.poller.poll(made, spec, params, 10)
        finally:
            await engine.aclose()

    asyncio.run(prime())
    (folder / "new-invoice.pdf").write_text("new")

    assert main(["areas", "check-now", "Invoices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "“Invoices”'s trigger returns 2 items now (nothing was fired or saved):"
    assert out[1:3] == ["- new-invoice.pdf", "    new — would fire"]
    assert out[3] == "- old-invoice.pdf"
    assert out[4].startswith("    already seen on ")
    assert out[4].endswith("(was there at the first check)")
    assert main(["areas", "check-now", "Invoices", "--json"]) == 0
    assert [v["verdict"] for v in json.loads(capsys.readouterr().out)] == [NEW, SEEN]

    assert main(["areas", "find", "nothing-like-it", "--area", "Invoices"]) == 0
    assert capsys.readouterr().out.startswith(
        "not seen: Hookline has no event or key matching 'nothing-like-it'")


async def _rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    async with engine.store.db.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(table))]


async def _everything(engine: Engine) -> dict[str, Any]:
    return {t.name: await _rows(engine, t)
            for t in (seen_keys, trigger_state, events, runs, polls)}

