"""The main window: a sidebar of screens beside the screen itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QWidget,
)

from desktop.bridge import EngineBridge
from desktop.icons import app_icon
from desktop.pages.accounts import AccountsPage
from desktop.pages.activity import ActivityPage
from desktop.pages.automations import AutomationsPage
from desktop.pages.presets import PresetsPage
from desktop.pages.services import ServicesPage
from desktop.pages.settings import SettingsPage
from desktop.tasks import WidgetTasks

if TYPE_CHECKING:
    from desktop.editor import AreaEditor


def _keys(number: int) -> str:
    """The shortcut of the ``number``-th screen (from 1), as the sidebar's tooltip says."""
    return QKeySequence(f"Ctrl+{number}").toString(QKeySequence.SequenceFormat.NativeText)


class MainWindow(QMainWindow):
    """Automations, presets, services, activity and settings, one sidebar away.

    Args:
        bridge: the engine bridge every screen talks through.

    Signals:
        hiddenToTray(): the window was closed while the engine keeps running.
    """

    hiddenToTray = Signal()

    SCREENS = (
        ("automations", "Automations", AutomationsPage),
        ("presets", "Presets", PresetsPage),
        ("services", "Services", ServicesPage),
        ("accounts", "Accounts", AccountsPage),
        ("activity", "Activity", ActivityPage),
        ("settings", "Settings", SettingsPage),
    )

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        #: Whether closing hides to the tray (set by the app once it knows the tray works).
        self.tray_available = False
        self.tasks = WidgetTasks(self)
        self.setWindowTitle("Hookline")
        self.setWindowIcon(app_icon())
        self.setMinimumSize(QSize(820, 520))
        self.resize(1080, 680)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(170)
        self.sidebar.setIconSize(QSize(20, 20))
        self.sidebar.setStyleSheet("QListWidget#sidebar::item { padding-left: 12px; }")
        self.stack = QStackedWidget()
        self.pages: dict[str, QWidget] = {}
        for number, (key, title, page_class) in enumerate(self.SCREENS, 1):
            page = page_class(bridge, self)
            page.setObjectName(f"page-{key}")
            self.pages[key] = page
            self.stack.addWidget(page)
            item = QListWidgetItem(title)
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(f"{title} ({_keys(number)})")
            item.setSizeHint(QSize(150, 36))
            self.sidebar.addItem(item)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.setCurrentRow(0)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        for number in range(len(self.SCREENS)):
            shortcut = QShortcut(QKeySequence(f"Ctrl+{number + 1}"), self)
            shortcut.activated.connect(lambda n=number: self.sidebar.setCurrentRow(n))
        # Ctrl+N from any screen; inside Automations its own New shortcut answers it
        # (two live shortcuts on one key would both be ignored as ambiguous).
        self.new_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.New), self)
        self.new_shortcut.activated.connect(self.new_automation)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_moved)

    def new_automation(self) -> AreaEditor:
        """Open the editor for a new automation, over the Automations screen."""
        page = self.show_screen("automations")
        assert isinstance(page, AutomationsPage)
        return page.new_area()

    def _focus_moved(self, _old: QWidget | None, now: QWidget | None) -> None:
        inside = now is not None and self.pages["automations"].isAncestorOf(now)
        self.new_shortcut.setEnabled(not inside)

    def show_screen(self, key: str) -> QWidget:
        """Switch to a screen by key ('automations', 'activity', ...) and return it."""
        index = [k for k, _, _ in self.SCREENS].index(key)
        self.sidebar.setCurrentRow(index)
        return self.pages[key]

    def current_screen(self) -> str:
        return self.SCREENS[self.stack.currentIndex()][0]

    def bring_forward(self) -> None:
        """Show the window on top (a second launch, the tray's Open)."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.tray_available and self.bridge.settings.close_to_tray:
            event.ignore()
            self.hide()
            self.hiddenToTray.emit()
            return
        if self._unsaved():  # closing quits: ask about them first, then close again
            event.ignore()
            self.tasks.spawn(self._close_when_settled())
            return
        event.accept()

    def request_quit(self) -> None:
        """Quit Hookline (the tray's Quit), once each editor's unsaved changes are saved
        or discarded; Cancel in any of them keeps it open."""
        self.tasks.spawn(self._quit_when_settled())

    async def settle_unsaved(self) -> bool:
        """Each open editor with unsaved changes asks "Save changes to <name>?" (Save,
        Discard, Cancel). False when the user chose Cancel, or a save did not go through.
        Then automations deleted moments ago, whose Undo is still offered, are deleted."""
        for editor in self._unsaved():
            self.bring_forward()
            if not await editor.confirm_quit():
                return False
        page = self.pages["automations"]
        assert isinstance(page, AutomationsPage)
        await page.finish_deletions()
        return True

    def _unsaved(self) -> list[AreaEditor]:
        from desktop.editor import AreaEditor  # heavy: only once there may be one

        return [e for e in self.findChildren(AreaEditor) if e.isVisible() and e.has_changes()]

    async def _close_when_settled(self) -> None:
        if await self.settle_unsaved():
            self.close()

    async def _quit_when_settled(self) -> None:
        if await self.settle_unsaved():
            QApplication.quit()
