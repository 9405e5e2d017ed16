"""The "why" pane: why the chosen automation fired or did not, the answer first, then its
state, its trigger's latest checks, times or deliveries and each reaction's last
outcomes, in local time (engine/why.py works it out; this shows it and keeps it current)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from desktop.bridge import EngineBridge
from desktop.live_refresh import LiveRefresh
from desktop.tasks import WidgetTasks
from engine.errors import HooklineError
from engine.why import Why, sections, stamp

#: Bursts of engine signals (runs finishing) cause one refresh.
REFRESH_DELAY_MS = 300
#: A check that finds nothing new publishes nothing: read again this often while shown,
#: so "the next check is at ..." moves on.
TICK_MS = 30_000
NONE_CHOSEN = "Select an automation to see why it fired or did not."
SEVERAL_CHOSEN = "Select one automation to see why it fired or did not."
#: Headings and lines close together: the pane is small.
STYLE = "h4 { margin-top: 8px; margin-bottom: 2px; } p { margin-top: 1px; margin-bottom: 3px; }"


def why_html(why: Why) -> str:
    """The sections as rich text: a heading each, sentences, dated lines in a table,
    small print; every time in local time."""
    parts = []
    for section in sections(why):
        parts.append(f"<h4>{html.escape(section.heading)}</h4>")
        parts += [f"<p>{html.escape(line)}</p>" for line in section.lines]
        if section.entries:
            rows = "".join(
                f"<tr><td>{html.escape(stamp(at, why.at)).replace(' ', '&nbsp;')}</td>"
                f"<td>{html.escape(text)}</td></tr>" for at, text in section.entries)
            parts.append(f"<table cellspacing='0' cellpadding='3'>{rows}</table>")
        if section.note:
            parts.append(f"<p><small>{html.escape(section.note)}</small></p>")
    return "".join(parts)


class WhyPane(QWidget):
    """Why one automation fired or did not, read again when its runs finish, it changes,
    its trigger fails or recovers, an account changes, and every half minute while it
    can be seen.

    Args:
        bridge: the engine bridge.
        parent: the owning widget.

    Attributes:
        area_id: the automation shown (None: none, or several, are chosen).
        answer: the one-line answer, read first.
        details: the sections under it.

    Signals:
        shown(): what the pane says was (re)placed on screen.
    """

    shown = Signal()

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.area_id: str | None = None
        self.tasks = WidgetTasks(self)
        self.answer = QLabel()
        self.answer.setObjectName("whyAnswer")
        self.answer.setAccessibleName("Why: the answer")
        self.answer.setWordWrap(True)
        self.answer.setTextFormat(Qt.TextFormat.PlainText)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.answer.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.details = QTextBrowser()
        self.details.setAccessibleName("Why: the details")
        self.details.setOpenLinks(False)
        self.details.document().setDefaultStyleSheet(STYLE)
        self.details.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addWidget(self.answer)
        layout.addWidget(self.details, 1)

        self.live = LiveRefresh(self, lambda: self.tasks.spawn(self.refresh()),
                                REFRESH_DELAY_MS)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self.live.request)
        bridge.runsFinished.connect(self._runs_finished)
        bridge.areaChanged.connect(self._area_event)
        bridge.areaPaused.connect(self._area_event)
        bridge.triggerHealth.connect(self._area_event)
        bridge.areaState.connect(self._area_event)  # snoozed, woken, window, done
        bridge.accountChanged.connect(self._account_changed)
        self._set_answer(NONE_CHOSEN, hint=True)

    def show_area(self, area_id: str | None, hint: str = NONE_CHOSEN) -> None:
        """Explain ``area_id`` (read at once); None: say ``hint`` instead."""
        if area_id is not None and area_id == self.area_id:
            return
        self.area_id = area_id
        if area_id is None:
            self._tick.stop()
            self.live.stop()
            self._say(hint)
            return
        self._say("Reading why…")
        self._tick.start()
        self.live.now()

    async def refresh(self) -> None:
        """Read the explanation again and show it."""
        area_id = self.area_id
        if area_id is None:
            return
        try:
            why = await self.bridge.why(area_id)
        except HooklineError as exc:  # removed meanwhile: the list moves the selection
            if area_id == self.area_id:
                self._say(f"Could not work out why: {exc}")
            return
        if area_id == self.area_id:  # the selection may have moved meanwhile
            self.show_why(why)

    def show_why(self, why: Why) -> None:
        self._set_answer(why.answer, hint=False)
        bar = self.details.verticalScrollBar()
        kept = bar.value()
        self.details.setHtml(why_html(why))
        bar.setValue(kept)  # a refresh does not throw the reader back to the top
        self.details.show()
        self.shown.emit()

    def _say(self, text: str) -> None:
        self._set_answer(text, hint=True)
        self.details.clear()
        self.details.hide()
        self.shown.emit()

    def _set_answer(self, text: str, *, hint: bool) -> None:
        """The answer stands out; a hint (nothing chosen, reading) does not."""
        font = self.font()
        font.setBold(not hint)
        if not hint:
            font.setPointSizeF(font.pointSizeF() * 1.1)
        self.answer.setFont(font)
        self.answer.setForegroundRole(QPalette.ColorRole.PlaceholderText if hint
                                      else QPalette.ColorRole.WindowText)
        self.answer.setText(text)

    def _runs_finished(self, finished: list[dict[str, Any]]) -> None:
        if any(run.get("area_id") == self.area_id for run in finished):
            self.live.request()

    def _area_event(self, area_id: str, *_rest: Any) -> None:
        if area_id == self.area_id:
            self.live.request()

    def _account_changed(self, *_args: Any) -> None:
        if self.area_id is not None:
            self.live.request()
