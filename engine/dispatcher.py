"""From journal to runner: FIFO per area, bounded concurrency, backpressure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from engine.journal import Journaled

log = logging.getLogger(__name__)

Work = tuple[Journaled, list[dict[str, Any]] | None]

#: A worker whose runs finish without waiting (a quick reaction) lets the loop serve
#: others after this long.
SLICE = 0.002


class Dispatcher:
    """Hands committed events to ``process``, in order per area.

    Args:
        process: runs one event (with the steps of an interrupted run, if any) and
            records it (its record reaches the run ledger before the next reaction acts
            or at the end of the loop's turn, whichever is first).
        max_runs: runs under way at once, across areas.
        max_backlog: events waiting before sources are made to wait (``room()``).
    """

    def __init__(self, process: Callable[[Journaled, list[dict[str, Any]] | None],
                                         Awaitable[None]],
                 max_runs: int = 64, max_backlog: int = 5000) -> None:
        self._process = process
        self._runs = asyncio.Semaphore(max_runs)
        self._queues: dict[str, deque[Work]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
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
            self._workers[event.area_id] = asyncio.create_task(
                self._drain(event.area_id), name=f"area-{event.area_id[:8]}")

    async def room(self) -> None:
        """Wait until the backlog is below its bound (sources call this first)."""
        await self._room.wait()

    async def idle(self) -> None:
        """Wait until every submitted event has been processed."""
        await self._idle.wait()

    async def _drain(self, area_id: str) -> None:
        queue = self._queues[area_id]
        began = time.monotonic()
        try:
            while queue and not self._closed:
                event, carried = queue.popleft()
                try:
                    async with self._runs:
                        await self._process(event, carried)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("processing event %s failed; it stays journaled and is "
                                  "retried at the next start", event.id)
                finally:
                    self.backlog -= 1
                    if self.backlog < self._max_backlog:
                        self._room.set()
                if time.monotonic() - began > SLICE:
                    await asyncio.sleep(0)
                    began = time.monotonic()
        finally:
            del self._workers[area_id]
            if not queue:
                self._queues.pop(area_id, None)
            if not self._workers:
                self._idle.set()

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop: runs under way get ``grace`` seconds to finish, then are cancelled;
        events not yet run stay journaled and run at the next start."""
        self._closed = True
        workers = list(self._workers.values())
        if workers:
            _done, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._room.set()
        self._idle.set()
