"""The Qt stack Hookline pins: PySide6 6.12.0 aborts Python 3.11 after a few hundred
Python-side signal emits (it drops a reference to True each time); keep it out."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal(bool)


def test_ten_thousand_signal_emits_leave_the_interpreter_alive(qapp: object) -> None:
    emitter = _Emitter()
    received: list[bool] = []
    emitter.fired.connect(received.append)
    before = sys.getrefcount(True)
    for i in range(10_000):
        emitter.fired.emit(i % 2 == 0)
    assert len(received) == 10_000
    # A leaking binding would have dropped True's count by about 5,000 by now.
    assert sys.getrefcount(True) >= before - 100
