"""The mouse wheel over a choice or a number changes it only once it has the focus:
scrolling the editor or Settings past one scrolls the page, as a user expects."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QPoint, QPointF, QRect
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QComboBox, QScrollArea, QSpinBox, QWidget
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.pages.settings import SettingsPage
from tests.desktop.conftest import until

TIMER_NOTIFY = {
    "name": "Stretch",
    "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "Stretch!", "level": "info"}},
                  {"service": "notify", "reaction": "notify", "params": {"title": "Again"}}],
}
DOWN, UP = -1, 1


async def turn_wheel(widget: QWidget, notches: int) -> None:
    """Turn the mouse wheel over ``widget`` as a user does: through its window, so Qt
    hands it to the widget under the pointer and on to its parents as it does a real one.

    QTest runs the pending Qt events after it; that happens in a plain callback of the
    loop, not inside this test's task, where a task step among them would be refused.
    """
    loop = asyncio.get_running_loop()
    turned: asyncio.Future[None] = loop.create_future()

    def turn() -> None:
        window = widget.window()
        handle = window.windowHandle()
        assert handle is not None
        where = QPointF(widget.mapTo(window, widget.rect().center()))
        try:
            QTest.wheelEvent(handle, where, QPoint(0, 120 * notches))
        finally:
            turned.set_result(None)

    loop.call_soon(turn)
    await turned


async def shown_in(scroller: QScrollArea, widget: QWidget) -> None:
    """Scroll ``widget`` into view, with the window active and the focus elsewhere."""
    window = widget.window()
    window.activateWindow()
    await until(lambda: QApplication.activeWindow() is window)
    scroller.ensureWidgetVisible(widget)
    area = QRect(widget.mapTo(scroller.viewport(), QPoint(0, 0)), widget.size())
    assert scroller.viewport().rect().contains(area), "the input is not in view"
    assert not widget.hasFocus()


async def test_the_editor_scrolls_past_a_notifications_kind_without_changing_it(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = AreaEditor(bridge, spec_dict=TIMER_NOTIFY)
    qtbot.addWidget(editor)
    editor.resize(640, 520)
    editor.show()
    kind = editor.cards[0].form.field("level")
    assert kind is not None and isinstance(kind.editor, QComboBox)
    combo = kind.editor
    await shown_in(editor.scroller, combo)
    bar = editor.scroller.verticalScrollBar()
    before = bar.value()
    assert 0 < before < bar.maximum()  # the kind is halfway down the page
    await turn_wheel(combo, DOWN)
    assert combo.currentText() == "Information"
    assert bar.value() > before  # the page scrolled instead
    assert not combo.hasFocus()  # and the wheel did not take the focus there

    await shown_in(editor.scroller, combo)
    combo.setFocus()
    await until(combo.hasFocus)
    await turn_wheel(combo, DOWN)  # once chosen, the wheel is the user's to use
    assert combo.currentText() == "Warning"
    assert editor.spec_dict()["reactions"][0]["params"]["level"] == combo.currentData()


async def test_settings_scroll_past_a_number_without_changing_it(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    page = SettingsPage(bridge)
    qtbot.addWidget(page)
    page.resize(760, 420)
    page.show()
    pause = page.fields["pause_after_failures"].widget
    assert isinstance(pause, QSpinBox) and pause.value() == 5
    scroller = page.findChild(QScrollArea)
    assert scroller is not None
    await shown_in(scroller, pause)
    bar = scroller.verticalScrollBar()
    before = bar.value()
    assert before < bar.maximum()
    await turn_wheel(pause, DOWN)
    assert pause.value() == 5
    assert bar.value() > before
    assert not page.save_button.isEnabled()  # nothing changed, nothing to save

    await shown_in(scroller, pause)
    pause.setFocus()
    await until(pause.hasFocus)
    await turn_wheel(pause, UP)
    assert pause.value() == 6
    assert page.changes() == {"pause_after_failures": 6}
