"""Keyboard: the editor walked with Tab alone, Esc to leave it, and the main window's
screens and a new automation one shortcut away."""

from __future__ import annotations

import itertools

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.main_window import MainWindow
from tests.desktop.conftest import until


async def active(widget: QWidget) -> None:
    widget.activateWindow()
    await until(lambda: QApplication.activeWindow() is widget)


async def opened(qtbot: QtBot, bridge: EngineBridge) -> AreaEditor:
    """The editor for a new automation, shown in the active window."""
    editor = AreaEditor(bridge)
    qtbot.addWidget(editor)
    editor.show()
    await active(editor)
    return editor


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None, "the focus went nowhere"
    return widget


def takes_tab(widget: QWidget, window: QWidget) -> bool:
    """A control a user can reach now: shown, enabled, taking Tab, not a part of another
    control (a combo box's line, a text box's viewport)."""
    if not (widget.isVisible() and widget.isEnabled()
            and widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
        return False
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if parent.focusPolicy() & Qt.FocusPolicy.TabFocus:
            return False
        parent = parent.parentWidget()
    return True


def in_reading_order(widgets: list[QWidget], window: QWidget) -> bool:
    """Each next one is further right on the same line, or on a line further down."""
    boxes = [QRect(w.mapTo(window, QPoint(0, 0)), w.size()) for w in widgets]
    for before, after in itertools.pairwise(boxes):
        same_line = after.top() < before.bottom() and before.top() < after.bottom()
        if not (after.left() > before.left() if same_line else after.top() > before.top()):
            return False
    return True


async def test_tab_walks_the_new_automation_editor_in_reading_order(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    """Tab from the first field to the condition's switch, Space to turn it on (the
    focus goes to its first rule), Tab on round to the first field; then the walk
    recorded from there to Save: every control once, top to bottom and left to right,
    and on past Save to Cancel and round to the top again (no trap)."""
    editor = await opened(qtbot, bridge)
    name = editor.name_form.field("name")
    assert name is not None and focused() is name.editor  # where the editor starts
    for _ in range(40):
        if focused() is editor.condition_check:
            break
        qtbot.keyClick(focused(), Qt.Key.Key_Tab)
    qtbot.keyClick(editor.condition_check, Qt.Key.Key_Space)
    await until(editor.condition_builder.isVisible)
    for _ in range(40):
        qtbot.keyClick(focused(), Qt.Key.Key_Tab)
        if focused() is name.editor:
            break
    assert focused() is name.editor, "Tab does not come round to the first field"

    reached = [focused()]
    while reached[-1] is not editor.save_button and len(reached) < 80:
        qtbot.keyClick(reached[-1], Qt.Key.Key_Tab)
        reached.append(focused())
    assert reached[-1] is editor.save_button, "Save is never reached"
    qtbot.keyClick(editor.save_button, Qt.Key.Key_Tab)
    reached.append(focused())
    assert reached[-1] is editor.cancel_button
    qtbot.keyClick(editor.cancel_button, Qt.Key.Key_Tab)
    assert focused() is name.editor  # round again: no trap

    assert len(reached) == len(set(reached)), "a control is reached twice"
    controls = [w for w in editor.findChildren(QWidget) if takes_tab(w, editor)]
    assert set(reached) == set(controls), [w.accessibleName() or type(w).__name__
                                           for w in set(controls) - set(reached)]
    assert in_reading_order(reached, editor)
    picker, card = editor.trigger_picker, editor.cards[0]
    builder = editor.condition_builder
    inserts = [f.insert_button for f in card.form.fields.values() if f.insert_button]
    assert inserts and all(button in reached for button in inserts)
    wanted = [picker.service_combo, picker.action_combo, editor.condition_check,
              builder.match_combo, *builder.rows[0].controls(),
              builder.add_button, builder.template_switch, card.picker.service_combo,
              card.picker.action_combo, editor.add_button, editor.test_button,
              editor.save_button, editor.cancel_button]
    assert [w for w in reached if w in wanted] == wanted


async def test_esc_closes_an_untouched_editor_and_asks_about_an_edited_one(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    untouched = await opened(qtbot, bridge)
    qtbot.keyClick(focused(), Qt.Key.Key_Escape)
    assert not untouched.isVisible()
    assert untouched.result() == QDialog.DialogCode.Rejected

    edited = await opened(qtbot, bridge)
    qtbot.keyClicks(focused(), "Morning news")
    qtbot.keyClick(focused(), Qt.Key.Key_Escape)
    await until(lambda: any(b.isVisible() for b in edited.findChildren(QMessageBox)))
    [box] = [b for b in edited.findChildren(QMessageBox) if b.isVisible()]
    assert box.windowTitle() == "Discard changes?"
    qtbot.keyClick(box, Qt.Key.Key_Escape)  # Esc again keeps editing
    await until(lambda: not box.isVisible())
    assert edited.isVisible()


async def test_screens_and_a_new_automation_are_one_shortcut_away(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    window.show()
    await active(window)
    for number, (key, title, _page) in enumerate(MainWindow.SCREENS, 1):
        keys = QKeySequence(f"Ctrl+{number}")
        assert keys.toString(QKeySequence.SequenceFormat.NativeText) in (
            window.sidebar.item(number - 1).toolTip())
        qtbot.keyClick(focused(), Qt.Key(Qt.Key.Key_0 + number),
                       Qt.KeyboardModifier.ControlModifier)
        assert window.current_screen() == key, title

    assert window.current_screen() == "settings"
    qtbot.keyClick(focused(), Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    await until(lambda: any(e.isVisible() for e in window.findChildren(AreaEditor)))
    assert window.current_screen() == "automations"
    [editor] = [e for e in window.findChildren(AreaEditor) if e.isVisible()]
    editor.reject()  # untouched: closes without a question
    await until(lambda: not editor.isVisible())

    await active(window)
    window.pages["automations"].setFocus()
    qtbot.keyClick(focused(), Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    await until(lambda: any(e.isVisible() for e in window.findChildren(AreaEditor)))
