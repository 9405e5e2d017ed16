"""Starting the desktop app: one QApplication on a qasync loop shared with the engine."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from engine import logs
from engine.app import Engine
from engine.control import ControlClient
from engine.errors import HooklineError
from engine.lock import DataDirLock
from engine.memory import settle_after_start

log = logging.getLogger(__name__)


def hand_off(data_dir: Path) -> bool:
    """If Hookline already runs on ``data_dir``, ask it to show its window; True if so."""
    if not DataDirLock(data_dir).held_elsewhere() or not ControlClient.available(data_dir):
        return False
    try:
        asyncio.run(ControlClient(data_dir).call("POST", "/command/show", {}))
    except (HooklineError, OSError) as exc:
        log.warning("Hookline seems to run already but did not answer: %s", exc)
        return False
    return True


def cannot_start(message: str) -> None:
    """Say why in a window: started from a menu, the app has no console to print to."""
    box = QMessageBox(QMessageBox.Icon.Critical, "Hookline could not start", message)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.exec()


class _Window(Protocol):
    def bring_forward(self) -> None: ...


def answer_hand_offs(engine: Engine, window: _Window) -> None:
    """Let a second launch on the same data folder bring ``window`` forward (the
    control channel's "show" command, which :func:`hand_off` sends)."""

    async def show(_body: dict[str, object]) -> str:
        window.bring_forward()
        return "shown"

    if engine.control is not None:
        engine.control.commands["show"] = show


async def run(app: QApplication, data_dir: Path) -> int:
    """Start the engine, show the window and the tray, run until Quit."""
    from desktop.bridge import EngineBridge
    from desktop.main_window import MainWindow
    from desktop.tasks import WidgetTasks
    from desktop.tray import Tray
    from integrations import machine

    # The clipboard trigger reads through Qt, on this loop's thread.
    machine.readers["clipboard"] = lambda: QGuiApplication.clipboard().text()
    engine = Engine(data_dir)
    logs.configure(data_dir, engine.settings.log_level)
    try:
        await engine.start()
    except HooklineError as exc:  # locked by another copy, a damaged database...
        print(f"hookline: {exc}", file=sys.stderr)
        cannot_start(str(exc))
        return 1
    bridge = EngineBridge(engine)
    window = MainWindow(bridge)
    tray = Tray(bridge, window)
    quitting = asyncio.Event()
    app.aboutToQuit.connect(quitting.set)

    def last_window_closed() -> None:
        # Closing the window quits, unless it went to the tray (no tray: it always quits).
        if not (window.tray_available and engine.settings.close_to_tray):
            app.quit()

    app.lastWindowClosed.connect(last_window_closed)

    answer_hand_offs(engine, window)
    window.show()
    # After the first paint: a full collection now would delay it.
    asyncio.get_running_loop().call_later(2.0, settle_after_start)
    try:
        await quitting.wait()
    finally:
        tray.close()
        # Destroy the window while the loop runs: its screens cancel their tasks then.
        window.hide()
        window.deleteLater()
        await WidgetTasks.cancel_all()
        bridge.close()
        await engine.aclose()
    return 0


def main(data_dir: Path) -> int:
    """Open the app on ``data_dir`` (or bring the running one forward)."""
    import qasync

    if hand_off(data_dir):
        return 0
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Hookline")
    app.setOrganizationName("Hookline")
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        task = loop.create_task(run(app, data_dir))
        task.add_done_callback(lambda _task: loop.stop())
        loop.run_forever()  # until run() ends, or Quit (tray, logout) ends Qt's loop
        # Quit stops Qt's event loop at once: run it again until the engine has
        # closed cleanly (runs under way are journaled, the folder lock released).
        try:
            return int(loop.run_until_complete(task))
        except asyncio.CancelledError:
            return 0
