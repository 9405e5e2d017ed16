"""The condition as rules: [field] [comparison] [value] rows, all or any of them, written
as the template the engine evaluates; the template itself for those who want it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.forms import FieldChoice, ParamField, ParamForm, error_label, small_label
from desktop.wheel import guard_inputs
from engine import filters
from engine.errors import ValidationError
from engine.filters import OPERATORS, Filter, Rule

FieldsFn = Callable[[], Sequence[FieldChoice]]
CASE_NOTE = "Text comparisons ignore upper and lower case."
WRITTEN_NOTE = ("This condition is written as a template: the builder cannot show it as "
                "rules.")
_PLACEHOLDERS = {"text": "text", "number": "a number", "matches": "a pattern, e.g. ^re(lease)?"}


class FieldCombo(QComboBox):
    """The fields a rule can use, read again whenever it opens or takes the focus (the
    trigger, or its sample event, may have changed meanwhile)."""

    def __init__(self, fields: FieldsFn, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._fields = fields
        self.setPlaceholderText("Choose a field")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(14)
        self.refresh()

    def refresh(self) -> None:
        current = self.expression()
        with QSignalBlocker(self):
            self.clear()
            for choice in self._fields():
                if self.findData(choice.expression) < 0:
                    self.addItem(choice.label, choice.expression)
                    self.setItemData(self.count() - 1, choice.example, Qt.ItemDataRole.UserRole + 1)
                    self.setItemData(self.count() - 1, choice.expression,
                                     Qt.ItemDataRole.ToolTipRole)
            self.set_expression(current)

    def expression(self) -> str:
        data = self.currentData()
        return data if isinstance(data, str) else ""

    def example(self) -> object:
        return self.currentData(Qt.ItemDataRole.UserRole + 1)

    def set_expression(self, expression: str) -> None:
        """Select ``expression``, adding it when the list does not have it (a field of
        a sample no longer at hand)."""
        if not expression:
            self.setCurrentIndex(-1)
            return
        index = self.findData(expression)
        if index < 0:
            self.addItem(expression, expression)
            index = self.count() - 1
        self.setCurrentIndex(index)

    def showPopup(self) -> None:
        self.refresh()
        super().showPopup()

    def focusInEvent(self, event: QFocusEvent) -> None:
        self.refresh()
        super().focusInEvent(event)


class RuleRow(QWidget):
    """One rule: a field, a comparison offered by the field's kind, and a value.

    Signals:
        changed(): the user changed the rule.
        removeRequested(): the user asked to remove it.
    """

    changed = Signal()
    removeRequested = Signal()

    def __init__(self, fields: FieldsFn, rule: Rule | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        row = QHBoxLayout()
        row.setSpacing(6)
        self.field_combo = FieldCombo(fields)
        self.op_combo = QComboBox()
        self.value_edit = QLineEdit()
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAutoDefault(False)
        row.addWidget(self.field_combo, 3)
        row.addWidget(self.op_combo, 2)
        row.addWidget(self.value_edit, 3)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        self.error = error_label()
        layout.addWidget(self.error)
        self._fill_ops(self._field_kind())
        if rule is not None:
            self.field_combo.set_expression(rule.field)
            self._fill_ops(self._field_kind())
            self._select_op(rule.op)
            self.value_edit.setText(rule.value)
        self._op_changed()
        self.field_combo.currentIndexChanged.connect(self._field_changed)
        self.op_combo.currentIndexChanged.connect(self._op_changed)
        self.op_combo.currentIndexChanged.connect(self.changed)
        self.value_edit.textEdited.connect(self.changed)
        self.remove_button.clicked.connect(self.removeRequested)
        guard_inputs(self)

    def _field_kind(self) -> filters.Kind:
        return filters.kind_of(self.field_combo.example())

    def _fill_ops(self, kind: filters.Kind) -> None:
        """Every comparison, the field's kind first (a number sent as text may still be
        compared as text, and the other way round)."""
        current = self.op()
        order = [kind, *(k for k in filters.KINDS if k != kind)]
        with QSignalBlocker(self.op_combo):
            self.op_combo.clear()
            for each in order:
                if self.op_combo.count():
                    self.op_combo.insertSeparator(self.op_combo.count())
                for op in OPERATORS:
                    if op.kind == each:
                        self.op_combo.addItem(op.label, op.id)
            self._select_op(current or next(op.id for op in OPERATORS if op.kind == kind))

    def _select_op(self, op_id: str) -> None:
        index = self.op_combo.findData(op_id)
        self.op_combo.setCurrentIndex(max(index, 0))

    def _field_changed(self) -> None:
        kind = self._field_kind()
        current = filters.BY_ID.get(self.op())
        self._fill_ops(kind)
        if current is not None and current.kind != kind:  # a number field: "<" first
            self._select_op(next(op.id for op in OPERATORS if op.kind == kind))
            self._op_changed()
        self.changed.emit()

    def _op_changed(self) -> None:
        op = filters.BY_ID.get(self.op())
        takes = op is not None and op.takes_value
        self.value_edit.setVisible(takes)
        if op is not None:
            key = "matches" if op.id == "matches" else op.kind
            self.value_edit.setPlaceholderText(_PLACEHOLDERS.get(key, ""))
        self.show_problem(None)

    def op(self) -> str:
        data = self.op_combo.currentData()
        return data if isinstance(data, str) else ""

    def rule(self) -> Rule:
        op = filters.BY_ID.get(self.op())
        value = self.value_edit.text() if op is not None and op.takes_value else ""
        return Rule(self.field_combo.expression(), self.op(), value)

    def set_position(self, index: int) -> None:
        number = index + 1
        self.field_combo.setAccessibleName(f"Rule {number} field")
        self.op_combo.setAccessibleName(f"Rule {number} comparison")
        self.value_edit.setAccessibleName(f"Rule {number} value")
        self.remove_button.setAccessibleName(f"Remove rule {number}")

    def show_problem(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))

    def controls(self) -> list[QWidget]:
        """Its inputs in keyboard order."""
        return [self.field_combo, self.op_combo, self.value_edit, self.remove_button]


class ConditionBuilder(QWidget):
    """An area's condition as rules by default; as its template on request, or when it
    was written by hand. The template field (``form``'s ``condition``) always holds the
    condition: the rules write it as they change, so saving, testing and the checks on
    the field work as they do for a typed template.

    Args:
        form: the form with the condition's template field (shown in template mode;
            its problems show under the rules otherwise).
        fields: the fields a rule can use (the trigger's, its sample event's).

    Signals:
        changed(): the condition changed.
    """

    changed = Signal()

    def __init__(self, form: ParamForm, fields: FieldsFn,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.form = form
        self._fields = fields
        self.rows: list[RuleRow] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)

        self.rules_box = QWidget()
        rules_layout = QVBoxLayout(self.rules_box)
        rules_layout.setContentsMargins(0, 0, 0, 0)
        rules_layout.setSpacing(6)
        match_row = QHBoxLayout()
        match_row.setSpacing(6)
        self.match_combo = QComboBox()
        self.match_combo.addItem("ALL", "all")
        self.match_combo.addItem("ANY", "any")
        self.match_combo.setAccessibleName("Whether all or any of the rules must be true")
        match_row.addWidget(QLabel("Only when"))
        match_row.addWidget(self.match_combo)
        match_row.addWidget(QLabel("of these are true:"))
        match_row.addStretch(1)
        rules_layout.addLayout(match_row)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setSpacing(6)
        rules_layout.addLayout(self.rows_layout)
        add_row = QHBoxLayout()
        self.add_button = QPushButton("+ Add rule")
        self.add_button.setAutoDefault(False)
        self.add_button.setAccessibleName("Add a rule")
        self.add_button.clicked.connect(self._add_clicked)
        add_row.addWidget(self.add_button)
        add_row.addWidget(small_label(CASE_NOTE), 1)
        rules_layout.addLayout(add_row)
        layout.addWidget(self.rules_box)

        self.written = QWidget()
        written_layout = QHBoxLayout(self.written)
        written_layout.setContentsMargins(0, 0, 0, 0)
        self.written_note = small_label(WRITTEN_NOTE)
        self.use_builder_button = QPushButton("Use the builder")
        self.use_builder_button.setAutoDefault(False)
        self.use_builder_button.setAccessibleName("Clear this condition and use the builder")
        self.use_builder_button.clicked.connect(self._use_builder_clicked)
        written_layout.addWidget(self.written_note, 1)
        written_layout.addWidget(self.use_builder_button)
        self.written.hide()
        layout.addWidget(self.written)

        layout.addWidget(form)
        self.template_switch = QCheckBox("Edit as template")
        self.template_switch.setToolTip("Show the condition as the template the rules "
                                        "write, to change it by hand")
        self.template_switch.setAccessibleName("Edit the condition as a template")
        self.template_switch.toggled.connect(self._switch_toggled)
        layout.addWidget(self.template_switch, 0, Qt.AlignmentFlag.AlignLeft)
        self.match_combo.currentIndexChanged.connect(self._write)
        guard_inputs(self)
        self._show_template(False)

    # ---------------------------------------------------------------- state

    @property
    def field(self) -> ParamField:
        field = self.form.field("condition")
        assert field is not None
        return field

    def in_builder(self) -> bool:
        return not self.template_switch.isChecked()

    def rules(self) -> Filter:
        """The rules as the rows hold them (finished or not)."""
        rows = [row.rule() for row in self.rows]
        return Filter(tuple(r for r in rows if r != Rule("", r.op, "")),
                      any=self.match_combo.currentData() == "any")

    def load(self, condition: str | None) -> None:
        """Show ``condition``: as rules when it reads as rules, else as its template
        (with a note that says so)."""
        parsed = filters.parse(condition)
        if parsed is None:
            self._set_switch(True)
            self._show_template(True, written=True)
            return
        self._set_rows(parsed)
        self._set_switch(False)
        self._show_template(False)

    def check(self) -> None:
        """Raise a ValidationError (``condition``) for a rule not finished, rather than
        save the condition without it; mark it on its row."""
        if not self.in_builder():
            return
        unfinished = 0
        for row in self.rows:
            rule = row.rule()
            if rule == Rule("", rule.op, ""):
                continue  # an untouched blank row is no rule
            wrong = filters.problem(rule)
            row.show_problem(wrong)
            unfinished += wrong is not None
        if unfinished:
            raise ValidationError("condition", "finish the rule marked above" if unfinished == 1
                                  else "finish the rules marked above")

    def focus(self) -> None:
        """Put the keyboard on the first rule (a blank one when there is none)."""
        if not self.in_builder():
            self.field.focus()
            return
        if not self.rows:
            self.add_rule()
        self.rows[0].field_combo.setFocus(Qt.FocusReason.OtherFocusReason)

    def add_rule(self, rule: Rule | None = None) -> RuleRow:
        row = RuleRow(self._fields, rule)
        row.changed.connect(lambda r=row: self._row_changed(r))
        row.removeRequested.connect(lambda r=row: self.remove_rule(r))
        self.rows.append(row)
        self.rows_layout.addWidget(row)
        row.show()  # now, not on the layout's next turn: it may take the focus at once
        self._renumber()
        return row

    def remove_rule(self, row: RuleRow) -> None:
        index = self.rows.index(row)
        self._drop(row)
        self._renumber()
        self._write()
        if self.rows:
            self.rows[min(index, len(self.rows) - 1)].field_combo.setFocus()
        else:
            self.add_button.setFocus()

    # ---------------------------------------------------------------- inside

    def _drop(self, row: RuleRow) -> None:
        self.rows.remove(row)
        self.rows_layout.removeWidget(row)
        row.hide()
        row.deleteLater()

    def _set_rows(self, parsed: Filter) -> None:
        for row in list(self.rows):
            self._drop(row)
        with QSignalBlocker(self.match_combo):
            self.match_combo.setCurrentIndex(1 if parsed.any else 0)
        for rule in parsed.rules:
            self.add_rule(rule)

    def _set_switch(self, on: bool) -> None:
        with QSignalBlocker(self.template_switch):
            self.template_switch.setChecked(on)

    def _show_template(self, on: bool, *, written: bool = False) -> None:
        self.rules_box.setVisible(not on)
        self.written.setVisible(on and written)
        field = self.field
        # in builder mode only the field's problems stay in view, under the rules
        for part in (field.label, field.editor, field.insert_button, field.help):
            if part is not None:
                part.setVisible(on and (part is not field.help or bool(field.help.text())))

    def _renumber(self) -> None:
        for index, row in enumerate(self.rows):
            row.set_position(index)
        chain: list[QWidget] = [self.match_combo]
        for row in self.rows:
            chain += row.controls()
        chain += [self.add_button, self.template_switch]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

    def _row_changed(self, row: RuleRow) -> None:
        rule = row.rule()
        wrong = filters.problem(rule) if rule.field else None
        # say what is wrong with a value as it is typed; a blank one only on Save
        row.show_problem(wrong if wrong and rule.value else None)
        self._write()

    def _write(self) -> None:
        """Write the rules into the template field (while they can be written)."""
        if not self.in_builder():
            return
        try:
            text = filters.to_condition(self.rules())
        except ValueError:
            return  # a rule not finished: Save says so (check)
        if text != (self.field.value() or ""):
            self.field.set_value(text)
            self.field.check()
            self.changed.emit()

    def _switch_toggled(self, on: bool) -> None:
        if on:
            self._write()
            self._show_template(True)
            self.field.focus()
            return
        parsed = filters.parse(self.field.value())
        if parsed is None:  # changed by hand beyond what rules can say
            self._set_switch(True)
            self._show_template(True, written=True)
            return
        self._set_rows(parsed)
        self._show_template(False)
        self.focus()

    def _add_clicked(self) -> None:
        row = self.add_rule()
        row.field_combo.setFocus(Qt.FocusReason.OtherFocusReason)

    def _use_builder_clicked(self) -> None:
        if self.field.value():
            answer = QMessageBox.question(
                self, "Use the builder?",
                "This clears the condition written as a template, to build it again "
                "with rules.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.field.set_value("")
        self.field.show_error(None)
        self.load("")
        self.changed.emit()
        self.focus()
