"""Forms built from parameter declarations: one widget per ParamType, checked as you type."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PySide6.QtCore import QDate, QDateTime, QSignalBlocker, Qt, QTime, QTimer, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTimeEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.wheel import guard_inputs
from engine import templates
from engine.catalog.params import (
    Param,
    ParamType,
    format_duration,
    parse_duration,
    spoken_duration,
)
from engine.catalog.service import Field
from engine.errors import ValidationError
from engine.windows import local_zone

#: How long typing pauses before a field is checked (milliseconds).
CHECK_DELAY_MS = 300
SECRET_NOTE = "Kept in your OS keyring, never in Hookline's files or exports."  # noqa: S105
SAVED_SECRET_PLACEHOLDER = "•••••• (saved — leave empty to keep)"  # noqa: S105
_INT_LIMIT = 2**31 - 1
_NUMBER_LIMIT = 1e12
#: At most this many fields of a sample event are offered, at most this deep.
SAMPLE_FIELDS = 100
SAMPLE_DEPTH = 5
#: A key a template can follow with a dot (others go in brackets, quoted).
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_EXAMPLE_CHARS = 80


@dataclass(frozen=True)
class FieldChoice:
    """One value a template may use, as the "Insert field" menu offers it.

    Attributes:
        expression: what goes between the braces, e.g. ``trigger.title``.
    """

    expression: str
    label: str
    example: Any = None

    @property
    def template(self) -> str:
        return f"{{{{ {self.expression} }}}}"


@dataclass(frozen=True)
class FieldGroup:
    """Values from one step: the trigger, or one earlier reaction."""

    title: str
    choices: tuple[FieldChoice, ...]


@dataclass(frozen=True)
class Available:
    """What a template in a form may use: the names the engine checks it against and
    the groups the "Insert field" menu shows.

    Attributes:
        trigger_fields: the trigger's field names (``None``: not known, anything goes).
        reaction_fields: output field names of each earlier reaction, in order.
    """

    trigger_fields: tuple[str, ...] | None = None
    reaction_fields: tuple[tuple[str, ...], ...] = ()
    groups: tuple[FieldGroup, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, trigger: tuple[str, Sequence[Field]] | None,
              reactions: Sequence[tuple[str, Sequence[Field]]] = (),
              sample: FieldGroup | None = None) -> Available:
        """From the trigger's (title, fields), each earlier reaction's, and the fields
        found in a sample event of the trigger (its last delivery, a pasted body)."""
        groups = []
        if trigger is not None:
            declared = tuple(FieldChoice(f"trigger.{f.name}", f.label, f.example)
                             for f in trigger[1])
            groups.append(FieldGroup(trigger[0], declared))
            if sample is not None:
                known = {c.expression for c in declared}
                groups.append(FieldGroup(sample.title, tuple(
                    c for c in sample.choices if c.expression not in known)))
        for index, (title, fields) in enumerate(reactions):
            groups.append(FieldGroup(title, tuple(
                FieldChoice(f"reactions[{index}].{f.name}", f.label, f.example)
                for f in fields)))
        trigger_fields = (tuple(f.name for f in trigger[1])
                          if trigger is not None and trigger[1] else None)
        return cls(trigger_fields, tuple(tuple(f.name for f in fs) for _, fs in reactions),
                   tuple(groups))


AvailableFn = Callable[[], Available]


def payload_choices(payload: Mapping[str, Any], *, limit: int = SAMPLE_FIELDS,
                    depth: int = SAMPLE_DEPTH) -> tuple[FieldChoice, ...]:
    """The values in a trigger's ``payload`` a template may insert, in its order:
    ``trigger.body.user.name`` labelled "body › user › name"; of a list only its first
    item (``trigger.body.items[0].id``); at most ``limit``, at most ``depth`` deep."""
    found: list[FieldChoice] = []

    def walk(value: Any, expression: str, path: list[str]) -> None:
        if path:
            shown = value if not isinstance(value, Mapping | list) else None
            if isinstance(shown, str) and len(shown) > _EXAMPLE_CHARS:
                shown = shown[:_EXAMPLE_CHARS] + "…"
            found.append(FieldChoice(expression, " › ".join(path), shown))
        if len(path) >= depth:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if len(found) >= limit:
                    return
                # templates refuse names starting with "_"; braces would end the template
                if not isinstance(key, str) or not key or key.startswith("_") or (
                        "{" in key or "}" in key):
                    continue
                step = f".{key}" if _PLAIN_KEY.match(key) else f"[{json.dumps(key)}]"
                walk(item, expression + step, [*path, key])
        elif isinstance(value, list) and value and len(found) < limit:
            walk(value[0], f"{expression}[0]", [*path, "first"])

    walk(payload, "trigger", [])
    return tuple(found[:limit])


def error_color() -> str:
    """A red that reads on the current palette's window colour (light or dark)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        window = app.palette().color(QPalette.ColorRole.Window)
        if window.lightness() < 128:
            return "#f28b82"
    return "#c5221f"


