"""Time: APScheduler jobs for timed triggers and for polling cadence."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from engine.storage.schema import utcnow

_log = logging.getLogger(__name__)

#: A job later than this (machine asleep, loop blocked) counts as missed.
MISFIRE_GRACE = 60
#: How often the scheduler re-checks the wall clock (after a suspend the loop's
#: monotonic timers lag behind it).
WAKE_EVERY = 30.0

#: ``(area ids, scheduled time)``: fires every area of a schedule at once.
FireFn = Callable[[list[str], datetime], Awaitable[None]]
MissFn = Callable[[datetime], Coroutine[Any, Any, None]]


def missed_between(trigger: BaseTrigger, since: datetime, until: datetime,
                   cap: int = 10_000) -> int:
    """How many times ``trigger`` was due after ``since`` and before ``until``."""
    count = 0
    tick = timedelta(microseconds=1)
    # Counting from the last firing: an interval is anchored there, not at start-up.
    when = trigger.get_next_fire_time(since, since + tick)
    while when is not None and when < until and count < cap:
        count += 1
        when = trigger.get_next_fire_time(when, when + tick)
    return count


#: The last sleep before a due job is at most this long (see _PunctualScheduler).
PREWAKE_LAST = 0.05


class _PunctualScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """Wakes the loop shortly before each due job.

    Linux ends a long poll/epoll sleep up to 0.1% of its length late (timer slack: a job
    due after 18 s of idle started ~18 ms late, after an hour up to 100 ms). Waking
    first at 99% of the wait, then again at 99% of the rest, keeps the last sleep
    before the due time under ``PREWAKE_LAST``: a few wake-ups per job, not a poll."""

    _prewake: asyncio.TimerHandle | None = None

    def _start_timer(self, wait_seconds: float | None) -> None:
        super()._start_timer(wait_seconds)
        if wait_seconds is not None and self._eventloop is not None:
            self._arm(self._eventloop.time() + wait_seconds)

    def _arm(self, due: float) -> None:
        self._cancel_prewake()
        loop = self._eventloop
        remaining = due - loop.time()
        if remaining > PREWAKE_LAST:
            sleep = remaining - max(PREWAKE_LAST, remaining * 0.01)
            self._prewake = loop.call_later(sleep, self._arm, due)

    def _stop_timer(self) -> None:
        super()._stop_timer()
        self._cancel_prewake()

    def _cancel_prewake(self) -> None:
        if self._prewake is not None:
            self._prewake.cancel()
            self._prewake = None


class Scheduler:
    """Owns the APScheduler instance; one job per schedule area and per polling area."""

    def __init__(self, fire: FireFn) -> None:
        self._fire = fire
        self._aps = _PunctualScheduler(job_defaults={
            "coalesce": True, "misfire_grace_time": MISFIRE_GRACE, "max_instances": 1})
        self._due: defaultdict[str, deque[datetime]] = defaultdict(deque)
        # job id -> {area id: on_miss}: areas on the same schedule share a job
        self._groups: dict[str, dict[str, MissFn]] = {}
        self._group_of: dict[str, str] = {}
        self._waker: asyncio.Task[None] | None = None
        self._aps.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self._aps.add_listener(self._missed, EVENT_JOB_MISSED)

    def start(self) -> None:
        self._aps.start()
        self._waker = asyncio.create_task(self._wake(), name="scheduler-wake")

    async def aclose(self) -> None:
        if self._waker:
            self._waker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waker
        if self._aps.running:
            self._aps.shutdown(wait=False)
            await asyncio.sleep(0)  # shutdown completes on a later loop turn

    async def _wake(self) -> None:
        while True:
            await asyncio.sleep(WAKE_EVERY)
            self._aps.wakeup()

    def _submitted(self, event: Any) -> None:
        times = getattr(event, "scheduled_run_times", None) or []
        if event.job_id.startswith("fire:"):
            self._due[event.job_id].extend(times)

    def _missed(self, event: JobExecutionEvent) -> None:
        members = self._groups.get(event.job_id, {})
        for on_miss in list(members.values()):
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
                on_miss(event.scheduled_run_time))
            task.add_done_callback(_log_failure)

    def add_schedule(self, area_id: str, trigger: BaseTrigger, on_miss: MissFn) -> None:
        """Fire the area on ``trigger``. Areas with the same schedule share one job that
        fires them together (one journal commit): a thousand identical jobs, each
        computing its next time and committing its own event, made the last of them
        hundreds of milliseconds late."""
        self.remove(area_id)
        job_id = f"fire:{_signature(trigger, area_id)}"
        members = self._groups.setdefault(job_id, {})
        members[area_id] = on_miss
        self._group_of[area_id] = job_id
        if len(members) > 1:
            return
        due = self._due[job_id]

        async def job() -> None:
            scheduled = due.popleft() if due else utcnow()
            try:
                await self._fire(list(members), scheduled)
            except Exception:
                _log.exception("firing %d timed area(s) failed", len(members))

        self._aps.add_job(job, trigger, id=job_id, replace_existing=True)

    def add_poll(self, area_id: str, interval: float, poll: Callable[[], Awaitable[None]],
                 first_within: float = 10.0) -> None:
        jitter = min(interval * 0.1, 30.0)
        first = utcnow() + timedelta(seconds=random.uniform(0.05, max(0.1, first_within)))  # noqa: S311
        self._aps.add_job(poll, IntervalTrigger(seconds=interval, jitter=jitter,
                                                start_date=first),
                          id=f"poll:{area_id}", replace_existing=True, next_run_time=first)

    def add_job(self, fn: Callable[[], Awaitable[None]], every: float, job_id: str) -> None:
        """A housekeeping job every ``every`` seconds."""
        self._aps.add_job(fn, IntervalTrigger(seconds=every), id=job_id, replace_existing=True)

    def add_wake(self, area_id: str, when: datetime,
                 fn: Callable[[], Awaitable[None]]) -> None:
        """The area's next change of state (a snooze's end, a window opening or
        closing) at ``when``: one date job per area, run even when late (a machine that
        slept through it changes the state as it wakes)."""
        self._aps.add_job(fn, DateTrigger(run_date=when), id=f"wake:{area_id}",
                          replace_existing=True, misfire_grace_time=None)

    def add_once(self, area_id: str, when: datetime,
                 fire: Callable[[datetime], Awaitable[None]]) -> None:
        """Fire the area once at ``when`` (a one-time trigger), even late: a machine
        asleep at that moment fires it as it wakes."""
        self._aps.add_job(fire, DateTrigger(run_date=when), args=[when], id=f"once:{area_id}",
                          replace_existing=True, misfire_grace_time=None)

    def remove_wake(self, area_id: str) -> None:
        with contextlib.suppress(Exception):
            self._aps.remove_job(f"wake:{area_id}")

    def next_wake(self, area_id: str) -> datetime | None:
        job = self._aps.get_job(f"wake:{area_id}")
        return job.next_run_time if job is not None else None

    def remove(self, area_id: str) -> None:
        for kind in ("poll", "wake", "once"):
            with contextlib.suppress(Exception):
                self._aps.remove_job(f"{kind}:{area_id}")
        group = self._group_of.pop(area_id, None)
        if group is not None:
            members = self._groups.get(group, {})
            members.pop(area_id, None)
            if not members:
                with contextlib.suppress(Exception):
                    self._aps.remove_job(group)
                self._groups.pop(group, None)
                self._due.pop(group, None)

    def next_fire(self, area_id: str) -> datetime | None:
        for job_id in (self._group_of.get(area_id), f"poll:{area_id}", f"once:{area_id}"):
            job = self._aps.get_job(job_id) if job_id else None
            if job is not None:
                return job.next_run_time  # type: ignore[no-any-return]
        return None

    def poll_soon(self, area_id: str) -> bool:
        job = self._aps.get_job(f"poll:{area_id}")
        if job is None:
            return False
        job.modify(next_run_time=utcnow())
        return True

    def delay_poll(self, area_id: str, seconds: float) -> None:
        job = self._aps.get_job(f"poll:{area_id}")
        if job is not None:
            job.modify(next_run_time=utcnow() + timedelta(seconds=seconds))


def _signature(trigger: BaseTrigger, area_id: str) -> str:
    """Equal for triggers that fire at the same times (same type and state); a jittered
    trigger gets its own job, since each firing draws its own delay."""
    state = trigger.__getstate__()
    if state.get("jitter"):
        return f"area:{area_id}"
    digest = hashlib.sha256(f"{type(trigger).__name__}:{state!r}".encode()).hexdigest()
    return f"schedule:{digest[:20]}"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging

        logging.getLogger(__name__).error("handling a missed run failed",
                                          exc_info=task.exception())
