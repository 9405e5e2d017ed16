"""Quitting from the main window (closing it with no tray, the tray's Quit) while an
editor holds unsaved changes: it asks to save them, as the editor's own Cancel does."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.main_window import MainWindow
from engine.areas import AreaSpec
from tests.desktop.test_editor import TIMER_NOTIFY, answer, line, retype, shown, until


async def open_with_changes(qtbot: QtBot, bridge: EngineBridge
                            ) -> tuple[MainWindow, AreaEditor, str]:
    area = await bridge.save_area(AreaSpec.from_dict(TIMER_NOTIFY))
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    window.show()
    assert not window.tray_available  # closing the window quits
    editor = AreaEditor(bridge, window.pages["automations"], area_id=area.id)
    editor.show()
    retype(qtbot, line(editor.name_form, "name"), "Stretch more")
    return window, editor, area.id


async def test_closing_the_window_asks_to_save_an_editors_changes(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    window, editor, area_id = await open_with_changes(qtbot, bridge)
    window.close()
    box = await shown(editor, QMessageBox)
    assert box.windowTitle() == "Quit Hookline?"
    assert box.text() == "Save changes to “Stretch more”?"
    assert sorted(b.text() for b in box.buttons()) == ["Cancel", "Discard", "Save"]
    assert box.defaultButton().text() == "Cancel"
    answer(box, "Cancel")  # nothing lost, nothing quits
    await until(lambda: not box.isVisible())
    assert window.isVisible() and editor.isVisible()
    assert line(editor.name_form, "name").text() == "Stretch more"

    window.close()
    answer(await shown(editor, QMessageBox), "Save")
    await until(lambda: not window.isVisible())
    assert bridge.area(area_id).name == "Stretch more"


async def test_the_trays_quit_asks_too_and_discard_quits(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    quits: list[bool] = []
    monkeypatch.setattr(QApplication, "quit", lambda: quits.append(True))
    window, editor, area_id = await open_with_changes(qtbot, bridge)
    window.request_quit()
    answer(await shown(editor, QMessageBox), "Discard")
    await until(lambda: bool(quits))
    assert not editor.isVisible()
    assert bridge.area(area_id).name == "Stretch"  # discarded, as asked
