"""Async work started by a widget, cancelled when the widget goes away."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, ClassVar

from PySide6.QtCore import QObject

log = logging.getLogger(__name__)

#: How long Quit waits for the screens' tasks to end.
CANCEL_TIMEOUT = 2.0


class WidgetTasks:
    """The asyncio tasks a widget started (button clicks, refreshes).

    They are cancelled when the widget is destroyed, so none wakes up to touch a
    deleted Qt object; a task that crashes reaches the loop's exception handler
    (the app logs it; tests fail on it) instead of vanishing.

    Args:
        owner: the widget whose lifetime bounds the tasks.
    """

    _live: ClassVar[weakref.WeakSet[WidgetTasks]] = weakref.WeakSet()
    _stopped: ClassVar[bool] = False
    #: Every unfinished task of every widget, also of widgets already deleted (a cancel
    #: sent when a widget goes still needs the loop to run to take effect).
    _pending: ClassVar[set[asyncio.Task[Any]]] = set()

    def __init__(self, owner: QObject) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        WidgetTasks._live.add(self)
        tasks = self._tasks  # the slot must not hold the owner alive
        owner.destroyed.connect(lambda *_: _cancel(tasks))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        if WidgetTasks._stopped or not _loop_running():
            # Shutting down, or Qt delivered a timer while the asyncio loop is not running
            # (its steps would then run outside it): the work is dropped, not started.
            coro = _dropped(coro)
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        WidgetTasks._pending.add(task)
        task.add_done_callback(self._done)
        return task

    def cancel(self, keep: asyncio.Task[Any] | None = None) -> None:
        """Cancel every task but ``keep`` (e.g. the one that is closing the dialog)."""
        _cancel(self._tasks, keep)

    @classmethod
    async def cancel_all(cls, timeout: float = CANCEL_TIMEOUT) -> None:
        """Cancel every widget's tasks and wait until they have ended (before the
        engine closes, so none wakes up to find it gone), ``timeout`` seconds at most.

        A task can be left unable to end: a modal dialog's nested Qt loop, run inside
        another task, makes qasync start task steps while that task is current, which
        asyncio refuses; the refused task never runs again. Waiting for it would keep
        Quit from ever finishing."""
        WidgetTasks._stopped = True
        current = asyncio.current_task()
        tasks = [t for t in {*cls._pending, *(t for o in list(cls._live) for t in o._tasks)}
                 if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _done, stuck = await asyncio.wait(tasks, timeout=timeout)
        if stuck:
            log.warning("%d screen task(s) did not end; leaving them", len(stuck))
            cls._pending.difference_update(stuck)

    @classmethod
    def settle(cls) -> None:
        """From outside the loop (between tests, at exit): cancel every unfinished task
        on its own loop and wait, so no step of one runs later without a running loop
        (Qt would run it while delivering its events)."""
        unfinished = [t for t in cls._pending if not t.done()]
        if not unfinished:
            return
        loop = unfinished[0].get_loop()
        if not loop.is_running() and not loop.is_closed():
            loop.run_until_complete(cls.cancel_all())

    @classmethod
    def resume(cls) -> None:
        """Accept work again (a new engine behind the widgets)."""
        cls._stopped = False

    def __len__(self) -> int:
        return len(self._tasks)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        WidgetTasks._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            task.get_loop().call_exception_handler({
                "message": f"widget task {task.get_name()} failed",
                "exception": task.exception(), "task": task})


def _cancel(tasks: set[asyncio.Task[Any]], keep: asyncio.Task[Any] | None = None) -> None:
    for task in list(tasks):
        if task is not keep:
            task.cancel()


async def _dropped(coro: Coroutine[Any, Any, Any]) -> None:
    coro.close()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
