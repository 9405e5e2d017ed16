"""The "Snooze" menu: for an hour, until 18:00, until tomorrow 08:00, or a moment the
user picks; and "Wake now" for snoozed areas."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import QDateTime
from PySide6.QtWidgets import (
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from desktop.wheel import guard_inputs
from engine import lifecycle as life
from engine.windows import local_zone


def choices(now: datetime | None = None) -> list[tuple[str, datetime]]:
    """(menu text, when the snooze ends) for the ready-made snoozes."""
    now = now or datetime.now(UTC)
    zone = local_zone()
    return [("For 1 &hour", now + timedelta(hours=1)),
            ("Until &18:00", life.parse_snooze("until 18:00", now, zone)),
            ("Until &tomorrow 08:00", life.parse_snooze("until tomorrow", now, zone))]


class CustomSnooze(QDialog):
    """Asks until when to snooze (a local date and time, later than now).

    Attributes:
        picker: the date and time input (calendar popup).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Snooze until")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Snooze until (your local time):"))
        self.picker = QDateTimeEdit(QDateTime.currentDateTime().addSecs(3600))
        self.picker.setCalendarPopup(True)
        self.picker.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.picker.setMinimumDateTime(QDateTime.currentDateTime())
        self.picker.setAccessibleName("Snooze until")
        layout.addWidget(self.picker)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        guard_inputs(self)

    def until(self) -> datetime:
        """The chosen moment (aware, local)."""
        chosen = self.picker.dateTime().toPython()
        assert isinstance(chosen, datetime)
        return chosen.astimezone()


def snooze_menu(parent: QWidget, snooze: Callable[[datetime], object],
                wake: Callable[[], object] | None = None) -> QMenu:
    """A "Snooze" menu calling ``snooze(until)``; with ``wake``, also "Wake now"."""
    menu = QMenu("S&nooze", parent)
    for text, until in choices():
        menu.addAction(text, functools.partial(snooze, until))

    def custom() -> None:
        dialog = CustomSnooze(parent)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            snooze(dialog.until())

    menu.addAction("&Custom…", custom)
    if wake is not None:
        menu.addSeparator()
        menu.addAction("&Wake now", wake)
    return menu
