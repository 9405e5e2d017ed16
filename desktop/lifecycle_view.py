"""An area's life in time as the automations list shows it: its state with its next
change ("Snoozed until 18:00", "Opens Mon 09:00"), done areas greyed and kept last."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont

from desktop.bridge import AreaRow, is_once
from desktop.models import HEALTH_TEXT, AreasModel, Index
from engine import lifecycle as life

#: A done area's text colour: it is history, read but not acted on.
DONE_COLOR = "#9aa0a6"
#: The longest the State column says (its width is set once for it).
LONGEST_STATE = "Fires once 2027-01-01 09:00"
STATE_COLOR = {life.SNOOZED: "#1a73e8", life.WAITING: "#5f6368", life.DRAFT: "#5f6368",
               life.DONE: DONE_COLOR}


def moment(value: datetime, now: datetime | None = None) -> str:
    """A coming local moment, short: '18:00' today, 'Mon 09:00' within the week,
    '2027-01-01 09:00' later."""
    local = value.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    days = (local.date() - today).days
    if days == 0:
        return f"{local:%H:%M}"
    if 0 < days < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def state_text(row: AreaRow, now: datetime | None = None) -> str:
    """The State column: an active area's health (working, failing…), else its state
    with its next change by itself."""
    if row.state == life.SNOOZED:
        return (f"Snoozed until {moment(row.next_change, now)}" if row.next_change
                else "Snoozed")
    if row.state == life.WAITING:
        return (f"Opens {moment(row.next_change, now)}" if row.next_change
                else "Waiting for its window")
    if row.state == life.ACTIVE and row.next_change and is_once(row.spec):
        return f"Fires once {moment(row.next_change, now)}"
    if row.state in (life.DONE, life.DRAFT):
        return life.LABELS[row.state].capitalize()
    return HEALTH_TEXT.get(row.health, row.health)


def state_tip(row: AreaRow) -> str | None:
    """What the State column's tooltip adds: what happens next, or why it stopped."""
    if row.state == life.SNOOZED:
        return "Snoozed: it fires again when the snooze ends (or Wake now)"
    if row.state == life.WAITING:
        return "Outside its active window: it fires again when the window opens"
    if row.state == life.DONE:
        return "Done: it fired once or its active window ended; kept for its history"
    return None


DONE_SWITCH_TIP = ("Done: it fires no more. Open it to give it a new date or window, "
                   "or duplicate it")


class LifecycleAreasModel(AreasModel):
    """The automations list with each area's lifecycle state in the State column;
    done areas greyed."""

    HEADERS = ("On", "Name", "When → then", "Last run", "State")

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.row(index.row())
        column = index.column()
        if row.state == life.DONE:
            if column == self.ON and role == Qt.ItemDataRole.CheckStateRole:
                return Qt.CheckState.Unchecked  # it fires no more: not "on"
            if column == self.ON and role == Qt.ItemDataRole.ToolTipRole:
                return DONE_SWITCH_TIP
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(QColor(DONE_COLOR))
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
        if column == self.HEALTH:
            if role == Qt.ItemDataRole.DisplayRole:
                return state_text(row)
            if role == Qt.ItemDataRole.ForegroundRole and row.state in STATE_COLOR:
                return QBrush(QColor(STATE_COLOR[row.state]))
            if role == Qt.ItemDataRole.ToolTipRole and state_tip(row):
                return state_tip(row)
        return super().data(index, role)

    def flags(self, index: Index) -> Qt.ItemFlag:
        """A done area's switch is shown off and cannot be ticked (nothing to switch on)."""
        flags = super().flags(index)
        if index.isValid() and index.column() == self.ON and (
                self.row(index.row()).state == life.DONE):
            flags &= ~Qt.ItemFlag.ItemIsUserCheckable
        return flags
