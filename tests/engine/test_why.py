"""The "why" view: for each reason an area did not fire (or did), the sentence a user
reads; the record of webhook deliveries it reads from; its bounds; the command."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.auth.session import Account
from engine.bus import AREA_STATE
from engine.catalog.service import Item
from engine.cli import main
from engine.deliveries import MAX_AREAS, PER_AREA, Deliveries, Delivery
from engine.errors import PermanentError, RateLimited, TransientError
from engine.registry import BUILTIN_MODULES, Registry
from engine.settings import Settings
from engine.storage.db import open_sync
from engine.storage.schema import trigger_state, utcnow
from engine.store import POLLS_PER_AREA
from engine.why import (
    OUTCOMES_PER_REACTION,
    POLL_EVENTS,
    REACTION_RUNS,
    SHOWN_CHECKS,
    every,
    render_text,
    sections,
    stamp,
    when_words,
)
from tests.engine import probe
from tests.engine.conftest import FAST, EngineFactory, fast, next_message, registry
from tests.engine.test_schedules import _closed_for_three_hours
from tests.engine.test_schedules import every as every_so_often

FEED = {
    "name": "Python blog",
    "trigger": {"service": "probe", "trigger": "items"},
    "interval": "10m",
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}
INTERVAL = 600.0


def items(*numbers: int) -> list[Item]:
    return [Item(f"k{n}", {"title": f"item {n}", "n": n}) for n in numbers]


async def feed(engine: Engine, **changes: Any) -> Area:
    """A polling area every 10 minutes whose next scheduled check is 10 minutes away:
    the test makes each check itself."""
    area = await engine.create_area(AreaSpec.from_dict({**FEED, **changes}))
    engine.scheduler.delay_poll(area.id, INTERVAL)
    return area


async def check(engine: Engine, area: Area) -> int:
    """One check, as the scheduled job makes it."""
    spec = engine.registry.trigger("probe", "items")
    fired = await engine.poller.poll(engine.area(area.id), spec, {}, INTERVAL)
    await engine.wait_idle()
    return fired


def next_check(engine: Engine, area: Area) -> str:
    due = engine.scheduler.next_fire(area.id)
    assert due is not None
    return when_words(due)


async def last_run_id(engine: Engine, area: Area) -> int:
    [run] = await engine.store.runs(area.id, limit=1)
    return int(run["id"])


# ---------------------------------------------------------------------- polling


async def test_not_due_yet_says_when_the_next_check_is_and_the_interval(
        engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.items = items(1)
    await check(engine, area)
    why = await engine.why(area.id)
    assert why.polling is not None
    assert why.polling.next_text == (f"Not due yet: the next check is "
                                     f"{next_check(engine, area)} (every 10 minutes).")
    assert why.polling.next_why == "interval"
    assert why.state.status == "active" and why.state.text == "On."


async def test_a_first_check_only_remembers_what_is_there(engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.items = items(1, 2)
    assert await check(engine, area) == 0
    why = await engine.why(area.id)
    assert why.polling is not None
    [first] = why.polling.checks
    assert (first.outcome, first.items, first.primed, first.new) == ("primed", 2, 2, 0)
    assert first.text == ("First check: remembered the 2 items already there without "
                          "firing them; items that appear after it fire.")
    assert why.answer == (
        f"Its first check {when_words(first.at)} remembered the 2 items already there "
        "without firing them; items that appear after it fire. It is waiting: the next "
        f"check is {next_check(engine, area)} (every 10 minutes).")


async def test_an_item_already_seen_says_when_the_last_new_one_fired(engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.items = items(1, 2)
    await check(engine, area)
    probe.controls.items = items(3, 1, 2)
    assert await check(engine, area) == 1
    run_id = await last_run_id(engine, area)
    assert await check(engine, area) == 0  # the same three items again
    why = await engine.why(area.id)
    assert why.polling is not None
    latest, found, _first = why.polling.checks
    assert (latest.outcome, latest.items, latest.seen, latest.new) == ("nothing new", 3, 3, 0)
    assert latest.text == "Nothing new: the 3 items it found had all been seen before."
    assert (found.new, found.seen) == (1, 2)
    assert found.text == f"1 new item of 3 (2 already seen): “item 3” fired: run #{run_id} " \
                         "succeeded."
    last_new = why.polling.last_new
    assert last_new is not None and (last_new.item, last_new.run_id) == ("item 3", run_id)
    assert why.answer == (
        f"It is waiting: the next check is {next_check(engine, area)} (every 10 minutes). "
        f"The last check {when_words(latest.at)} found nothing new; the 3 items it found had "
        f"all been seen before. The last new item, “item 3”, was found "
        f"{when_words(last_new.received_at)} and fired: run #{run_id} succeeded.")


async def test_an_item_the_condition_filtered_out_says_the_condition(engine: Engine) -> None:
    area = await feed(engine, condition="{{ trigger.n > 5 }}")
    await check(engine, area)  # primes over nothing
    probe.controls.items = items(1)
    assert await check(engine, area) == 1
    run_id = await last_run_id(engine, area)
    why = await engine.why(area.id)
    assert why.polling is not None
    latest = why.polling.checks[0]
    assert (latest.new, latest.filtered) == (1, 1)
    [fate] = latest.fates
    assert (fate.status, fate.condition, fate.passed) == ("skipped", "{{ trigger.n > 5 }}",
                                                          False)
    said = (f"“item 1” was filtered out: the condition “{{{{ trigger.n > 5 }}}}” was false, "
            f"so nothing ran (run #{run_id})")
    assert latest.text == f"1 new item: {said}."
    assert why.answer == (f"The last check {when_words(latest.at)} found 1 new item: {said}. "
                          f"It is waiting: the next check is {next_check(engine, area)} "
                          "(every 10 minutes).")
    assert probe.controls.received == []
    # the reaction never acted: it says so rather than listing the skipped run
    assert why.reactions[0].outcomes == []
    assert why.reactions[0].text == "Has not acted in the automation's latest run."


async def test_a_failed_check_says_its_error_and_the_next_try(engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.poll_error = PermanentError("https://feed.example/rss answered 404")
    await check(engine, area)
    why = await engine.why(area.id)
    assert why.polling is not None and why.polling.failing is not None
    assert why.polling.failing.failures == 1
    assert why.polling.checks[0].text == "Failed: https://feed.example/rss answered 404."
    assert why.answer == ("Its checks fail: https://feed.example/rss answered 404. The next "
                          f"try is {next_check(engine, area)} (every 10 minutes).")


async def test_a_check_backing_off_says_so(engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.poll_error = TransientError("cannot reach feed.example: connection refused")
    await check(engine, area)
    await check(engine, area)
    why = await engine.why(area.id)
    assert why.polling is not None
    assert why.polling.next_why == "backoff"
    next_try = next_check(engine, area)
    assert why.polling.next_text == (f"Backing off after 2 failed checks in a row: the next "
                                     f"check is {next_try} instead of every 10 minutes.")
    [second, first] = why.polling.checks
    assert second.text == ("Failed: cannot reach feed.example: connection refused. Next try "
                           f"{next_try} (backing off).")
    assert why.answer == (
        "Its checks fail: cannot reach feed.example: connection refused (2 checks in a row "
        f"since {when_words(first.at)}). {why.polling.next_text}")


async def test_a_check_the_service_asked_to_put_off_says_retry_after(engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.poll_error = RateLimited("feed.example answered 429", retry_after=1800)
    await check(engine, area)
    why = await engine.why(area.id)
    assert why.polling is not None
    due = engine.scheduler.next_fire(area.id)
    assert due is not None and timedelta(minutes=29) < due - utcnow() <= timedelta(minutes=30)
    assert why.polling.next_text == ("The service asked Hookline to wait (Retry-After): the "
                                     f"next check is {when_words(due)}.")


async def test_an_area_not_checked_yet_says_when_the_first_check_comes(
        engine: Engine) -> None:
    area = await feed(engine)
    why = await engine.why(area.id)
    assert why.answer == (f"Not checked yet: the next check is {next_check(engine, area)} "
                          "(every 10 minutes). The first check only remembers what is there; "
                          "items that appear after it fire.")


# ---------------------------------------------------------------------- the area's state


async def test_an_area_that_is_off_says_so_first(engine: Engine) -> None:
    area = await feed(engine)
    await engine.set_enabled(area.id, False)
    why = await engine.why(area.id)
    assert why.answer == "It is off: switch it on to let it fire."
    assert why.state.status == "off"
    assert why.polling is not None
    assert why.polling.next_text == "No check is due: it is off."
    assert why.polling.next_at is None


async def test_an_area_that_paused_itself_says_why(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        **FEED, "reactions": [{"service": "probe", "reaction": "fail"}]}))
    for _ in range(FAST["pause_after_failures"]):
        await engine.run_now(area.id, {"title": "x"})
        await engine.wait_idle()
    reason = engine.area(area.id).paused_reason
    assert reason is not None and reason.startswith("3 runs in a row failed")
    why = await engine.why(area.id)
    assert why.state.status == "paused" and why.state.paused_reason == reason
    assert why.answer == f"It is paused: {reason}. Switch it on again once that is fixed."
    [reaction] = why.reactions
    assert [o.text for o in reaction.outcomes] == [
        f"run #{n} failed: the far side said no" for n in (3, 2, 1)]


async def test_a_snoozed_area_says_until_when_and_what_its_checks_did(engine: Engine) -> None:
    area = await feed(engine)
    await check(engine, area)
    until = utcnow() + timedelta(hours=2)
    await engine.snooze(area.id, until, catch_up=False)
    probe.controls.items = items(1, 2)
    assert await check(engine, area) == 0
    why = await engine.why(area.id)
    assert why.state.status == "snoozed" and why.state.next_change == until
    assert why.answer == (f"It is snoozed until {when_words(until)}: what comes meanwhile is "
                          "remembered or recorded, and does not fire.")
    assert why.polling is not None
    assert why.polling.checks[0].text == ("Nothing fired: it was snoozed; new items among "
                                          "the 2 items it found are remembered as seen.")
    await engine.wake(area.id)
    why = await engine.why(area.id)
    assert why.answer == (f"It is waiting: the next check is {next_check(engine, area)} "
                          f"(every 10 minutes). The last check {when_words(why.at)}: nothing "
                          "fired: it was snoozed; new items among the 2 items it found are "
                          "remembered as seen.")


async def test_an_area_outside_its_active_window_says_when_it_opens(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        **HOOK, "active_from": (utcnow() + timedelta(hours=1)).isoformat()}))
    url = await engine.webhook_url(area.id)
    assert url is not None
    assert await post(url, b'{"title": "early"}') == 202
    await engine.wait_idle()
    run_id = await last_run_id(engine, area)
    why = await engine.why(area.id)
    opens = why.state.next_change
    assert why.state.status == "waiting" and opens is not None
    assert why.answer == (f"It is waiting for its active window; it opens {when_words(opens)}"
                          ": it does not fire meanwhile.")
    assert why.webhook is not None
    assert why.webhook.deliveries[0].text == ("Accepted; it was not run: the area is waiting "
                                              f"for its window (run #{run_id}).")


async def test_an_area_whose_window_ended_is_done(engine: Engine) -> None:
    now = utcnow()
    done = next_message(engine, AREA_STATE, lambda m: m.data["to"] == "done")
    area = await engine.create_area(AreaSpec.from_dict({
        **HOOK, "active_until": (now + timedelta(seconds=0.3)).isoformat()}))
    await done
    why = await engine.why(area.id)
    assert why.state.status == "done"
    assert why.answer == "It is done: its active window ended; nothing fires it any more."


@pytest.fixture
async def accounts_engine(data_dir: Path, database: str) -> AsyncIterator[Engine]:
    """An engine whose catalog has a service that acts as an account."""
    catalog = Registry.load(modules=(*BUILTIN_MODULES, "tests.engine.probe",
                                     "tests.engine.account_probe"), plugins=False)
    engine = Engine(data_dir, settings=fast(database), registry=catalog)
    await engine.start()
    yield engine
    await engine.aclose()


async def test_an_area_whose_account_must_be_reconnected_says_which(
        accounts_engine: Engine) -> None:
    engine = accounts_engine
    account = await engine.accounts.store.save(
        Account("acct-1", "acme", "oauth2", "marta", ["read"]))
    area = await feed(engine, reactions=[{"service": "acme", "reaction": "call",
                                          "account": "marta",
                                          "params": {"url": "https://acme.example/me"}}])
    assert (await engine.why(area.id)).state.accounts == []
    await engine.accounts.mark_needs_reconnect(account, "the token was revoked")
    why = await engine.why(area.id)
    assert why.state.accounts == ["the Acme account “marta” must be reconnected (Accounts → "
                                  "Reconnect); it said: the token was revoked"]
    assert why.answer == ("It needs an account: the Acme account “marta” must be reconnected "
                          "(Accounts → Reconnect); it said: the token was revoked.")
    await engine.accounts.store.delete("acct-1")
    why = await engine.why(area.id)
    assert why.answer == ("It needs an account: the Acme account it acted as was removed: "
                          "choose another in the automation's editor.")


# ---------------------------------------------------------------------- schedules


async def test_missed_times_skipped_say_so_with_the_policy(make_engine: EngineFactory) -> None:
    engine, area_id = await _closed_for_three_hours(make_engine, "skip")
    [run] = await engine.store.runs(area_id)
    why = await engine.why(area_id)
    assert why.timing is not None
    [miss] = why.timing.misses
    assert (miss.missed, miss.policy, miss.run_id) == (3, "skip", run["id"])
    started = when_words(run["started_at"])
    assert miss.text == (f"{started[0].upper()}{started[1:]}, 3 scheduled times had been "
                         "missed (Hookline was not running or the computer slept); catch-up "
                         f"is “skip”, so nothing ran for them (run #{run['id']}).")
    first, second, third = why.timing.next_times
    assert second - first == third - second == timedelta(hours=1)
    assert why.timing.next_text == (
        f"Not due yet: the next run is {when_words(first)} (every hour). Then "
        f"{when_words(second).removeprefix('at ')}, {when_words(third).removeprefix('at ')}.")
    assert why.answer == (f"It is waiting: the next run is {when_words(first)} (every hour). "
                          f"{miss.text}")
    assert why.timing.policy_text.startswith("Catch-up is “skip”: times missed")


async def test_a_last_run_that_failed_or_was_filtered_out_comes_first(
        engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Hourly", "condition": "{{ trigger.missed == 0 }}",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "probe", "reaction": "fail"}]}))
    await engine.run_now(area.id, {"missed": 0})
    await engine.wait_idle()
    failed = await last_run_id(engine, area)
    why = await engine.why(area.id)
    assert why.timing is not None
    waiting = f"It is waiting: the next run is {when_words(why.timing.next_times[0])} " \
              "(every hour)."
    [run] = await engine.store.runs(area.id)
    assert why.answer == (f"Its last run, #{failed} {when_words(run['started_at'])}, failed: "
                          "Reaction 1 (Fail): the far side said no. " + waiting)
    await engine.run_now(area.id, {"missed": 2})
    await engine.wait_idle()
    [run, _failed] = await engine.store.runs(area.id)
    why = await engine.why(area.id)
    assert why.answer == (f"Its last run, #{run['id']} {when_words(run['started_at'])}, was "
                          "filtered out: the condition “{{ trigger.missed == 0 }}” was false. "
                          + waiting)


async def test_missed_times_caught_up_say_which_run_caught_up(
        make_engine: EngineFactory) -> None:
    engine, area_id = await _closed_for_three_hours(make_engine, "once")
    await engine.wait_idle()
    [run] = await engine.store.runs(area_id)
    why = await engine.why(area_id)
    assert why.timing is not None
    [miss] = why.timing.misses
    started = when_words(run["started_at"])
    assert miss.text == (f"{started[0].upper()}{started[1:]}, 3 scheduled times had been "
                         "missed; catch-up is “once”, so it ran once to catch up: "
                         f"run #{run['id']} succeeded.")
    assert why.timing.policy_text.startswith("Catch-up is “once”")


async def test_while_hookline_is_closed_the_times_passed_are_counted_with_the_policy(
        make_engine: EngineFactory, data_dir: Path, database: str) -> None:
    engine = await make_engine()
    area = await engine.create_area(every_so_often("1h"))
    await engine.aclose()
    sync = open_sync(engine.url)
    with sync.begin() as conn:
        conn.execute(trigger_state.insert().values(
            area_id=area.id, state={}, primed=True,
            last_fired_at=utcnow() - timedelta(hours=2, minutes=1)))
    sync.dispose()
    offline = Engine(data_dir, settings=fast(database), registry=registry(),
                     offline=True)
    await offline.start()
    try:
        why = await offline.why(area.id)
    finally:
        await offline.aclose()
    assert not why.running and why.state.status == "active"
    assert why.answer == "Hookline is not running: nothing fires until it starts."
    assert why.timing is not None and why.timing.waiting_misses == 2
    assert why.timing.next_text == (
        "No run until Hookline runs. 2 scheduled times passed since its last run; when "
        "Hookline starts, they are recorded as missed and nothing runs for them (catch-up "
        "“skip”).")


# ---------------------------------------------------------------------- webhooks


HOOK = {"name": "Hook to record", "trigger": {"service": "probe", "trigger": "hook"},
        "reactions": [{"service": "probe", "reaction": "record",
                       "params": {"text": "got {{ trigger.title }}"}}]}


async def post(url: str, body: bytes, method: str = "POST",
               headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.request(
            method, url, data=body, headers={"Content-Type": "application/json",
                                             **(headers or {})}) as resp:
        return resp.status


async def test_webhook_deliveries_refused_ones_too_without_their_bodies(
        engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(HOOK))
    url = await engine.webhook_url(area.id)
    assert url is not None
    why = await engine.why(area.id)
    assert why.webhook is not None and why.webhook.deliveries == []
    assert why.answer == ("It is waiting for a delivery: none has arrived since Hookline "
                          f"started {when_words(why.webhook.since)}.")

    assert await post(url, b'{"title": "hello"}', headers={"X-Delivery": "d-1"}) == 202
    await engine.wait_idle()
    run_id = await last_run_id(engine, area)
    assert await post(url, b'{"title": "hello"}', headers={"X-Delivery": "d-1"}) == 202
    assert await post(url, b"", method="GET") == 405
    assert await post(url, b'{"title": "s3cret-in-the-body", ') == 400
    assert await post(url + "-no-such-area", b'{"title": "x"}') == 404
    await engine.set_enabled(area.id, False)
    assert await post(url, b'{"title": "s3cret-in-the-body"}') == 409

    why = await engine.why(area.id)
    assert why.webhook is not None
    assert [(d.status, d.text) for d in why.webhook.deliveries] == [
        (409, "Refused (409): the area is off (turned off); turn it on in Hookline, then "
              "send again."),
        (400, "Refused (400): body is not valid JSON: Expecting property name enclosed in "
              "double quotes at line 1 column 33."),
        (405, "Refused (405): use POST to deliver to this webhook."),
        (202, "Accepted as a repeat of a delivery already received (the same delivery id): "
              "not run again."),
        (202, f"Accepted; it fired: run #{run_id} succeeded."),
    ]  # the request to an address no area has is nobody's
    assert why.webhook.note.startswith("Deliveries since Hookline started ")
    assert "no body or header is kept" in why.webhook.note
    assert "s3cret" not in json.dumps(why.to_dict()) and "s3cret" not in render_text(why)
    # off: the state comes first; on again, the last refusal is the answer
    assert why.answer == "It is off: switch it on to let it fire."
    await engine.set_enabled(area.id, True)
    why = await engine.why(area.id)
    last = why.webhook.deliveries[0] if why.webhook else None
    assert last is not None
    assert why.answer == (f"The last delivery, {when_words(last.at, seconds=True)}, was "
                          "refused (409): the area is off (turned off); turn it on in "
                          "Hookline, then send again.")


def test_the_record_of_deliveries_keeps_the_newest_of_each_area() -> None:
    record = Deliveries()
    at = datetime(2026, 12, 3, 9, 12, tzinfo=UTC)
    for n in range(PER_AREA + 5):
        record.add("a", Delivery(at + timedelta(seconds=n), 202, events=(n,)))
    kept = record.of("a")
    assert [d.events[0] for d in kept] == list(range(PER_AREA + 4, 4, -1))
    assert record.of("nobody") == []
    # the areas sent to last are kept; a removed area's record goes in time
    for n in range(MAX_AREAS):
        record.add(f"area-{n}", Delivery(at, 400, "bad"))
    assert record.of("a") == [] and len(record.of("area-0")) == 1
    record.add("area-0", Delivery(at, 409, "off"))  # sent to again: the newest now
    record.add("one more", Delivery(at, 202))
    assert len(record.of("area-0")) == 2 and record.of("area-1") == []


# ---------------------------------------------------------------------- bounds


async def test_the_checks_are_bounded_and_the_text_shows_the_newest(engine: Engine) -> None:
    area = await feed(engine)
    await check(engine, area)
    probe.controls.items = items(1)
    assert await check(engine, area) == 1
    run_id = await last_run_id(engine, area)
    for _ in range(POLLS_PER_AREA + 5):
        await check(engine, area)
    why = await engine.why(area.id)
    assert why.polling is not None and len(why.polling.checks) == POLLS_PER_AREA
    assert all(c.outcome == "nothing new" for c in why.polling.checks)
    # the item that fired before the checks kept is still the last new one
    assert why.polling.last_new is not None and why.polling.last_new.run_id == run_id
    assert why.answer.endswith(f"The last new item, “item 1”, was found "
                               f"{when_words(why.polling.last_new.received_at)} and fired: "
                               f"run #{run_id} succeeded.")
    [part] = [s for s in sections(why) if s.heading == "Checks"]
    assert len(part.entries) == SHOWN_CHECKS
    assert part.note == (f"The newest {SHOWN_CHECKS} of the {POLLS_PER_AREA} checks kept "
                         f"(Hookline keeps the last {POLLS_PER_AREA}).")


async def test_a_check_with_more_new_items_than_are_read_names_a_few_and_counts_the_rest(
        engine: Engine) -> None:
    area = await feed(engine)
    await check(engine, area)
    probe.controls.items = items(*range(POLL_EVENTS + 1))
    assert await check(engine, area) == POLL_EVENTS + 1
    why = await engine.why(area.id)
    assert why.polling is not None
    latest = why.polling.checks[0]
    assert latest.new == POLL_EVENTS + 1 and len(latest.fates) == POLL_EVENTS
    assert latest.text.endswith(f"; and {POLL_EVENTS + 1 - 5} more.")


async def test_each_reaction_lists_its_last_outcomes(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict(FEED))
    probe.controls.fail_times = 3  # the first run fails after its three attempts
    for n in range(OUTCOMES_PER_REACTION + 1):
        await engine.run_now(area.id, {"title": f"t{n}"})
        await engine.wait_idle()
    why = await engine.why(area.id)
    [reaction] = why.reactions
    assert reaction.label == "Probe: Record"
    runs = [r["id"] for r in await engine.store.runs(area.id)]
    assert [o.run_id for o in reaction.outcomes] == runs[:OUTCOMES_PER_REACTION]
    assert reaction.outcomes[0].text == f"run #{runs[0]} succeeded"
    first = (await engine.store.runs(area.id))[-1]
    assert first["status"] == "failed"


async def test_a_reaction_reads_the_latest_runs_only(engine: Engine) -> None:
    area = await engine.create_area(AreaSpec.from_dict({
        **FEED, "condition": "{{ trigger.n == 1 }}"}))
    await engine.run_now(area.id, {"title": "acted", "n": 1})
    for _ in range(REACTION_RUNS):
        await engine.run_now(area.id, {"title": "filtered", "n": 2})
    await engine.wait_idle()
    why = await engine.why(area.id)
    [reaction] = why.reactions
    assert reaction.outcomes == []
    assert reaction.text == f"Has not acted in the automation's latest {REACTION_RUNS} runs."


async def test_an_area_whose_service_is_gone_says_so(engine: Engine) -> None:
    area = await feed(engine)
    engine.registry.services.pop("probe")  # its plugin was uninstalled
    why = await engine.why(area.id)
    assert why.kind == "unknown" and why.polling is None
    assert why.answer == ("Its trigger (probe.items) is not available: its service is not "
                          "installed, so nothing fires it.")
    assert why.reactions[0].label == "probe.record (its service is not installed)"


# ---------------------------------------------------------------------- words and output


@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_said_in_local_time(paris: None) -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # 13:00 in Paris
    assert when_words(datetime(2026, 12, 3, 13, 5, tzinfo=UTC), now) == "at 14:05"
    assert when_words(datetime(2026, 12, 4, 8, 0, tzinfo=UTC), now) == "tomorrow at 09:00"
    assert when_words(datetime(2026, 12, 2, 17, 30, tzinfo=UTC), now) == "yesterday at 18:30"
    assert when_words(datetime(2026, 11, 28, 8, 12, tzinfo=UTC), now) == "on 28 Nov at 09:12"
    assert when_words(datetime(2025, 12, 3, 8, 12, tzinfo=UTC), now) == \
        "on 3 Dec 2025 at 09:12"
    assert when_words(datetime(2026, 12, 3, 13, 5, 9, tzinfo=UTC), now, seconds=True) == \
        "at 14:05:09"
    assert stamp(datetime(2026, 12, 3, 13, 5, 9, tzinfo=UTC), now) == "14:05:09"
    assert stamp(datetime(2026, 11, 28, 8, 12, 0, tzinfo=UTC), now) == "28 Nov 09:12:00"
    assert [every(s) for s in (600, 3600, 30, 5400, 86400)] == [
        "every 10 minutes", "every hour", "every 30 seconds", "every 1 hour 30 minutes",
        "every day"]


async def test_the_view_is_json_and_text_with_the_answer_first(engine: Engine) -> None:
    area = await feed(engine)
    probe.controls.items = items(1)
    await check(engine, area)
    why = await engine.why(area.id)
    data = json.loads(json.dumps(why.to_dict()))
    assert data["answer"] == why.answer and data["kind"] == "poll"
    assert data["polling"]["checks"][0]["outcome"] == "primed"
    assert datetime.fromisoformat(data["at"]) == why.at
    text = render_text(why)
    assert " ".join(text.split("\n\n")[0].split()) == why.answer
    lines = text.splitlines()
    headings = [line for line, under in itertools.pairwise(lines)
                if under and set(under) == {"-"}]
    assert headings == ["State", "Checks", "Reaction 1 (Probe: Record)"]


# ---------------------------------------------------------------------- the command


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_command_without_a_running_engine_says_it_is_not_running(
        data_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = registry()
    monkeypatch.setattr(Registry, "load", classmethod(lambda cls, *a, **k: catalog))

    async def make() -> None:
        engine = Engine(data_dir, settings=Settings.from_mapping(FAST), registry=registry())
        await engine.start()
        try:
            await feed(engine)
        finally:
            await engine.aclose()

    asyncio.run(make())
    code, out, _ = run(capsys, "areas", "why", "Python blog")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Hookline is not running: nothing fires until it starts."
    assert "State" in lines and "Checks" in lines
    code, out, _ = run(capsys, "areas", "why", "Python blog", "--json")
    data = json.loads(out)
    assert (data["name"], data["running"], data["state"]["status"]) == (
        "Python blog", False, "active")
    code, _, err = run(capsys, "areas", "why", "Pyhton blog")
    assert code == 2 and "Python blog" in err  # did you mean


@pytest.fixture
def running_engine(data_dir: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> Iterator[tuple[Engine, asyncio.AbstractEventLoop]]:
    """An engine on a loop of its own (a thread), as `hookline serve` in another process."""
    catalog = registry()
    monkeypatch.setattr(Registry, "load", classmethod(lambda cls, *a, **k: catalog))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    engine = Engine(data_dir, settings=Settings.from_mapping(FAST), registry=registry())
    asyncio.run_coroutine_threadsafe(engine.start(), loop).result(30)
    yield engine, loop
    asyncio.run_coroutine_threadsafe(engine.aclose(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_the_command_asks_the_running_engine(
        running_engine: tuple[Engine, asyncio.AbstractEventLoop],
        capsys: pytest.CaptureFixture[str]) -> None:
    engine, loop = running_engine

    async def setup() -> str:
        area = await feed(engine)
        probe.controls.poll_error = TransientError("cannot reach feed.example")
        await check(engine, area)
        return when_words(engine.scheduler.next_fire(area.id) or utcnow())

    next_try = asyncio.run_coroutine_threadsafe(setup(), loop).result(30)
    code, out, _ = run(capsys, "areas", "why", "Python blog")
    assert code == 0
    # the failure streak and the next try live in the running engine: they are said
    answer = " ".join(out.split("\n\n")[0].split())
    assert answer == ("Its checks fail: cannot reach feed.example. Backing off after 1 failed "
                      f"check in a row: the next check is {next_try} instead of every 10 "
                      "minutes.")
    code, out, _ = run(capsys, "areas", "why", "Python blog", "--json")
    data = json.loads(out)
    assert data["running"] is True and data["polling"]["next_why"] == "backoff"
    assert data["polling"]["failing"]["first_error"] == "cannot reach feed.example"
