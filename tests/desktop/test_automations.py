"""The automations screen, driven as a user would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from PySide6.QtCore import QModelIndex, QPoint, Qt, SignalInstance
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QMenu,
    QMessageBox,
    QStyle,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.forms import ParamForm
from desktop.models import AreasModel
from desktop.pages.activity import CheckHistory, next_try
from desktop.pages.automations import AutomationsPage, file_name_for
from engine.areas import Area, AreaSpec
from tests.desktop.conftest import signal_once, until


def area(name: str, title: str = "Hello", interval: str = "1h") -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": interval}},
        "reactions": [{"service": "notify", "reaction": "notify", "params": {"title": title}}],
    }


def expect(signal: SignalInstance) -> asyncio.Future[tuple[Any, ...]]:
    """Start listening now for the next emission (before doing what causes it)."""
    return asyncio.ensure_future(signal_once(signal))


async def page_for(qtbot: QtBot, bridge: EngineBridge,
                   parent: QWidget | None = None) -> AutomationsPage:
    page = AutomationsPage(bridge, parent)
    if parent is None:
        qtbot.addWidget(page)
    page.resize(900, 420)
    (parent or page).show()
    await until(lambda: page.loaded)
    return page


def cell(page: AutomationsPage, area_id: str, column: int) -> QModelIndex:
    index = page.row_index(area_id, column)
    assert index.isValid()
    return index


def text(page: AutomationsPage, area_id: str, column: int) -> str:
    return str(cell(page, area_id, column).data())


def shown_names(page: AutomationsPage) -> list[str]:
    return [str(page.proxy.index(r, AreasModel.NAME).data())
            for r in range(page.proxy.rowCount())]


def check_box_center(view: QTableView, index: QModelIndex) -> QPoint:
    """Where the style draws a cell's check box."""
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    option.features |= QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator
    option.checkState = index.data(Qt.ItemDataRole.CheckStateRole)
    rect = view.style().subElementRect(QStyle.SubElement.SE_ItemViewItemCheckIndicator,
                                       option, view)
    return rect.center()


def input_of(form: ParamForm, name: str) -> QWidget:
    found = form.field(name)
    assert found is not None
    return found.editor


def editors(page: AutomationsPage) -> list[AreaEditor]:
    return [e for e in page.findChildren(AreaEditor) if e.isVisible()]


async def test_empty_state_says_what_to_do(qtbot: QtBot, bridge: EngineBridge) -> None:
    shown: list[str] = []

    class Window(QWidget):
        def show_screen(self, key: str) -> None:
            shown.append(key)

    window = Window()
    qtbot.addWidget(window)
    page = await page_for(qtbot, bridge, window)
    assert page.stack.currentWidget() is page.empty
    assert page.empty_new.isVisible() and page.empty_presets.isVisible()
    qtbot.mouseClick(page.empty_presets, Qt.MouseButton.LeftButton)
    assert shown == ["presets"]
    qtbot.mouseClick(page.empty_new, Qt.MouseButton.LeftButton)
    [editor] = editors(page)
    assert editor.windowTitle() == "New automation"
    editor.reject()
    # The list appears by itself once an area exists (the engine says so).
    await bridge.save_area(AreaSpec.from_dict(area("First")))
    await until(lambda: page.stack.currentWidget() is page.table)
    assert shown_names(page) == ["First"]