def describe_cron(expression: str) -> str:
    """A crontab expression in words ("At 09:00, Monday through Friday")."""
    from cron_descriptor import (  # type: ignore[import-untyped]
        ExpressionDescriptor,
        Options,
    )

    options = Options()
    options.use_24hour_time_format = True
    return str(ExpressionDescriptor(expression, options).get_description())


def small_label(text: str = "") -> QLabel:
    """Secondary text: smaller, muted by the palette, wrapped."""
    label = QLabel(text)
    label.setWordWrap(True)
    font = QFont(label.font())
    font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def error_label() -> QLabel:
    """Where a field says what is wrong with it (hidden while nothing is)."""
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {error_color()};")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAccessibleName("Problem")
    label.hide()
    return label


def _example_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


class ParamField(QWidget):
    """One parameter as a labelled input with its help and its problems under it.

    Subclasses build the input for their ParamType (see ``make_field``).

    Args:
        param: the declaration.
        in_reaction: whether the value belongs to a reaction (templates allowed for
            string types).
        available: what templates may use here (for checks and the "Insert field" menu).

    Attributes:
        editor: the input that takes the keyboard focus.

    Signals:
        edited(): the user changed the value.
        problemShown(): the problem shown on the field was set or cleared.
    """

    edited = Signal()
    problemShown = Signal()

    def __init__(self, param: Param, *, in_reaction: bool = False,
                 available: AvailableFn | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.param = param
        self.in_reaction = in_reaction
        self.available = available or Available
        #: Set once the user has edited it: only then are problems shown as they type.
        self.touched = False
        self.setObjectName(f"field-{param.name}")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(3)

        optional = not param.required and param.default in (None, "", [])
        self.label = QLabel(f"{param.label} (optional)" if optional else param.label)
        self.label.setWordWrap(True)
        self.row = QHBoxLayout()
        self.row.setSpacing(6)
        self.editor = self.build()
        self.editor.setAccessibleName(param.label)
        if param.help:
            self.editor.setAccessibleDescription(param.help)
        self.label.setBuddy(self.editor)
        self.row.addWidget(self.editor, 1)
        for extra in self.extras():
            self.row.addWidget(extra, 0, Qt.AlignmentFlag.AlignTop)
        self.insert_button: QPushButton | None = None
        if self.takes_templates:
            self.insert_button = self._insert_button()
            self.row.addWidget(self.insert_button, 0, Qt.AlignmentFlag.AlignTop)
        if param.type is not ParamType.BOOL:
            self._layout.addWidget(self.label)
        self._layout.addLayout(self.row)
        #: Live feedback under the input (a duration in words, a cron schedule in words).
        self.feedback = small_label()
        self.feedback.setForegroundRole(QPalette.ColorRole.WindowText)
        self.feedback.hide()
        self._layout.addWidget(self.feedback)
        self.error = error_label()
        self._layout.addWidget(self.error)
        self.help = small_label(self.help_text())
        self.help.setVisible(bool(self.help.text()))
        self._layout.addWidget(self.help)

        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check)
        self.apply_default()
        guard_inputs(self)  # scrolling the form past a choice or a number leaves it be

    # ---------------------------------------------------------------- for subclasses

    def build(self) -> QWidget:
        raise NotImplementedError

    def value(self) -> Any:
        """The value as the import format holds it (``None``: left empty)."""
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def extras(self) -> list[QWidget]:
        """Widgets beside the input (a Browse… button)."""
        return []

    def apply_default(self) -> None:
        """Show the declared default as the starting value."""
        if self.param.default is not None:
            self.set_value(self.param.default)

    def insert_text(self, text: str) -> None:
        """Insert at the cursor (template-capable fields)."""

    def help_text(self) -> str:
        return self.param.help

    def describe(self, value: Any) -> str:
        """Feedback shown under a valid value ('' for none)."""
        return ""

    # ---------------------------------------------------------------- common

    @property
    def takes_templates(self) -> bool:
        return self.param.may_template(self.in_reaction) and self.param.type in (
            ParamType.TEXT, ParamType.MULTILINE, ParamType.URL, ParamType.EMAIL,
            ParamType.PATH, ParamType.TEMPLATE)

    def changed(self) -> None:
        """Call when the user edits: check after a pause in typing."""
        self.touched = True
        self._check_timer.start()
        self.edited.emit()

    def is_blank(self) -> bool:
        value = self.value()
        return value is None or value == "" or value == []

    def problem(self) -> str | None:
        """What is wrong with the current value, or None."""
        value = self.value()
        if self.takes_templates and isinstance(value, str) and templates.is_template(value):
            available = self.available()
            try:
                templates.check(value, trigger_fields=available.trigger_fields,
                                reaction_fields=available.reaction_fields,
                                where=self.param.name)
            except ValidationError as exc:
                return exc.problem
            return None
        try:
            self.param.validate(value)
        except ValidationError as exc:
            return exc.problem
        return None

    def check(self) -> bool:
        """Check the value now and show the outcome on the field; True when fine."""
        self._check_timer.stop()
        problem = self.problem()
        self.show_error(problem)
        self.refresh_feedback(problem)
        return problem is None

    def refresh_feedback(self, problem: str | None = None) -> None:
        """Show what a valid value means (a duration or a schedule in words)."""
        text = ""
        if problem is None and not self.is_blank():
            value = self.value()
            if not (isinstance(value, str) and templates.is_template(value)):
                try:
                    text = self.describe(self.param.validate(value))
                except ValidationError:
                    text = ""
        self.feedback.setText(text)
        self.feedback.setVisible(bool(text))

    def show_error(self, message: str | None) -> None:
        """Show ``message`` on the field (None clears it)."""
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        self.editor.setProperty("invalid", bool(message))
        if isinstance(self.editor, QLineEdit | QPlainTextEdit):
            # the box is outlined too: a red line under a long form is easy to miss
            self.editor.setStyleSheet(
                f"{type(self.editor).__name__} {{ border: 1px solid {error_color()}; "
                "border-radius: 2px; padding: 2px; }" if message else "")
        if message:
            self.feedback.hide()
        self.problemShown.emit()

    def has_problem(self) -> bool:
        """Whether a problem is shown on the field."""
        return not self.error.isHidden()

    def focus(self) -> None:
        self.editor.setFocus(Qt.FocusReason.OtherFocusReason)

    def _insert_button(self) -> QPushButton:
        button = QPushButton("Insert field")
        button.setAutoDefault(False)
        button.setToolTip("Insert a value from the trigger or an earlier reaction, "
                          "e.g. {{ trigger.title }}")
        button.setAccessibleName(f"Insert field into {self.param.label}")
        menu = QMenu(button)
        menu.aboutToShow.connect(lambda: self.fill_menu(menu))
        button.setMenu(menu)
        return button

    def fill_menu(self, menu: QMenu) -> None:
        """The "Insert field" menu, built when it opens (the trigger may have changed)."""
        menu.clear()
        groups = [g for g in self.available().groups if g.choices]
        if not groups:
            action = menu.addAction("No fields: choose a trigger first")
            action.setEnabled(False)
            return
        for group in groups:
            menu.addSection(group.title)
            for choice in group.choices:
                action = menu.addAction(f"{choice.label}    {choice.template}")
                action.setObjectName(choice.expression)
                if choice.example is not None:
                    action.setToolTip(f"e.g. {_example_text(choice.example)}")
                action.triggered.connect(
                    lambda _=False, text=choice.template: self.insert_text(text))
        menu.setToolTipsVisible(True)


