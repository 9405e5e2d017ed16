"""SIGTERM and SIGINT (logout, ``kill``, Ctrl+C) as a clean Quit, while Qt's loop runs."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable
from types import FrameType

from PySide6.QtCore import QObject, QSocketNotifier

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class QuitOnSignals(QObject):
    """Calls ``quit`` on this (the main) thread when the process gets SIGTERM or SIGINT.

    Python runs a signal handler only when it next runs Python code on the main thread,
    and Qt's loop may sleep in C for hours: the handler would wait for the next mouse
    move. So the signal number is also written to a socket (``signal.set_wakeup_fd``)
    that Qt watches, which wakes the loop at once. A second signal while quitting falls
    back to the default action (a stuck quit can still be ended from outside).

    Args:
        quit: what to do (the app's Quit: the engine stops cleanly, then the process).

    Attributes:
        received: the signals received, in order.
    """

    def __init__(self, quit: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._quit = quit
        self.received: list[int] = []
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(),
                                                 warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read,
                                         self)
        self._notifier.activated.connect(self._woken)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) > 1:  # asked twice: the default action, as if we were not here
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self._quit()

    def _woken(self) -> None:
        # The Python handler has run by now (this is Python code on the main thread).
        with contextlib.suppress(OSError):
            self._reader.recv(64)

    def close(self) -> None:
        """Give the signals back to what handled them before."""
        self._notifier.setEnabled(False)
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()
