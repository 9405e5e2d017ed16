"""Starting the app: a start that fails says why in a window, not only on a console."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from desktop import app as desktop_app
from engine.areas import AreaSpec
from engine.settings import Settings, save_settings
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
        area = await bridge.save_area(AreaSpec.from_dict({
            "name": "Backup reminder",
            "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": "Back up the photos"}}]}))
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
