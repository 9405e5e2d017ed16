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
#: Runs of one area still waiting for an effect they queued in order (see
#: :func:`next_run_may_start`) beyond which the area's next run waits as usual.
MAX_OVERLAP = 64

#: Set by the dispatcher (and narrowed by the runner) while a run's reaction acts.
_handoff: ContextVar[Callable[[], bool] | None] = ContextVar("hookline_handoff", default=None)


def next_run_may_start() -> bool:
    """Called by a reaction once its effect is queued in the order it was asked for
    (a line given to the file's writer): the area's next run may start while this one
    waits for the effect to happen. Returns whether it was allowed; it is only for the
    last reaction of a run that is not retried (the runner decides), and never past
    :data:`MAX_OVERLAP` waiting runs per area. Outside a run it does nothing."""
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
        self._queues: dict[str, deque[Work]] = {}
        #: the task starting an area's runs (one per area)
        self._workers: dict[str, asyncio.Task[None]] = {}
        #: tasks finishing runs that handed their area on to a new worker
        self._trailing: dict[str, set[asyncio.Task[None]]] = {}
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
        self._queues.setdefault(event.area_id, deque()).append((event, carried))
        self.backlog += 1
        self._idle.clear()
        if self.backlog >= self._max_backlog:
            self._room.clear()
        if event.area_id not in self._workers:
            self._start_worker(event.area_id)

    def _start_worker(self, area_id: str) -> None:
        self._workers[area_id] = asyncio.create_task(
            self._drain(area_id), name=f"area-{area_id[:8]}")

    async def room(self) -> None:
        """Wait until the backlog is below its bound (sources call this first)."""
        await self._room.wait()

    async def idle(self) -> None:
        """Wait until every submitted event has been processed."""
        await self._idle.wait()

    async def _drain(self, area_id: str) -> None:
        queue = self._queues[area_id]
        me = asyncio.current_task()
        assert me is not None
        began = time.monotonic()
        handed_on = False
        try:
            while queue and not self._closed:
                event, carried = queue.popleft()
                held = False

                def hand_on() -> bool:
                    """The run's effect is queued in order: a new worker starts the
                    area's next run while this task waits for the effect."""
                    nonlocal handed_on, held
                    trailing = self._trailing.setdefault(area_id, set())
                    if handed_on or self._closed or len(trailing) >= MAX_OVERLAP:
                        return False
                    handed_on = True
                    trailing.add(me)
                    if held:
                        held = False
                        self._runs.release()
                    if queue:
                        self._start_worker(area_id)
                    else:
                        del self._workers[area_id]
                    return True

                token = _handoff.set(hand_on)
                try:
                    await self._runs.acquire()
                    held = True
                    await self._process(event, carried)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("processing event %s failed; it stays journaled and is "
                                  "retried at the next start", event.id)
                finally:
                    _handoff.reset(token)
                    if held:
                        self._runs.release()
                    self.backlog -= 1
                    if self.backlog < self._max_backlog:
                        self._room.set()
                if handed_on:
                    return
                if time.monotonic() - began > SLICE:
                    await asyncio.sleep(0)
                    began = time.monotonic()
        finally:
            if handed_on:
                trailing = self._trailing[area_id]
                trailing.discard(me)
                if not trailing:
                    del self._trailing[area_id]
            elif self._workers.get(area_id) is me:
                del self._workers[area_id]
            if area_id not in self._workers and area_id not in self._trailing:
                if not queue:
                    self._queues.pop(area_id, None)
                if not self._workers and not self._trailing:
                    self._idle.set()

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop: runs under way get ``grace`` seconds to finish, then are cancelled;
        events not yet run stay journaled and run at the next start."""
        self._closed = True
        workers = [*self._workers.values(), *(t for s in self._trailing.values() for t in s)]
        if workers:
            _done, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._room.set()
        self._idle.set()
