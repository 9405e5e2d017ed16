"""The area editor, driven as a user would: pick, type, test, save."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from PySide6.QtCore import Qt, SignalInstance
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import (
    AreaEditor,
    ReactionCard,
    SampleDialog,
    format_test_result,
    interval_param,
)
from desktop.forms import SAVED_SECRET_PLACEHOLDER, ParamField, ParamForm
from engine.areas import AreaSpec
from engine.auth.session import Account
from tests.desktop.conftest import signal_once, until

TIMER_NOTIFY = {
    "name": "Stretch",
    "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "Stretch! ({{ trigger.missed }} missed)"}}],
}


WEBHOOK_TITLE = {
    "name": "Door",
    "trigger": {"service": "webhook", "trigger": "incoming"},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "{{ trigger.body.title }}"}}],
}
DELIVERY = {"title": "Door opened", "user": {"name": "Ada"}, "items": [{"id": 7}, {"id": 8}]}


def expect(signal: SignalInstance) -> asyncio.Future[tuple[Any, ...]]:
    """Start listening now for the next emission (before doing what causes it)."""
    return asyncio.ensure_future(signal_once(signal))


def editor_for(qtbot: QtBot, bridge: EngineBridge, **kwargs: Any) -> AreaEditor:
    editor = AreaEditor(bridge, **kwargs)
    qtbot.addWidget(editor)
    editor.show()
    return editor


def field(form: ParamForm, name: str) -> ParamField:
    found = form.field(name)
    assert found is not None, f"no field {name!r}"
    return found


def line(form: ParamForm, name: str) -> QLineEdit:
    editor = field(form, name).editor
    assert isinstance(editor, QLineEdit)
    return editor


def choose(combo: QComboBox, data: str) -> None:
    index = combo.findData(data)
    assert index >= 0, f"{data!r} not offered"
    combo.setCurrentIndex(index)


def retype(qtbot: QtBot, widget: QLineEdit, text: str) -> None:
    widget.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Backspace)
    qtbot.keyClicks(widget, text)


async def test_create_an_area_from_scratch_fix_it_and_see_it_fire(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge)
    assert editor.windowTitle() == "New automation"
    # A new area starts as timer -> notification: the commonest first automation.
    assert editor.trigger_picker.service_id() == "timer"
    assert [c.picker.service_id() for c in editor.cards] == ["notify"]
    qtbot.keyClicks(line(editor.name_form, "name"), "Every second")
    qtbot.keyClicks(line(editor.trigger_form, "interval"), "1s")
    title = line(editor.cards[0].form, "title")
    qtbot.keyClicks(title, "Tick {{ trigger.fired_att }}")
    title_field = field(editor.cards[0].form, "title")
    # The problem shows on the field while typing...
    await until(title_field.error.isVisible)
    assert "Did you mean trigger.fired_at?" in title_field.error.text()
    # ...and Save refuses it there too, keeping the dialog open.
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    await until(editor.banner.isVisible)
    assert editor.banner.text().startswith("Not saved")
    assert title_field.error.isVisible()
    assert "fired_att" in title_field.error.text()
    assert editor.isVisible() and editor.result() == 0
    assert bridge.engine.areas() == []

    retype(qtbot, title, "Tick at {{ trigger.fired_at }}")
    await until(lambda: not title_field.error.isVisible())
    saved = expect(editor.saved)
    finished = expect(bridge.runFinished)
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    (area_id,) = await saved
    assert not editor.isVisible()
    area = bridge.area(area_id)
    assert area.name == "Every second"
    assert area.spec.trigger.params["interval"] == 1.0
    assert area.spec.reactions[0].params["title"] == "Tick at {{ trigger.fired_at }}"
    (run,) = await finished
    assert run["area_id"] == area_id and run["status"] == "succeeded"


async def test_a_bad_url_is_refused_on_its_field(qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    card = editor.cards[0]
    choose(card.picker.service_combo, "http")
    assert card.picker.action_id() == "request"
    assert card.picker.description.text().startswith("Calls a web address")
    url = line(card.form, "url")
    qtbot.keyClicks(url, "ftp://example.org/upload")
    await until(field(card.form, "url").error.isVisible)
    # Save goes to the engine, whose ValidationError lands on the same field.
    saved = await editor.save()
    assert saved is None
    url_field = field(card.form, "url")
    assert url_field.error.isVisible()
    assert "must start with http:// or https://" in url_field.error.text()
    assert editor.isVisible()
    assert bridge.engine.areas() == []


async def test_problems_with_no_field_of_their_own_go_where_they_belong(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict={**TIMER_NOTIFY, "name": ""})
    assert await editor.save() is None
    name = field(editor.name_form, "name")
    assert name.error.text() == "give the area a name"
    editor.condition_check.setChecked(True)
    qtbot.keyClicks(line(editor.name_form, "name"), "Named")
    condition = field(editor.condition_form, "condition")
    qtbot.keyClicks(condition.editor, "{{ trigger.nope }}")
    assert await editor.save() is None
    assert "this event has no value 'nope'" in condition.error.text()
    assert not name.error.isVisible()


async def test_test_shows_what_each_reaction_would_send(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    assert not editor.result_box.isVisible()
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    await until(editor.result_box.isVisible)
    text = editor.result_text.toPlainText()
    assert "1. Notifications: Show a notification would send:" in text
    assert "title: Stretch! (0 missed)" in text
    assert "Nothing was sent" in editor.result_title.text()
    assert bridge.engine.areas() == []  # a test saves nothing


async def test_send_for_real_asks_first_then_runs_the_reactions(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent: object, title: str, text: str, *args: object) -> object:
        asked.append(title)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    qtbot.mouseClick(editor.live_button, Qt.MouseButton.LeftButton)
    assert asked == ["Send for real?"] and not editor.result_box.isVisible()
    notified = expect(bridge.notification)
    qtbot.mouseClick(editor.live_button, Qt.MouseButton.LeftButton)
    assert await notified == ("Stretch! (0 missed)", "", "info")
    await until(editor.result_box.isVisible)
    assert "1. Notifications: Show a notification: done" in editor.result_text.toPlainText()


async def test_the_field_picker_offers_the_trigger_and_earlier_reactions(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    assert len(editor.cards) == 2
    second = editor.cards[1]
    message = field(second.form, "message")
    assert message.insert_button is not None
    menu = message.insert_button.menu()
    message.fill_menu(menu)
    offered = [a.objectName() for a in menu.actions() if a.objectName()]
    assert "trigger.fired_at" in offered
    assert "reactions[0].title" in offered  # the first notification's output
    first = field(editor.cards[0].form, "message")
    assert first.insert_button is not None
    first.fill_menu(first.insert_button.menu())
    assert not [a for a in first.insert_button.menu().actions()
                if a.objectName().startswith("reactions")]
    [fired_at] = [a for a in menu.actions() if a.objectName() == "trigger.fired_at"]
    fired_at.trigger()
    text = message.editor
    assert isinstance(text, QPlainTextEdit)
    assert text.toPlainText() == "{{ trigger.fired_at }}"
    qtbot.keyClicks(line(second.form, "title"), "Second")
    assert (await editor.run_test()) is not None
    assert "message: 20" in editor.result_text.toPlainText()  # the rendered time


async def test_reactions_move_and_go_keeping_their_identity(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area = await bridge.save_area(AreaSpec.from_dict({
        **TIMER_NOTIFY, "reactions": [
            {"service": "notify", "reaction": "notify", "params": {"title": "one"}},
            {"service": "notify", "reaction": "notify", "params": {"title": "two"}}]}))
    uids = [r.uid for r in area.spec.reactions]
    editor = editor_for(qtbot, bridge, area_id=area.id)
    assert editor.windowTitle() == "Edit “Stretch”"
    first, second = editor.cards
    assert first.heading.text() == "Reaction 1"
    assert not first.up_button.isEnabled() and first.down_button.isEnabled()
    qtbot.mouseClick(second.up_button, Qt.MouseButton.LeftButton)
    assert editor.cards == [second, first]
    assert second.heading.text() == "Reaction 1"
    # A reference to an earlier reaction that is now later is caught on the field.
    qtbot.keyClicks(line(second.form, "title"), " {{ reactions[0].title }}")
    await until(field(second.form, "title").error.isVisible)
    retype(qtbot, line(second.form, "title"), "two")
    qtbot.mouseClick(first.remove_button, Qt.MouseButton.LeftButton)
    assert editor.cards == [second]
    assert not second.remove_button.isVisible()  # the last one cannot go
    saved = expect(editor.saved)
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert await saved == (area.id,)
    spec = bridge.area(area.id).spec
    assert [(r.uid, r.params["title"]) for r in spec.reactions] == [(uids[1], "two")]


async def test_timed_and_polling_triggers_have_their_own_options(
        qtbot: QtBot, bridge: EngineBridge, tmp_path: Path) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    catch_up = field(editor.catch_up_form, "catch_up").editor
    assert isinstance(catch_up, QComboBox) and catch_up.isVisible()
    assert not editor.interval_form.isVisible()
    choose(catch_up, "once")
    assert editor.spec_dict()["catch_up"] == "once"

    choose(editor.trigger_picker.service_combo, "files")
    assert editor.trigger_picker.action_id() == "file_created"
    # The title used a field the timer has and a new file has not: it says so at once.
    title = field(editor.cards[0].form, "title")
    assert "this event has no value 'missed'" in title.error.text()
    retype(qtbot, line(editor.cards[0].form, "title"), "New: {{ trigger.name }}")
    assert not editor.catch_up_form.isVisible() and editor.interval_form.isVisible()
    qtbot.keyClicks(line(editor.trigger_form, "folder"), str(tmp_path))
    interval = line(editor.interval_form, "interval")
    assert "Empty: every 10s" in field(editor.interval_form, "interval").help.text()
    qtbot.keyClicks(interval, "1s")
    assert await editor.save() is None  # under the trigger's minimum
    assert "poll at most every 2 seconds" in field(editor.interval_form,
                                                   "interval").error.text()
    retype(qtbot, interval, "30s")
    saved = expect(editor.saved)
    assert await editor.save() is not None
    (area_id,) = await saved
    area = bridge.area(area_id)
    assert (area.spec.interval, area.spec.catch_up) == (30.0, "skip")
    assert area.spec.trigger.params["folder"] == str(tmp_path)


async def test_a_webhook_area_shows_its_address_after_save(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict={
        "name": "Hook", "trigger": {"service": "webhook", "trigger": "incoming"},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "{{ trigger.content_type }}"}}]})
    assert editor.webhook_row.isVisible()
    assert editor.webhook_url.text() == "" and not editor.copy_button.isEnabled()
    qtbot.keyClicks(line(editor.trigger_form, "secret"), "s3cret")
    area_id = await editor.save()
    assert area_id is not None
    assert editor.isVisible()  # stays open to show the address
    url = editor.webhook_url.text()
    assert url == await bridge.webhook_url(area_id) and url.startswith("http://127.0.0.1:")
    assert editor.banner.text().startswith("Saved.")
    assert editor.cancel_button.text() == "Close"
    qtbot.mouseClick(editor.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == url

    # Opened again: the address is there, the secret is saved and may be left empty.
    again = editor_for(qtbot, bridge, area_id=area_id)
    secret = line(again.trigger_form, "secret")
    await until(lambda: again.webhook_url.text() == url)
    assert secret.placeholderText() == SAVED_SECRET_PLACEHOLDER
    assert secret.text() == ""
    assert await again.save() == area_id
    assert await bridge.saved_secrets(area_id) == {("trigger", "secret")}


async def test_a_preset_focuses_its_first_blank(qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict={
        "name": "Watch a page",
        "trigger": {"service": "timer", "trigger": "daily_at", "params": {"time": "08:00"}},
        "reactions": [{"service": "http", "reaction": "request",
                       "params": {"method": "GET", "url": ""}}]})
    url = field(editor.cards[0].form, "url")
    assert editor.first_blank() is url
    await until(lambda: editor.focusWidget() is url.editor)
    assert editor.cards[0].form.values()["method"] == "GET"


async def test_use_this_reaction_starts_from_a_partial_spec(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict={
        "name": "", "reactions": [{"service": "files", "reaction": "append_text",
                                   "params": {}}]})
    assert editor.trigger_picker.service_id() == "timer"
    [card] = editor.cards
    assert isinstance(card, ReactionCard)
    assert (card.picker.service_id(), card.picker.action_id()) == ("files", "append_text")
    assert editor.first_blank() is field(editor.name_form, "name")


def test_format_test_result_says_when_the_values_are_examples() -> None:
    text = format_test_result({
        "trigger": {"title": "hello"},
        "note": "RSS: “New item” found nothing right now: the trigger's example values "
                "stand in for an item",
        "reactions": [{"would_send": {"title": "hello"}}]}, ["Notify"], live=False)
    assert text.splitlines()[:3] == [
        "RSS: “New item” found nothing right now: the trigger's example values stand in "
        "for an item.",
        "Example event (not from the trigger):",
        "    title: hello"]


def test_format_test_result_for_a_live_run() -> None:
    text = format_test_result({
        "trigger": {"n": 1},
        "condition": True,
        "reactions": [
            {"status": "succeeded", "params": {"body": "a\nb"}, "output": {"status": 200}},
            {"status": "failed", "error": "boom", "params": {}},
            {"status": "pending"}]}, ["HTTP: Send a request", "Files: Write", "Notify"],
        live=True)
    assert text.splitlines() == [
        "Sample event from the trigger:",
        "    n: 1",
        "",
        "Condition: true — the reactions run.",
        "",
        "1. HTTP: Send a request: done",
        "    sent:",
        "        body:",
        "            a",
        "            b",
        "    returned:",
        "        status: 200",
        "",
        "2. Files: Write: FAILED",
        "    error: boom",
        "",
        "3. Notify: not run (an earlier reaction failed)",
    ]


async def test_a_service_that_acts_as_an_account_asks_which_one(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    picker = editor.cards[0].picker
    assert not picker.account_row.isVisible()
    choose(picker.service_combo, "github")
    await until(lambda: picker.account_note.text() != "")
    assert picker.account_row.isVisible() and not picker.account_combo.isEnabled()
    assert picker.account_note.text().startswith("No GitHub account is connected yet")
    assert "account" not in editor.spec_dict()["reactions"][0]

    await bridge.call(bridge.engine.accounts.store.save(
        Account("acc-1", "github", "api_key", "octocat", [])))
    choose(picker.service_combo, "notify")
    assert not picker.account_row.isVisible()
    choose(picker.service_combo, "github")
    await until(lambda: picker.account_combo.count() == 1)
    assert picker.account_combo.currentText() == "octocat"
    assert editor.spec_dict()["reactions"][0]["account"] == "acc-1"
    # An import names its account by name; the editor finds it.
    again = editor_for(qtbot, bridge, spec_dict={**TIMER_NOTIFY, "reactions": [
        {"service": "github", "reaction": editor.cards[0].picker.action_id(),
         "account": "OctoCat", "params": {}}]})
    assert again.spec_dict()["reactions"][0]["account"] == "OctoCat"  # not loaded yet
    await until(lambda: again.cards[0].picker.account_combo.count() == 1)
    assert again.spec_dict()["reactions"][0]["account"] == "acc-1"


W = TypeVar("W", bound=QWidget)


async def shown(editor: AreaEditor, kind: type[W]) -> W:
    """The editor's dialog of ``kind``, once it shows."""
    found: list[W] = []

    def showing() -> bool:
        found[:] = [each for each in editor.findChildren(kind) if each.isVisible()]
        return bool(found)

    await until(showing)
    return found[0]


