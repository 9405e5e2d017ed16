"""Dialogs a screen's async work can wait for without a nested Qt event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QInputDialog, QLabel, QLineEdit, QMessageBox, QWidget

#: The widest a dialog's message is laid out (pixels): wider lines are hard to read.
MESSAGE_WIDTH = 560


async def finished(dialog: QDialog) -> int:
    """Open ``dialog`` window-modal and wait until it closes; its result code.

    ``exec()`` and the static ``QMessageBox``/``QInputDialog`` helpers run a nested Qt
    loop; inside an asyncio task that loop makes qasync start other tasks' steps while
    this task is current, which asyncio refuses, and those tasks never run again (a
    screen that stops refreshing, a Quit that waits for them). ``open()`` has no nested
    loop: the task simply awaits the dialog's ``finished`` signal.
    """
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(result: int) -> None:
        if not future.done():
            future.set_result(result)

    dialog.finished.connect(done)
    dialog.open()
    try:
        return await future
    finally:
        dialog.finished.disconnect(done)
        if dialog.isVisible():  # the task was cancelled: the dialog goes with it
            dialog.reject()
        dialog.deleteLater()


async def text(parent: QWidget, title: str, label: str, *, secret: bool = False
               ) -> str | None:
    """One line of text from the user (None: cancelled). A long ``label`` wraps, so the
    dialog stays narrower than the screen; its text can be selected and copied."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(label.replace("&", "&&"))  # the label is the input's buddy: no mnemonic
    shown = dialog.findChild(QLabel)
    if shown is not None:
        shown.setWordWrap(True)
        # As wide as its longest line, up to MESSAGE_WIDTH (a wrapped label left to
        # itself may choose a narrow, tall column).
        longest = max(shown.fontMetrics().horizontalAdvance(line)
                      for line in label.splitlines() or [""])
        shown.setMinimumWidth(min(longest, MESSAGE_WIDTH))
        shown.setMaximumWidth(MESSAGE_WIDTH)
        shown.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    dialog.setTextEchoMode(QLineEdit.EchoMode.Password if secret
                           else QLineEdit.EchoMode.Normal)
    accepted = await finished(dialog) == QDialog.DialogCode.Accepted
    return dialog.textValue() if accepted else None


async def choose(parent: QWidget, title: str, text: str,
                 choices: Sequence[tuple[str, QMessageBox.ButtonRole]], *, default: str
                 ) -> str:
    """The label of the button the user chose, among buttons that say what they do (not
    Yes and No). Escape, or closing the box, chooses the one with RejectRole: give one."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.NoButton, parent)
    buttons = {label: box.addButton(label, role) for label, role in choices}
    [escape] = [label for label, role in choices if role is QMessageBox.ButtonRole.RejectRole]
    box.setEscapeButton(buttons[escape])
    box.setDefaultButton(buttons[default])
    await finished(box)
    clicked = box.clickedButton()
    return next((label for label, button in buttons.items() if button is clicked), escape)


async def warning(parent: QWidget, title: str, text: str) -> None:
    """Tell the user something went wrong; returns once they closed the box."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                      parent)
    await finished(box)
