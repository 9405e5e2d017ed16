"""Desktop fixtures: a real engine on its own thread, real widgets on the qasync loop
(offscreen), as in the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import qasync
import shiboken6
from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QApplication

from desktop.bridge import EngineBridge
from desktop.engine_thread import EngineThread
from desktop.tasks import WidgetTasks
from engine.app import Engine
from engine.settings import Settings

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


class _RunningTimer(qasync._SimpleTimer):  # type: ignore[misc]
    """qasync's timer (it runs every callback of the loop), running each one with its
    loop marked as the running loop.

    qasync's run_until_complete delivers the Qt events still pending once more after
    its loop has stopped, and pytest-qt delivers them between a test's phases: a task
    step among them found no running loop (``asyncio.create_task`` in SQLAlchemy
    raised), and the widget task it belonged to failed at random.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop

    def timerEvent(self, event: Any) -> None:
        if asyncio.events._get_running_loop() is not None:
            super().timerEvent(event)
            return
        asyncio.events._set_running_loop(self._loop)
        try:
            super().timerEvent(event)
        finally:
            asyncio.events._set_running_loop(None)


class _TestLoop(qasync.QEventLoop):  # type: ignore[misc]
    """qasync's loop, whose Qt timer object is destroyed on the GUI thread when it closes.

    Each test gets a new loop; a closed one lingers in reference cycles with its
    QObject timer (qasync's ``_SimpleTimer``) still holding pending Qt timers (say a
    cancelled ``wait_for`` timeout). If the garbage collector then ran in a worker
    thread (a migration, aiosqlite), the QObject would be destroyed there, Qt could not
    stop its timers, and the next one to fire crashed the process in a later test.
    """

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        plain, self._timer = self._timer, _RunningTimer(self)
        shiboken6.delete(plain)  # on this (the GUI) thread, before it holds any timer

    def close(self) -> None:
        closing = not self.is_closed()
        super().close()
        if closing:
            shiboken6.delete(self._timer)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """Before pytest-qt delivers the Qt events still pending (outside the asyncio loop),
    widget tasks still under way are cancelled on their loop: a step of one run by that
    delivery would find no running loop (a refresh started by a late run.finished)."""
    WidgetTasks.settle()
    return (yield)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Desktop tests run on the app's own loop: qasync over the QApplication, so
    QTimers fire and signals are delivered while a test awaits."""

    def make() -> asyncio.AbstractEventLoop:
        app = QApplication.instance() or QApplication([])
        # As in the app (it lives on in the tray): closing a test's only window, e.g.
        # a dialog that accepts, must not quit the application and stop the loop.
        if isinstance(app, QApplication):
            app.setQuitOnLastWindowClosed(False)
        return _TestLoop(app)

    return {"qasync": make}


@pytest.fixture
async def engine_thread(data_dir: Path) -> AsyncIterator[EngineThread]:
    """A started engine on its own thread; an error on its loop fails the test."""
    settings = Settings.from_mapping({"listener_port": 0, "retry_delay": 0.01})
    errors: list[dict[str, Any]] = []
    thread = EngineThread(Engine(data_dir, settings=settings),
                          on_error=lambda _loop, context: errors.append(context))
    await thread.start()
    yield thread
    await thread.stop()
    assert not thread.running
    assert not errors, f"background task failed on the engine's loop: {errors}"


@pytest.fixture
def engine(engine_thread: EngineThread) -> Engine:
    """The engine (runs on its own thread: call its coroutines through the thread)."""
    return engine_thread.engine


@pytest.fixture
async def bridge(engine_thread: EngineThread) -> AsyncIterator[EngineBridge]:
    WidgetTasks.resume()
    bridge = EngineBridge(engine_thread.engine, engine_thread)
    yield bridge
    await WidgetTasks.cancel_all()  # no screen refresh may outlive the engine
    bridge.close()


def signal_once(signal: SignalInstance, timeout: float = 10.0,
                match: Callable[..., bool] = lambda *_args: True,
                ) -> Coroutine[Any, Any, tuple[Any, ...]]:
    """Await the next emission of ``signal`` (never a blocking waitSignal in async tests)
    whose arguments ``match`` (every one by default).

    It listens from the moment it is called, not from the first await: in
    ``done = signal_once(s); await act(); await done`` an emission made synchronously
    inside ``act()`` is caught too. The engine's messages reach the window in batches,
    so one caused earlier may still be on its way: ``match`` names the one awaited.
    """
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def slot(*args: Any) -> None:
        if not future.done() and match(*args):
            future.set_result(args)

    signal.connect(slot)

    async def wait() -> tuple[Any, ...]:
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(RuntimeError):  # the sender may be gone (a dialog)
                signal.disconnect(slot)

    return wait()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the loop run until ``condition()`` holds (for UI state that has no signal)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def app_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undoes what ``desktop.app.run`` changes for the whole process (log handlers, the
    clipboard reader) after the test; the screens' tasks may run (an earlier run's Quit
    ended them)."""
    from integrations import machine

    WidgetTasks.resume()
    monkeypatch.setattr(machine, "readers", dict(machine.readers))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def shown_window() -> MainWindow | None:
    """The app's main window, once it shows."""
    from desktop.main_window import MainWindow

    return next((w for w in QApplication.topLevelWidgets()
                 if isinstance(w, MainWindow) and w.isVisible()), None)
