"""Forms built from parameter declarations: the right input per type, checked as you type."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt, QTime
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTimeEdit,
)
from pytestqt.qtbot import QtBot

from desktop.forms import (
    SAMPLE_DEPTH,
    SAMPLE_FIELDS,
    SAVED_SECRET_PLACEHOLDER,
    Available,
    ParamField,
    ParamForm,
    PathField,
    payload_choices,
    spoken_duration,
)
from engine.catalog.params import Param, ParamType
from engine.catalog.service import Field
from tests.desktop.conftest import until

EVERY_KIND = [
    Param("title", ParamType.TEXT, "Title", example="Hello"),
    Param("body", ParamType.MULTILINE, "Body", required=False),
    Param("template", ParamType.TEMPLATE, "Template", required=False),
    Param("ratio", ParamType.NUMBER, "Ratio", required=False, minimum=0, maximum=1),
    Param("port", ParamType.INTEGER, "Port", default=587, minimum=1, maximum=65535),
    Param("loud", ParamType.BOOL, "Loud", required=False, default=False),
    Param("level", ParamType.CHOICE, "Kind", required=False, default="info",
          choices=(("info", "Information"), ("error", "Error"))),
    Param("url", ParamType.URL, "Address", example="https://example.org/feed.xml"),
    Param("to", ParamType.EMAIL, "To", required=False, example="ana@example.org"),
    Param("folder", ParamType.PATH, "Folder", required=False),
    Param("every", ParamType.DURATION, "Every", required=False, minimum=1),
    Param("time", ParamType.TIME, "Time of day", required=False, default="07:30"),
    Param("cron", ParamType.CRON, "Cron", required=False),
    Param("password", ParamType.SECRET, "Password", required=False),
    Param("days", ParamType.LIST, "Days", required=False),
]

TIMER_FIELDS = (
    Field("scheduled_for", "When the run was due", "2024-05-06T09:00:00+02:00"),
    Field("fired_at", "When the run started", "2024-05-06T09:00:01+02:00"),
)


def reaction_form(qtbot: QtBot, params: list[Param]) -> ParamForm:
    form = ParamForm(params, in_reaction=True, available=lambda: Available.build(
        ("Trigger — Timer: Every so often", TIMER_FIELDS),
        [("Reaction 1 — Notifications", (Field("title", "Title shown", "Hi"),))]))
    qtbot.addWidget(form)
    form.show()
    return form


def field(form: ParamForm, name: str) -> ParamField:
    found = form.field(name)
    assert found is not None
    return found


def test_each_type_gets_its_own_input(qtbot: QtBot) -> None:
    form = ParamForm(EVERY_KIND)
    qtbot.addWidget(form)
    kinds = {name: type(f.editor) for name, f in form.fields.items()}
    assert kinds == {
        "title": QLineEdit, "body": QPlainTextEdit, "template": QPlainTextEdit,
        "ratio": QDoubleSpinBox, "port": QSpinBox, "loud": QCheckBox, "level": QComboBox,
        "url": QLineEdit, "to": QLineEdit, "folder": QLineEdit, "every": QLineEdit,
        "time": QTimeEdit, "cron": QLineEdit, "password": QLineEdit, "days": QLineEdit,
    }
    url = field(form, "url").editor
    assert isinstance(url, QLineEdit)
    assert url.placeholderText() == "https://example.org/feed.xml"
    password = field(form, "password").editor
    assert isinstance(password, QLineEdit)
    assert password.echoMode() == QLineEdit.EchoMode.Password
    assert "OS keyring" in field(form, "password").help.text()
    assert [b.text() for b in field(form, "folder").findChildren(QPushButton)] == ["Browse…"]
    level = field(form, "level").editor
    assert isinstance(level, QComboBox)
    assert [level.itemText(i) for i in range(level.count())] == ["Information", "Error"]
    port = field(form, "port").editor
    assert isinstance(port, QSpinBox)
    assert (port.minimum(), port.maximum(), port.value()) == (1, 65535, 587)
    # Trigger forms do not take templates: no "Insert field" anywhere.
    assert all(f.insert_button is None for f in form.fields.values())
    # Every input is named for screen readers and labelled for keyboard mnemonics.
    assert all(f.editor.accessibleName() == f.param.label for f in form.fields.values())


def test_values_round_trip_in_the_import_format(qtbot: QtBot) -> None:
    form = ParamForm(EVERY_KIND)
    qtbot.addWidget(form)
    # Defaults only; empty text fields are left out (the engine applies defaults).
    assert form.values() == {"port": 587, "loud": False, "level": "info", "time": "07:30"}
    values = {
        "title": "Hi", "body": "line 1\nline 2", "template": "{{ trigger.x }}",
        "ratio": 0.25, "port": 2525, "loud": True, "level": "error",
        "url": "https://example.org", "to": "a@example.org", "folder": "/tmp",
        "every": "1h30m", "time": "18:05", "cron": "0 9 * * 1-5", "password": "pw",
        "days": ["mon", "fri"],
    }
    form.set_values(values)
    assert form.values() == values
    time_edit = field(form, "time").editor
    assert isinstance(time_edit, QTimeEdit)
    assert time_edit.time() == QTime(18, 5)
    days = field(form, "days").editor
    assert isinstance(days, QLineEdit)
    assert days.text() == "mon, fri"
    form.set_values({"every": 90})  # seconds, as the engine stores them
    assert form.values()["every"] == "1m30s"


def test_the_wheel_changes_no_choice_number_or_time_it_passes_over(qtbot: QtBot) -> None:
    """A wheel turned over an input the user has not chosen goes to the page around it
    (tests/desktop/test_wheel.py scrolls a real one)."""
    form = ParamForm(EVERY_KIND)
    qtbot.addWidget(form)
    form.show()
    before = form.values()
    for name in ("ratio", "port", "level", "time"):
        editor = field(form, name).editor
        assert editor.focusPolicy() == Qt.FocusPolicy.StrongFocus  # nor does it focus them
        for notches in (1, -1):
            wheel = QWheelEvent(QPointF(editor.rect().center()), QPointF(), QPoint(),
                                QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                                False)
            QApplication.sendEvent(editor, wheel)
            assert not wheel.isAccepted()
    assert form.values() == before


async def test_a_bad_value_shows_its_problem_on_the_field_as_you_type(qtbot: QtBot) -> None:
    form = reaction_form(qtbot, [Param("url", ParamType.URL, "Address")])
    url = field(form, "url")
    assert not url.error.isVisible()
    qtbot.keyClicks(url.editor, "example.org/api")
    await until(url.error.isVisible)
    assert "must start with http:// or https://" in url.error.text()
    url.editor.clear()  # type: ignore[attr-defined]
    qtbot.keyClicks(url.editor, "https://example.org/api")
    await until(lambda: not url.error.isVisible())
    form.show_error("url", "refused by the server")
    assert url.error.isVisible() and url.error.text() == "refused by the server"
    assert not form.show_error("nope", "no such field")


async def test_templates_are_checked_against_the_fields_on_offer(qtbot: QtBot) -> None:
    form = reaction_form(qtbot, [Param("title", ParamType.TEXT, "Title")])
    title = field(form, "title")
    qtbot.keyClicks(title.editor, "Ran at {{ trigger.fired_att }}")
    await until(title.error.isVisible)
    assert "Did you mean trigger.fired_at?" in title.error.text()
    title.editor.clear()  # type: ignore[attr-defined]
    qtbot.keyClicks(title.editor, "{{ reactions[0].title }} at {{ trigger.fired_at }}")
    await until(lambda: not title.error.isVisible())
    title.editor.clear()  # type: ignore[attr-defined]
    qtbot.keyClicks(title.editor, "{{ reactions[1].title }}")
    await until(title.error.isVisible)
    assert "reactions[1] is not an earlier reaction" in title.error.text()


async def test_insert_field_puts_the_template_at_the_cursor(qtbot: QtBot) -> None:
    form = reaction_form(qtbot, [Param("title", ParamType.TEXT, "Title"),
                                 Param("message", ParamType.MULTILINE, "Message")])
    title = field(form, "title")
    assert title.insert_button is not None
    line = title.editor
    assert isinstance(line, QLineEdit)
    qtbot.keyClicks(line, "Ran at  today")
    line.setCursorPosition(len("Ran at "))
    menu = title.insert_button.menu()
    assert isinstance(menu, QMenu)
    title.fill_menu(menu)
    offered = [a.objectName() for a in menu.actions() if a.objectName()]
    assert offered == ["trigger.scheduled_for", "trigger.fired_at", "reactions[0].title"]
    sections = [a.text() for a in menu.actions() if a.isSeparator()]
    assert sections == ["Trigger — Timer: Every so often", "Reaction 1 — Notifications"]
    [fired_at] = [a for a in menu.actions() if a.objectName() == "trigger.fired_at"]
    assert "When the run started" in fired_at.text()
    fired_at.trigger()
    assert line.text() == "Ran at {{ trigger.fired_at }} today"
    await until(lambda: not title._check_timer.isActive())
    assert not title.error.isVisible()

    message = field(form, "message")
    assert message.insert_button is not None
    message.fill_menu(message.insert_button.menu())
    [scheduled] = [a for a in message.insert_button.menu().actions()
                   if a.objectName() == "trigger.scheduled_for"]
    scheduled.trigger()
    assert form.values()["message"] == "{{ trigger.scheduled_for }}"


def test_insert_field_without_a_trigger_says_so(qtbot: QtBot) -> None:
    form = ParamForm([Param("title", ParamType.TEXT, "Title")], in_reaction=True)
    qtbot.addWidget(form)
    title = field(form, "title")
    assert title.insert_button is not None
    menu = title.insert_button.menu()
    title.fill_menu(menu)
    [only] = menu.actions()
    assert not only.isEnabled() and "choose a trigger first" in only.text()


async def test_durations_and_cron_are_read_back_in_words(qtbot: QtBot) -> None:
    form = ParamForm([Param("every", ParamType.DURATION, "Every", minimum=1),
                      Param("cron", ParamType.CRON, "Cron")])
    qtbot.addWidget(form)
    form.show()
    every, cron = field(form, "every"), field(form, "cron")
    qtbot.keyClicks(every.editor, "1h30m")
    await until(every.feedback.isVisible)
    assert every.feedback.text() == "= 1 hour 30 minutes"
    qtbot.keyClicks(every.editor, "x")
    await until(every.error.isVisible)
    assert "not a duration" in every.error.text()
    assert not every.feedback.isVisible()

    qtbot.keyClicks(cron.editor, "0 9 * * 1-5")
    await until(cron.feedback.isVisible)
    assert cron.feedback.text() == "At 09:00, Monday through Friday"
    cron.editor.clear()  # type: ignore[attr-defined]
    qtbot.keyClicks(cron.editor, "0 25 * * *")
    await until(cron.error.isVisible)
    assert "not a valid cron expression" in cron.error.text()
    assert not cron.feedback.isVisible()
    # A value set from a saved area is described at once, without typing.
    form.set_values({"cron": "*/15 * * * *", "every": 90})
    assert cron.feedback.text() == "Every 15 minutes"
    assert every.feedback.text() == "= 1 minute 30 seconds"


def test_spoken_duration() -> None:
    assert spoken_duration(0) == "0 seconds"
    assert spoken_duration(1) == "1 second"
    assert spoken_duration(86400 + 7200 + 5) == "1 day 2 hours 5 seconds"


async def test_a_saved_secret_may_be_left_empty(qtbot: QtBot) -> None:
    form = ParamForm([Param("password", ParamType.SECRET, "Password")])
    qtbot.addWidget(form)
    form.show()
    password = field(form, "password")
    line = password.editor
    assert isinstance(line, QLineEdit)
    assert form.first_blank() is password
    form.set_saved_secrets({"password"})
    assert line.placeholderText() == SAVED_SECRET_PLACEHOLDER
    assert form.first_blank() is None
    assert password.check()
    assert form.values() == {}
    form.set_saved_secrets(set())
    assert not password.check()
    assert password.error.text() == "Password is required"


def test_browse_picks_a_folder_when_the_name_says_folder(
        qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked: list[str] = []

    def folder(*args: object) -> str:
        asked.append("folder")
        return str(tmp_path)

    def save_file(*args: object, **kwargs: object) -> tuple[str, str]:
        asked.append("file")
        return str(tmp_path / "notes.txt"), ""

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", folder)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_file)
    form = ParamForm([Param("folder", ParamType.PATH, "Folder"),
                      Param("path", ParamType.PATH, "File")], in_reaction=True)
    qtbot.addWidget(form)
    for name in ("folder", "path"):
        path_field = field(form, name)
        assert isinstance(path_field, PathField)
        assert path_field.browse.text() == "Browse…"
        qtbot.mouseClick(path_field.browse, Qt.MouseButton.LeftButton)
    assert asked == ["folder", "file"]
    assert form.values() == {"folder": str(tmp_path), "path": str(tmp_path / "notes.txt")}


def test_first_blank_is_the_first_required_field_left_empty(qtbot: QtBot) -> None:
    form = ParamForm([Param("a", ParamType.TEXT, "A", required=False),
                      Param("b", ParamType.TEXT, "B", default="x"),
                      Param("c", ParamType.URL, "C"),
                      Param("d", ParamType.TEXT, "D")])
    qtbot.addWidget(form)
    assert form.first_blank() is form.field("c")
    form.set_values({"c": "https://example.org"})
    assert form.first_blank() is form.field("d")


def test_an_empty_form_says_there_is_nothing_to_set(qtbot: QtBot) -> None:
    form = ParamForm([], empty_text="Nothing to set up for this trigger.")
    qtbot.addWidget(form)
    assert form.values() == {}
    assert [w.text() for w in form.findChildren(QLabel)] == [
        "Nothing to set up for this trigger."]


def test_a_sample_events_fields_are_offered_readably_and_within_bounds() -> None:
    deep: dict[str, object] = {"leaf": 1}
    for level in range(8):
        deep = {f"l{level}": deep}
    payload = {"body": {"wide": {f"k{n}": n for n in range(500)}, "_private": 1,
                        "odd key": "x", "list": [{"id": 1}, {"id": 2}], "empty": []},
               "deep": deep}
    choices = payload_choices(payload)
    assert len(choices) == SAMPLE_FIELDS
    by_expression = {c.expression: c for c in choices}
    assert by_expression["trigger.body.wide.k0"].label == "body › wide › k0"
    assert by_expression["trigger.body.wide.k0"].example == 0
    assert not any("_private" in e for e in by_expression)
    nested = payload_choices({"body": {"odd key": "x", "list": [{"id": 1}, {"id": 2}]},
                              "deep": deep})
    expressions = [c.expression for c in nested]
    assert expressions[:5] == ["trigger.body", 'trigger.body["odd key"]', "trigger.body.list",
                               "trigger.body.list[0]", "trigger.body.list[0].id"]
    deepest = max(expressions, key=len)
    assert deepest == "trigger.deep.l7.l6.l5.l4"  # five steps below trigger
    assert deepest.count(".") == SAMPLE_DEPTH
