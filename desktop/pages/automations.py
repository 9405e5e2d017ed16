"""The automations screen: every area with its switch, last run and health."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.bridge import AreaRow, EngineBridge
from desktop.editor import AreaEditor
from desktop.forms import error_color, small_label
from desktop.lifecycle_view import LONGEST_STATE, LifecycleAreasModel
from desktop.live_refresh import LiveRefresh
from desktop.models import FLOW_SLOTS, HEALTH_TEXT, AreasModel
from desktop.pages.activity import CheckHistory
from desktop.snooze_menu import snooze_menu
from desktop.tasks import WidgetTasks
from desktop.why_pane import NONE_CHOSEN, SEVERAL_CHOSEN, WhyPane
from engine import lifecycle as life
from engine.catalog.service import TriggerKind
from engine.errors import CatalogError, HooklineError

log = logging.getLogger(__name__)

#: Bursts of engine signals (a run finishing in several areas) cause one refresh.
REFRESH_DELAY_MS = 200
#: Seconds during which Undo brings deleted automations back (switched off meanwhile).
UNDO_SECONDS = 10
CHECKS_TIP = ("The selected automation's latest checks for new items: what each found "
              "or why it failed, and when the next is due")
SNOOZE_TIP = ("Let the selected automations rest until a moment you choose; they come "
              "back by themselves")
#: States an area can be snoozed from (a snoozed one: its snooze is moved).
SNOOZABLE = frozenset({life.ACTIVE, life.WAITING, life.SNOOZED})
NO_CHECKS_TIP = ("Only automations whose trigger looks for new items (a feed, a folder, "
                 "a service) are checked; this one fires by itself")


class AreasFilter(QSortFilterProxyModel):
    """Keeps the areas whose name or summary contains the search text (any case)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._needle = ""
        self._hidden: frozenset[str] = frozenset()
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_hidden(self, area_ids: set[str]) -> None:
        """Leave out these areas (deleted, while the delete can still be undone)."""
        self.beginFilterChange()
        self._hidden = frozenset(area_ids)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._needle = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int,
                         source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, AreasModel) or not (self._needle or self._hidden):
            return True
        row = model.row(source_row)
        if row.id in self._hidden:
            return False
        return (not self._needle or self._needle in row.name.casefold()
                or self._needle in row.summary.casefold())

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        """Done areas stay apart, after the others, whichever way the list is sorted."""
        model = self.sourceModel()
        if isinstance(model, AreasModel):
            left_done = model.row(left.row()).state == life.DONE
            right_done = model.row(right.row()).state == life.DONE
            if left_done != right_done:
                return right_done == (self.sortOrder() == Qt.SortOrder.AscendingOrder)
        return super().lessThan(left, right)


def export_text(docs: list[dict[str, Any]]) -> str:
    """YAML that ``hookline areas import`` reads: one area as a mapping, several as
    ``areas: [...]`` (as the command line exports)."""
    out: Any = docs[0] if len(docs) == 1 else {"areas": docs}
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True)


def file_name_for(name: str) -> str:
    """A file name from an area's name: letters, digits and dashes."""
    slug = re.sub(r"[^\w]+", "-", name.lower(), flags=re.UNICODE).strip("-")
    return f"{slug or 'automation'}.yaml"


