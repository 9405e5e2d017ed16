"""A first-time user's path through the real main window: a preset, its blank filled,
saved, run, seen in Activity, turned off."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.main_window import MainWindow
from desktop.models import AreasModel, RunsModel
from desktop.pages.activity import ActivityPage
from desktop.pages.automations import AutomationsPage
from desktop.pages.presets import PresetsPage
from tests.desktop.conftest import signal_once, until


async def test_from_a_preset_to_a_run_in_activity(qtbot: QtBot, bridge: EngineBridge) -> None:
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    window.show()

    presets = window.show_screen("presets")
    assert isinstance(presets, PresetsPage)
    [card] = [c for c in presets.cards if c.preset.name == "Daily reminder at 09:00"]
    qtbot.mouseClick(card.use_button, Qt.MouseButton.LeftButton)
    editors = [w for w in window.findChildren(AreaEditor) if w.isVisible()]
    assert len(editors) == 1
    editor = editors[0]
    blank = editor.cards[0].form.field("title")
    assert blank is not None and isinstance(blank.editor, QLineEdit)
    assert blank.editor.text() == ""  # the blank to fill, and it has the focus
    qtbot.keyClicks(blank.editor, "Water the plants")
    saved: asyncio.Future[tuple[Any, ...]] = asyncio.ensure_future(signal_once(editor.saved))
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    (area_id,) = await saved

    automations = window.show_screen("automations")
    assert isinstance(automations, AutomationsPage)
    await until(lambda: automations.model.row_of(area_id) >= 0)
    row = automations.proxy.mapFromSource(
        automations.model.index(automations.model.row_of(area_id), AreasModel.NAME))
    automations.table.selectRow(row.row())
    finished = asyncio.ensure_future(signal_once(bridge.runFinished))
    qtbot.mouseClick(automations.run_button, Qt.MouseButton.LeftButton)
    (run,) = await finished
    assert run["status"] == "succeeded"
    await until(lambda: automations.model.row(automations.model.row_of(area_id)).health
                == "working")

    activity = window.show_screen("activity")
    assert isinstance(activity, ActivityPage)
    await activity.refresh()
    assert activity.model.rowCount() == 1
    shown = activity.model.run(0)
    assert shown["area_id"] == area_id
    assert activity.model.data(activity.model.index(0, RunsModel.STATUS)) == "succeeded"

    window.show_screen("automations")
    on = automations.proxy.index(row.row(), AreasModel.ON)
    assert automations.proxy.setData(on, Qt.CheckState.Unchecked.value,
                                     Qt.ItemDataRole.CheckStateRole)
    await until(lambda: not bridge.area(area_id).spec.enabled)