class LineField(ParamField):
    """Text on one line: text, URL, email, list, path, duration, cron, secret."""

    def build(self) -> QWidget:
        self.line = QLineEdit()
        self.line.setClearButtonEnabled(self.param.type is not ParamType.SECRET)
        placeholder = self.placeholder()
        if placeholder:
            self.line.setPlaceholderText(placeholder)
        self.line.textEdited.connect(self.changed)
        return self.line

    def apply_default(self) -> None:
        """Empty means the default: it is shown as the placeholder instead."""

    def placeholder(self) -> str:
        param = self.param
        if param.default not in (None, "", []):
            return f"{self.shown_default()} (default)"
        example = _example_text(param.example)
        if not example:
            return ""
        if param.type in (ParamType.URL, ParamType.EMAIL):
            return example
        return f"e.g. {example}"

    def shown_default(self) -> str:
        return _example_text(self.param.default)

    def value(self) -> Any:
        text = self.line.text()
        return text if text.strip() else None

    def set_value(self, value: Any) -> None:
        self.line.setText(_example_text(value))

    def insert_text(self, text: str) -> None:
        self.line.insert(text)
        self.line.setFocus(Qt.FocusReason.OtherFocusReason)
        self.changed()


class ListField(LineField):
    """Several values on one line, separated by commas."""

    def help_text(self) -> str:
        return " ".join(p for p in (self.param.help, "Separate several with commas.") if p)

    def value(self) -> Any:
        items = [i.strip() for i in self.line.text().split(",") if i.strip()]
        return items or None


