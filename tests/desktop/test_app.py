"""Starting the app: a start that fails says why in a window, not only on a console."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from desktop import app as desktop_app
from engine.app import Engine
from engine.areas import AreaSpec
from engine.backup import backup, backup_dir, request_restore
from engine.settings import Settings, save_settings
from engine.storage.db import DB_FILE
from integrations import machine
from tests.desktop.conftest import shown_window, signal_once, until


async def test_a_damaged_database_is_explained_with_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qapp: QApplication) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "hookline.db").write_bytes(b"this is no SQLite file" * 50)
    said: list[str] = []
    monkeypatch.setattr(desktop_app, "cannot_start", said.append)
    # run() gives the engine Qt's clipboard reader: keep that out of later tests.
    monkeypatch.setattr(machine, "readers", dict(machine.readers))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert await desktop_app.run(qapp, data_dir) == 1
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    [message] = said
    assert message.startswith(f"The database {data_dir / 'hookline.db'} is damaged (file is "
                              "not a database). Hookline keeps a copy from each day: see them "
                              "with `hookline backup list`")
    assert "sqlalche.me" not in message


async def test_without_a_tray_a_notification_step_says_it_was_not_shown(
        tmp_path: Path, qapp: QApplication, app_run: None) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    save_settings(data_dir, Settings.from_mapping({"listener_port": 0}))
    running = asyncio.ensure_future(desktop_app.run(qapp, data_dir))
    try:
        await until(lambda: shown_window() is not None)
        window = shown_window()
        assert window is not None
        assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen: no tray
        bridge = window.bridge
        area = await bridge.save_area(AreaSpec.from_dict(AREA))
        finished = signal_once(bridge.runFinished)
        await bridge.run_now(area.id)
        (run,) = await finished
        assert run["status"] == "failed"  # not "Succeeded": nothing was shown
        [record] = await bridge.runs(area_id=area.id, limit=1)
        [step] = record["steps"]
        assert step["status"] == "failed"
        assert step["error"] == f"Not shown: {desktop_app.NO_TRAY}"
    finally:
        qapp.aboutToQuit.emit()  # as Quit does
        assert await asyncio.wait_for(running, 30) == 0


AREA = {"name": "Backup reminder",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "Back up the photos"}}]}


@pytest.mark.parametrize("damaged", [False, True])
async def test_the_restore_asked_for_before_quitting_is_said_at_the_next_start(
        tmp_path: Path, qapp: QApplication, app_run: None, damaged: bool) -> None:
    data_dir = tmp_path / "data"
    save_settings(data_dir, Settings.from_mapping({"listener_port": 0}))
    engine = Engine(data_dir)
    await engine.start()
    await engine.create_area(AreaSpec.from_dict(AREA))
    made = backup(data_dir / DB_FILE, backup_dir(data_dir))
    await engine.create_area(AreaSpec.from_dict(AREA | {"name": "Since the backup"}))
    request_restore(made, data_dir)  # Settings → Restore a backup…, then the app quit
    await engine.aclose()
    if damaged:  # the disk lost it meanwhile
        made.write_bytes(b"no longer a database" * 100)

    running = asyncio.ensure_future(desktop_app.run(qapp, data_dir))
    try:
        await until(lambda: shown_window() is not None)
        window = shown_window()
        assert window is not None
        names = sorted(a.name for a in window.bridge.areas())
        if damaged:
            box = window.findChild(QMessageBox, "restoreFailed")
            assert box is not None and box.isVisible()
            assert box.text().startswith("The backup asked for was not restored: ")
            assert "Hookline opened with its data as it was" in box.text()
            assert names == [AREA["name"], "Since the backup"]
            box.close()
        else:
            assert window.statusBar().currentMessage() == (
                f"Restored the backup {made.name}; the data as it was is kept in the "
                "backups folder.")
            assert names == [AREA["name"]]
    finally:
        qapp.aboutToQuit.emit()
        assert await asyncio.wait_for(running, 30) == 0
