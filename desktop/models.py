"""Qt item models over engine data; views stay thin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPixmap

from desktop.bridge import AreaRow
from desktop.icons import service_icon

Index = QModelIndex | QPersistentModelIndex

HEALTH_TEXT = {
    "working": "Working",
    "waiting": "Waiting for its first run",
    "failing": "Failing",
    "paused": "Paused",
    "off": "Off",
    "needs account": "Needs an account",
}
HEALTH_COLOR = {
    "working": "#1e8e3e",
    "waiting": "#5f6368",
    "failing": "#d93025",
    "paused": "#e37400",
    "off": "#80868b",
    "needs account": "#e37400",
}
STATUS_COLOR = {
    "succeeded": "#1e8e3e",
    "failed": "#d93025",
    "skipped": "#80868b",
    "missed": "#e37400",
    "interrupted": "#e37400",
    "running": "#1a73e8",
}


def when(value: datetime | None) -> str:
    """A short local time: 'today 14:02', 'yesterday 09:10', '2026-11-02 08:00'."""
    if value is None:
        return "never"
    local = value.astimezone()
    today = datetime.now(UTC).astimezone().date()
    days = (today - local.date()).days
    if days == 0:
        return f"today {local:%H:%M}"
    if days == 1:
        return f"yesterday {local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def flow_icon(trigger_service: str, reaction_services: Sequence[str]) -> QIcon:
    """The trigger's service icon, then each reaction service's (at most three), on one
    strip of fixed width so rows line up."""
    return _flow_icon(trigger_service, tuple(dict.fromkeys(reaction_services))[:3])


@cache
def _flow_icon(trigger_service: str, reaction_services: tuple[str, ...]) -> QIcon:
    icon = QIcon()
    for size in (16, 20, 24):
        gap = size // 4
        pixmap = QPixmap(QSize(FLOW_SLOTS * size + (FLOW_SLOTS - 1) * gap, size))
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        for slot, service in enumerate((trigger_service, *reaction_services)):
            painter.drawPixmap(slot * (size + gap), 0,
                               service_icon(service).pixmap(QSize(size, size)))
        painter.end()
        icon.addPixmap(pixmap)
    return icon


#: Icons in the automations list's "When → then" strip: the trigger's and three more.
FLOW_SLOTS = 4


class AreasModel(QAbstractTableModel):
    """The automations list: one row per area.

    Signals:
        enabledToggled(str, bool): the user switched an area on or off in the On
            column (area id, on); the view's owner tells the engine.
    """

    enabledToggled = Signal(str, bool)

    ON, NAME, WHAT, LAST_RUN, HEALTH = range(5)
    HEADERS = ("On", "Name", "When → then", "Last run", "Health")
    RowRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[AreaRow] = []

    def set_rows(self, rows: list[AreaRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row(self, index: int) -> AreaRow:
        return self._rows[index]

    def rows(self) -> list[AreaRow]:
        return list(self._rows)

    def row_of(self, area_id: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r.id == area_id), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == self.ON:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == self.RowRole:
            return row
        if column == self.ON and role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if row.enabled else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.NAME:
                return row.name
            if column == self.WHAT:
                return row.summary
            if column == self.LAST_RUN:
                return when(row.last_run_at) + (f" · {row.last_status}" if row.last_status
                                                else "")
            if column == self.HEALTH:
                return HEALTH_TEXT.get(row.health, row.health)
        if role == Qt.ItemDataRole.DecorationRole and column == self.WHAT:
            return flow_icon(row.trigger_service, row.reaction_services)
        if role == Qt.ItemDataRole.ForegroundRole and column == self.HEALTH:
            return QBrush(QColor(HEALTH_COLOR.get(row.health, "#5f6368")))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.HEALTH and (row.paused_reason or row.last_error):
                return row.paused_reason or row.last_error
            if column == self.WHAT:
                return row.summary
        if role == Qt.ItemDataRole.AccessibleTextRole and column == self.ON:
            return f"{row.name} is {'on' if row.enabled else 'off'}"
        if role == Qt.ItemDataRole.ToolTipRole and column == self.ON:
            return "On: it runs when its trigger fires" if row.enabled else "Off"
        return None

    def setData(self, index: Index, value: Any,
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        """The On switch: shown at once, then ``enabledToggled`` asks for it."""
        if (not index.isValid() or index.column() != self.ON
                or role != Qt.ItemDataRole.CheckStateRole):
            return False
        row = self._rows[index.row()]
        state = value.value if isinstance(value, Qt.CheckState) else value
        enabled = state == Qt.CheckState.Checked.value
        if enabled == row.enabled:
            return False
        health = "off" if not enabled else ("waiting" if row.health == "off" else row.health)
        self._rows[index.row()] = replace(row, enabled=enabled, health=health)
        self.dataChanged.emit(self.index(index.row(), 0),
                              self.index(index.row(), self.columnCount() - 1))
        self.enabledToggled.emit(row.id, enabled)
        return True


class RunsModel(QAbstractTableModel):
    """Activity: runs across areas, newest first."""

    TIME, AREA, STATUS, DURATION, DETAIL = range(5)
    HEADERS = ("Time", "Automation", "Result", "Took", "Details")
    RunRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self._runs: list[dict[str, Any]] = []

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._runs = list(runs)
        self.endResetModel()

    def run(self, index: int) -> dict[str, Any]:
        return self._runs[index]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._runs)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        run = self._runs[index.row()]
        column = index.column()
        if role == self.RunRole:
            return run
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.TIME:
                return when(run["started_at"])
            if column == self.AREA:
                return run.get("area_name", run["area_id"][:8])
            if column == self.STATUS:
                return run["status"] + (" (resumed)" if run.get("resumed") else "")
            if column == self.DURATION:
                if run.get("finished_at"):
                    seconds = (run["finished_at"] - run["started_at"]).total_seconds()
                    return f"{seconds:.2f} s"
                return ""
            if column == self.DETAIL:
                return (run.get("error") or "").splitlines()[0][:120] if run.get("error") else ""
        if role == Qt.ItemDataRole.ForegroundRole and column == self.STATUS:
            return QBrush(QColor(STATUS_COLOR.get(run["status"], "#5f6368")))
        if role == Qt.ItemDataRole.ToolTipRole and column == self.DETAIL:
            return run.get("error")
        if role == Qt.ItemDataRole.ToolTipRole and column == self.AREA:
            return run.get("area_name")  # the column may be too narrow for long names
        return None
