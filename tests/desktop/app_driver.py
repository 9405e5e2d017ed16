"""Runs the real desktop app (``desktop.app.main``) for the quit tests, as a user would
drive it: prints ``READY`` once the main window shows, and when the file
``<data folder>/quit-now`` appears, clicks the tray menu's "Quit Hookline" (printing
``QUIT_AT <monotonic time>`` first). Not a test itself."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow, QMenu

from desktop.app import main

data_dir = Path(sys.argv[1])
app = QApplication(sys.argv[:1])
ready = False


def watch() -> None:
    global ready
    if not ready and any(isinstance(w, QMainWindow) and w.isVisible()
                         for w in QApplication.topLevelWidgets()):
        ready = True
        print("READY", flush=True)
    if ready and (data_dir / "quit-now").exists():
        for menu in QApplication.allWidgets():
            if not isinstance(menu, QMenu):
                continue
            for action in menu.actions():
                if action.text() == "Quit Hookline":
                    print(f"QUIT_AT {time.monotonic()}", flush=True)
                    action.trigger()
                    return
    QTimer.singleShot(20, watch)


QTimer.singleShot(0, watch)
sys.exit(main(data_dir))
