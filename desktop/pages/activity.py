"""Activity: every run, newest first, with its payload, steps, attempts and errors;
above them the automations whose trigger cannot be checked now; and each automation's
check history (``CheckHistory``)."""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QKeySequence,
    QPalette,
    QResizeEvent,
    QShortcut,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.bridge import EngineBridge
from desktop.life_strip import SHOWN, LifeStrip
from desktop.live_refresh import LiveRefresh
from desktop.models import STATUS_COLOR, RunsModel
from desktop.pages.common import empty_state, heading, monospace, muted
from desktop.tasks import WidgetTasks
from engine.errors import HooklineError
from engine.inspect import Found, ItemVerdict

log = logging.getLogger(__name__)
TableT = TypeVar("TableT", bound=QTableView)

#: The statuses a user can filter on, with the words the screen uses.
STATUSES = (
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("skipped", "Skipped"),
    ("missed", "Missed"),
    ("interrupted", "Interrupted"),
)
STATUS_TEXT = {
    **dict(STATUSES),
    "running": "Running",
    "pending": "Waiting",
}
EMPTY_TEXT = "Nothing has run yet. Runs appear here as your automations fire."
NO_MATCH_TEXT = "No runs match these filters. Choose “All” to see every run."
#: Why a trigger's next check is when it is, in the window's words ("" for the interval).
NEXT_WHY = {"interval": "", "backoff": "backing off after failures",
            "retry-after": "when the service asked"}
#: A check's outcome, in the window's words.
OUTCOME_TEXT = {
    "new": "New items",
    "nothing new": "Nothing new",
    "not modified": "Nothing changed",
    "primed": "First check",
    "failed": "Failed",
}
#: What Check now says an item would do, in short (the reason column has the rest).
VERDICT_TEXT = {
    "new": "Would fire",
    "filtered": "Filtered out",
    "seen": "Already seen",
    "first check": "Remembered",
    "no key": "Never fires",
}
VERDICT_COLOR = {"new": STATUS_COLOR["succeeded"], "filtered": STATUS_COLOR["skipped"]}
OUTCOME_TIP = {
    "new": "Found items it had not seen: each started a run",
    "nothing new": "Every item it found had been seen before",
    "not modified": "The service said nothing changed since the last check",
    "primed": "The first check remembers what is there already and starts no run; "
              "items that appear after it do",
    "failed": "The check did not work; the reason is beside it",
}


def _local(value: datetime | str | None, seconds: bool = True) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    local = value.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S}" if seconds else f"{local:%Y-%m-%d %H:%M}"


def clock(value: datetime | None, seconds: bool = False) -> str:
    """A local time as short as is clear: '14:05' today, else '2026-12-07 14:05'."""
    if value is None:
        return "—"
    local = value.astimezone()
    time = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    if local.date() == datetime.now(UTC).astimezone().date():
        return time
    return f"{local:%Y-%m-%d} {time}"


def next_try(next_at: datetime | None, why: str | None) -> str:
    """When the next check is due and why then: '14:05 (backing off after failures)'."""
    if next_at is None:
        return "none scheduled (the automation is off)"
    reason = NEXT_WHY.get(why or "", why or "")
    return f"{clock(next_at)} ({reason})" if reason else clock(next_at)