class DurationField(LineField):
    """A length of time typed as 90, 30s, 5m, 1h30m or 2d, read back in words."""

    def value(self) -> Any:
        text = self.line.text().strip()
        return text or None

    def set_value(self, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.line.setText(format_duration(float(value)))
        else:
            self.line.setText(_example_text(value))

    def shown_default(self) -> str:
        try:
            return format_duration(parse_duration(self.param.default))
        except ValueError:
            return _example_text(self.param.default)

    def describe(self, value: Any) -> str:
        return f"= {spoken_duration(float(value))}" if value is not None else ""

    def seconds(self) -> float | None:
        value = self.value()
        return None if value is None else parse_duration(value)


class CronField(LineField):
    """A crontab expression with what it means in words under it."""

    def describe(self, value: Any) -> str:
        try:
            return describe_cron(str(value))
        except Exception:  # the engine accepted it; the describer is only a nicety
            return ""


class SecretField(LineField):
    """A password-style input; the value goes to the OS keyring on save."""

    def build(self) -> QWidget:
        editor = super().build()
        self.line.setEchoMode(QLineEdit.EchoMode.Password)
        self.saved = False
        return editor

    def help_text(self) -> str:
        return " ".join(p for p in (self.param.help, SECRET_NOTE) if p)

    def placeholder(self) -> str:
        return ""

    def set_saved(self, saved: bool) -> None:
        """Whether the area already has this secret in the keyring."""
        self.saved = saved
        self.line.setPlaceholderText(SAVED_SECRET_PLACEHOLDER if saved else "")

    def problem(self) -> str | None:
        if self.saved and self.value() is None:
            return None
        return super().problem()

    def is_blank(self) -> bool:
        return not self.saved and super().is_blank()


class PathField(LineField):
    """A file or folder path with a Browse… button (a folder when the name says so)."""

    def extras(self) -> list[QWidget]:
        self.browse = QPushButton("Browse…")
        self.browse.setAccessibleName(f"Browse for {self.param.label}")
        self.browse.clicked.connect(self.choose)
        return [self.browse]

    @property
    def wants_folder(self) -> bool:
        name = self.param.name.lower()
        return "folder" in name or "directory" in name

    def choose(self) -> None:
        start = self.line.text().strip()
        if start and not templates.is_template(start):
            from pathlib import Path

            start = str(Path(start).expanduser())
        title = f"Choose {self.param.label.lower()}"
        if self.wants_folder:
            chosen = QFileDialog.getExistingDirectory(self, title, start)
        elif self.in_reaction:  # a reaction may write a file that does not exist yet
            chosen, _ = QFileDialog.getSaveFileName(
                self, title, start, options=QFileDialog.Option.DontConfirmOverwrite)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, title, start)
        if chosen:
            self.line.setText(chosen)
            self.changed()