async def test_lists_searches_and_opens_areas(qtbot: QtBot, bridge: EngineBridge) -> None:
    ids = {}
    for name, title in (("Stretch", "Stand up"), ("Backup check", "Backup?"),
                        ("Water", "Drink")):
        ids[name] = (await bridge.save_area(AreaSpec.from_dict(area(name, title)))).id
    page = await page_for(qtbot, bridge)
    assert shown_names(page) == ["Backup check", "Stretch", "Water"]  # by name
    assert text(page, ids["Water"], AreasModel.WHAT) == (
        "Timer: Every so often → Notifications: Show a notification")
    assert text(page, ids["Water"], AreasModel.LAST_RUN) == "never"
    assert text(page, ids["Water"], AreasModel.HEALTH) == "Waiting for its first run"

    qtbot.keyClicks(page.search, "WAT")
    assert shown_names(page) == ["Water"]
    page.search.clear()
    qtbot.keyClicks(page.search, "every so often")  # the summary counts too
    assert len(shown_names(page)) == 3
    page.search.clear()
    qtbot.keyClicks(page.search, "nothing like it")
    assert page.stack.currentWidget() is page.no_match
    assert "nothing like it" in page.no_match.text()
    page.search.clear()
    assert page.stack.currentWidget() is page.table

    # Buttons follow the selection; Enter on a row opens it in the editor.
    assert not page.run_button.isEnabled() and not page.delete_button.isEnabled()
    page.select(ids["Stretch"])
    assert page.selected_ids() == [ids["Stretch"]]
    assert page.run_button.isEnabled() and page.export_button.isEnabled()
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Return)
    [editor] = editors(page)
    assert editor.area_id == ids["Stretch"]
    assert editor.windowTitle() == "Edit “Stretch”"
    # Saving from the editor refreshes the list.
    name_field = editor.name_form.field("name")
    assert name_field is not None
    name_field.set_value("Stretch more")
    assert await editor.save() == ids["Stretch"]
    await until(lambda: "Stretch more" in shown_names(page))
    assert page.selected_ids() == [ids["Stretch"]]
    # A double click opens it too (a real one: a click, then the second press).
    water = page.table.visualRect(cell(page, ids["Water"], AreasModel.NAME)).center()
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=water)
    qtbot.mouseDClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=water)
    assert [e.area_id for e in editors(page)] == [ids["Water"]]