def failing_text(failing: dict[str, Any], limit: int = 0) -> str:
    """One failing automation as the strip says it (the error cut at ``limit``)."""
    error = str(failing.get("last_error") or failing.get("error") or "")
    if limit and len(error) > limit:
        error = error[:limit].rstrip() + "…"
    due = failing.get("next_at")
    then = (f"next try at {next_try(due, failing.get('next_why'))}" if due is not None
            else "no next try is scheduled")
    return f"“{failing['name']}” cannot check for new items: {error.rstrip('.')} — {then}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def pretty_json(value: Any) -> str:
    """Readable JSON for the detail pane (dates and odd types as text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class CodeView(QPlainTextEdit):
    """Read-only monospace text (JSON) that grows with its content up to ``max_lines``
    and wraps long values, so short payloads need no scrolling.

    Args:
        text: what to show.
        name: its accessible name.
        max_lines: the tallest it grows before it scrolls.
    """

    def __init__(self, text: str, name: str, max_lines: int = 16,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.max_lines = max_lines
        self.setReadOnly(True)
        self.setFont(monospace())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setAccessibleName(name)
        self.setTabChangesFocus(True)
        self.textChanged.connect(self._fit)
        self.setPlainText(text)

    def _lines(self, width: float) -> int:
        """How many lines the text takes at ``width`` (QPlainTextEdit only lays out
        what is visible, so its own count is too low before it is shown)."""
        option = QTextOption()
        option.setWrapMode(self.wordWrapMode())
        total = 0
        for text in self.toPlainText().split("\n"):
            layout = QTextLayout(text, self.font())
            layout.setTextOption(option)
            layout.beginLayout()
            count = 0
            while True:
                line = layout.createLine()
                if not line.isValid():
                    break
                line.setLineWidth(width)
                count += 1
            layout.endLayout()
            total += max(count, 1)
            if total >= self.max_lines:
                return self.max_lines
        return total

    def _fit(self) -> None:
        margin = self.document().documentMargin()
        width = max(self.viewport().width() - 2 * margin - 4, 40.0)
        lines = min(max(self._lines(width), 1), self.max_lines)
        frame = 2 * self.frameWidth()
        height = self.fontMetrics().lineSpacing() * lines + int(2 * margin) + frame + 2
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._fit()


def _color(label: QLabel, color: str) -> None:
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, QColor(color))
    label.setPalette(palette)


def _paint_status(label: QLabel, status: str, resumed: bool = False) -> None:
    text = STATUS_TEXT.get(status, status.capitalize())
    if resumed:
        text += " (resumed after an interruption)"
    label.setText(text)
    _color(label, STATUS_COLOR.get(status, "#5f6368"))


def _status_label(status: str, resumed: bool = False) -> QLabel:
    label = QLabel()
    label.setObjectName("runStatus")
    _paint_status(label, status, resumed)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


def _selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class RunDetail(QScrollArea):
    """Everything about one run: what fired it, the condition, each reaction with its
    attempts, and the run's error; a Replay button sends its event again.

    Args:
        bridge: the engine bridge (labels of services and reactions).

    Attributes:
        run: the run shown, or None.
        payload_view: the trigger payload as pretty JSON.
        step_boxes: one group box per reaction step.
        error_label: the run's error, hidden when it has none.
        replay_button: sends the run's event again.
        message: the outcome of the last replay.

    Signals:
        replayRequested(dict): the user pressed Replay for this run.
    """

    replayRequested = Signal(dict)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.run: dict[str, Any] | None = None
        self.step_boxes: list[QGroupBox] = []
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMinimumWidth(320)

        self.placeholder = empty_state("Select a run to see what fired it and what each "
                                       "reaction did.")
        self.title = heading("", 1.25)
        self.status = _status_label("running")
        self.times = QFormLayout()
        self.started = _selectable("")
        self.finished = _selectable("")
        self.took = _selectable("")
        self.event_label = _selectable("")
        self.times.addRow("Started:", self.started)
        self.times.addRow("Finished:", self.finished)
        self.times.addRow("Took:", self.took)
        self.times.addRow("Event:", self.event_label)
        self.trace_label = _selectable("")
        self.trace_label.setObjectName("traceId")
        self.trace_label.setToolTip(
            "The trace id this run's requests carried (the traceparent header, W3C Trace "
            "Context) and its lines in Hookline's log: search for it in the services' logs "
            "to follow this event")
        self.times.addRow("Trace:", self.trace_label)
        self.replay_button = QPushButton("&Replay")
        self.replay_button.setToolTip("Send this run's event again into the automation as "
                                      "it is now (after you fixed it, for example)")
        self.replay_button.clicked.connect(self._replay_clicked)
        self.message = _selectable("")
        self.message.setObjectName("replayMessage")
        self.message.hide()
        self.error_label = _selectable("")
        self.error_label.setObjectName("runError")
        _color(self.error_label, STATUS_COLOR["failed"])
        self.error_box = QFrame()
        self.error_box.setObjectName("runErrorBox")
        self.error_box.setStyleSheet(f"#runErrorBox {{ border: 1px solid {STATUS_COLOR['failed']};"
                                     " border-radius: 4px; }")
        error_layout = QVBoxLayout(self.error_box)
        error_layout.setContentsMargins(8, 6, 8, 6)
        error_layout.addWidget(self.error_label)
        self.payload_view = CodeView("", "Trigger payload")
        self.condition = _selectable("")
        self.steps_layout = QVBoxLayout()
        self.steps_layout.setSpacing(10)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(14, 10, 14, 14)
        layout.setSpacing(8)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.replay_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.message)
        layout.addWidget(self.error_box)
        layout.addLayout(self.times)
        layout.addWidget(self._section("What fired it"))
        layout.addWidget(self.payload_view)
        layout.addWidget(self._section("Condition"))
        layout.addWidget(self.condition)
        layout.addWidget(self._section("Reactions"))
        layout.addLayout(self.steps_layout)
        layout.addStretch(1)
        self.body = body

        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(body)
        self.setWidget(self.stack)

    @staticmethod
    def _section(text: str) -> QLabel:
        label = QLabel(text)
        font = label.font()
        font.setBold(True)
        label.setFont(font)
        label.setContentsMargins(0, 8, 0, 0)
        return label

    def show_run(self, run: dict[str, Any] | None) -> None:
        """Show ``run`` (None: the hint to select one)."""
        if run is not None and self.run is not None and run == self.run:
            return  # a refresh brought the same data: keep scroll position and message
        same_run = run is not None and self.run is not None and run["id"] == self.run["id"]
        self.run = run
        if not same_run:
            self.message.hide()
        if run is None:
            self.stack.setCurrentWidget(self.placeholder)
            return
        self.stack.setCurrentWidget(self.body)
        self.title.setText(f"{run.get('area_name') or run['area_id'][:8]} · run #{run['id']}")
        _paint_status(self.status, run["status"], bool(run.get("resumed")))
        self.started.setText(_local(run.get("started_at")))
        finished = run.get("finished_at")
        self.finished.setText(_local(finished) if finished else "still running")
        if finished and run.get("started_at"):
            self.took.setText(_duration((finished - run["started_at"]).total_seconds()))
        else:
            self.took.setText("—")
        event_id = run.get("event_id")
        self.event_label.setText(f"#{event_id}" if event_id is not None
                           else "no longer kept (removed by retention)")
        trace = run.get("trace_id")
        self.trace_label.setText(str(trace) if trace else "—")
        self.replay_button.setEnabled(event_id is not None)
        self.replay_button.setToolTip(
            "Send this run's event again into the automation as it is now"
            if event_id is not None else "This run's event is no longer kept, so it cannot "
                                         "be sent again")
        error = run.get("error")
        self.error_label.setText(error or "")
        self.error_box.setVisible(bool(error))
        payload = run.get("trigger_payload")
        self.payload_view.setPlainText(pretty_json(payload) if payload is not None
                                       else "(no payload was recorded)")
        self.condition.setText(self._condition_text(run.get("condition")))
        self._show_steps(run.get("steps") or [], run["status"])

    @staticmethod
    def _condition_text(condition: dict[str, Any] | None) -> str:
        if not condition:
            return "No condition: every event runs the reactions."
        expression = condition.get("expression", "")
        if "error" in condition:
            return f"{expression}\n→ could not be worked out: {condition['error']}"
        result = condition.get("result")
        verdict = ("true: the reactions ran" if result
                   else "false: the reactions were skipped")
        return f"{expression}\n→ {verdict}"

    def _show_steps(self, steps: list[dict[str, Any]], run_status: str) -> None:
        for box in self.step_boxes:
            self.steps_layout.removeWidget(box)
            box.hide()  # deleteLater waits for the loop; it must be gone from view now
            box.deleteLater()
        self.step_boxes = []
        if not steps:
            note = ("None: the schedule was missed, nothing ran." if run_status == "missed"
                    else "None.")
            box = QGroupBox()
            inner = QVBoxLayout(box)
            inner.addWidget(muted(QLabel(note)))
            self.steps_layout.addWidget(box)
            self.step_boxes.append(box)
            return
        for index, step in enumerate(steps):
            box = self._step_box(index, step, run_status)
            self.steps_layout.addWidget(box)
            self.step_boxes.append(box)

    def _step_box(self, index: int, step: dict[str, Any], run_status: str) -> QGroupBox:
        service, action = step.get("service", "?"), step.get("reaction", "?")
        label = self.bridge.label(service, action, True)
        box = QGroupBox(f"{index + 1}. {label}")
        box.setObjectName("runStep")
        box.setAccessibleName(f"Reaction {index + 1}: {label}")
        layout = QVBoxLayout(box)
        layout.setSpacing(6)
        status = str(step.get("status", "pending"))
        if status == "pending" and run_status in ("failed", "skipped"):
            status_text = "did not run"
        else:
            status_text = STATUS_TEXT.get(status, status)
        line = QHBoxLayout()
        line.addWidget(muted(_selectable(f"{service}.{action}")))
        line.addStretch(1)
        state = _status_label(status if status != "pending" else "skipped")
        state.setText(status_text + (" (interrupted)" if step.get("interrupted") else ""))
        line.addWidget(state)
        layout.addLayout(line)
        if step.get("params") is not None:
            layout.addWidget(QLabel("Sent:"))
            layout.addWidget(CodeView(pretty_json(step["params"]),
                                        f"Parameters sent by reaction {index + 1}"))
        attempts = step.get("attempts") or []
        if attempts:
            layout.addWidget(QLabel(f"Attempts ({len(attempts)}):"))
            for number, attempt in enumerate(attempts, 1):
                text = f"{number}. {_local(attempt.get('started_at'))}"
                if attempt.get("seconds") is not None:
                    text += f" · {_duration(float(attempt['seconds']))}"
                if attempt.get("error"):
                    text += f" · {attempt['error']}"
                    if attempt.get("retry_in") is not None:
                        text += f" (tried again after {_duration(float(attempt['retry_in']))})"
                elif step.get("status") == "succeeded" and number == len(attempts):
                    text += " · ok"
                entry = _selectable(text)
                entry.setObjectName("attempt")
                if attempt.get("error"):
                    _color(entry, STATUS_COLOR["failed"])
                layout.addWidget(entry)
        if step.get("error") and not attempts:
            error = _selectable(str(step["error"]))
            _color(error, STATUS_COLOR["failed"])
            layout.addWidget(error)
        if step.get("output"):
            layout.addWidget(QLabel("Output:"))
            layout.addWidget(CodeView(pretty_json(step["output"]),
                                        f"Output of reaction {index + 1}"))
        return box

    def set_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        if error:
            _color(self.message, STATUS_COLOR["failed"])
        else:
            self.message.setPalette(self.palette())
        self.message.show()

    def _replay_clicked(self) -> None:
        if self.run is not None and self.run.get("event_id") is not None:
            self.replayRequested.emit(self.run)


def _history_table(table: TableT, name: str) -> TableT:
    """``table`` as the history lists look: whole rows, read-only, no grid, no
    horizontal scroll bar (the last column takes what is left)."""
    table.setAccessibleName(name)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.horizontalHeader().setHighlightSections(False)
    return table


class FailingChecks(QFrame):
    """Above the runs: each automation whose trigger cannot be checked now, the reason
    and the next try; hidden while every check works (a feed that answers 404 starts
    no run, so the runs alone would not show it).

    Attributes:
        lines: one label per failing automation, by name.
    """

    #: The longest error the strip shows (the tooltip has all of it).
    MAX_ERROR = 200

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("failingChecks")
        self.setAccessibleName("Automations that cannot check for new items")
        self.setStyleSheet(f"#failingChecks {{ border: 1px solid {STATUS_COLOR['failed']};"
                           " border-radius: 4px; }")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(10, 6, 10, 6)
        self._layout.setSpacing(4)
        self.lines: list[QLabel] = []
        self.hide()

    def show_failing(self, failing: Sequence[dict[str, Any]]) -> None:
        """Show ``failing`` (as ``EngineBridge.failing_checks`` gives it)."""
        for label in self.lines:
            self._layout.removeWidget(label)
            label.hide()
            label.deleteLater()
        self.lines = []
        for row in failing:
            plain = failing_text(row, self.MAX_ERROR)
            name = f"“{row['name']}”"
            label = QLabel(f"<b>{html.escape(name)}</b>{html.escape(plain[len(name):])}")
            label.setObjectName("failingCheck")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setAccessibleName(plain)
            count = int(row.get("failures") or 1)
            checks = "1 check" if count == 1 else f"{count} checks in a row"
            label.setToolTip(f"Failing since {clock(row.get('since'))} ({checks}).\n"
                             f"First error: {row.get('error', '')}\n"
                             f"Latest error: {row.get('last_error', '')}\n"
                             "The automation's Checks… on the Automations screen lists "
                             "each check.")
            self._layout.addWidget(label)
            self.lines.append(label)
        self.setVisible(bool(failing))


class FoundItems(QFrame):
    """Under the filters: what a search for an item found (each answer in a sentence,
    where the text was found, and a button that opens the run it started); hidden
    until a search is made.

    Attributes:
        summary: what was looked for and how many answers.
        rows: one frame per answer.
        open_buttons: the "Open run #N" buttons, by run id.

    Signals:
        openRun(int, str): the user asked to see run id of automation id.
    """

    openRun = Signal(int, str)

    #: How tall the list grows before it scrolls.
    MAX_HEIGHT = 220

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("foundItems")
        self.setAccessibleName("What the search found")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.summary = _selectable("")
        self.summary.setObjectName("foundSummary")
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Hide what the search found")
        self.close_button.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self._list = QVBoxLayout()
        self._list.setSpacing(6)
        inner = QWidget()
        inner_layout = QVBoxLayout(inner)
        inner_layout.setContentsMargins(0, 0, 0, 0)
        inner_layout.addLayout(self._list)
        inner_layout.addStretch(1)
        self.answers = QScrollArea()
        self.answers.setWidgetResizable(True)
        self.answers.setFrameShape(QFrame.Shape.NoFrame)
        self.answers.setWidget(inner)
        self._inner = inner
        self.answers.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addLayout(top)
        layout.addWidget(self.answers)
        self.rows: list[QFrame] = []
        self.open_buttons: dict[int, QPushButton] = {}
        self.hide()

    def show_found(self, text: str, found: Sequence[Found], not_seen: str) -> None:
        """Show the answers for ``text`` (``not_seen``: what to say when there are none)."""
        for row in self.rows:
            self._list.removeWidget(row)
            row.hide()
            row.deleteLater()
        self.rows, self.open_buttons = [], {}
        if not found:
            self.summary.setText(not_seen[:1].upper() + not_seen[1:] + ".")
        else:
            many = "answers" if len(found) != 1 else "answer"
            self.summary.setText(f"Looked for “{text}”: {len(found)} {many}, newest first.")
        for hit in found:
            self._add(hit)
        self.answers.setVisible(bool(found))
        self.show()
        self._fit()

    def _fit(self) -> None:
        """As tall as the answers at the list's width, up to ``MAX_HEIGHT``."""
        layout = self._inner.layout()
        assert layout is not None
        layout.activate()
        width = max(self.answers.viewport().width(), 300)
        hint = (layout.heightForWidth(width) if layout.hasHeightForWidth()
                else self._inner.sizeHint().height())
        self.answers.setFixedHeight(min(hint + 4, self.MAX_HEIGHT))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.rows and event.size().width() != event.oldSize().width():
            self._fit()

    def _add(self, hit: Found) -> None:
        row = QFrame()
        row.setObjectName("foundItem")
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        words = QVBoxLayout()
        answer = _selectable(hit.answer[:1].upper() + hit.answer[1:])
        answer.setObjectName("foundAnswer")
        value = hit.value if len(hit.value) <= 160 else hit.value[:159] + "…"
        where = muted(_selectable(f"found in {hit.field}: {value}"))
        words.addWidget(answer)
        words.addWidget(where)
        line.addLayout(words, 1)
        if hit.run_id is not None:
            run_id, area_id = hit.run_id, hit.area_id
            button = QPushButton(f"Open run #{run_id}")
            button.setToolTip("Show this run's details below")
            button.clicked.connect(lambda: self.openRun.emit(run_id, area_id))
            line.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
            self.open_buttons[run_id] = button
        self._list.addWidget(row)
        self.rows.append(row)


