"""The condition builder in the editor, driven as a user would: rules, all or any, the
template behind them, and a real run that the saved condition filters."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QPlainTextEdit, QWidget
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.filter_builder import CASE_NOTE, WRITTEN_NOTE, RuleRow
from engine.areas import AreaSpec
from engine.filters import Filter, Rule
from tests.desktop.conftest import until
from tests.desktop.test_editor import WEBHOOK_TITLE, choose, editor_for, expect

FROST = Filter((Rule("trigger.body.title", "contains", "frost"),
                Rule("trigger.body.temperature", "lt", "2")))


async def send(bridge: EngineBridge, area_id: str, body: dict[str, Any]) -> str:
    """An event with ``body`` as a webhook's request body, run by the engine behind the
    bridge; the status of its run."""
    finished = expect(bridge.runFinished)
    await bridge.call(bridge.engine.run_now(area_id, {"body": body, "headers": {},
                                                      "query": {}, "method": "POST"}))
    (run,) = await finished
    assert run["area_id"] == area_id
    return str(run["status"])


def template_text(editor: AreaEditor) -> QPlainTextEdit:
    text = editor.condition_builder.field.editor
    assert isinstance(text, QPlainTextEdit)
    return text


async def sample_area(bridge: EngineBridge) -> str:
    """A webhook area (saved without a condition)."""
    area = await bridge.save_area(AreaSpec.from_dict(WEBHOOK_TITLE))
    return area.id


SAMPLE = {"title": "Frost tonight", "temperature": "1.5"}


async def test_build_save_and_the_condition_filters_real_runs(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area_id = await sample_area(bridge)
    editor = editor_for(qtbot, bridge, area_id=area_id)
    builder = editor.condition_builder
    qtbot.keyClick(editor.condition_check, Qt.Key.Key_Space)
    assert builder.isVisible() and builder.in_builder()
    assert not builder.field.editor.isVisible()  # the rules, not the template
    assert CASE_NOTE in [label.text() for label in builder.findChildren(type(builder.written_note))]
    assert builder.match_combo.currentText() == "ALL"
    first = builder.rows[0]
    await until(first.field_combo.hasFocus)
    # the fields of a sample body, as "Insert field" offers them, once the list opens
    assert first.field_combo.findData("trigger.body.temperature") < 0
    editor.pasted_body = SAMPLE
    await editor.load_sample()
    first.field_combo.showPopup()
    first.field_combo.hidePopup()
    assert first.field_combo.itemText(first.field_combo.findData(
        "trigger.body.temperature")) == "body › temperature"
    choose(first.field_combo, "trigger.body.title")
    assert first.op_combo.currentText() == "contains"  # text: text comparisons first
    qtbot.keyClicks(first.value_edit, "Frost")
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)
    second = builder.rows[1]
    choose(second.field_combo, "trigger.body.temperature")
    assert second.op_combo.currentText() == "="  # "1.5" in the sample: a number
    choose(second.op_combo, "lt")
    qtbot.keyClicks(second.value_edit, "2")
    assert builder.rules() == Filter((Rule("trigger.body.title", "contains", "Frost"),
                                      Rule("trigger.body.temperature", "lt", "2")))

    saved = expect(editor.saved)
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    await saved
    assert bridge.area(area_id).spec.condition is not None
    assert await send(bridge, area_id, {"title": "FROST warning", "temperature": 1}
                      ) == "succeeded"
    assert await send(bridge, area_id, {"title": "Frost warning", "temperature": "5"}
                      ) == "skipped"
    assert await send(bridge, area_id, {"title": "Mild", "temperature": 0}) == "skipped"
    assert await send(bridge, area_id, {"title": "Frost, no reading"}) == "skipped"

    again = editor_for(qtbot, bridge, area_id=area_id)
    shown = again.condition_builder
    assert again.condition_check.isChecked() and shown.in_builder()
    assert shown.rules() == Filter((Rule("trigger.body.title", "contains", "Frost"),
                                    Rule("trigger.body.temperature", "lt", "2")))
    assert [(r.field_combo.currentData(), r.op_combo.currentText(), r.value_edit.text())
            for r in shown.rows] == [("trigger.body.title", "contains", "Frost"),
                                     ("trigger.body.temperature", "<", "2")]
    assert not again.has_changes()


async def test_any_runs_when_one_rule_holds(qtbot: QtBot, bridge: EngineBridge) -> None:
    area_id = await sample_area(bridge)
    editor = editor_for(qtbot, bridge, area_id=area_id)
    editor.condition_check.setChecked(True)
    builder = editor.condition_builder
    builder.load("")
    for rule in FROST.rules:
        builder.add_rule(rule)
    choose(builder.match_combo, "any")
    assert await editor.save() == area_id
    assert await send(bridge, area_id, {"title": "Mild", "temperature": 0}) == "succeeded"
    assert await send(bridge, area_id, {"title": "Mild", "temperature": 9}) == "skipped"


async def test_the_rule_rows_are_reachable_with_tab_and_named(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=WEBHOOK_TITLE)
    qtbot.keyClick(editor.condition_check, Qt.Key.Key_Space)
    builder = editor.condition_builder
    qtbot.mouseClick(builder.add_button, Qt.MouseButton.LeftButton)  # added after the rest
    expected: list[QWidget] = [builder.match_combo]
    for row in builder.rows:
        choose(row.op_combo, "lt")  # a comparison with a value: its box is in the row
        expected += row.controls()
    expected += [builder.add_button, builder.template_switch]
    builder.match_combo.setFocus()
    await until(builder.match_combo.hasFocus)
    reached: list[QWidget | None] = [builder.match_combo]
    for _ in expected[1:]:
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
    assert reached == expected
    names = [w.accessibleName() for w in expected]
    assert names[1:9] == ["Rule 1 field", "Rule 1 comparison", "Rule 1 value",
                          "Remove rule 1", "Rule 2 field", "Rule 2 comparison",
                          "Rule 2 value", "Remove rule 2"]
    assert all(names)


async def test_a_rule_not_finished_is_refused_on_save(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=WEBHOOK_TITLE)
    editor.condition_check.setChecked(True)
    row = editor.condition_builder.rows[0]
    assert isinstance(row, RuleRow)
    row.field_combo.set_expression("trigger.body")
    choose(row.op_combo, "gt")
    qtbot.keyClicks(row.value_edit, "two")
    assert row.error.isVisible() and "enter a number" in row.error.text()
    assert await editor.save() is None
    assert editor.banner.text().startswith("Not saved: 1 problem")
    assert editor.condition_builder.field.error.isVisible()  # under the rules
    assert editor.condition_builder.field.error.text() == "finish the rule marked above"
    assert bridge.engine.areas() == []


async def test_edit_as_template_and_back(qtbot: QtBot, bridge: EngineBridge) -> None:
    spec = dict(WEBHOOK_TITLE, condition="")
    editor = editor_for(qtbot, bridge, spec_dict=spec)
    editor.condition_check.setChecked(True)
    builder = editor.condition_builder
    row = builder.rows[0]
    row.field_combo.set_expression("trigger.body")
    qtbot.keyClicks(row.value_edit, "frost")
    qtbot.mouseClick(builder.template_switch, Qt.MouseButton.LeftButton)
    text = template_text(editor)
    assert text.isVisible() and not builder.rules_box.isVisible()
    assert "'frost'" in text.toPlainText()
    text.setPlainText(text.toPlainText().replace("'frost'", "'snow'"))
    qtbot.mouseClick(builder.template_switch, Qt.MouseButton.LeftButton)
    assert builder.in_builder() and builder.rules_box.isVisible()
    assert builder.rows[0].value_edit.text() == "snow"
    # changed beyond rules: it stays a template and says so
    qtbot.mouseClick(builder.template_switch, Qt.MouseButton.LeftButton)
    text.setPlainText("{{ trigger.body | length > 3 }}")
    qtbot.mouseClick(builder.template_switch, Qt.MouseButton.LeftButton)
    assert not builder.in_builder() and builder.written_note.isVisible()
    assert editor.spec_dict()["condition"] == "{{ trigger.body | length > 3 }}"


async def test_a_hand_written_condition_shows_as_a_template(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    written = "{{ 'release' in trigger.body.title | lower }}"
    editor = editor_for(qtbot, bridge, spec_dict=dict(WEBHOOK_TITLE, condition=written))
    builder = editor.condition_builder
    assert builder.written_note.isVisible() and builder.written_note.text() == WRITTEN_NOTE
    assert template_text(editor).isVisible()
    assert template_text(editor).toPlainText() == written
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent: object, title: str, text: str, *args: object) -> object:
        asked.append(title)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    qtbot.mouseClick(builder.use_builder_button, Qt.MouseButton.LeftButton)
    assert asked == ["Use the builder?"]
    assert template_text(editor).toPlainText() == written  # kept: the answer was no
    qtbot.mouseClick(builder.use_builder_button, Qt.MouseButton.LeftButton)
    assert builder.in_builder() and builder.rules_box.isVisible()
    assert not builder.written_note.isVisible()
    assert template_text(editor).toPlainText() == ""
    assert [r.rule() for r in builder.rows] == [Rule("", "contains", "")]