class TextField(ParamField):
    """Several lines (multiline text, templates), a few lines high."""

    LINES = 3

    def build(self) -> QWidget:
        self.text = QPlainTextEdit()
        self.text.setTabChangesFocus(True)
        metrics = self.text.fontMetrics()
        margins = self.text.contentsMargins()
        frame = 2 * self.text.frameWidth() + 2 * int(self.text.document().documentMargin())
        self.text.setFixedHeight(metrics.lineSpacing() * self.LINES + frame
                                 + margins.top() + margins.bottom() + 4)
        example = _example_text(self.param.example)
        if example:
            self.text.setPlaceholderText(f"e.g. {example}")
        self.text.textChanged.connect(self._text_changed)
        self._setting = False
        return self.text

    def apply_default(self) -> None:
        """Empty means the default."""

    def _text_changed(self) -> None:
        if not self._setting:
            self.changed()

    def value(self) -> Any:
        text = self.text.toPlainText()
        return text if text.strip() else None

    def set_value(self, value: Any) -> None:
        self._setting = True
        try:
            self.text.setPlainText(_example_text(value))
        finally:
            self._setting = False

    def insert_text(self, text: str) -> None:
        self.text.insertPlainText(text)
        self.text.setFocus(Qt.FocusReason.OtherFocusReason)


class NumberField(ParamField):
    """A number or whole number within the declared bounds. Without a default the
    lowest position means "not set" (shown empty)."""

    def build(self) -> QWidget:
        param = self.param
        whole = param.type is ParamType.INTEGER
        limit = _INT_LIMIT if whole else _NUMBER_LIMIT
        low = param.minimum if param.minimum is not None else -limit
        high = param.maximum if param.maximum is not None else limit
        #: Without a default, one step below the minimum stands for "not set".
        self.unset_value: float | None = None if param.default is not None else low - 1
        bottom = self.unset_value if self.unset_value is not None else low
        if whole:
            self.int_box = QSpinBox()
            self.int_box.setRange(int(bottom), int(high))
            box: QSpinBox | QDoubleSpinBox = self.int_box
        else:
            self.float_box = QDoubleSpinBox()
            self.float_box.setDecimals(2)
            self.float_box.setRange(bottom, high)
            box = self.float_box
        if self.unset_value is not None:
            box.setSpecialValueText(" ")
        self.box = box
        self._set_number(bottom)
        box.setMinimumWidth(120)
        box.valueChanged.connect(self.changed)
        return box

    def _set_number(self, number: float) -> None:
        with QSignalBlocker(self.box):
            if self.param.type is ParamType.INTEGER:
                self.int_box.setValue(int(number))
            else:
                self.float_box.setValue(float(number))

    def value(self) -> Any:
        number = self.box.value()
        if self.unset_value is not None and number <= self.unset_value:
            return None
        return int(number) if self.param.type is ParamType.INTEGER else float(number)

    def set_value(self, value: Any) -> None:
        if value in (None, ""):
            self._set_number(self.box.minimum())
            return
        try:
            self._set_number(float(value))
        except (TypeError, ValueError):
            self._set_number(self.box.minimum())


