"""The check history of polling triggers: one row per check, with its outcome, its
error and when the next check is due (and why then); saved with what the check found;
bounded per area; no secrets in it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text

from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.catalog.service import Item
from engine.errors import PermanentError, RateLimited, TransientError
from engine.storage.db import alembic_config, head_revision, migrate_sync, open_sync
from engine.storage.schema import events, utcnow
from engine.store import POLLS_PER_AREA
from tests.engine import probe
from tests.engine.conftest import refusing_inserts

AREA = {
    "name": "Python blog",
    "trigger": {"service": "probe", "trigger": "items"},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.title }}"}}],
}
INTERVAL = 60.0


def items(*numbers: int) -> list[Item]:
    return [Item(f"k{n}", {"title": f"item {n}", "n": n}) for n in numbers]


async def create(engine: Engine, name: str = "Python blog") -> Area:
    """A polling area whose scheduled checks wait an hour: the test makes each check."""
    area = await engine.create_area(AreaSpec.from_dict({**AREA, "name": name}))
    engine.scheduler.delay_poll(area.id, 3600)
    return area


async def poll(engine: Engine, area_id: str) -> int:
    area = engine.area(area_id)
    spec = engine.registry.trigger("probe", "items")
    return await engine.poller.poll(area, spec, area.spec.trigger.params, INTERVAL)


def about(when: datetime | None, seconds: float, start: datetime) -> bool:
    """``when`` is ``seconds`` after ``start`` (give or take the test's own time)."""
    assert when is not None
    return start + timedelta(seconds=seconds - 1) <= when <= utcnow() + timedelta(
        seconds=seconds + 1)


async def test_a_failing_then_recovering_trigger_leaves_each_check_with_its_reason_and_next_try(
        engine: Engine) -> None:
    probe.controls.items = items(1, 2)
    area = await create(engine)
    await poll(engine, area.id)
    await poll(engine, area.id)

    start = utcnow()
    probe.controls.poll_error = TransientError("cannot reach https://feed.example/rss: "
                                               "connection refused")
    await poll(engine, area.id)
    failing = await engine.failing_checks()
    probe.controls.poll_error = RateLimited("https://feed.example/rss answered 429",
                                            retry_after=300)
    await poll(engine, area.id)
    still = await engine.failing_checks()
    probe.controls.poll_error = None
    probe.controls.items = items(3, 1, 2)
    assert await poll(engine, area.id) == 1

    checks = await engine.checks(area.id)
    assert [(c["outcome"], c["items"], c["new"], c["error"], c["next_why"])
            for c in reversed(checks)] == [
        ("primed", 2, 0, None, "interval"),
        ("nothing new", 2, 0, None, "interval"),
        ("failed", 0, 0, "cannot reach https://feed.example/rss: connection refused",
         "backoff"),
        ("failed", 0, 0, "https://feed.example/rss answered 429", "retry-after"),
        ("new", 3, 1, None, "interval"),
    ]
    backoff, retry_after = checks[2], checks[1]
    assert about(backoff["next_at"], 2 * INTERVAL, start)  # doubled after one failure
    assert about(retry_after["next_at"], 300, start)  # as the service asked
    assert all(c["seconds"] >= 0 and c["at"] >= checks[-1]["at"] for c in checks)
    assert checks[0]["next_at"] == engine.scheduler.next_fire(area.id)

    [first] = failing
    assert (first["area_id"], first["name"], first["failures"], first["next_why"]) == (
        area.id, "Python blog", 1, "backoff")
    assert first["error"] == "cannot reach https://feed.example/rss: connection refused"
    assert first["since"] == backoff["at"]
    assert about(first["next_at"], 2 * INTERVAL, start)
    [second] = still
    assert (second["failures"], second["next_why"], second["error"], second["last_error"]) == (
        2, "retry-after", first["error"], "https://feed.example/rss answered 429")
    assert about(second["next_at"], 300, start)
    assert await engine.failing_checks() == []


async def test_a_permanent_failure_is_tried_again_at_the_interval(engine: Engine) -> None:
    area = await create(engine)
    probe.controls.poll_error = PermanentError("https://feed.example/rss answered 404")
    await poll(engine, area.id)
    [check] = await engine.checks(area.id)
    assert (check["outcome"], check["next_why"]) == ("failed", "interval")
    assert check["next_at"] == engine.scheduler.next_fire(area.id)
    [failing] = await engine.failing_checks()
    assert failing["next_at"] == check["next_at"]


async def test_no_token_or_password_of_a_url_is_kept_in_the_history(engine: Engine) -> None:
    area = await create(engine)
    probe.controls.poll_error = PermanentError(
        "https://me:hunter2@feed.example/rss?token=s3cret answered 404")
    await poll(engine, area.id)
    [check] = await engine.checks(area.id)
    assert check["error"] == "https://…@feed.example/rss?… answered 404"
    [failing] = await engine.failing_checks()
    assert "s3cret" not in str(failing) and "hunter2" not in str(failing)


async def test_a_check_that_found_new_items_is_saved_with_its_events_or_not_at_all(
        engine: Engine) -> None:
    area = await create(engine)
    await poll(engine, area.id)  # primes over nothing
    probe.controls.items = items(1, 2)
    # The database refuses the events: the check is no "new" one, and its items come again.
    with refusing_inserts(engine.url, "events"):
        assert await poll(engine, area.id) == 0
        assert [c["outcome"] for c in await engine.checks(area.id)] == ["failed", "primed"]
    # The database refuses the check's row: its events are not saved either.
    with refusing_inserts(engine.url, "polls", "NEW.outcome = 'new'"):
        assert await poll(engine, area.id) == 0
        async with engine.db.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(events)) == 0
    assert await poll(engine, area.id) == 2  # nothing was lost
    await engine.wait_idle()
    assert sorted(r["text"] for r in probe.controls.received) == ["item 1", "item 2"]
    outcomes = [(c["outcome"], c["new"]) for c in await engine.checks(area.id)]
    assert outcomes == [("new", 2), ("failed", 0), ("failed", 0), ("primed", 0)]


