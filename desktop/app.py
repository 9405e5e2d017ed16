"""Starting the desktop app: the window on a qasync loop, the engine on a thread of its own."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox, QSystemTrayIcon

from engine import logs
from engine.control import ControlClient
from engine.errors import HooklineError
from engine.lock import DataDirLock
from engine.memory import settle_after_start

if TYPE_CHECKING:
    from desktop.bridge import EngineBridge
    from desktop.main_window import MainWindow
    from engine.app import Engine

log = logging.getLogger(__name__)

#: What a notification's step says on a desktop without a tray (nothing was shown).
NO_TRAY = ("this desktop has no notification area (system tray) for Hookline to show it "
           "in, so it went only to Hookline's log. Turn a tray on (on GNOME: the "
           "AppIndicator extension), or send it another way, e.g. by email.")


#: What ``run`` returns when the user chose another engine: ``main`` opens the app again.
REOPEN = -1

#: How long the status bar says a restore was done (ms).
RESTORED_SHOWN_MS = 30_000


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


def say_restore(window: QMainWindow, engine: Engine) -> None:
    """The restore asked for in Settings before the last quit, done at this start: said
    in the status bar, or, when it could not be done, in a box (the data is as it was)."""
    if engine.restored is not None:
        window.statusBar().showMessage(f"Restored the backup {engine.restored.name}; the "
                                       "data as it was is kept in the backups folder.",
                                       RESTORED_SHOWN_MS)
    elif engine.restore_failed is not None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Hookline did not restore the backup",
                          f"The backup asked for was not restored: {engine.restore_failed}."
                          "\n\nHookline opened with its data as it was. Choose another "
                          "backup in Settings → Restore a backup…", parent=window)
        box.setObjectName("restoreFailed")
        box.open()


def answer_hand_offs(bridge: EngineBridge, window: MainWindow) -> None:
    """Let a second launch on the same data folder bring ``window`` forward (the
    control channel's "show" command, which :func:`hand_off` sends)."""
    bridge.accept_hand_offs()
    bridge.showRequested.connect(window.bring_forward)


class Clipboard(QObject):
    """The clipboard's text for the engine's clipboard trigger, kept current here (Qt's
    clipboard may be read on the window's thread only; the engine reads the copy).

    Args:
        parent: the owner (the clipboard is followed while it lives).
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._board = QGuiApplication.clipboard()
        self.text = self._board.text()
        self._board.dataChanged.connect(self._changed)

    def _changed(self) -> None:
        self.text = self._board.text()

    def read(self) -> str:
        """For any thread: the text last copied."""
        return self.text


async def run(app: QApplication, data_dir: Path) -> int:
    """Start the engine on its thread, show the window and the tray, run until Quit
    (the tray's, the window's, logout, SIGTERM or SIGINT)."""
    from desktop import first_start
    from desktop.bridge import EngineBridge
    from desktop.main_window import MainWindow
    from desktop.os_signals import QuitOnSignals
    from desktop.remote_dialog import cannot_reach, engine_for, open_engine, show_engine
    from desktop.tasks import WidgetTasks
    from desktop.tray import Tray
    from integrations import machine, notify

    quitting = asyncio.Event()
    stop_waiting = quitting.set
    app.aboutToQuit.connect(stop_waiting)
    # Quit asked for before the window exists (a signal during start) is kept too.
    def quit_now() -> None:
        quitting.set()
        app.quit()

    signals = QuitOnSignals(quit_now)
    clipboard = Clipboard(app)
    machine.readers["clipboard"] = clipboard.read
    new = first_start.is_new(data_dir)  # before the engine creates its database
    engine = engine_for(data_dir)  # this computer's, or the one it is attached to
    logs.configure(data_dir, engine.settings.log_level)
    try:
        thread = await open_engine(engine, data_dir, cannot_reach)
    except HooklineError as exc:  # locked by another copy, a damaged database...
        signals.close()
        app.aboutToQuit.disconnect(stop_waiting)
        print(f"hookline: {exc}", file=sys.stderr)
        cannot_start(str(exc))
        return 1
    bridge = EngineBridge(thread.engine, thread)
    if new and bridge.remote is None and not bridge.areas():
        await first_start.add_demo(bridge, data_dir)
    window = MainWindow(bridge)
    tray = Tray(bridge, window)
    # Quit asks first about an editor's unsaved changes (Cancel keeps Hookline open).
    tray.quit_action.triggered.disconnect(tray.quit)
    tray.quit_action.triggered.connect(window.request_quit)
    if not (tray.available and QSystemTrayIcon.supportsMessages()):
        notify.not_shown_because = NO_TRAY
    answer_hand_offs(bridge, window)
    show_engine(bridge, window, tray, tray.tasks.spawn)
    reopen = False

    def switch_engine() -> None:  # another engine chosen: this run ends, main reopens
        nonlocal reopen
        reopen = True
        quitting.set()

    bridge.switchRequested.connect(switch_engine)

    # Logout: the session manager asks the app to save its state, then ends it.
    def end_session(_manager: object) -> None:
        app.quit()

    app.commitDataRequest.connect(end_session)

    def last_window_closed() -> None:
        # Closing the window quits, unless it went to the tray (no tray: it always quits).
        if not (window.tray_available and bridge.settings.close_to_tray):
            app.quit()

    app.lastWindowClosed.connect(last_window_closed)
    if not quitting.is_set():
        window.show()
        if bridge.remote is None:  # (an attached engine's restores are said in Settings)
            say_restore(window, thread.engine)
        # After the first paint: a full collection now would delay it.
        asyncio.get_running_loop().call_later(2.0, settle_after_start)
    try:
        await quitting.wait()
    finally:
        log.info("quitting: stopping the engine")
        notify.not_shown_because = None
        tray.close()
        window.hide()
        # End the screens' tasks before their widgets go: a refresh whose answer from
        # the engine is already on its way would otherwise wake up to deleted widgets.
        await WidgetTasks.cancel_all()
        window.deleteLater()
        bridge.close()
        await thread.stop()
        signals.close()
        # The application outlives this run (a test's, or a second run in one process):
        # its signals must not reach this run's window and tray any more.
        app.aboutToQuit.disconnect(stop_waiting)
        app.commitDataRequest.disconnect(end_session)
        app.lastWindowClosed.disconnect(last_window_closed)
    return REOPEN if reopen else 0


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
        while True:  # again when the user chose another engine (REOPEN)
            task = loop.create_task(run(app, data_dir))
            task.add_done_callback(lambda _task: loop.stop())
            loop.run_forever()  # until run() ends, or Quit (tray, logout) ends Qt's loop
            # Quit stops Qt's event loop at once: run it again until the engine has
            # closed cleanly (runs under way are journaled, the folder lock released).
            try:
                code = int(loop.run_until_complete(task))
            except asyncio.CancelledError:
                return 0
            if code != REOPEN:
                return code