class BoolField(ParamField):
    """A yes/no toggle, labelled by the checkbox itself."""

    def build(self) -> QWidget:
        self.box = QCheckBox(self.param.label)
        self.box.toggled.connect(self.changed)
        return self.box

    def value(self) -> Any:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.box):
            try:
                self.box.setChecked(bool(self.param.validate(value)))
            except ValidationError:
                self.box.setChecked(False)

    def is_blank(self) -> bool:
        return False


class ChoiceField(ParamField):
    """One of the declared choices, by its label."""

    def build(self) -> QWidget:
        self.combo = QComboBox()
        if not self.param.required and self.param.default is None:
            self.combo.addItem("—", None)
        for value, label in self.param.choices:
            self.combo.addItem(label, value)
        self.combo.currentIndexChanged.connect(self.changed)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        return self.combo

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        index = 0 if value in (None, "") else self.combo.findData(str(value))
        if index < 0:  # an unknown value (an old export) is added so it is not lost
            self.combo.addItem(str(value), str(value))
            index = self.combo.count() - 1
        with QSignalBlocker(self.combo):
            self.combo.setCurrentIndex(index)

    def is_blank(self) -> bool:
        return self.value() is None


class TimeField(ParamField):
    """A time of day, HH:mm on a 24-hour clock."""

    def build(self) -> QWidget:
        self.time = QTimeEdit()
        self.time.setDisplayFormat("HH:mm")
        self.time.setMinimumWidth(90)
        self.time.timeChanged.connect(self.changed)
        return self.time

    def value(self) -> Any:
        return self.time.time().toString("HH:mm")

    def set_value(self, value: Any) -> None:
        try:
            text = self.param.validate(value)
        except ValidationError:
            return
        parsed = QTime.fromString(str(text), "HH:mm")
        with QSignalBlocker(self.time):
            self.time.setTime(parsed)

    def is_blank(self) -> bool:
        return False


#: How a local date and time is written (the timer's ``at``): in the value, in Qt's terms.
MOMENT_FORMAT = "%Y-%m-%d %H:%M"
QT_MOMENT_FORMAT = "yyyy-MM-dd HH:mm"
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")


def takes_moment(param: Param) -> bool:
    """Whether a text parameter holds a local date and time: its declared example is
    written YYYY-MM-DD HH:MM (the timer's ``at``)."""
    return param.type is ParamType.TEXT and bool(_MOMENT.match(str(param.example or "")))


class MomentField(ParamField):
    """A local date and time (YYYY-MM-DD HH:MM) picked on a calendar; a moment already
    past is refused under the field. It starts at tomorrow 09:00."""

    def build(self) -> QWidget:
        self.picker = QDateTimeEdit(QDateTime(QDate.currentDate().addDays(1), QTime(9, 0)))
        self.picker.setCalendarPopup(True)
        self.picker.setDisplayFormat(QT_MOMENT_FORMAT)
        self.picker.setMinimumWidth(150)
        self.picker.setMaximumWidth(220)  # a moment is short: the zone reads beside it
        self.picker.dateTimeChanged.connect(self.changed)
        return self.picker

    def extras(self) -> list[QWidget]:
        self.zone_label = small_label(f"local time ({local_zone()})")
        self.zone_label.setSizePolicy(QSizePolicy.Policy.Expanding,
                                      QSizePolicy.Policy.Preferred)
        self.zone_label.setToolTip("This computer's time zone; the Time zone field below "
                                   "chooses another")
        return [self.zone_label]

    def value(self) -> Any:
        return self.picker.dateTime().toString(QT_MOMENT_FORMAT)

    def set_value(self, value: Any) -> None:
        parsed = QDateTime.fromString(str(value or "").strip(), QT_MOMENT_FORMAT)
        if parsed.isValid():
            with QSignalBlocker(self.picker):
                self.picker.setDateTime(parsed)

    def is_blank(self) -> bool:
        return False

    def problem(self) -> str | None:
        found = super().problem()
        if found is not None:
            return found
        if datetime.strptime(self.value(), MOMENT_FORMAT) <= datetime.now():
            return "That moment has passed: choose a later date and time."
        return None


