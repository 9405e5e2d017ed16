"""From journal to runner: FIFO per area, bounded concurrency, backpressure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # services import this module: it stays free of the storage layer
    from engine.journal import Journaled

log = logging.getLogger(__name__)

Work = tuple["Journaled", list[dict[str, Any]] | None]

#: A worker whose runs finish without waiting (a quick reaction) lets the loop serve
#: others after this long.
SLICE = 0.002
#: Runs of one area under way at once (only runs that handed on with
#: :func:`next_run_may_start` overlap; the next event waits until one finishes).
MAX_OVERLAP = 64

#: Set by the dispatcher (and narrowed by the runner) while a run's reaction acts.
_handoff: ContextVar[Callable[[], bool] | None] = ContextVar("hookline_handoff", default=None)


def next_run_may_start() -> bool:
    """Called by a reaction once its effect is queued in the order it was asked for
    (a line given to the file's writer): the area's next run may start while this one
    waits for the effect to happen. Returns whether it was allowed: it is only for the
    last reaction of a run that is not retried (the runner decides). At most
    :data:`MAX_OVERLAP` runs of an area are under way. Outside a run it does nothing."""
    handoff = _handoff.get()
    if handoff is None:
        return False
    _handoff.set(None)  # once per run
    return handoff()


def handoff() -> Callable[[], bool] | None:
    """The running run's way to let its area's next run start (for the runner)."""
    return _handoff.get()


def lend_handoff(value: Callable[[], bool] | None) -> Token[Callable[[], bool] | None]:
    """What :func:`next_run_may_start` calls while one reaction acts (for the runner,
    which lends the run's handoff, or none, to each reaction)."""
    return _handoff.set(value)


def restore_handoff(token: Token[Callable[[], bool] | None]) -> None:
    _handoff.reset(token)


class _Area:
    """One area's waiting events and the order its runs start in: every run has a
    ticket, and ticket ``n`` starts once run ``n - 1`` has finished or handed on."""

    __slots__ = ("opened", "queue", "skipped", "slice_began", "tasks", "tickets", "waiters")

    def __init__(self) -> None:
        self.queue: deque[Work] = deque()
        #: tasks running (or waiting to start) this area's runs, oldest first
        self.tasks: dict[asyncio.Task[None], None] = {}
        self.tickets = 0  # tickets given out
        self.opened = 0  # the ticket whose turn it is
        self.skipped: set[int] = set()  # tickets given up before their turn (closing)
        self.waiters: list[asyncio.Future[None]] = []
        self.slice_began: float | None = None

    async def turn(self, ticket: int) -> None:
        """Wait until run ``ticket`` may start."""
        loop = asyncio.get_running_loop()
        while self.opened != ticket:
            waiter = loop.create_future()
            self.waiters.append(waiter)
            await waiter

    def open(self) -> None:
        """The run whose turn it was finished or handed on: the next may start. Every
        waiting run is woken together, in ticket order, so a row of runs that each hand
        on at once all start in the same turn of the loop."""
        self.opened += 1
        while self.opened in self.skipped:
            self.skipped.discard(self.opened)
            self.opened += 1
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def end_slice(self) -> None:
        self.slice_began = None


class Dispatcher:
    """Hands committed events to ``process``, in order per area.

    Args:
        process: runs one event (with the steps of an interrupted run, if any) and
            records it (its record reaches the run ledger before the next reaction acts
            or at the end of the loop's turn, whichever is first).
        max_runs: runs under way at once, across areas (a run that handed its area on
            with :func:`next_run_may_start` no longer counts).
        max_backlog: events waiting before sources are made to wait (``room()``).
    """

    def __init__(self, process: Callable[[Journaled, list[dict[str, Any]] | None],
                                         Awaitable[None]],
                 max_runs: int = 64, max_backlog: int = 5000) -> None:
        self._process = process
        self._runs = asyncio.Semaphore(max_runs)
        self._areas: dict[str, _Area] = {}
        self._max_backlog = max_backlog
        self.backlog = 0
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def submit(self, event: Journaled, carried: list[dict[str, Any]] | None = None) -> None:
        if self._closed:
            return  # journaled: the next start picks it up
        area = self._areas.get(event.area_id)
        if area is None:
            area = self._areas[event.area_id] = _Area()
        area.queue.append((event, carried))
        self.backlog += 1
        self._idle.clear()
        if self.backlog >= self._max_backlog:
            self._room.clear()
        if area.opened == area.tickets:  # no run of the area holds it: none would take it
            self._spawn(event.area_id, area, 1)

    def _spawn(self, area_id: str, area: _Area, most: int) -> None:
        """Start up to ``most`` runs of the area's waiting events, each on its own task
        (each waits for its turn)."""
        while area.queue and most > 0 and len(area.tasks) < MAX_OVERLAP and not self._closed:
            event, carried = area.queue.popleft()
            task = asyncio.create_task(self._run(area_id, area, area.tickets, event, carried),
                                       name=f"area-{area_id[:8]}")
            area.tickets += 1
            area.tasks[task] = None
            most -= 1

    async def room(self) -> None:
        """Wait until the backlog is below its bound (sources call this first)."""
        await self._room.wait()

    async def idle(self) -> None:
        """Wait until every submitted event has been processed."""
        await self._idle.wait()

    def _over_slice(self, area: _Area) -> bool:
        """Whether this area's runs have had the loop for :data:`SLICE` this turn."""
        now = time.monotonic()
        if area.slice_began is None:
            area.slice_began = now
            asyncio.get_running_loop().call_soon(area.end_slice)  # the next turn: anew
            return False
        return now - area.slice_began > SLICE

    async def _run(self, area_id: str, area: _Area, ticket: int, event: Journaled,
                   carried: list[dict[str, Any]] | None) -> None:
        """Run ``event`` when its turn comes; the area's newest run goes on with the
        next waiting event itself (one task for runs that finish one after another)."""
        me = asyncio.current_task()
        assert me is not None
        try:
            while True:
                if not await self._run_one(area_id, area, ticket, event, carried):
                    return
                if not area.queue or area.tickets != ticket + 1 or self._closed:
                    return
                event, carried = area.queue.popleft()
                ticket = area.tickets
                area.tickets += 1
        finally:
            del area.tasks[me]
            if area.queue and not self._closed:
                self._spawn(area_id, area, MAX_OVERLAP)
            elif not area.tasks and not area.queue:
                self._areas.pop(area_id, None)
                if not self._areas:
                    self._idle.set()

    async def _run_one(self, area_id: str, area: _Area, ticket: int, event: Journaled,
                       carried: list[dict[str, Any]] | None) -> bool:
        """One run; returns whether its task may go on with the next one (it did not
        hand on)."""
        opened = handed_on = held = False

        def hand_on() -> bool:
            """The run's effect is queued in order: the next runs may start."""
            nonlocal opened, handed_on, held
            if opened or self._closed:
                return False
            opened = handed_on = True
            if held:
                held = False
                self._runs.release()
            area.open()
            self._spawn(area_id, area, MAX_OVERLAP)
            return True

        try:
            try:
                await area.turn(ticket)
            except asyncio.CancelledError:  # closing: its followers must not wait for it
                if area.opened == ticket:
                    area.open()
                else:
                    area.skipped.add(ticket)
                opened = True
                raise
            if self._over_slice(area):
                await asyncio.sleep(0)  # others get the loop; its followers wait for it
            await self._runs.acquire()
            held = True
            token = _handoff.set(hand_on)
            try:
                await self._process(event, carried)
            finally:
                _handoff.reset(token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("processing event %s failed; it stays journaled and is "
                          "retried at the next start", event.id)
        finally:
            if held:
                self._runs.release()
            if not opened:
                area.open()
            self.backlog -= 1
            if self.backlog < self._max_backlog:
                self._room.set()
        return not handed_on

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop: runs under way get ``grace`` seconds to finish, then are cancelled;
        events not yet run stay journaled and run at the next start."""
        self._closed = True
        workers = [task for area in self._areas.values() for task in area.tasks]
        if workers:
            _done, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._room.set()
        self._idle.set()
