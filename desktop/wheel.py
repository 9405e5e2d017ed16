"""Inputs that take the mouse wheel only once focused: scrolling past them scrolls the form."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QDial, QSlider, QWidget

#: Inputs whose value the wheel changes (a scroll bar is not one: it scrolls).
WHEEL_INPUTS = (QComboBox, QAbstractSpinBox, QSlider, QDial)


class WheelGuard(QObject):
    """Passes the wheel over an unfocused input on to its parents (the scroll area
    around it scrolls) instead of letting it change the value; a focused input keeps it.

    Args:
        widget: the input; it gets StrongFocus, so the wheel no longer focuses it
            either, and the guard lives as long as it does.
    """

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget):
            return False
        if watched.hasFocus():
            return False
        # Consumed here but not accepted: Qt offers it to the parents, as it does
        # with a wheel event a widget ignores.
        event.ignore()
        return True


def guard_inputs(root: QWidget) -> None:
    """Guard ``root`` and every input in it (see WheelGuard); call once it is built.
    Inputs guarded already are left as they are."""
    inputs = [root] if isinstance(root, WHEEL_INPUTS) else []
    inputs += [w for w in root.findChildren(QWidget) if isinstance(w, WHEEL_INPUTS)]
    for widget in inputs:
        if widget.findChild(WheelGuard, options=Qt.FindChildOption.FindDirectChildrenOnly
                            ) is None:
            WheelGuard(widget)


__all__ = ["WHEEL_INPUTS", "WheelGuard", "guard_inputs"]
