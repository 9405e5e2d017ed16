"""The editor's active window: "Active from … until …" and an "Only during" weekly
window (days, from, until), read and written as the area file's ``active_from``,
``active_until`` and ``only_during`` (engine/windows.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from PySide6.QtCore import QDate, QDateTime, QTime
from PySide6.QtWidgets import (
    QCheckBox,
    QDateTimeEdit,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QTimeEdit,
    QWidget,
)

from desktop.forms import QT_MOMENT_FORMAT, error_label, small_label
from desktop.wheel import guard_inputs
from engine.windows import DAYS

DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
KEYS = ("active_from", "active_until", "only_during")


def _moment_edit(name: str) -> QDateTimeEdit:
    edit = QDateTimeEdit(QDateTime(QDate.currentDate().addDays(1), QTime(9, 0)))
    edit.setCalendarPopup(True)
    edit.setDisplayFormat(QT_MOMENT_FORMAT)
    edit.setAccessibleName(name)
    edit.setEnabled(False)
    return edit


def _time_edit(name: str, at: QTime) -> QTimeEdit:
    edit = QTimeEdit(at)
    edit.setDisplayFormat("HH:mm")
    edit.setAccessibleName(name)
    return edit


class WindowFields(QGroupBox):
    """When the automation may fire; outside it waits, past its end it is done.

    Attributes:
        from_check, until_check: whether "Active from" / "until" is set; ``from_edit``
            and ``until_edit`` hold the local date and time.
        weekly_check: whether "Only during" is set; ``day_checks`` (Mon…Sun),
            ``start_edit`` and ``end_edit`` hold it.
        error: a problem the engine found with these fields.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Only at certain times", parent)
        self._zone = ""  # an "only during" time zone read from the file, kept as it was
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(8)
        self.from_check = QCheckBox("Active from")
        self.from_edit = _moment_edit("Active from")
        self.until_check = QCheckBox("until")
        self.until_edit = _moment_edit("Active until")
        grid.addWidget(self.from_check, 0, 0)
        grid.addWidget(self.from_edit, 0, 1)
        grid.addWidget(self.until_check, 0, 2)
        grid.addWidget(self.until_edit, 0, 3)
        self.weekly_check = QCheckBox("Only during")
        days = QHBoxLayout()
        self.day_checks = [QCheckBox(label) for label in DAY_LABELS]
        for index, check in enumerate(self.day_checks):
            check.setChecked(index < 5)
            days.addWidget(check)
        days.addStretch(1)
        self.start_edit = _time_edit("Only during from", QTime(9, 0))
        self.end_edit = _time_edit("Only during until", QTime(18, 0))
        hours = QHBoxLayout()
        hours.addWidget(QLabel("from"))
        hours.addWidget(self.start_edit)
        hours.addWidget(QLabel("until"))
        hours.addWidget(self.end_edit)
        hours.addStretch(1)
        self.weekly = QWidget()
        weekly_layout = QGridLayout(self.weekly)
        weekly_layout.setContentsMargins(0, 0, 0, 0)
        weekly_layout.addLayout(days, 0, 0)
        weekly_layout.addLayout(hours, 1, 0)
        self.weekly.setEnabled(False)
        grid.addWidget(self.weekly_check, 1, 0)
        grid.addWidget(self.weekly, 1, 1, 1, 4)
        grid.setColumnStretch(4, 1)
        self.error = error_label()
        grid.addWidget(self.error, 2, 0, 1, 5)
        grid.addWidget(small_label(
            "In your local time. Outside these times the automation waits (its events "
            "are not acted on); after “until” it is done. An end before the start runs "
            "past midnight."), 3, 0, 1, 5)
        self.from_check.toggled.connect(self.from_edit.setEnabled)
        self.until_check.toggled.connect(self.until_edit.setEnabled)
        self.weekly_check.toggled.connect(self.weekly.setEnabled)
        guard_inputs(self)

    def values(self) -> dict[str, Any]:
        """The set keys of ``active_from``, ``active_until`` and ``only_during``."""
        out: dict[str, Any] = {}
        if self.from_check.isChecked():
            out["active_from"] = self.from_edit.dateTime().toString(QT_MOMENT_FORMAT)
        if self.until_check.isChecked():
            out["active_until"] = self.until_edit.dateTime().toString(QT_MOMENT_FORMAT)
        if self.weekly_check.isChecked():
            weekly: dict[str, Any] = {
                "days": [d for d, c in zip(DAYS, self.day_checks, strict=True)
                         if c.isChecked()],
                "from": self.start_edit.time().toString("HH:mm"),
                "until": self.end_edit.time().toString("HH:mm")}
            if self._zone:
                weekly["timezone"] = self._zone
            out["only_during"] = weekly
        return out

    def set_values(self, data: Mapping[str, Any]) -> None:
        """Fill from an area in the import format (absent keys: not set)."""
        for key, check, edit in (("active_from", self.from_check, self.from_edit),
                                 ("active_until", self.until_check, self.until_edit)):
            moment = _local(data.get(key))
            check.setChecked(moment is not None)
            if moment is not None:
                edit.setDateTime(QDateTime(QDate(moment.year, moment.month, moment.day),
                                           QTime(moment.hour, moment.minute)))
        weekly = data.get("only_during")
        self.weekly_check.setChecked(bool(weekly))
        if isinstance(weekly, Mapping):
            days = {str(d).lower()[:3] for d in weekly.get("days", DAYS)}
            for day, check in zip(DAYS, self.day_checks, strict=True):
                check.setChecked(day in days)
            for key, edit in (("from", self.start_edit), ("until", self.end_edit)):
                parsed = QTime.fromString(str(weekly.get(key, "")), "HH:mm")
                if parsed.isValid():
                    edit.setTime(parsed)
            self._zone = str(weekly.get("timezone") or "")

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()


def _local(value: Any) -> datetime | None:
    """A saved moment (naive local, or with an offset) as local wall time."""
    if value in (None, ""):
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("T", " "))
    return when.astimezone().replace(tzinfo=None) if when.tzinfo is not None else when
