"""The tray icon: Hookline's state at a glance, its menu, and desktop notifications."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from PySide6.QtCore import QObject, QPointF, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon, QWidget

from desktop.bridge import EngineBridge
from desktop.icons import app_icon
from desktop.live_refresh import LiveRefresh
from desktop.state import TRAY_HINT_SHOWN
from desktop.tasks import WidgetTasks
from engine import lifecycle as life

log = logging.getLogger(__name__)

#: The badge colour of each state (status accents, the same in light and dark themes).
STATE_COLORS = {"running": "#1e8e3e", "paused": "#80868b", "failing": "#d93025"}
STATE_TEXT = {
    "running": "Hookline — running",
    "paused": "Hookline — all automations paused",
    "failing": "Hookline — something is failing",
}
STATUS_MARK = {"succeeded": "✓", "failed": "✗"}
RECENT_RUNS = 5
SNOOZE_ALL = "Snooze all for 1 hour"
SNOOZE_ALL_FOR = timedelta(hours=1)
SNOOZE_ALL_TIP = "Let every active automation rest for an hour; they come back by themselves"
WAKE_ALL = "Wake all"
WAKE_ALL_TIP = "End every snooze now: the snoozed automations fire again"
#: How long after a change the state is recomputed (changes come in bursts).
REFRESH_DELAY_MS = 500
#: The same notification twice within this many seconds is shown once (an area that
#: pauses itself is announced both as "area paused" and as a notification).
REPEAT_WINDOW = 5.0
#: At most BURST notifications go up per BURST_WINDOW seconds; the rest are summed up.
BURST = 3
BURST_WINDOW = 10.0
#: A notification bubble shows a line or two: longer text is cut (Activity has it all).
MAX_TITLE = 100
MAX_BODY = 300


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class TrayWindow(Protocol):
    """What the tray needs from the main window."""

    tray_available: bool

    @property
    def hiddenToTray(self) -> Any: ...  # a Qt signal
    def bring_forward(self) -> None: ...
    def show_screen(self, key: str) -> QWidget: ...


def badged_icon(state: str) -> QIcon:
    """The app icon with a small dot in its lower right corner: green, grey or red."""
    base = app_icon()
    icon = QIcon()
    color = QColor(STATE_COLORS.get(state, STATE_COLORS["running"]))
    for size in (16, 22, 24, 32, 48, 64):
        pixmap = base.pixmap(QSize(size, size))
        if pixmap.isNull():
            pixmap = QPixmap(size, size)
            pixmap.fill(Qt.GlobalColor.transparent)
        pixmap = pixmap.scaled(size, size)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        radius = size * 0.22
        centre = QPointF(size - radius - 0.5, size - radius - 0.5)
        pen = QPen(QColor("#ffffff"))
        pen.setWidthF(max(1.0, size / 16))
        painter.setPen(pen)
        painter.setBrush(color)
        painter.drawEllipse(centre, radius, radius)
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def run_text(run: dict[str, Any]) -> str:
    """One recent run as the menu shows it: ``✓ Name · 14:02``."""
    started = run.get("started_at")
    at = started.astimezone().strftime("%H:%M") if isinstance(started, datetime) else ""
    name = str(run.get("area_name") or run.get("area_id", "?"))
    if len(name) > 40:
        name = name[:39] + "…"
    status = str(run.get("status", ""))
    mark = STATUS_MARK.get(status)
    text = f"{mark} {name} · {at}" if mark else f"• {name} · {at} ({status})"
    return text.replace("&", "&&")  # a menu would read "&" as a shortcut marker


class Tray(QObject):
    """The system tray icon and its menu; works without a tray too (offscreen, a bare
    X server): the menu and the state are kept all the same, so they can be used and
    tested, and the window then quits when closed (``window.tray_available`` False).

    Args:
        bridge: the engine bridge.
        window: the main window (``bring_forward``, ``show_screen``, ``hiddenToTray``).

    Attributes:
        available: whether the desktop has a system tray.
        menu: the tray menu: Open Hookline, Pause all / Resume all, Snooze all for 1 hour
            / Wake all, Recent activity, Quit.
        messages: the notifications shown, newest last (title, body, level).
    """

    def __init__(self, bridge: EngineBridge, window: TrayWindow,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.window = window
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.window.tray_available = self.available
        self.messages: list[tuple[str, str, str]] = []
        self._status = "running"
        self._last_message: tuple[str, str, float] | None = None
        self._shown_at: list[float] = []  # when the last notifications went up
        self._held: list[str] = []  # levels of those held back in this burst
        self._release = QTimer(self)
        self._release.setSingleShot(True)
        self._release.timeout.connect(self._sum_up_held)
        self.tasks = WidgetTasks(self)
        self._recent: list[dict[str, Any]] = []

        self.menu = QMenu()
        self.menu.setObjectName("trayMenu")
        self.open_action = QAction("Open Hookline", self.menu)
        self.open_action.triggered.connect(self.open_window)
        self.pause_action = QAction("Pause all", self.menu)
        self.pause_action.triggered.connect(self.toggle_pause)
        self.snooze_action = QAction(SNOOZE_ALL, self.menu)
        self.snooze_action.setToolTip(SNOOZE_ALL_TIP)
        self.snooze_action.triggered.connect(self.toggle_snooze)
        self._snoozed = False  # whether some area is snoozed (the action wakes them)
        self.recent_menu = QMenu("Recent activity", self.menu)
        self.quit_action = QAction("Quit Hookline", self.menu)
        self.quit_action.triggered.connect(self.quit)
        self.menu.addAction(self.open_action)
        self.menu.addAction(self.pause_action)
        self.menu.addAction(self.snooze_action)
        self.menu.addMenu(self.recent_menu)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.menu.setDefaultAction(self.open_action)
        self._fill_recent()

        self.icon = QSystemTrayIcon(badged_icon("running"), self)
        self.icon.setToolTip(STATE_TEXT["running"])
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        if self.available:
            self.icon.show()

        self.live = LiveRefresh(self, lambda: self._spawn(self.refresh()), REFRESH_DELAY_MS)
        for signal in (bridge.runsFinished, bridge.areaChanged, bridge.areaPaused,
                       bridge.areaState, bridge.triggerHealth, bridge.pausedAllChanged):
            signal.connect(self.schedule_refresh)
        bridge.areaPaused.connect(self._area_paused)
        bridge.notification.connect(self.notify)
        window.hiddenToTray.connect(self._hidden_to_tray)
        self._show_paused(bridge.paused_all())
        self.schedule_refresh()

    # ----------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        """What the tray shows now (for tests and the screenshots)."""
        return {
            "available": self.available,
            "status": self._status,
            "tooltip": self.icon.toolTip(),
            "paused_all": self.bridge.paused_all(),
            "pause_action": self.pause_action.text().replace("&", ""),
            "snooze_action": self.snooze_action.text(),
            "recent": [a.text().replace("&&", "&") for a in self.recent_menu.actions()],
            "menu": [a.text() for a in self.menu.actions() if not a.isSeparator()],
            "messages": list(self.messages),
        }

    def schedule_refresh(self, *_args: object) -> None:
        """Refresh soon: at most once per REFRESH_DELAY_MS, however busy the engine."""
        self.live.request()

    async def refresh(self) -> None:
        """Recompute the state badge and the recent runs from the engine."""
        rows = await self.bridge.area_rows()
        self._recent = await self.bridge.runs(limit=RECENT_RUNS)
        paused_all = self.bridge.paused_all()
        if paused_all:
            status = "paused"
        elif any(r.health in ("failing", "paused") for r in rows):
            status = "failing"
        else:
            status = "running"
        self._show_paused(paused_all)
        self._show_snoozed(any(r.state == life.SNOOZED for r in rows))
        if status != self._status:
            self._status = status
            self.icon.setIcon(badged_icon(status))
        failing = [r.name for r in rows if r.health in ("failing", "paused")]
        # which engine, then its state: "Hookline — homeserver — running"
        tip = f"Hookline — {self.bridge.where}{STATE_TEXT[status].removeprefix('Hookline')}"
        if status == "failing":
            shown = ", ".join(failing[:3]) + (f" and {len(failing) - 3} more"
                                              if len(failing) > 3 else "")
            tip += f": {shown}"
        self.icon.setToolTip(tip)
        self._fill_recent()

    def _show_paused(self, paused_all: bool) -> None:
        self.pause_action.setText("Resume all" if paused_all else "Pause all")
        self.pause_action.setToolTip(
            "Turn back on the automations that Pause all turned off" if paused_all
            else "Turn off every automation until you resume")

    def _show_snoozed(self, snoozed: bool) -> None:
        self._snoozed = snoozed
        self.snooze_action.setText(WAKE_ALL if snoozed else SNOOZE_ALL)
        self.snooze_action.setToolTip(WAKE_ALL_TIP if snoozed else SNOOZE_ALL_TIP)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        if not self._recent:
            empty = self.recent_menu.addAction("No runs yet")
            empty.setEnabled(False)
            return
        for run in self._recent:
            action = self.recent_menu.addAction(run_text(run))
            area_id = str(run.get("area_id", ""))
            action.triggered.connect(lambda _c=False, a=area_id: self.open_activity(a))

    # ----------------------------------------------------------------- actions

    def open_window(self) -> None:
        self.window.bring_forward()

    def open_activity(self, area_id: str) -> None:
        """Show the window on Activity, with ``area_id``'s runs if the screen can."""
        self.window.bring_forward()
        page = self.window.show_screen("activity")
        select = getattr(page, "select_area", None)
        if callable(select):
            select(area_id)

    def toggle_pause(self) -> None:
        self.pause_action.setEnabled(False)
        work = self.bridge.resume_all() if self.bridge.paused_all() else self.bridge.pause_all()
        task = self._spawn(work)
        task.add_done_callback(lambda _t: self.pause_action.setEnabled(True))

    def toggle_snooze(self) -> None:
        """Snooze every active automation for an hour, or wake the snoozed ones."""
        self.snooze_action.setEnabled(False)
        work = (self.bridge.wake_all() if self._snoozed
                else self.bridge.snooze_all(datetime.now(UTC) + SNOOZE_ALL_FOR))
        task = self._spawn(work)
        task.add_done_callback(lambda _t: self.snooze_action.setEnabled(True))

    def quit(self) -> None:
        QApplication.quit()

    def hide(self) -> None:
        self.icon.hide()

    def close(self) -> None:
        """Hide the icon and stop listening (the app is quitting)."""
        self.live.stop()
        self.tasks.cancel()
        for signal, slot in ((self.bridge.runsFinished, self.schedule_refresh),
                             (self.bridge.areaChanged, self.schedule_refresh),
                             (self.bridge.areaPaused, self.schedule_refresh),
                             (self.bridge.areaState, self.schedule_refresh),
                             (self.bridge.triggerHealth, self.schedule_refresh),
                             (self.bridge.pausedAllChanged, self.schedule_refresh),
                             (self.bridge.areaPaused, self._area_paused),
                             (self.bridge.notification, self.notify)):
            signal.disconnect(slot)
        self.icon.hide()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_window()

    # ----------------------------------------------------------------- messages

    def notify(self, title: str, body: str, level: str = "info") -> None:
        """Show a desktop notification (once, if the same one just came). A burst (a
        webhook storm into a Notify area, many areas pausing at once) shows its first
        BURST, then one line that sums up the rest."""
        now = time.monotonic()
        last = self._last_message
        if last is not None and last[:2] == (title, body) and now - last[2] < REPEAT_WINDOW:
            return
        self._last_message = (title, body, now)
        self._shown_at = [t for t in self._shown_at if now - t < BURST_WINDOW]
        if len(self._shown_at) >= BURST:
            self._held.append(level)
            if not self._release.isActive():
                wait = BURST_WINDOW - (now - self._shown_at[0])
                self._release.start(max(0, int(wait * 1000)))
            return
        self._shown_at.append(now)
        self._show(title, body, level)

    def _sum_up_held(self) -> None:
        held, self._held = self._held, []
        if not held:
            return
        worst = next((lv for lv in ("error", "warning") if lv in held), "info")
        count = f"{len(held)} more notification{'s' if len(held) > 1 else ''}"
        self._shown_at.append(time.monotonic())
        self._show(count, "Hookline held them back so as not to flood your screen; "
                          "each run is in Activity.", worst)

    def _show(self, title: str, body: str, level: str) -> None:
        title, body = _cut(title, MAX_TITLE), _cut(body, MAX_BODY)
        self.messages.append((title, body, level))
        del self.messages[:-50]
        icon = {"error": QSystemTrayIcon.MessageIcon.Critical,
                "warning": QSystemTrayIcon.MessageIcon.Warning}.get(
                    level, QSystemTrayIcon.MessageIcon.Information)
        if self.available and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, body, icon, 8000)
        else:
            log.info("notification: %s — %s", title, body)

    def _area_paused(self, _area_id: str, name: str, reason: str) -> None:
        self.notify(f"“{name}” paused", reason, "error")

    def _hidden_to_tray(self) -> None:
        state = self.bridge.state
        if state.get(TRAY_HINT_SHOWN):
            return
        self.notify("Hookline keeps running in the tray",
                    "Your automations keep running. Open Hookline or quit it from the "
                    "tray icon.")
        try:
            state.set(TRAY_HINT_SHOWN, True)
        except OSError as exc:
            log.warning("could not remember that the tray hint was shown: %s", exc)

    # ----------------------------------------------------------------- tasks

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.tasks.spawn(work)

        def finished(done: asyncio.Task[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                self.notify("Hookline", f"Something went wrong: {done.exception()}", "error")

        task.add_done_callback(finished)
        return task
