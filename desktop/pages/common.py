"""Small pieces the screens share: opening the area editor, empty states, fonts."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QDialog, QLabel, QSizePolicy, QWidget

from desktop.bridge import EngineBridge


def open_area_editor(bridge: EngineBridge, parent: QWidget,
                     spec_dict: dict[str, Any]) -> QWidget:
    """Open the area editor on a new automation pre-filled with ``spec_dict``.

    The editor module is imported here, not at the top: it is heavy and screens that
    only offer "Use …" should not pay for it at start.
    """
    from desktop.editor import AreaEditor

    editor: QWidget = AreaEditor(bridge, parent, spec_dict=spec_dict)
    editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if isinstance(editor, QDialog):
        editor.open()
    else:
        if not editor.isWindow():
            editor.setWindowFlag(Qt.WindowType.Window)
        editor.show()
    editor.raise_()
    editor.activateWindow()
    return editor


def monospace() -> QFont:
    """The system's fixed-width font (payloads, parameters, outputs)."""
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def empty_state(text: str) -> QLabel:
    """A centred, wrapped, muted hint that says what to do when there is nothing to show."""
    label = QLabel(text)
    label.setObjectName("emptyState")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 1.15)
    label.setFont(font)
    label.setContentsMargins(24, 24, 24, 24)
    return label


def heading(text: str, scale: float = 1.4) -> QLabel:
    """A bold title line."""
    label = QLabel(text)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def muted(label: QLabel) -> QLabel:
    """Show ``label`` in the palette's secondary text colour."""
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label