class AutomationsPage(QWidget):
    """The list of areas: switch them on and off, run, duplicate, export, delete,
    and open the editor.

    Args:
        bridge: the engine bridge.
        parent: the main window (``show_screen("presets")`` is used when it has it).

    Attributes:
        model: the rows (AreasModel); ``proxy`` filters them by the search box.
        why: under the list, why the selected automation fired or did not (WhyPane).
    """

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.tasks = WidgetTasks(self)
        self.model = LifecycleAreasModel()
        self.model.setParent(self)
        self.model.enabledToggled.connect(self._toggle)
        self.proxy = AreasFilter(self)
        self.proxy.setSourceModel(self.model)
        self.loaded = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 10)
        layout.setSpacing(10)

        toolbar = QHBoxLayout()
        toolbar.setSpacing(6)
        self.new_button = self._button("&New", "Create an automation (Ctrl+N)",
                                       self.new_area)
        self.edit_button = self._button("&Edit…", "Open the selected automation in the "
                                        "editor (Enter, or a double click)",
                                        self.edit_selected)
        self.run_button = self._button("&Run now", "Fire the selected automation once, now",
                                       self.run_selected)
        self.checks_button = self._button("&Checks…", CHECKS_TIP, self.show_checks)
        self.duplicate_button = self._button("D&uplicate",
                                             "Start a new automation from a copy of the "
                                             "selected one", self.duplicate_selected)
        self.export_button = self._button("E&xport…", "Save the selected automations as "
                                          "YAML (secrets left out)", self.export_selected)
        self.delete_button = self._button("&Delete", "Delete the selected automations (Del)",
                                          self.delete_selected)
        self.snooze_button = self._button("S&nooze", SNOOZE_TIP, self._show_snooze_menu)
        for button in (self.new_button, self.edit_button, self.run_button, self.snooze_button,
                       self.checks_button, self.duplicate_button,
                       self.export_button, self.delete_button):
            toolbar.addWidget(button)
        toolbar.addStretch(1)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search automations")
        self.search.setAccessibleName("Search automations")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(180)
        self.search.setMaximumWidth(320)
        self.search.textChanged.connect(self._search_changed)
        toolbar.addWidget(self.search, 1)
        layout.addLayout(toolbar)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Automations")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setIconSize(QSize(FLOW_SLOTS * 16 + (FLOW_SLOTS - 1) * 4, 16))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(
            max(30, self.table.fontMetrics().height() + 14))
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(AreasModel.NAME, Qt.SortOrder.AscendingOrder)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(AreasModel.ON, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(AreasModel.NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(AreasModel.WHAT, QHeaderView.ResizeMode.Stretch)
        # Widths set once for the longest text, not to the contents: turning an automation
        # on or off ("Off", "Waiting for its first run") must not move the columns.
        width = self.table.fontMetrics().horizontalAdvance
        for column, longest in ((AreasModel.LAST_RUN, "2026-11-02 08:00 · succeeded"),
                                (AreasModel.HEALTH, max((*HEALTH_TEXT.values(), LONGEST_STATE),
                                        key=width))):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width(longest) + 28)
        header.resizeSection(AreasModel.NAME, 220)
        self.table.activated.connect(self._activated)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)

        self.empty = self._empty_state()
        self.no_match = QLabel()
        self.no_match.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_match.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.no_match)
        # Under the list, why the selected automation fired or did not; the divider
        # gives the list more room, or closes the pane.
        self.why = WhyPane(bridge)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self.why)
        self.splitter.setCollapsible(0, False)
        self.splitter.setSizes([3000, 2000])  # the list three fifths, the pane two
        layout.addWidget(self.splitter, 1)

        self.status = small_label()
        self.status.setAccessibleName("Status")
        self.undo_button = QPushButton("&Undo")
        self.undo_button.setToolTip("Bring back what was just deleted, as it was")
        self.undo_button.clicked.connect(self.undo_delete)
        self.undo_button.hide()
        status_line = QHBoxLayout()
        status_line.addWidget(self.status, 1)
        status_line.addWidget(self.undo_button)
        layout.addLayout(status_line)
        #: deleted areas that Undo can still bring back: id -> whether it was on
        self.pending_delete: dict[str, bool] = {}
        self._deleted_names: list[str] = []
        self._purge_timer = QTimer(self)
        self._purge_timer.setSingleShot(True)
        self._purge_timer.setInterval(UNDO_SECONDS * 1000)
        self._purge_timer.timeout.connect(lambda: self._spawn(self.finish_deletions()))

        for keys, slot in ((QKeySequence.StandardKey.New, self.new_area),
                           (QKeySequence.StandardKey.Find, self.search.setFocus)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        # Delete acts on the list only: in the search box it deletes text.
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.delete_selected)

        self.live = LiveRefresh(self, lambda: self._spawn(self.refresh()), REFRESH_DELAY_MS)
        bridge.areaChanged.connect(self.schedule_refresh)
        bridge.runsFinished.connect(self.schedule_refresh)
        bridge.areaPaused.connect(self.schedule_refresh)
        bridge.areaState.connect(self.schedule_refresh)
        bridge.triggerHealth.connect(self.schedule_refresh)
        self._update_buttons()
        self._show_state()
        self.live.now()

    # ------------------------------------------------------------------ building

    def _button(self, text: str, tip: str, slot: Any) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _empty_state(self) -> QWidget:
        page = QWidget()
        page.setObjectName("automationsEmpty")
        column = QVBoxLayout(page)
        column.addStretch(1)
        title = QLabel("No automations yet")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(title)
        hint = small_label("An automation does something when something happens: a "
                           "notification every morning, a new file filed away, a web "
                           "request when a feed has news. Start from a preset or make "
                           "your own.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setFixedWidth(440)
        # Centred through stretches, not an alignment flag: with one, the layout
        # would ignore the wrapped label's height for its width and clip it.
        hint_row = QHBoxLayout()
        hint_row.addStretch(1)
        hint_row.addWidget(hint)
        hint_row.addStretch(1)
        column.addLayout(hint_row)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.empty_new = QPushButton("New automation")
        self.empty_new.setDefault(True)
        self.empty_new.clicked.connect(self.new_area)
        self.empty_presets = QPushButton("Browse presets")
        self.empty_presets.clicked.connect(self.browse_presets)
        buttons.addWidget(self.empty_new)
        buttons.addWidget(self.empty_presets)
        buttons.addStretch(1)
        column.addSpacing(8)
        column.addLayout(buttons)
        column.addStretch(2)
        return page

    # ------------------------------------------------------------------ data

    def schedule_refresh(self, *_args: Any) -> None:
        """Refresh soon: at most once per REFRESH_DELAY_MS however many runs finish, and
        only while the list can be seen (else when it shows again)."""
        self.live.request()

    async def refresh(self) -> None:
        """Read the rows again, keeping the selection."""
        try:
            rows = await self.bridge.area_rows()
        except HooklineError as exc:
            self.show_status(f"Could not read the automations: {exc}", error=True)
            return
        selected = set(self.selected_ids())
        current = self._current_id()
        self.model.set_rows(rows)
        self.loaded = True
        self._reselect(selected, current)
        self._show_state()
        self._update_buttons()

    def _reselect(self, ids: set[str], current: str | None) -> None:
        selection = self.table.selectionModel()
        flags = (QItemSelectionModel.SelectionFlag.Select
                 | QItemSelectionModel.SelectionFlag.Rows)
        for area_id in ids:
            index = self._proxy_index(area_id)
            if index.isValid():
                selection.select(index, flags)
        if current is not None:
            index = self._proxy_index(current)
            if index.isValid():
                selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)

    def _proxy_index(self, area_id: str, column: int = AreasModel.NAME) -> QModelIndex:
        row = self.model.row_of(area_id)
        if row < 0:
            return QModelIndex()
        return self.proxy.mapFromSource(self.model.index(row, column))

    def row_index(self, area_id: str, column: int = AreasModel.NAME) -> QModelIndex:
        """The view's index of an area's cell (invalid when filtered out or unknown)."""
        return self._proxy_index(area_id, column)

    def _show_state(self) -> None:
        if self.model.rowCount() == 0:
            self.stack.setCurrentWidget(self.empty if self.loaded else self.table)
        elif self.proxy.rowCount() == 0:
            self.no_match.setText(f"No automation matches “{self.search.text().strip()}”.")
            self.stack.setCurrentWidget(self.no_match)
        else:
            self.stack.setCurrentWidget(self.table)
        self.why.setVisible(self.stack.currentWidget() is self.table)

    def _search_changed(self, text: str) -> None:
        self.proxy.set_text(text)
        self._show_state()
        self._update_buttons()

    # ------------------------------------------------------------------ selection

    def selected_rows(self) -> list[AreaRow]:
        rows = []
        for index in self.table.selectionModel().selectedRows(AreasModel.NAME):
            source = self.proxy.mapToSource(index)
            rows.append(self.model.row(source.row()))
        rows.sort(key=lambda r: self.model.row_of(r.id))
        return rows

    def selected_ids(self) -> list[str]:
        return [row.id for row in self.selected_rows()]

    def _current_id(self) -> str | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.row(self.proxy.mapToSource(index).row()).id

    def select(self, area_id: str) -> None:
        """Select one area's row (and make it current)."""
        index = self._proxy_index(area_id)
        if index.isValid():
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(index)

    def _update_buttons(self, *_args: Any) -> None:
        count = len(self.table.selectionModel().selectedRows())
        self.run_button.setEnabled(count == 1)
        self.edit_button.setEnabled(count == 1)
        rows = self.selected_rows() if count == 1 else []
        checked = bool(rows) and self._is_checked(rows[0])
        self.checks_button.setEnabled(checked)
        self.checks_button.setToolTip(CHECKS_TIP if checked or not rows else NO_CHECKS_TIP)
        self.duplicate_button.setEnabled(count == 1)
        self.export_button.setEnabled(count >= 1)
        self.delete_button.setEnabled(count >= 1)
        self.snooze_button.setEnabled(any(r.state in SNOOZABLE
                                          for r in self.selected_rows()))
        self.why.show_area(rows[0].id if rows else None,
                           SEVERAL_CHOSEN if count > 1 else NONE_CHOSEN)

    # ------------------------------------------------------------------ actions

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.spawn(coro)

    def show_status(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {error_color()};" if error else "")

    def open_editor(self, area_id: str | None = None,
                    spec_dict: dict[str, Any] | None = None) -> AreaEditor:
        """Open the area editor (window-modal); the list refreshes when it saves."""
        editor = AreaEditor(self.bridge, self, area_id=area_id, spec_dict=spec_dict)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.saved.connect(self._saved)
        editor.open()
        return editor

    def _saved(self, area_id: str) -> None:
        self._spawn(self._refresh_and_select(area_id))

    async def _refresh_and_select(self, area_id: str) -> None:
        await self.refresh()
        self.select(area_id)
        row = self.model.row_of(area_id)
        if row >= 0:
            self.show_status(f"Saved “{self.model.row(row).name}”.")

    def new_area(self) -> AreaEditor:
        return self.open_editor()

    def edit_selected(self) -> AreaEditor | None:
        rows = self.selected_rows()
        if len(rows) != 1:
            return None
        return self.open_editor(area_id=rows[0].id)

    def browse_presets(self) -> None:
        window = self.window()
        show = getattr(window, "show_screen", None)
        if callable(show):
            show("presets")

    def _activated(self, index: QModelIndex) -> None:
        if index.column() == AreasModel.ON:
            return  # the switch, not a request to edit
        row = self.model.row(self.proxy.mapToSource(index).row())
        self.open_editor(area_id=row.id)

    def _toggle(self, area_id: str, enabled: bool) -> None:
        self._spawn(self._set_enabled(area_id, enabled))

    async def _set_enabled(self, area_id: str, enabled: bool) -> None:
        try:
            area = await self.bridge.set_enabled(area_id, enabled)
        except HooklineError as exc:
            self.show_status(f"Could not switch it {'on' if enabled else 'off'}: {exc}",
                             error=True)
            self.schedule_refresh()
            return
        self.show_status(f"“{area.name}” is {'on' if enabled else 'off'}.")

    def _is_checked(self, row: AreaRow) -> bool:
        """Whether the area's trigger is one Hookline checks for new items."""
        if row.spec is None:
            return False
        try:
            trigger = self.bridge.registry.trigger(row.spec.trigger.service,
                                                   row.spec.trigger.action)
        except CatalogError:
            return False
        return trigger.kind is TriggerKind.POLL

    def show_checks(self) -> CheckHistory | None:
        """Open the selected automation's check history (a window of its own: the list
        stays usable beside it)."""
        rows = self.selected_rows()
        if len(rows) != 1 or not self._is_checked(rows[0]):
            return None
        dialog = CheckHistory(self.bridge, rows[0].id, rows[0].name, self)
        dialog.show()
        return dialog

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if index.isValid() and not self.table.selectionModel().isSelected(index):
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows)
        rows = self.selected_rows()
        if not rows:
            return
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        one = len(rows) == 1
        menu.addAction("&Edit…", lambda: self.open_editor(area_id=rows[0].id)).setEnabled(one)
        menu.addMenu(self.snooze_menu()).setEnabled(self.snooze_button.isEnabled())
        for button in (self.run_button, self.checks_button, self.duplicate_button,
                       self.export_button, self.delete_button):
            action = menu.addAction(button.text(), button.click)
            action.setEnabled(button.isEnabled())
            action.setToolTip(button.toolTip())
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def snooze_menu(self) -> QMenu:
        """Snooze the selected automations (for an hour, until 18:00, until tomorrow
        08:00, a chosen moment); "Wake now" when one of them is snoozed."""
        snoozed = any(r.state == life.SNOOZED for r in self.selected_rows())
        return snooze_menu(self, self.snooze_selected,
                           self.wake_selected if snoozed else None)

    def _show_snooze_menu(self) -> None:
        menu = self.snooze_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.snooze_button.mapToGlobal(self.snooze_button.rect().bottomLeft()))

    def snooze_selected(self, until: datetime) -> None:
        rows = [r for r in self.selected_rows() if r.state in SNOOZABLE]
        if rows:
            self._spawn(self._each(rows, "snooze", lambda r: self.bridge.snooze(r.id, until),
                                   f"Snoozed {{}} until {until.astimezone():%Y-%m-%d %H:%M};"
                                   " Wake now ends it sooner."))

    def wake_selected(self) -> None:
        rows = [r for r in self.selected_rows() if r.state == life.SNOOZED]
        if rows:
            self._spawn(self._each(rows, "wake", lambda r: self.bridge.wake(r.id),
                                   "Woke {}: it fires again."))

    async def _each(self, rows: list[AreaRow], verb: str,
                    act: Callable[[AreaRow], Awaitable[Any]], said: str) -> None:
        """``act`` on each row; the first failure stops and is said, else ``said``
        (with the automation's name or how many)."""
        for row in rows:
            try:
                await act(row)
            except HooklineError as exc:
                self.show_status(f"Could not {verb} “{row.name}”: {exc}", error=True)
                return
        self.show_status(said.format(f"“{rows[0].name}”" if len(rows) == 1
                                     else f"{len(rows)} automations"))

    def run_selected(self) -> None:
        rows = self.selected_rows()
        if len(rows) == 1:
            self._spawn(self._run(rows[0]))

    async def _run(self, row: AreaRow) -> None:
        try:
            await self.bridge.run_now(row.id)
        except HooklineError as exc:
            self.show_status(f"Could not run “{row.name}”: {exc}", error=True)
            return
        self.show_status(f"Started “{row.name}”; its result shows under Last run.")

    def duplicate_selected(self) -> AreaEditor | None:
        rows = self.selected_rows()
        if len(rows) != 1:
            return None
        area = self.bridge.area(rows[0].id)
        copy = area.spec.to_dict()
        copy["name"] = f"{area.name} (copy)"
        return self.open_editor(spec_dict=copy)

    def export_selected(self) -> None:
        rows = self.selected_rows()
        if not rows:
            return
        suggested = file_name_for(rows[0].name) if len(rows) == 1 else "automations.yaml"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export automations", str(Path.home() / suggested),
            "YAML files (*.yaml *.yml);;All files (*)")
        if path:
            self._spawn(self.export(rows, Path(path)))

    async def export(self, rows: list[AreaRow], path: Path) -> None:
        """Write the areas as YAML (secrets are left out by the export format)."""
        docs = [self.bridge.area(row.id).spec.to_dict(self.bridge.registry) for row in rows]
        text = export_text(docs)
        try:
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
        except OSError as exc:
            self.show_status(f"Could not write {path}: {exc.strerror}", error=True)
            return
        count = "1 automation" if len(rows) == 1 else f"{len(rows)} automations"
        self.show_status(f"Exported {count} to {path} (secrets left out).")

    def delete_selected(self) -> None:
        rows = [r for r in self.selected_rows() if r.id not in self.pending_delete]
        if not rows:
            return
        what = f"“{rows[0].name}”" if len(rows) == 1 else f"these {len(rows)} automations"
        answer = QMessageBox.question(
            self, "Delete automation" if len(rows) == 1 else "Delete automations",
            f"Delete {what}? Its history and saved secrets go with it. Undo brings it "
            f"back for {UNDO_SECONDS} seconds; after that it is gone (export it first to "
            "keep a copy).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self._spawn(self._delete(rows))

    async def _delete(self, rows: list[AreaRow]) -> None:
        """Switch the areas off and leave them out of the list; UNDO_SECONDS later (or
        when Hookline quits) they are deleted, unless Undo brought them back."""
        await self.finish_deletions()  # an earlier delete is past undoing now
        for row in rows:
            if row.enabled:
                try:
                    await self.bridge.set_enabled(row.id, False)
                except HooklineError as exc:
                    self.show_status(f"Could not delete “{row.name}”: {exc}", error=True)
                    break
            self.pending_delete[row.id] = row.enabled
        if not self.pending_delete:
            return
        self._deleted_names = [r.name for r in rows if r.id in self.pending_delete]
        self.proxy.set_hidden(set(self.pending_delete))
        self._show_state()
        self._update_buttons()
        names = self._deleted_names
        self.show_status(f"Deleted “{names[0]}”." if len(names) == 1
                         else f"Deleted {len(names)} automations.")
        self.undo_button.show()
        self._purge_timer.start()

    def undo_delete(self) -> None:
        if self.pending_delete:
            self._purge_timer.stop()
            self._spawn(self._undo(dict(self.pending_delete)))

    async def _undo(self, pending: dict[str, bool]) -> None:
        self.pending_delete.clear()
        self.undo_button.hide()
        for area_id, was_on in pending.items():
            if was_on:
                try:
                    await self.bridge.set_enabled(area_id, True)
                except HooklineError as exc:
                    self.show_status(f"Brought it back, but could not switch it on: {exc}",
                                     error=True)
        self.proxy.set_hidden(set(self.pending_delete))
        names = self._deleted_names
        self.show_status(f"“{names[0]}” is back." if len(names) == 1
                         else f"The {len(names)} automations are back.")
        await self.refresh()
        for area_id in pending:
            self.select(area_id)

    async def finish_deletions(self) -> None:
        """Delete what is waiting for its undo to run out, now (the time ran out, another
        delete came, or Hookline is quitting)."""
        pending, self.pending_delete = dict(self.pending_delete), {}
        self._purge_timer.stop()
        self.undo_button.hide()
        for area_id in pending:
            try:
                await self.bridge.remove_area(area_id)
            except HooklineError as exc:
                self.show_status(f"Could not delete it: {exc}; it stays, switched off.",
                                 error=True)
        if pending:
            await self.refresh()  # without them (or with those that could not go)
            self.proxy.set_hidden(set(self.pending_delete))
            self._show_state()