_FIELD_TYPES: dict[ParamType, type[ParamField]] = {
    ParamType.TEXT: LineField,
    ParamType.URL: LineField,
    ParamType.EMAIL: LineField,
    ParamType.MULTILINE: TextField,
    ParamType.TEMPLATE: TextField,
    ParamType.NUMBER: NumberField,
    ParamType.INTEGER: NumberField,
    ParamType.BOOL: BoolField,
    ParamType.CHOICE: ChoiceField,
    ParamType.PATH: PathField,
    ParamType.DURATION: DurationField,
    ParamType.TIME: TimeField,
    ParamType.CRON: CronField,
    ParamType.SECRET: SecretField,
    ParamType.LIST: ListField,
}


def make_field(param: Param, *, in_reaction: bool = False,
               available: AvailableFn | None = None,
               parent: QWidget | None = None) -> ParamField:
    """The right input for ``param``'s type."""
    kind = MomentField if takes_moment(param) else _FIELD_TYPES[param.type]
    return kind(param, in_reaction=in_reaction, available=available, parent=parent)


class ParamForm(QWidget):
    """Inputs for a list of parameter declarations, in order.

    Args:
        params: the declarations (a trigger's, a reaction's, settings...).
        in_reaction: whether values belong to a reaction (string values may be templates).
        available: what templates may use here; called when needed, so it follows
            changes elsewhere in the editor.
        empty_text: shown when there is nothing to fill in.

    Signals:
        edited(): the user changed a value.
        problemShown(): a field's problem was shown or cleared.
    """

    edited = Signal()
    problemShown = Signal()

    def __init__(self, params: Sequence[Param], *, in_reaction: bool = False,
                 available: AvailableFn | None = None, empty_text: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.params = tuple(params)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        self.fields: dict[str, ParamField] = {}
        for param in self.params:
            widget = make_field(param, in_reaction=in_reaction, available=available)
            widget.edited.connect(self.edited)
            widget.problemShown.connect(self.problemShown)
            self.fields[param.name] = widget
            layout.addWidget(widget)
        if not self.params and empty_text:
            layout.addWidget(small_label(empty_text))

    def field(self, name: str) -> ParamField | None:
        return self.fields.get(name)

    def values(self) -> dict[str, Any]:
        """The values in the import format; fields left empty are left out."""
        out = {}
        for name, widget in self.fields.items():
            value = widget.value()
            if value is not None:
                out[name] = value
        return out

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Fill the fields; names the form does not have are ignored."""
        for name, value in values.items():
            widget = self.fields.get(name)
            if widget is not None:
                widget.set_value(value)
                widget.refresh_feedback()

    def show_error(self, param_name: str, message: str) -> bool:
        """Show ``message`` on the named field; False when there is no such field."""
        widget = self.fields.get(param_name)
        if widget is None:
            return False
        widget.show_error(message)
        return True

    def clear_errors(self) -> None:
        for widget in self.fields.values():
            widget.show_error(None)

    def problem_count(self) -> int:
        """How many of its fields show a problem."""
        return sum(widget.has_problem() for widget in self.fields.values())

    def recheck(self) -> None:
        """Check again what the user has typed (what templates may use has changed)."""
        for widget in self.fields.values():
            value = widget.value()
            if (widget.touched or widget.error.isVisible()
                    or (isinstance(value, str) and templates.is_template(value))):
                widget.check()

    def set_saved_secrets(self, names: set[str]) -> None:
        """Mark the secret fields whose value is already in the keyring."""
        for name, widget in self.fields.items():
            if isinstance(widget, SecretField):
                widget.set_saved(name in names)

    def first_blank(self) -> ParamField | None:
        """The first required field still empty (what a preset leaves to fill)."""
        for widget in self.fields.values():
            param = widget.param
            if param.required and param.default is None and widget.is_blank():
                return widget
        return None
