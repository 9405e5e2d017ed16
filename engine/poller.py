"""Polling: ask a service for its items, fire the unseen ones, remember them with
the events in one transaction; back off on failure and say so once per streak. Each
check is kept in the area's check history (``polls``), a successful one in the same
transaction as what it found."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from engine import bus as topics
from engine.areas import Area
from engine.bus import Bus
from engine.catalog.context import PollContext
from engine.catalog.service import Item, TriggerSpec
from engine.errors import HooklineError, PermanentError, RateLimited, TransientError
from engine.http import HttpClient
from engine.journal import Journal, Journaled, NewEvent
from engine.lifecycle import ACTIVE
from engine.settings import Settings
from engine.storage.db import fitting, storable_text
from engine.storage.schema import seen_keys, utcnow
from engine.storage.writer import Statement
from engine.store import Store
from engine.text import scrub_urls

log = logging.getLogger(__name__)

POLL_TIMEOUT = 120.0
MAX_BACKOFF = 3600.0
#: Why the next check is when it is (``polls.next_why``).
INTERVAL, BACKOFF, RETRY_AFTER = "interval", "backoff", "retry-after"
#: A check's error is kept in its history up to this many characters.
MAX_ERROR = 1000


@dataclass
class Streak:
    """An area's checks failing in a row (kept in memory, like the trigger's health).

    Attributes:
        failures: how many checks in a row failed.
        first_error: the first one's reason (what the user is told once).
        last_error: the latest one's reason.
        since: when the first one was made.
        next_why: why the next check is when it is (interval, backoff, retry-after).
    """

    failures: int = 0
    first_error: str = ""
    last_error: str = ""
    since: datetime | None = None
    next_why: str = INTERVAL


class Poller:
    """Runs the polls of every polling area.

    Args:
        delay: puts an area's next check off by some seconds (backoff, Retry-After).
        next_due: when an area's next check is due (None: none is scheduled).
        soon: moves an area's next check to now (False: it has no schedule).
    """

    def __init__(self, store: Store, journal: Journal, http: HttpClient, settings: Settings,
                 bus: Bus, dispatch: Callable[[list[Journaled]], None],
                 delay: Callable[[str, float], None],
                 next_due: Callable[[str], datetime | None],
                 soon: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.journal = journal
        self.http = http
        self.settings = settings
        self.bus = bus
        self._dispatch = dispatch
        self._delay = delay
        self._next_due = next_due
        self._soon = soon
        self._streaks: dict[str, Streak] = {}
        self._running: set[str] = set()
        self._again: set[str] = set()  # asked for another check while one ran

    async def poll(self, area: Area, spec: TriggerSpec, params: Mapping[str, Any],
                   interval: float) -> int:
        """One poll of ``area`` (and more, while its trigger asks for them with
        ``check_soon``); returns how many events it fired."""
        assert spec.poll is not None
        if area.id in self._running:
            return 0
        self._running.add(area.id)
        fired = 0
        try:
            while True:
                self._again.discard(area.id)
                fired += await self._poll(area, spec, params, interval)
                if area.id not in self._again or self.failing(area.id) is not None:
                    return fired
                await asyncio.sleep(0)  # let what the trigger waits on come in
        finally:
            self._running.discard(area.id)
            self._again.discard(area.id)

    def check_soon(self, area_id: str) -> None:
        """Check ``area_id`` again as soon as possible: right after the check under way
        (within the same scheduled job, so that it is not skipped as one too many), or
        now when none runs."""
        if area_id in self._running:
            self._again.add(area_id)
        elif self._soon is not None:
            self._soon(area_id)

    async def _poll(self, area: Area, spec: TriggerSpec, params: Mapping[str, Any],
                    interval: float) -> int:
        assert spec.poll is not None
        row = await self.store.trigger_state(area.id)
        state: dict[str, Any] = dict(row["state"]) if row else {}
        primed = bool(row and row["primed"])
        ctx = PollContext(area.id, params, self.http, self.settings,
                          logging.LoggerAdapter(log, {"area_id": area.id}), state,
                          check_soon=functools.partial(self.check_soon, area.id))
        at, started = utcnow(), time.monotonic()
        try:
            result = await asyncio.wait_for(spec.poll(ctx), POLL_TIMEOUT)
        except (HooklineError, TimeoutError) as exc:
            await self._failed(area, exc, interval, at, started)
            return 0
        except Exception as exc:
            log.exception("poll of %s crashed", spec.qualified)
            await self._failed(area, _internal(spec.qualified, exc), interval, at, started)
            return 0
        if result.not_modified and primed:
            self._recovered(area)
            await self._write_record(area, self._record(area, at, started, "not modified"))
            return 0
        items = _unique(result.items)
        keys = [i.key for i in items if i.key is not None]
        aliases = [a for i in items if i.key is not None for a in i.aliases]
        try:
            seen = await self._seen(area.id, keys + aliases)
            fresh = [i for i in items if i.key is not None and i.key not in seen
                     and seen.isdisjoint(i.aliases)]
            # snoozed (or waiting for its window): what is new is remembered, not fired
            quiet = area.state != ACTIVE
            new_events = ([NewEvent(area.id, "poll", dict(i.data)) for i in oldest_first(fresh)]
                          if primed and not quiet else [])
            outcome = ("new" if new_events else "primed" if not primed
                       else area.state if quiet and fresh else "nothing new")
            record = self._record(area, at, started, outcome, items=len(items),
                                  new=len(new_events))
            journaled = await self.journal.append(
                new_events, [*self.journal.poll_statements(area.id, keys, state), record])
        except HooklineError as exc:  # a full disk: this poll's items come again next time
            await self._failed(area, exc, interval, at, started)
            return 0
        except Exception as exc:
            log.exception("saving what the trigger of %s found failed", spec.qualified)
            await self._failed(area, _internal(spec.qualified, exc), interval, at, started)
            return 0
        self._recovered(area)
        log.debug("polled %s in %.2fs: %d items, %d new, primed=%s", area.id,
                  time.monotonic() - started, len(items), len(fresh), primed)
        self._dispatch(journaled)
        return len(journaled)

    def _record(self, area: Area, at: datetime, started: float, outcome: str, *,
                items: int = 0, new: int = 0, error: str | None = None,
                why: str = INTERVAL) -> Statement:
        """This check's row in the area's history; the next check's time is read from
        the scheduler (after any delay this check asked for)."""
        next_at = self._next_due(area.id)
        return self.journal.poll_record_statement(
            area.id, at=at, seconds=time.monotonic() - started, outcome=outcome, items=items,
            new=new, error=error[:MAX_ERROR] if error is not None else None,
            next_at=next_at, next_why=why if next_at is not None else None)

    async def _write_record(self, area: Area, record: Statement) -> None:
        """A check with nothing else to save (a failure, "not modified"): its own write.
        Losing it (a full disk, the engine stopping) loses only a line of history."""
        try:
            await self.journal.writer.write([record])
        except HooklineError as exc:
            log.debug("the check of %r was not added to its history: %s", area.name, exc)

    async def _seen(self, area_id: str, keys: list[str]) -> set[str]:
        found: set[str] = set()
        async with self.store.db.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = await conn.execute(select(seen_keys.c.key).where(
                    seen_keys.c.area_id == area_id, seen_keys.c.key.in_(chunk)))
                found.update(r[0] for r in rows)
        return found

    async def _failed(self, area: Area, exc: BaseException, interval: float,
                      at: datetime, started: float) -> None:
        streak = self._streaks.setdefault(area.id, Streak())
        streak.failures += 1
        message = storable_text(scrub_urls(str(exc) or type(exc).__name__)) or ""
        if isinstance(exc, TimeoutError):
            message = f"the service did not answer within {POLL_TIMEOUT:g} s"
        streak.last_error = message
        if streak.failures == 1:
            streak.first_error = message
            streak.since = at
            log.warning("area %r: checking its trigger failed: %s", area.name, message)
            self.bus.publish(topics.POLL_FAILING, area_id=area.id, error=message)
        else:
            log.debug("area %r still failing (%d): %s", area.name, streak.failures, message)
        why = INTERVAL
        if isinstance(exc, RateLimited) and exc.retry_after:
            self._delay(area.id, min(exc.retry_after, MAX_BACKOFF))
            why = RETRY_AFTER
        elif isinstance(exc, TransientError | TimeoutError):
            self._delay(area.id, min(interval * 2 ** min(streak.failures, 10), MAX_BACKOFF))
            why = BACKOFF
        streak.next_why = why
        await self._write_record(area, self._record(area, at, started, "failed",
                                                    error=message, why=why))

    def _recovered(self, area: Area) -> None:
        streak = self._streaks.pop(area.id, None)
        if streak and streak.failures:
            log.info("area %r recovered after %d failed checks", area.name, streak.failures)
            self.bus.publish(topics.POLL_RECOVERED, area_id=area.id)

    def failing(self, area_id: str) -> str | None:
        streak = self._streaks.get(area_id)
        return streak.first_error if streak and streak.failures else None

    def streaks(self) -> dict[str, Streak]:
        """The areas whose checks fail now, with their streaks (copies)."""
        return {area_id: replace(streak) for area_id, streak in self._streaks.items()
                if streak.failures}

    def forget(self, area_id: str) -> None:
        self._streaks.pop(area_id, None)


def oldest_first(items: list[Item]) -> list[Item]:
    """New items in the order they fire: by their own time where every one has one,
    else the source's order reversed (feeds and APIs list newest first).

    Among equal times the listing's own direction decides: a listing that runs newest
    first (its first item is not older than its last, as most feeds and APIs list, and
    as a listing of equal times is taken to be) fires them in reverse listing order, one
    that runs oldest first in listing order."""
    if items and all(i.at is not None for i in items):
        if _utc(items[0].at) >= _utc(items[-1].at):
            items = items[::-1]
        return sorted(items, key=lambda i: _utc(i.at))
    return items[::-1]


def _utc(at: datetime | None) -> datetime:
    assert at is not None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _internal(where: str, exc: Exception) -> PermanentError:
    """A crash, worded for the user: which trigger, what broke, where the details are
    (a bare KeyError would only say 'login')."""
    return PermanentError(f"internal error in {where}: {type(exc).__name__}: {exc} "
                          "(the details are in Hookline's log)")


def _unique(items: list[Item]) -> list[Item]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.key is not None:
            key = _storable(item.key)
            if key in seen:
                continue
            seen.add(key)
            aliases = tuple(_storable(a) for a in item.aliases)
            if key is not item.key or aliases != item.aliases:
                item = replace(item, key=key, aliases=aliases)
        out.append(item)
    return out


def _storable(key: str) -> str:
    """``key`` as text the database takes: a lone surrogate (a file name that is not
    UTF-8, decoded by the OS with surrogateescape) is spelled as escaped bytes, and so
    is a NUL (PostgreSQL refuses it in text), and one longer than the column ends with
    its digest (:func:`fitting`), so the key stays the same at every poll and distinct
    from its neighbours."""
    if "\x00" in key:
        key = key.replace("\x00", "\\x00")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        key = key.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return fitting(key, seen_keys.c.key)