class CheckHistory(QDialog):
    """The latest checks of one automation's trigger: when, what each found or why it
    failed, how long it took, and when the next was due and why then.

    Args:
        bridge: the engine bridge.
        area_id: the automation.
        name: its name (the title).

    Attributes:
        table: one row per check, newest first.
        summary: the last check and the next, in a sentence.
        refresh_button: reads the checks again.
        check_now_button: checks the trigger once without firing (``check_now``).
        verdicts: what each item the last Check now found would do, one row each.
        verdicts_summary: that check in a sentence (or why it did not work).

    Signals:
        loaded(): the checks were read (again) and are shown.
        checkedNow(): a Check now finished; its answer is shown.
    """

    loaded = Signal()
    checkedNow = Signal()

    VERDICT_COLUMNS = ("Item", "At a real check", "Why")
    ITEM, VERDICT, WHY = range(3)

    COLUMNS = ("When", "Result", "Items", "New", "Took", "Next check", "Problem")
    WHEN, RESULT, ITEMS, NEW, TOOK, NEXT, PROBLEM = range(7)

    def __init__(self, bridge: EngineBridge, area_id: str, name: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.area_id = area_id
        self.tasks = WidgetTasks(self)
        self.setWindowTitle(f"Checks of “{name}”")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.summary = _selectable("Reading the checks…")
        self.summary.setObjectName("checksSummary")
        self.table = _history_table(QTableWidget(0, len(self.COLUMNS)), "Checks, newest first")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        for column in range(len(self.COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.PROBLEM, QHeaderView.ResizeMode.Stretch)
        note = muted(_selectable("Hookline keeps each automation's last 50 checks."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.refresh_button = buttons.addButton("Re&fresh",
                                                QDialogButtonBox.ButtonRole.ActionRole)
        self.refresh_button.clicked.connect(lambda: self.tasks.spawn(self.refresh()))
        self.check_now_button = buttons.addButton("Check &now",
                                                  QDialogButtonBox.ButtonRole.ActionRole)
        self.check_now_button.setToolTip(
            "Ask the trigger for its items once and show what each would do (fire, "
            "already seen, filtered out), without firing anything or changing what "
            "Hookline remembers. Run now on the Automations screen fires.")
        self.check_now_button.clicked.connect(lambda: self.tasks.spawn(self.check_now()))
        buttons.rejected.connect(self.close)
        self.verdicts_summary = _selectable("")
        self.verdicts_summary.setObjectName("checkNowSummary")
        self.verdicts = _history_table(QTableWidget(0, len(self.VERDICT_COLUMNS)),
                                       "What each item would do")
        self.verdicts.setHorizontalHeaderLabels(list(self.VERDICT_COLUMNS))
        self.verdicts.setWordWrap(True)
        header = self.verdicts.horizontalHeader()
        header.setSectionResizeMode(self.ITEM, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(self.VERDICT, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.WHY, QHeaderView.ResizeMode.Stretch)
        self.verdicts.setColumnWidth(self.ITEM, 260)
        self.now_box = QGroupBox("Check now: what each item would do (nothing fired or saved)")
        now_layout = QVBoxLayout(self.now_box)
        now_layout.addWidget(self.verdicts_summary)
        now_layout.addWidget(self.verdicts, 1)
        self.now_box.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)
        layout.addWidget(self.now_box, 1)
        layout.addWidget(buttons)
        self.resize(900, 440)
        self.tasks.spawn(self.refresh())

    async def refresh(self) -> None:
        """Read the checks again and show them."""
        self.refresh_button.setEnabled(False)
        try:
            checks = await self.bridge.checks(self.area_id)
        except Exception as exc:
            self.summary.setText(f"Could not read the checks: {exc}")
            return
        finally:
            self.refresh_button.setEnabled(True)
        self.show_checks(checks)
        self.loaded.emit()

    def show_checks(self, checks: Sequence[dict[str, Any]]) -> None:
        self.table.setRowCount(len(checks))
        for row, check in enumerate(checks):
            failed = check["outcome"] == "failed"
            cells = (
                clock(check["at"], seconds=True),
                OUTCOME_TEXT.get(check["outcome"], check["outcome"]),
                "—" if failed else str(check["items"]),
                "—" if failed else str(check["new"]),
                _duration(float(check["seconds"])),
                next_try(check["next_at"], check["next_why"]),
                check["error"] or "",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (self.ITEMS, self.NEW, self.TOOK):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if column == self.RESULT:
                    item.setToolTip(OUTCOME_TIP.get(check["outcome"], ""))
                    if failed:
                        item.setForeground(QColor(STATUS_COLOR["failed"]))
                if column == self.PROBLEM and text:
                    item.setToolTip(text)
                self.table.setItem(row, column, item)
        self.table.resizeRowsToContents()
        self.summary.setText(self._summary(checks))

    async def check_now(self) -> None:
        """Ask the trigger once, as a dry run, and show what each item would do."""
        self.check_now_button.setEnabled(False)
        self.now_box.show()
        if self.height() < 640:
            self.resize(self.width(), 640)
        self.verdicts.setRowCount(0)
        self.verdicts_summary.setText("Checking…")
        self.verdicts_summary.setPalette(self.palette())
        try:
            verdicts = await self.bridge.check_now(self.area_id)
        except Exception as exc:
            self.verdicts_summary.setText(f"Could not check now: {exc}")
            _color(self.verdicts_summary, STATUS_COLOR["failed"])
            self.checkedNow.emit()
            return
        finally:
            self.check_now_button.setEnabled(True)
        self.show_verdicts(verdicts)
        self.checkedNow.emit()

    def show_verdicts(self, verdicts: Sequence[ItemVerdict]) -> None:
        self.verdicts.setRowCount(len(verdicts))
        for row, verdict in enumerate(verdicts):
            cells = (verdict.title, VERDICT_TEXT.get(verdict.verdict, verdict.verdict),
                     verdict.reason)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text if column != self.ITEM else
                                f"{text}\nKey: {verdict.key or '(none)'}")
                if column == self.VERDICT:
                    item.setForeground(QColor(VERDICT_COLOR.get(verdict.verdict,
                                                                "#5f6368")))
                self.verdicts.setItem(row, column, item)
        self.verdicts.resizeRowsToContents()
        new = sum(1 for v in verdicts if v.verdict == "new")
        at = clock(datetime.now(UTC), seconds=True)
        if not verdicts:
            text = f"Checked at {at}: the trigger returns nothing right now."
        else:
            count = f"{len(verdicts)} item{'s' if len(verdicts) != 1 else ''}"
            fire = ("none would fire" if not new else
                    f"{new} would fire" if new != 1 else "1 would fire")
            text = f"Checked at {at}: the trigger returns {count}; {fire}."
        self.verdicts_summary.setText(text)

    @staticmethod
    def _summary(checks: Sequence[dict[str, Any]]) -> str:
        if not checks:
            return ("Not checked yet. Only automations whose trigger looks for new items "
                    "(a feed, a folder, a service) are checked; the first check starts "
                    "shortly after the automation is turned on.")
        last = checks[0]
        outcome = OUTCOME_TEXT.get(last["outcome"], last["outcome"]).lower()
        return (f"Last checked at {clock(last['at'], seconds=True)}: {outcome}. Next check: "
                f"{next_try(last['next_at'], last['next_why'])}.")


class ActivityPage(QWidget):
    """Runs across all automations, newest first, filtered by automation and result,
    beside the details of the selected run. New runs appear as they finish.

    Args:
        bridge: the engine bridge.
        parent: the owning widget.

    Attributes:
        model: the runs shown (``RunsModel``).
        table: the list of runs.
        detail: the selected run's details (``RunDetail``).
        area_filter / status_filter: the two filter menus.
        find_field: "Find an item…": an id, link or part of a title to look for (in
            the chosen automation's events, or every automation's).
        found: what the search found (``FoundItems``).
        life: the chosen automation's state and latest state changes (``LifeStrip``).

    Signals:
        refreshed(): the list was read again from the engine.
        searched(): a search's answer is shown.
    """

    refreshed = Signal()
    searched = Signal()

    LIMIT = 200
    REFRESH_DELAY_MS = 200

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        #: Cancelled with the page (and before the app closes the engine).
        self.tasks = WidgetTasks(self)
        self._refreshing = asyncio.Lock()
        self._selected_id: int | None = None

        self.model = RunsModel()
        self.area_filter = QComboBox()
        self.area_filter.setAccessibleName("Automation")
        self.area_filter.setMinimumContentsLength(16)
        self.area_filter.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.status_filter = QComboBox()
        self.status_filter.setAccessibleName("Result")
        self.status_filter.addItem("All results", None)
        for value, text in STATUSES:
            self.status_filter.addItem(text, value)
        self._fill_area_filter()
        self.area_filter.currentIndexChanged.connect(self._filters_changed)
        self.status_filter.currentIndexChanged.connect(self._filters_changed)
        self.refresh_button = QPushButton("Re&fresh")
        self.refresh_button.setToolTip("Read the runs again (F5)")
        self.refresh_button.clicked.connect(lambda: self._spawn(self.refresh()))
        self.count_label = muted(QLabel(""))
        self.find_field = QLineEdit()
        self.find_field.setPlaceholderText("Find an item… (id, link or title)")
        self.find_field.setAccessibleName("Find an item")
        self.find_field.setToolTip("Paste an item's id or link, or type part of its title, "
                                   "and press Enter: Hookline says whether and when it saw "
                                   "it, and the run it started (in the chosen automation, "
                                   "or in all)")
        self.find_field.setClearButtonEnabled(True)
        self.find_field.setMinimumWidth(220)
        self.find_field.returnPressed.connect(
            lambda: self._spawn(self.find_item(self.find_field.text())))
        self.found = FoundItems()
        self.found.openRun.connect(lambda run_id, area_id: self._spawn(
            self.open_run(run_id, area_id)))

        filters = QHBoxLayout()
        title = heading("Activity")
        filters.addWidget(title)
        filters.addSpacing(16)
        area_label = QLabel("&Automation:")
        area_label.setBuddy(self.area_filter)
        status_label = QLabel("R&esult:")
        status_label.setBuddy(self.status_filter)
        filters.addWidget(area_label)
        filters.addWidget(self.area_filter, 1)
        filters.addWidget(status_label)
        filters.addWidget(self.status_filter)
        filters.addSpacing(8)
        filters.addWidget(self.find_field, 1)
        filters.addStretch(0)
        filters.addWidget(self.count_label)
        filters.addWidget(self.refresh_button)

        self.table = _history_table(QTableView(), "Runs")
        self.table.setModel(self.model)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setMinimumWidth(360)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(RunsModel.TIME, QHeaderView.ResizeMode.ResizeToContents)
        # names get the room they need (up to a cap), the error summary what is left:
        # no horizontal scroll bar; full texts are in the tooltips and the detail pane
        header.setMaximumSectionSize(240)
        header.setSectionResizeMode(RunsModel.AREA, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(RunsModel.STATUS, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(RunsModel.DURATION,
                                    QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(RunsModel.DETAIL, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        self.detail = RunDetail(bridge)
        self.detail.replayRequested.connect(lambda run: self._spawn(self.replay(run)))

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([460, 540])
        self.splitter.setChildrenCollapsible(False)

        self.empty = empty_state(EMPTY_TEXT)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.splitter)
        self.failing = FailingChecks()
        self.life = LifeStrip()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addLayout(filters)
        layout.addWidget(self.found)
        layout.addWidget(self.failing)
        layout.addWidget(self.life)
        layout.addWidget(self.stack, 1)
        self.setMinimumSize(640, 360)
        self.setTabOrder(self.area_filter, self.status_filter)
        self.setTabOrder(self.status_filter, self.refresh_button)
        self.setTabOrder(self.refresh_button, self.table)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Refresh), self,
                  lambda: self._spawn(self.refresh()))

        self.live = LiveRefresh(self, lambda: self._spawn(self.refresh()),
                                self.REFRESH_DELAY_MS)
        bridge.runsFinished.connect(self._runs_finished)
        bridge.areaChanged.connect(self._area_changed)
        bridge.areaState.connect(self._area_state)
        self.live.now()
        # The failing checks: told when a streak starts or ends, and read again when the
        # next try is due (its time moves as the checks back off).
        self.failing_live = LiveRefresh(self, lambda: self._spawn(self.refresh_failing()),
                                        self.REFRESH_DELAY_MS)
        self._next_try = QTimer(self)
        self._next_try.setSingleShot(True)
        self._next_try.timeout.connect(self.failing_live.request)
        bridge.triggerHealth.connect(self.failing_live.request)
        self.failing_live.now()

    # ----------------------------------------------------------------- public

    async def refresh(self) -> None:
        """Read the runs again with the current filters; the selection stays.

        Refreshes run one at a time, in the order asked, so the last one asked for
        decides what is shown; when this returns the list shows its answer."""
        async with self._refreshing:
            area_id = self.area_filter.currentData()
            status = self.status_filter.currentData()
            try:
                runs = await self.bridge.runs(area_id, status, self.LIMIT)
                filtered = area_id is not None or status is not None
                anything = bool(runs) or (filtered and bool(await self.bridge.runs(limit=1)))
            except Exception as exc:
                log.exception("could not read the runs")
                self.count_label.setText(f"Could not read the runs: {exc}")
                return
            keep = self._selected_id
            self.model.set_runs(runs)
            if runs:
                self.stack.setCurrentWidget(self.splitter)
            else:
                self.empty.setText(NO_MATCH_TEXT if anything else EMPTY_TEXT)
                self.stack.setCurrentWidget(self.empty)
            self.count_label.setText(self._count_text(len(runs)))
            await self._show_life(area_id)
            row = self._row_of(keep)
            if row >= 0:
                self._select_row(row)
            else:
                self._selected_id = None
                self.detail.show_run(None)
        self.refreshed.emit()

    async def _show_life(self, area_id: str | None) -> None:
        """The chosen automation's state and latest changes (hidden for all)."""
        if area_id is None:
            self.life.show_status("", None)
            return
        try:
            status = await self.bridge.lifecycle(area_id, SHOWN)
        except HooklineError:  # deleted meanwhile: the filter is refilled
            self.life.show_status("", None)
            return
        self.life.show_status(self.area_filter.currentText(), status)

    def _area_state(self, area_id: str, _to: str, _cause: str) -> None:
        if area_id == self.area_filter.currentData():
            self.live.request()

    async def refresh_failing(self) -> None:
        """Read again which automations cannot check for new items."""
        try:
            failing = await self.bridge.failing_checks()
        except Exception:
            log.exception("could not read the failing checks")
            return
        self.failing.show_failing(failing)
        due = [f["next_at"] for f in failing if f.get("next_at") is not None]
        if due:
            wait = (min(due) - datetime.now(UTC)).total_seconds() + 2
            self._next_try.start(int(min(max(wait, 5.0), 3600.0) * 1000))
        else:
            self._next_try.stop()

    def select_area(self, area_id: str | None) -> asyncio.Task[None]:
        """Show only ``area_id``'s runs (None: all); returns the refresh under way."""
        self._fill_area_filter()
        index = self.area_filter.findData(area_id) if area_id is not None else 0
        self.area_filter.blockSignals(True)
        self.area_filter.setCurrentIndex(max(index, 0))
        self.area_filter.blockSignals(False)
        self._selected_id = None
        return self._spawn(self.refresh())

    def select_run(self, run_id: int) -> bool:
        """Select the run ``run_id`` if it is listed."""
        row = self._row_of(run_id)
        if row >= 0:
            self._select_row(row)
        return row >= 0

    async def replay(self, run: dict[str, Any]) -> None:
        """Send ``run``'s event again into its automation as it is now."""
        event_id = run.get("event_id")
        if event_id is None:
            return
        name = run.get("area_name") or "the automation"
        self.detail.replay_button.setEnabled(False)
        try:
            events = await self.bridge.replay(int(event_id))
        except Exception as exc:
            self.detail.set_message(f"Could not replay: {exc}", error=True)
            return
        finally:
            if self.detail.run is not None:
                self.detail.replay_button.setEnabled(self.detail.run.get("event_id") is not None)
        ids = ", ".join(f"#{e.id}" for e in events)
        self.detail.set_message(f"Sent again to {name} as event {ids}; its run appears at "
                                "the top when it finishes.")

    async def find_item(self, text: str) -> None:
        """Look for an item (its id, link or part of its title) in the chosen
        automation's events, or every automation's, and show what was found."""
        if not text.strip():
            self.found.hide()
            return
        self.find_field.setEnabled(False)
        try:
            found = await self.bridge.find_item(text, self.area_filter.currentData())
        except Exception as exc:
            self.found.show_found(text, [], f"could not look for it: {exc}")
            self.searched.emit()
            return
        finally:
            self.find_field.setEnabled(True)
        self.found.show_found(text.strip(), found, self.bridge.not_seen(text))
        self.searched.emit()

    async def open_run(self, run_id: int, area_id: str) -> None:
        """Show run ``run_id`` (of ``area_id``): selected in the list when it is among
        the newest, else in the detail pane alone."""
        self.status_filter.blockSignals(True)
        self.status_filter.setCurrentIndex(0)
        self.status_filter.blockSignals(False)
        await self.select_area(area_id)
        if self.select_run(run_id):
            return
        try:
            run = await self.bridge.run(run_id)
        except Exception as exc:
            self.count_label.setText(f"Could not open run #{run_id}: {exc}")
            return
        self.table.clearSelection()
        self._selected_id = None
        self.stack.setCurrentWidget(self.splitter)
        self.detail.show_run(run)

    # ----------------------------------------------------------------- internals

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self.tasks.spawn(coro)

    def _count_text(self, count: int) -> str:
        if count >= self.LIMIT:
            return f"newest {self.LIMIT} runs"
        return f"{count} run{'s' if count != 1 else ''}" if count else ""

    def _fill_area_filter(self) -> None:
        current = self.area_filter.currentData()
        self.area_filter.blockSignals(True)
        self.area_filter.clear()
        self.area_filter.addItem("All automations", None)
        for area_id, name in self.bridge.area_names():
            self.area_filter.addItem(name, area_id)
        index = self.area_filter.findData(current) if current is not None else 0
        self.area_filter.setCurrentIndex(max(index, 0))
        self.area_filter.blockSignals(False)
        if current is not None and index < 0:
            self._filters_changed()  # the chosen automation is gone: show all

    def _row_of(self, run_id: int | None) -> int:
        if run_id is None:
            return -1
        for row in range(self.model.rowCount()):
            if self.model.run(row)["id"] == run_id:
                return row
        return -1

    def _select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.table.selectionModel().select(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.detail.show_run(self.model.run(row))

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection
                           ) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return  # a model reset clears the selection; refresh() puts it back
        run = self.model.run(rows[0].row())
        self._selected_id = run["id"]
        self.detail.show_run(run)

    def _filters_changed(self) -> None:
        self._spawn(self.refresh())

    def _runs_finished(self, _runs: list[dict[str, Any]]) -> None:
        self.live.request()

    def _area_changed(self, _area_id: str, change: str) -> None:
        self._fill_area_filter()
        self.failing_live.request()  # renamed, turned off or removed
        if change in ("updated", "removed"):
            self.live.request()  # names changed or runs went with the area
