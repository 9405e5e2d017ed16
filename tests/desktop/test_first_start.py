"""The window's first start: on an empty data folder it shows a demo automation that
works and says it is a demo; a later start (the demo deleted) adds none again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtWidgets import QApplication

from desktop import app as desktop_app
from desktop.first_start import DEMO_FILE, DEMO_NAME, is_new
from desktop.models import AreasModel
from desktop.pages.automations import AutomationsPage
from engine.settings import Settings, save_settings
from tests.desktop.conftest import shown_window, until


async def test_a_first_start_on_an_empty_data_folder_shows_a_working_demo(
        tmp_path: Path, qapp: QApplication, app_run: None) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    save_settings(data_dir, Settings.from_mapping({"listener_port": 0}))  # a free port
    assert is_new(data_dir)
    running = asyncio.ensure_future(desktop_app.run(qapp, data_dir))
    try:
        await until(lambda: shown_window() is not None)
        window = shown_window()
        assert window is not None and window.current_screen() == "automations"
        page = window.pages["automations"]
        assert isinstance(page, AutomationsPage)
        model = page.model
        await until(lambda: model.rowCount() == 1)
        row = model.row(0)
        assert row.name == DEMO_NAME  # plainly a demo, and deletable
        await until(lambda: model.row(0).health == "working")  # it ran: it works
        assert model.index(0, AreasModel.HEALTH).data() == "Working"
        assert "Hookline is working" in (data_dir / DEMO_FILE).read_text(encoding="utf-8")
    finally:
        qapp.aboutToQuit.emit()  # as Quit does
        assert await asyncio.wait_for(running, 30) == 0
    assert not is_new(data_dir)  # the next start adds no demo: deleting it is for good
