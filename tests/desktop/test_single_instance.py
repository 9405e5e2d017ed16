"""One app per data folder: a second launch hands off to the running one, whose window
comes forward, and then exits."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.app import answer_hand_offs, hand_off
from desktop.bridge import EngineBridge
from desktop.main_window import MainWindow
from engine.app import Engine
from engine.lock import DataDirLock
from tests.desktop.conftest import until


async def test_second_launch_brings_the_running_window_forward(
        engine: Engine, bridge: EngineBridge, data_dir: Path, qtbot: QtBot) -> None:
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    answer_hand_offs(bridge, window)
    window.showMinimized()
    window.hide()  # closed to the tray
    assert not window.isVisible()

    # what the second process does before it would start an engine of its own
    assert await asyncio.to_thread(hand_off, data_dir) is True

    await until(window.isVisible)  # the engine's "show" reaches the window's thread
    assert not window.isMinimized()
    # let the list it shows finish loading before the engine stops
    await until(lambda: getattr(window.pages["automations"], "loaded", True))


async def test_no_hand_off_when_nothing_runs(data_dir: Path) -> None:
    assert await asyncio.to_thread(hand_off, data_dir) is False


async def test_no_hand_off_to_a_stale_control_file(data_dir: Path,
                                                   unused_tcp_port: int) -> None:
    # left behind by an app that was killed: nobody holds the lock
    data_dir.mkdir(parents=True)
    (data_dir / "control.json").write_text(json.dumps(
        {"port": unused_tcp_port, "token": "x", "pid": 1}), encoding="utf-8")
    assert await asyncio.to_thread(hand_off, data_dir) is False


async def test_no_hand_off_when_the_running_engine_has_no_window(engine: Engine,
                                                                 data_dir: Path) -> None:
    # `hookline serve` holds the folder: it knows no "show", so the app says so and exits
    assert engine.control is not None and "show" not in engine.control.commands
    assert await asyncio.to_thread(hand_off, data_dir) is False


#: The app as `hookline` starts it, quitting (as the tray's Quit does) once its window shows.
QUIT_WHEN_SHOWN = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])

def quit_when_shown():
    from desktop.main_window import MainWindow
    if any(isinstance(w, MainWindow) and w.isVisible() for w in app.topLevelWidgets()):
        QApplication.quit()
    else:
        QTimer.singleShot(20, quit_when_shown)

QTimer.singleShot(20, quit_when_shown)
from desktop.app import main
sys.exit(main(Path(sys.argv[1])))
"""


async def test_quit_closes_the_engine_cleanly(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "settings.json").write_text('{"listener_port": 0}', encoding="utf-8")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", QUIT_WHEN_SHOWN, str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    try:
        _out, err = await asyncio.wait_for(child.communicate(), 60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, err.decode()
    assert b"Traceback" not in err, err.decode()
    # the engine shut down: its control channel is gone and the folder is free again
    assert not (data_dir / "control.json").exists()
    assert not DataDirLock(data_dir).held_elsewhere()