async def test_run_now_shows_the_last_run_and_health(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area_id = (await bridge.save_area(AreaSpec.from_dict(area("Ping")))).id
    page = await page_for(qtbot, bridge)
    page.select(area_id)
    finished = expect(bridge.runFinished)
    qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
    (run,) = await finished
    assert run["status"] == "succeeded"
    await until(lambda: text(page, area_id, AreasModel.HEALTH) == "Working")
    assert text(page, area_id, AreasModel.LAST_RUN).startswith("today ")
    assert text(page, area_id, AreasModel.LAST_RUN).endswith(" · succeeded")
    assert page.status.text() == "Started “Ping”; its result shows under Last run."


async def test_an_area_made_in_the_editor_fires_and_its_row_says_so(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    page = await page_for(qtbot, bridge)
    editor = page.new_area()
    assert editors(page) == [editor]
    qtbot.keyClicks(input_of(editor.name_form, "name"), "Every second")
    qtbot.keyClicks(input_of(editor.trigger_form, "interval"), "1s")
    qtbot.keyClicks(input_of(editor.cards[0].form, "title"), "Tick {{ trigger.fired_at }}")
    finished = expect(bridge.runFinished)
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    await until(lambda: shown_names(page) == ["Every second"])
    (run,) = await finished
    assert run["status"] == "succeeded"
    [area_id] = [a.id for a in bridge.engine.areas()]
    await until(lambda: text(page, area_id, AreasModel.HEALTH) == "Working")
    assert text(page, area_id, AreasModel.LAST_RUN).endswith(" · succeeded")
    assert page.selected_ids() == [area_id]
    assert page.status.text() == "Saved “Every second”."


async def test_the_on_switch_turns_an_area_off_and_on(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area_id = (await bridge.save_area(AreaSpec.from_dict(area("Switch me")))).id
    page = await page_for(qtbot, bridge)
    on = cell(page, area_id, AreasModel.ON)
    assert on.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    # Keyboard: the On cell current, Space toggles it.
    page.table.setFocus()
    page.table.setCurrentIndex(on)
    # (the area's "created" may still be on its way: the engine's messages come in batches)
    changed = asyncio.ensure_future(signal_once(
        bridge.areaChanged, match=lambda _id, change: change != "created"))
    qtbot.keyClick(page.table, Qt.Key.Key_Space)
    assert await changed == (area_id, "disabled")
    assert not bridge.area(area_id).spec.enabled
    await until(lambda: text(page, area_id, AreasModel.HEALTH) == "Off")
    assert cell(page, area_id, AreasModel.ON).data(
        Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert page.status.text() == "“Switch me” is off."
    # Mouse: a click on the check box turns it back on.
    changed = expect(bridge.areaChanged)
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton,
                     pos=check_box_center(page.table, cell(page, area_id, AreasModel.ON)))
    assert await changed == (area_id, "enabled")
    await until(lambda: text(page, area_id, AreasModel.HEALTH) != "Off")


async def test_delete_asks_first(qtbot: QtBot, bridge: EngineBridge,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    keep = (await bridge.save_area(AreaSpec.from_dict(area("Keep")))).id
    gone = (await bridge.save_area(AreaSpec.from_dict(area("Gone")))).id
    page = await page_for(qtbot, bridge)
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    questions: list[str] = []

    def question(parent: object, title: str, text: str, *args: object) -> object:
        questions.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    page.select(gone)
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert questions[0].startswith("Delete “Gone”?")
    assert {a.id for a in bridge.engine.areas()} == {keep, gone}
    page.table.setFocus()
    page._purge_timer.setInterval(300)  # (UNDO_SECONDS in the app)
    qtbot.keyClick(page.table, Qt.Key.Key_Delete)  # the keyboard way
    await until(lambda: shown_names(page) == ["Keep"])
    assert page.status.text() == "Deleted “Gone”."
    assert page.undo_button.isVisible()
    # Once Undo is no longer offered, it is gone from the engine too.
    await until(lambda: [a.id for a in bridge.engine.areas()] == [keep])
    await until(lambda: not page.undo_button.isVisible())
    assert shown_names(page) == ["Keep"]


async def deleted(qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[AutomationsPage, Area]:
    """An automation "Gone" deleted with the Delete button (Yes to the question)."""
    gone = await bridge.save_area(AreaSpec.from_dict(area("Gone")))
    page = await page_for(qtbot, bridge)
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args: QMessageBox.StandardButton.Yes)
    page.select(gone.id)
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    await until(lambda: shown_names(page) == [])
    return page, gone


async def test_undo_brings_a_deleted_automation_back_as_it_was(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    page, gone = await deleted(qtbot, bridge, monkeypatch)
    assert not bridge.engine.area(gone.id).spec.enabled  # off meanwhile: it fires no more
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    await until(lambda: shown_names(page) == ["Gone"])
    back = bridge.engine.area(gone.id)
    assert back.spec.enabled and back.spec == gone.spec  # the same automation, on again
    assert page.status.text() == "“Gone” is back."
    assert not page.undo_button.isVisible()
    await until(lambda: page.selected_ids() == [gone.id])


async def test_quitting_deletes_what_undo_still_offers(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    page, _gone = await deleted(qtbot, bridge, monkeypatch)
    await page.finish_deletions()  # what the window's Quit awaits (settle_unsaved)
    assert bridge.engine.areas() == []


async def test_edit_opens_the_selected_automation(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    saved = await bridge.save_area(AreaSpec.from_dict(area("Edit me")))
    page = await page_for(qtbot, bridge)
    assert not page.edit_button.isEnabled()
    page.select(saved.id)
    assert page.edit_button.isEnabled()
    editor = page.edit_selected()
    assert editor is not None and editor.area_id == saved.id
    editor.reject()


async def test_export_writes_importable_yaml_without_secrets(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    hook = (await bridge.save_area(AreaSpec.from_dict({
        "name": "Hook", "trigger": {"service": "webhook", "trigger": "incoming",
                                    "params": {"secret": "s3cret"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "{{ trigger.content_type }}"}}]}))).id
    timer = (await bridge.save_area(AreaSpec.from_dict(area("Tick")))).id
    page = await page_for(qtbot, bridge)
    target = tmp_path / "out.yaml"
    suggested: list[str] = []

    def save_name(parent: object, title: str, start: str, *args: object) -> tuple[str, str]:
        suggested.append(Path(start).name)
        return str(target), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    page.select(hook)
    qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
    await until(lambda: page.status.text().startswith("Exported"))
    assert suggested == ["hook.yaml"]
    text_out = target.read_text(encoding="utf-8")
    assert "s3cret" not in text_out
    one = yaml.safe_load(text_out)
    assert one["name"] == "Hook" and "secret" not in one["trigger"]["params"]
    AreaSpec.from_dict(one)

    page.table.selectAll()
    assert set(page.selected_ids()) == {hook, timer}
    page.status.clear()
    qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
    await until(lambda: page.status.text().startswith("Exported 2 automations"))
    both = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert [a["name"] for a in both["areas"]] == ["Hook", "Tick"]
    assert suggested[-1] == "automations.yaml"


async def test_duplicate_opens_a_prefilled_new_area(qtbot: QtBot, bridge: EngineBridge) -> None:
    original = (await bridge.save_area(AreaSpec.from_dict(area("Daily", "Good morning")))).id
    page = await page_for(qtbot, bridge)
    page.select(original)
    qtbot.mouseClick(page.duplicate_button, Qt.MouseButton.LeftButton)
    [editor] = editors(page)
    assert editor.area_id is None
    assert editor.spec_dict()["name"] == "Daily (copy)"
    assert editor.cards[0].form.values()["title"] == "Good morning"
    assert not editor.cards[0].uid  # a new step: its secrets are its own
    copy_id = await editor.save()
    assert copy_id is not None and copy_id != original
    await until(lambda: shown_names(page) == ["Daily", "Daily (copy)"])


async def test_health_tooltip_says_why_it_is_failing(qtbot: QtBot, bridge: EngineBridge) -> None:
    bad = (await bridge.save_area(AreaSpec.from_dict(area("Broken", "{{ trigger.missed / 0 }}"))))
    page = await page_for(qtbot, bridge)
    finished = expect(bridge.runFinished)
    await bridge.run_now(bad.id)
    (run,) = await finished
    assert run["status"] == "failed"
    await until(lambda: text(page, bad.id, AreasModel.HEALTH) == "Failing")
    tip = cell(page, bad.id, AreasModel.HEALTH).data(Qt.ItemDataRole.ToolTipRole)
    assert "division by zero" in tip


def test_file_name_for() -> None:
    assert file_name_for("Release notes → file!") == "release-notes-file.yaml"
    assert file_name_for("***") == "automation.yaml"


async def test_checks_lists_each_check_of_a_feed_with_why_it_failed(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    from tests.desktop.test_activity import feed_answering_404, feed_area

    timer = await bridge.save_area(AreaSpec.from_dict(area("Daily")))
    async with feed_answering_404(bridge) as url:
        failing = expect(bridge.triggerHealth)
        feed = await bridge.save_area(AreaSpec.from_dict(feed_area(url)))
        await failing  # its first check failed
        page = await page_for(qtbot, bridge)
        page.select(timer.id)
        assert not page.checks_button.isEnabled()  # a timer is not checked: it fires
        assert "fires by itself" in page.checks_button.toolTip()
        page.select(feed.id)
        assert page.checks_button.isEnabled()
        page.checks_button.click()
        dialogs = page.findChildren(CheckHistory)
        assert len(dialogs) == 1
        dialog = dialogs[0]
        qtbot.addWidget(dialog)
        await until(lambda: dialog.table.rowCount() == 1)
        table = dialog.table

        def shown(column: int) -> str:
            item = table.item(0, column)
            assert item is not None
            return item.text()

        assert dialog.windowTitle() == "Checks of “Python blog”"
        assert shown(CheckHistory.RESULT) == "Failed"
        assert "127.0.0.1" in shown(CheckHistory.PROBLEM)
        assert "answered 404" in shown(CheckHistory.PROBLEM)
        [check] = await bridge.checks(feed.id)
        assert shown(CheckHistory.NEXT) == next_try(check["next_at"], "interval")
        assert dialog.summary.text().startswith("Last checked at ")
        assert "failed. Next check: " in dialog.summary.text()
        dialog.grab().save("/tmp/hookline-checks-dialog.png")

        # the same from the row's context menu
        page.table.customContextMenuRequested.emit(
            page.table.visualRect(cell(page, feed.id, AreasModel.NAME)).center())
        menu = next(m for m in page.findChildren(QMenu) if m.isVisible())
        [checks] = [a for a in menu.actions() if a.text() == "&Checks…"]
        assert checks.isEnabled()
        menu.close()
        dialog.close()


async def test_turning_an_automation_off_does_not_move_the_columns(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    area_id = (await bridge.save_area(AreaSpec.from_dict(area("Steady")))).id
    page = await page_for(qtbot, bridge)
    header = page.table.horizontalHeader()
    assert text(page, area_id, AreasModel.HEALTH) == "Waiting for its first run"
    widths = [header.sectionSize(c) for c in range(header.count())]
    await bridge.set_enabled(area_id, False)
    await until(lambda: text(page, area_id, AreasModel.HEALTH) == "Off")
    QApplication.processEvents()  # the header lays its sections out
    assert [header.sectionSize(c) for c in range(header.count())] == widths
