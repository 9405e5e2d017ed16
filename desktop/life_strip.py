"""Activity's strip for the chosen automation: its state now, its next change by itself,
and its latest state changes with their time and cause (engine/lifecycle.py)."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from desktop.lifecycle_view import moment
from desktop.models import when
from engine import lifecycle as life

#: How many state changes the strip lists (the newest).
SHOWN = 5


def now_text(name: str, status: life.Status) -> str:
    """“Name” is snoozed until 18:00, then active."""
    text = f"“{name}” is {status.label}"
    if status.next_change is not None and status.next_state is not None:
        then = life.LABELS.get(status.next_state, status.next_state)
        text += f" until {moment(status.next_change)}, then {then}"
    return text + "."


def change_text(change: life.Transition) -> str:
    """today 14:02 · active → snoozed: snoozed until 2026-12-06 18:00"""
    return (f"{when(change.at)} · {life.LABELS.get(change.from_state, change.from_state)} → "
            f"{life.LABELS.get(change.to_state, change.to_state)}: {change.cause}")


class LifeStrip(QFrame):
    """The chosen automation's state and its last transitions; hidden for "All".

    Attributes:
        now: the state now (and its next change).
        changes: one label per transition, newest first.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lifeStrip")
        self.setAccessibleName("The automation's state and its latest changes")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        self.now = QLabel()
        self.now.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.now)
        self.changes: list[QLabel] = []
        for _ in range(SHOWN):
            label = QLabel()
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(label)
            self.changes.append(label)
        self.hide()

    def show_status(self, name: str, status: life.Status | None) -> None:
        """Show ``status`` (None: hide the strip)."""
        if status is None:
            self.hide()
            return
        self.now.setText(f"<b>{html.escape(now_text(name, status))}</b>")
        self.now.setAccessibleName(now_text(name, status))
        history = status.history[:SHOWN]
        for label, change in zip(self.changes, history + [None] * SHOWN, strict=False):
            label.setText(change_text(change) if change is not None else "")
            label.setVisible(change is not None)
        self.show()
