"""The engine's own thread: a standard asyncio loop that nothing the window does can stop."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from engine.app import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a clean stop may take: runs under way get the dispatcher's grace (5 s) to
#: finish, then the journal settles and the database closes.
STOP_TIMEOUT = 20.0

#: How long the thread's last work may take after the engine stopped: leftover tasks
#: ending once cancelled, then the blocking calls under way in its executor.
WIND_DOWN = 5.0
#: The names of the engine's executor threads (each followed by its number).
EXECUTOR_THREADS = "hookline-engine-call"

ErrorHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]


class EngineThread:
    """One engine on a thread of its own, with a standard asyncio event loop: the same
    code and loop as ``hookline serve``. The window's thread (qasync) reaches it only
    through :meth:`call` and :meth:`run`; a modal dialog, a slow paint or a nested
    Qt loop there cannot stop, slow or re-enter the engine.

    Args:
        engine: an engine not yet started; :meth:`start` starts it on the thread.
        on_error: the loop's exception handler (default: log the error); tests make a
            background failure on the engine's loop fail the test with it.

    Attributes:
        loop: the engine's event loop (runs on the thread from :meth:`start` on).
    """

    def __init__(self, engine: Engine, on_error: ErrorHandler | None = None) -> None:
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(on_error or _log_error)
        # Its own executor (the engine's blocking calls: keyring, files, DNS), so a call
        # that does not end can be named and left behind when the engine stops.
        self.executor = ThreadPoolExecutor(thread_name_prefix=EXECUTOR_THREADS)
        self.loop.set_default_executor(self.executor)
        self._thread = threading.Thread(target=self._main, name="hookline-engine",
                                        daemon=True)
        self._closed = False

    # ----------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def ident(self) -> int | None:
        """The thread's identifier (None before it starts)."""
        return self._thread.ident

    async def start(self) -> None:
        """Start the thread, then the engine on it (raises what ``Engine.start`` raises,
        after which the thread has ended again)."""
        self._thread.start()
        try:
            await self.call(self.engine.start())
        except BaseException:
            await self._end_thread()
            raise

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close the engine cleanly (runs under way finish or stay journaled) and end
        the thread. Past ``timeout`` the thread is left to die with the process: every
        accepted event is journaled, so the next start resumes what was cut short."""
        if self._closed or not self.running:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.call(self.engine.aclose()), timeout)
        except TimeoutError:
            log.error("the engine did not stop within %.0f s; leaving it to the exit "
                      "(what it had accepted stays journaled for the next start)", timeout)
            self.loop.call_soon_threadsafe(_log_tasks, self.loop)  # where it waits
            return
        except Exception:
            log.exception("the engine did not close cleanly")
        await self._end_thread()

    async def _end_thread(self) -> None:
        if self.running:
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT)
            if self._thread.is_alive():  # its loop's last work (an executor thread) hangs
                log.error("the engine's thread did not end within %.0f s after the engine "
                          "stopped; leaving it to the exit", STOP_TIMEOUT)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(_wind_down())
                _end_executor(self.executor)
            finally:
                self.loop.close()  # an executor left behind is told to end, not waited for

    # ----------------------------------------------------------------- crossing

    def call(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run ``coro`` on the engine's loop; returns an awaitable on the caller's loop.
        Cancelling it cancels the work on the engine's side too."""
        if not self.running:
            coro.close()
            raise RuntimeError("the engine is not running")
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Call a plain ``function(*args)`` on the engine's thread (for engine state that
        only its own thread may change); an awaitable of its result."""

        async def call() -> T:
            return function(*args)

        return self.call(call())


async def _wind_down() -> None:
    """The loop's last work once the engine stopped: cancel what is left (each task has
    WIND_DOWN to end) and close the async generators."""
    loop = asyncio.get_running_loop()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=WIND_DOWN)
        if pending:
            log.error("%d of the engine's tasks did not end when cancelled", len(pending))
            _log_tasks(loop)
    await loop.shutdown_asyncgens()


def _end_executor(executor: ThreadPoolExecutor) -> None:
    """Let the blocking calls under way end, for WIND_DOWN at most: one that does not (a
    keyring or D-Bus call waiting for its own timeout) is logged with where it waits,
    and left to finish before the process exits. (asyncio's shutdown_default_executor
    cannot be given up on: cancelled, it still joins.)"""
    ended = threading.Event()

    def end() -> None:
        executor.shutdown(wait=True)
        ended.set()

    threading.Thread(target=end, name="hookline-engine-end", daemon=True).start()
    if ended.wait(WIND_DOWN):
        return
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if thread.name.startswith(EXECUTOR_THREADS) and frame is not None:
            log.error("a blocking call of the engine did not end within %.0f s after it "
                      "stopped; left to finish before the exit. It waits in:\n%s",
                      WIND_DOWN, "".join(traceback.format_stack(frame, limit=8)).rstrip())


def _log_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """On the engine's thread: where each of its unfinished tasks waits (a stop that
    did not end, for the log)."""
    import io

    for task in asyncio.all_tasks(loop):
        stack = io.StringIO()
        task.print_stack(limit=6, file=stack)
        log.error("still under way: %s", stack.getvalue().strip())


def _log_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exception = context.get("exception")
    log.error("engine: %s", context.get("message", "unexpected error"),
              exc_info=(type(exception), exception, exception.__traceback__)
              if isinstance(exception, BaseException) else None)