async def asked(editor: AreaEditor) -> QMessageBox:
    """The question the editor asks, once it shows."""
    return await shown(editor, QMessageBox)


def answer(box: QMessageBox, label: str) -> None:
    [button] = [b for b in box.buttons() if b.text() == label]
    button.click()


async def test_closing_with_unsaved_changes_asks_first(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area = await bridge.save_area(AreaSpec.from_dict(TIMER_NOTIFY))
    editor = editor_for(qtbot, bridge, area_id=area.id)
    title = line(editor.cards[0].form, "title")
    qtbot.keyClicks(title, " now")
    qtbot.keyClick(title, Qt.Key.Key_Escape)
    box = await asked(editor)
    assert box.windowTitle() == "Discard changes?"
    assert box.text() == "Your changes to “Stretch” are not saved."
    assert sorted(b.text() for b in box.buttons()) == ["Discard", "Keep editing", "Save"]
    assert box.defaultButton().text() == "Keep editing"
    qtbot.keyClick(box, Qt.Key.Key_Escape)  # Esc again: back to editing, nothing lost
    await until(lambda: not box.isVisible())
    assert editor.isVisible() and title.text() == "Stretch! ({{ trigger.missed }} missed) now"

    qtbot.mouseClick(editor.cancel_button, Qt.MouseButton.LeftButton)
    answer(await asked(editor), "Discard")
    await until(lambda: not editor.isVisible())
    assert editor.result() == QDialog.DialogCode.Rejected
    assert bridge.area(area.id).spec.reactions[0].params["title"] == (
        "Stretch! ({{ trigger.missed }} missed)")

    again = editor_for(qtbot, bridge, area_id=area.id)
    retype(qtbot, line(again.name_form, "name"), "Stretch more")
    saved = expect(again.saved)
    again.close()  # the window's close button
    answer(await asked(again), "Save")
    assert await saved == (area.id,)
    await until(lambda: not again.isVisible())
    assert bridge.area(area.id).name == "Stretch more"


async def test_closing_without_changes_asks_nothing(qtbot: QtBot, bridge: EngineBridge) -> None:
    await bridge.call(bridge.engine.accounts.store.save(
        Account("acc-1", "github", "api_key", "octocat", [])))
    spec = {**TIMER_NOTIFY, "reactions": [
        {"service": "github", "reaction": "create_issue", "account": "OctoCat",
         "params": {"repo": "o/r", "title": "Stretch"}}]}
    editor = editor_for(qtbot, bridge, spec_dict=spec)
    picker = editor.cards[0].picker
    # The account list loads and picks octocat by itself: no change of the user's.
    await until(lambda: picker.account_combo.count() == 1)
    name = line(editor.name_form, "name")
    qtbot.keyClicks(name, "!")
    qtbot.keyClick(name, Qt.Key.Key_Backspace)  # typed and deleted again: no change
    qtbot.keyClick(name, Qt.Key.Key_Escape)
    assert not editor.isVisible()
    assert editor.result() == QDialog.DialogCode.Rejected
    assert not editor.findChildren(QMessageBox)


async def deliver(bridge: EngineBridge, area_id: str, body: dict[str, Any]) -> None:
    """A real request to the area's webhook address; returns once its run ended."""
    url = await bridge.webhook_url(area_id)
    assert url is not None
    finished = expect(bridge.runFinished)
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 202
    await finished


def offered(param: ParamField) -> dict[str, str]:
    """What the field's "Insert field" menu offers: expression -> the entry's text."""
    assert param.insert_button is not None
    menu = param.insert_button.menu()
    param.fill_menu(menu)
    return {a.objectName(): a.text() for a in menu.actions() if a.objectName()}


async def test_test_uses_the_last_delivery_of_a_webhook(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area = await bridge.save_area(AreaSpec.from_dict(WEBHOOK_TITLE))
    await deliver(bridge, area.id, DELIVERY)
    editor = editor_for(qtbot, bridge, area_id=area.id)
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    await until(editor.result_box.isVisible)
    assert not editor.banner.isVisible()
    assert editor.result_title.text() == ("Nothing was sent: this is what would happen "
                                          "with the last delivery.")
    text = editor.result_text.toPlainText().splitlines()
    assert text[0].startswith("Tested with the last delivery, received 20")
    assert text[1:3] == ["The last delivery:", "    body: {"]
    assert "    title: Door opened" in text  # what the notification would show
    await until(lambda: not editor.result_box.visibleRegion().isEmpty())  # scrolled to


async def test_the_field_picker_offers_the_fields_of_the_last_delivery(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area = await bridge.save_area(AreaSpec.from_dict(WEBHOOK_TITLE))
    await deliver(bridge, area.id, DELIVERY)
    editor = editor_for(qtbot, bridge, area_id=area.id)
    title = field(editor.cards[0].form, "title")
    await until(lambda: "trigger.body.title" in offered(title))
    choices = offered(title)
    assert choices["trigger.body.title"] == "body › title    {{ trigger.body.title }}"
    assert "trigger.body.user.name" in choices
    assert "trigger.body.items[0].id" in choices  # a list: its first item only
    assert "trigger.body.items[1].id" not in choices
    assert 'trigger.headers["Content-Type"]' in choices  # not a plain name: quoted
    assert "trigger.body" in choices  # the catalog's own fields stay
    [name] = [a for a in title.insert_button.menu().actions()  # type: ignore[union-attr]
              if a.objectName() == "trigger.body.user.name"]
    retype(qtbot, line(editor.cards[0].form, "title"), "Hi ")
    name.trigger()
    assert line(editor.cards[0].form, "title").text() == "Hi {{ trigger.body.user.name }}"
    assert await editor.run_test() is not None
    assert "    title: Hi Ada" in editor.result_text.toPlainText().splitlines()


async def test_a_new_webhook_area_tests_with_a_pasted_sample(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=WEBHOOK_TITLE)
    assert editor.sample_button.isVisible()
    qtbot.mouseClick(editor.sample_button, Qt.MouseButton.LeftButton)
    dialog = await shown(editor, SampleDialog)
    qtbot.keyClicks(dialog.text, "{title: 'Hello'}")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible()  # refused, saying why and how
    assert dialog.error.text().startswith("This is not JSON: Expecting property name "
                                          "enclosed in double quotes on line 1, column 2.")
    dialog.text.setPlainText('{"title": "From the docs", "user": {"name": "Ada"}}')
    assert not dialog.error.isVisible()
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    await until(editor.result_box.isVisible)
    assert not [d for d in editor.findChildren(SampleDialog) if d.isVisible()]
    assert not editor.banner.isVisible()
    text = editor.result_text.toPlainText().splitlines()
    assert text[:2] == ["Tested with the sample body you pasted.", "Your sample:"]
    assert "    title: From the docs" in text
    assert "trigger.body.user.name" in offered(field(editor.cards[0].form, "title"))
    # The sample is kept: the next Test uses it again, and the dialog shows it.
    editor.result_box.hide()
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    await until(editor.result_box.isVisible)
    assert "    title: From the docs" in editor.result_text.toPlainText().splitlines()
    qtbot.mouseClick(editor.sample_button, Qt.MouseButton.LeftButton)
    again = await shown(editor, SampleDialog)
    assert '"name": "Ada"' in again.text.toPlainText()
    again.reject()


async def test_every_problem_shows_at_once_and_the_banner_follows_the_fixes(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=TIMER_NOTIFY)
    first = editor.cards[0]
    choose(first.picker.service_combo, "http")
    qtbot.keyClicks(line(first.form, "url"), "ftp://example.org/upload")
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    second = editor.cards[1]
    qtbot.keyClicks(line(second.form, "title"), "Tick {{ trigger.fired_att }}")
    url, title = field(first.form, "url"), field(second.form, "title")
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    await until(editor.banner.isVisible)
    assert url.error.isVisible() and "must start with http:// or https://" in url.error.text()
    assert title.error.isVisible() and "Did you mean trigger.fired_at?" in title.error.text()
    assert editor.banner.text() == ("Cannot test yet: 2 problems — see the fields marked "
                                    "in red.")
    assert not editor.result_box.isVisible()

    retype(qtbot, line(first.form, "url"), "https://example.org/upload")
    await until(lambda: not url.error.isVisible())
    assert title.error.isVisible()
    assert editor.banner.text() == "Cannot test yet: 1 problem — see the field marked in red."
    retype(qtbot, line(second.form, "title"), "Tick {{ trigger.fired_at }}")
    await until(lambda: not editor.banner.isVisible())
    assert not url.error.isVisible() and not title.error.isVisible()
    assert editor.marked() == 0
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    await until(editor.result_box.isVisible)
    assert not editor.banner.isVisible()


async def test_a_value_the_event_lacks_is_said_in_the_users_words(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict=WEBHOOK_TITLE)
    editor.pasted_body = {"text": "Door opened"}
    title = field(editor.cards[0].form, "title")
    assert await editor.run_test() is None  # the dry test stops at the field
    assert title.error.isVisible()
    assert title.error.text() == ("this event's 'body' has no value 'title'. It has: text. "
                                  "Use Insert field to pick one.")
    result = await editor.run_test(live=True)
    assert result is not None
    assert ("    error: Reaction 1 (Show a notification), field Title: this event's 'body' has "
            "no value 'title'. It has: text. Use Insert field to pick one."
            ) in editor.result_text.toPlainText().splitlines()
    assert "reactions[0]" not in editor.result_text.toPlainText()


async def test_an_unfinished_template_says_how_to_finish_it(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    editor = editor_for(qtbot, bridge, spec_dict={
        **TIMER_NOTIFY, "reactions": [{"service": "notify", "reaction": "notify",
                                       "params": {"title": "Tick {{ trigger.missed }"}}]})
    title = field(editor.cards[0].form, "title")
    assert await editor.run_test() is None
    assert title.error.text() == ("the template is not finished: a '}}' closes nothing on "
                                  "line 1 (a lone '}' stands where '}}' should close a '{{'). "
                                  "Write {{ and }} in pairs.")


def test_the_check_every_hint_offers_only_intervals_the_trigger_allows(
        bridge: EngineBridge) -> None:
    feed = bridge.registry.trigger("rss", "new_item")
    assert feed.min_interval == 60
    assert interval_param(feed).help == ("How often to look for something new: every 1m or "
                                         "more, e.g. 1m, 15m, 1h. Empty: every 15m.")


def test_a_result_without_a_reactions_title_never_shows_internal_names() -> None:
    text = format_test_result({"trigger": {}, "reactions": [
        {"service": "notify", "reaction": "notify", "would_send": {"title": "Hi"}}]}, [],
        live=False)
    assert "1. Reaction 1 would send:" in text.splitlines()
    assert "notify.notify" not in text
