"""A screen's refresh as the engine reports changes: coalesced, and only while seen."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget


class LiveRefresh(QObject):
    """Calls ``refresh`` soon after :meth:`request`: at most once per ``interval_ms``
    however many requests come (a pending refresh covers them all), and only while the
    screen can be seen. A screen behind another in the main window, or in a window
    hidden to the tray, is only marked stale, and refreshed when it shows again: a
    stream of runs costs the engine and the window nothing for screens nobody looks at.
    A screen that is a window of its own (a test, a dialog), or an owner that is no
    widget (the tray, always in view), is refreshed all the same.

    Args:
        screen: the screen or other owner (a widget's visibility decides; its Show
            event catches up).
        refresh: starts the refresh (e.g. spawns the screen's async refresh).
        interval_ms: the least time between two refreshes.
    """

    def __init__(self, screen: QObject, refresh: Callable[[], object], interval_ms: int
                 ) -> None:
        super().__init__(screen)
        self._screen = screen
        self._stale = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(refresh)
        screen.installEventFilter(self)

    def request(self, *_args: object) -> None:
        """Something changed: refresh soon, or once the screen shows."""
        if self._unseen():
            self._stale = True
        elif not self._timer.isActive():
            self._timer.start()

    def now(self) -> None:
        """Refresh at the next turn of the loop (a change the user made here)."""
        self._stale = False
        self._timer.start(0)

    def pending(self) -> bool:
        return self._timer.isActive() or self._stale

    def stop(self) -> None:
        """Drop a refresh not yet started (the owner is closing)."""
        self._timer.stop()
        self._stale = False

    def _unseen(self) -> bool:
        screen = self._screen
        return (isinstance(screen, QWidget) and screen.window() is not screen
                and not screen.isVisible())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._screen and event.type() == QEvent.Type.Show and self._stale:
            self.now()
        return False