async def test_the_history_keeps_the_newest_checks_of_each_area(engine: Engine) -> None:
    area = await create(engine)
    other = await create(engine, "Other")
    for _ in range(POLLS_PER_AREA + 5):
        await poll(engine, area.id)
    await poll(engine, other.id)
    before = await engine.checks(area.id, limit=100)
    assert len(before) == POLLS_PER_AREA + 5
    await engine.store.prune(14, 90, 1000)
    after = await engine.checks(area.id, limit=100)
    assert [c["id"] for c in after] == [c["id"] for c in before[:POLLS_PER_AREA]]
    assert len(await engine.checks(other.id)) == 1


async def test_removing_an_area_removes_its_history(engine: Engine) -> None:
    area = await create(engine)
    await poll(engine, area.id)
    await engine.remove_area(area.id)
    assert await engine.store.checks(area.id) == []


def test_a_database_at_0002_gets_the_check_history(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hookline.db'}"
    command.upgrade(alembic_config(url), "0002")
    now = datetime(2026, 12, 1, 12, 0)
    db = open_sync(url)
    try:
        with db.begin() as conn:
            conn.execute(text(
                "INSERT INTO areas (id, name, enabled, \"trigger\", reactions, catch_up, "
                "failure_streak, created_at, updated_at) VALUES ('a1', 'Feed', 1, '{}', "
                "'[]', 'skip', 0, :now, :now)"), {"now": now})
    finally:
        db.dispose()
    migrate_sync(url)
    db = open_sync(url)
    try:
        with db.begin() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == \
                head_revision()
            conn.execute(text(
                "INSERT INTO polls (area_id, at, seconds, outcome, items, new, error) "
                "VALUES ('a1', :now, 0.5, 'failed', 0, 0, 'answered 404')"), {"now": now})
            rows = conn.execute(text("SELECT area_id, outcome FROM polls")).all()
            assert [tuple(r) for r in rows] == [("a1", "failed")]
            conn.execute(text("DELETE FROM areas WHERE id = 'a1'"))  # the history goes too
            assert conn.execute(text("SELECT count(*) FROM polls")).scalar() == 0
    finally:
        db.dispose()


@pytest.mark.parametrize("url", ["http://[::1", "https://x.example/a?b=c."])
def test_text_that_only_looks_like_a_url_is_redacted_not_refused(url: str) -> None:
    from engine.text import scrub_urls

    assert "b=c" not in scrub_urls(f"failed at {url} today")
