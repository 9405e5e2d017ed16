"""An automation's life in time, in the window: the list shows each state with its next
change, snooze and wake from the list and the tray, the "at" date-time picker (through
the Time capsule preset), done automations kept apart."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QDateTime, Qt, QTime
from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.forms import MomentField
from desktop.lifecycle_view import moment
from desktop.models import AreasModel
from desktop.pages.activity import ActivityPage
from desktop.pages.automations import AutomationsPage
from desktop.pages.presets import PresetsPage
from desktop.tray import Tray
from desktop.wheel import WheelGuard
from engine import lifecycle as life
from engine.areas import AreaSpec
from tests.desktop.conftest import signal_once, until
from tests.desktop.test_tray import WindowStub


def every_hour(name: str, **window: Any) -> AreaSpec:
    return AreaSpec.from_dict({
        "name": name,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": f"{name} says hi"}}],
        **window,
    })


async def page_for(qtbot: QtBot, bridge: EngineBridge) -> AutomationsPage:
    page = AutomationsPage(bridge)
    qtbot.addWidget(page)
    page.resize(1000, 460)
    page.show()
    await until(lambda: page.loaded)
    return page


def state_cell(page: AutomationsPage, area_id: str) -> str:
    index = page.row_index(area_id, AreasModel.HEALTH)
    assert index.isValid()
    return str(index.data())


def menu_action(menu: QMenu, text: str) -> None:
    [found] = [a for a in menu.actions() if a.text().replace("&", "") == text]
    assert found.isEnabled()
    found.trigger()


async def became(bridge: EngineBridge, area_id: str, state: str) -> None:
    """Wait for the area.state message saying ``area_id`` became ``state``."""
    while True:
        changed, to, _cause = await signal_once(bridge.areaState)
        if (changed, to) == (area_id, state):
            return


async def test_time_capsule_composed_with_the_picker_fires_once_and_is_done(
        bridge: EngineBridge, qtbot: QtBot) -> None:
    presets = PresetsPage(bridge)
    qtbot.addWidget(presets)
    [capsule] = [c.preset for c in presets.cards if c.preset.name == "Time capsule"]
    editor = presets.use(capsule)
    assert isinstance(editor, AreaEditor)
    picker = editor.trigger_form.field("at")
    assert isinstance(picker, MomentField)
    assert picker.picker.calendarPopup()
    assert picker.zone_label.text().startswith("local time (")
    assert picker.picker.findChild(WheelGuard) is not None  # scrolling past leaves it be

    # a moment already past is refused under the field, in words
    picker.picker.setDateTime(QDateTime.currentDateTime().addDays(-1))
    assert not picker.check()
    assert picker.error.text() == "That moment has passed: choose a later date and time."

    moment = QDateTime.currentDateTime().addDays(30)
    picker.picker.setDateTime(moment)
    assert picker.check()
    message = editor.cards[0].form.field("message")
    assert message is not None
    qtbot.keyClicks(message.editor, "Remember this day")
    saved = signal_once(editor.saved)
    editor.save_button.click()
    (area_id,) = await saved
    at = bridge.area(area_id).spec.trigger.params["at"]
    assert at == moment.toString("yyyy-MM-dd HH:mm")

    page = await page_for(qtbot, bridge)
    assert state_cell(page, area_id) == f"Fires once {at}"
    # the real engine fires it a moment from now (seconds are beyond the picker's reach)
    spec = bridge.area(area_id).spec.to_dict()
    soon = datetime.now() + timedelta(seconds=1.5)
    spec["trigger"]["params"]["at"] = f"{soon:%Y-%m-%d %H:%M:%S}"
    done = asyncio.ensure_future(became(bridge, area_id, life.DONE))
    await bridge.save_area(AreaSpec.from_dict(spec), area_id)
    await asyncio.wait_for(done, 10)
    await until(lambda: state_cell(page, area_id) == "Done")
    assert page.model.row(page.model.row_of(area_id)).last_status == "succeeded"


async def test_done_areas_are_greyed_and_kept_after_the_others(
        bridge: EngineBridge, qtbot: QtBot) -> None:
    first = await bridge.save_area(every_hour("A first"))
    second = await bridge.save_area(every_hour("B live"))
    past = datetime.now() - timedelta(days=1)
    ended = await bridge.save_area(every_hour(
        "0 ended", active_from=f"{past - timedelta(days=1):%Y-%m-%d %H:%M}",
        active_until=f"{past:%Y-%m-%d %H:%M}"))
    assert ended.state == life.DONE
    page = await page_for(qtbot, bridge)
    names = [str(page.proxy.index(r, AreasModel.NAME).data())
             for r in range(page.proxy.rowCount())]
    assert names == ["A first", "B live", "0 ended"]  # by name, the done one apart
    page.table.sortByColumn(AreasModel.NAME, Qt.SortOrder.DescendingOrder)
    names = [str(page.proxy.index(r, AreasModel.NAME).data())
             for r in range(page.proxy.rowCount())]
    assert names == ["B live", "A first", "0 ended"]
    brush = page.row_index(ended.id).data(Qt.ItemDataRole.ForegroundRole)
    assert brush.color().name() == "#9aa0a6"
    assert state_cell(page, ended.id) == "Done"
    assert state_cell(page, first.id) == state_cell(page, second.id) == (
        "Waiting for its first run")
    # Its switch shows it fires no more, and cannot be ticked.
    switch = page.row_index(ended.id, AreasModel.ON)
    assert switch.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert not switch.flags() & Qt.ItemFlag.ItemIsUserCheckable
    live = page.row_index(first.id, AreasModel.ON)
    assert live.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert live.flags() & Qt.ItemFlag.ItemIsUserCheckable


async def test_snooze_from_the_list_then_wake_now(bridge: EngineBridge, qtbot: QtBot) -> None:
    area = await bridge.save_area(every_hour("Water the plants"))
    page = await page_for(qtbot, bridge)
    page.select(area.id)
    assert page.snooze_button.isEnabled()
    menu = page.snooze_menu()
    texts = [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]
    assert texts == ["For 1 hour", "Until 18:00", "Until tomorrow 08:00", "Custom…"]
    menu_action(menu, "Until 18:00")
    await until(lambda: state_cell(page, area.id).startswith("Snoozed until"))
    assert state_cell(page, area.id).endswith("18:00")
    assert bridge.area(area.id).state == life.SNOOZED

    menu = page.snooze_menu()
    menu_action(menu, "Wake now")
    await until(lambda: state_cell(page, area.id) == "Waiting for its first run")
    assert bridge.area(area.id).state == life.ACTIVE
    assert page.status.text() == "Woke “Water the plants”: it fires again."


async def test_a_waiting_area_says_when_its_window_opens(bridge: EngineBridge,
                                                         qtbot: QtBot) -> None:
    tomorrow = datetime.now() + timedelta(days=1)
    area = await bridge.save_area(every_hour("Standup ping", only_during={
        "days": [f"{tomorrow:%a}".lower()], "from": "09:00", "until": "10:00"}))
    assert area.state == life.WAITING
    page = await page_for(qtbot, bridge)
    assert state_cell(page, area.id) == f"Opens {tomorrow:%a} 09:00"


async def test_tray_snoozes_every_active_area_for_an_hour_then_wakes_them(
        bridge: EngineBridge, qtbot: QtBot) -> None:
    one = await bridge.save_area(every_hour("One"))
    two = await bridge.save_area(every_hour("Two"))
    off = await bridge.save_area(every_hour("Was off"))
    await bridge.set_enabled(off.id, False)
    tray = Tray(bridge, WindowStub())
    try:
        [snooze] = [a for a in tray.menu.actions() if a.text() == "Snooze all for 1 hour"]
        snooze.trigger()
        await until(lambda: tray.state()["snooze_action"] == "Wake all")
        states = {a.name: a.state for a in bridge.engine.areas()}
        assert states == {"One": life.SNOOZED, "Two": life.SNOOZED, "Was off": life.OFF}
        ends = {bridge.area(i).snoozed_until for i in (one.id, two.id)}
        assert len(ends) == 1
        (end,) = ends
        assert end is not None
        left = end - datetime.now(end.tzinfo)
        assert timedelta(minutes=59) < left <= timedelta(hours=1)

        [wake] = [a for a in tray.menu.actions() if a.text() == "Wake all"]
        wake.trigger()
        await until(lambda: tray.state()["snooze_action"] == "Snooze all for 1 hour")
        states = {a.name: a.state for a in bridge.engine.areas()}
        assert states == {"One": life.ACTIVE, "Two": life.ACTIVE, "Was off": life.OFF}
    finally:
        tray.close()


async def test_the_editors_window_fields_round_trip_through_save_and_reopen(
        bridge: EngineBridge, qtbot: QtBot) -> None:
    page = await page_for(qtbot, bridge)
    editor = page.new_area()
    name = editor.name_form.field("name")
    assert name is not None
    qtbot.keyClicks(name.editor, "Office hours ping")
    title = editor.cards[0].form.field("title")
    assert title is not None
    qtbot.keyClicks(title.editor, "Still here")
    interval = editor.trigger_form.field("interval")
    assert interval is not None
    qtbot.keyClicks(interval.editor, "1h")
    fields = editor.window_fields
    assert fields.values() == {}  # nothing set: no window
    start = QDateTime(QDateTime.currentDateTime().date().addDays(-1), QTime(8, 30))
    end = QDateTime(QDateTime.currentDateTime().date().addDays(40), QTime(17, 0))
    qtbot.mouseClick(fields.from_check, Qt.MouseButton.LeftButton)
    fields.from_edit.setDateTime(start)
    qtbot.mouseClick(fields.until_check, Qt.MouseButton.LeftButton)
    fields.until_edit.setDateTime(end)
    qtbot.mouseClick(fields.weekly_check, Qt.MouseButton.LeftButton)
    fields.day_checks[4].setChecked(False)  # Mon-Thu
    fields.start_edit.setTime(QTime(10, 0))
    fields.end_edit.setTime(QTime(16, 30))
    assert fields.from_edit.findChild(WheelGuard) is not None
    saved = signal_once(editor.saved)
    editor.save_button.click()
    (area_id,) = await saved

    window = bridge.area(area_id).spec.window
    assert window.active_from is not None and window.active_until is not None
    assert f"{window.active_from.astimezone():%Y-%m-%d %H:%M}" == start.toString(
        "yyyy-MM-dd HH:mm")
    assert f"{window.active_until.astimezone():%Y-%m-%d %H:%M}" == end.toString(
        "yyyy-MM-dd HH:mm")
    assert window.weekly is not None
    assert window.weekly.days == ("mon", "tue", "wed", "thu")
    assert (f"{window.weekly.start:%H:%M}", f"{window.weekly.end:%H:%M}") == ("10:00",
                                                                              "16:30")

    reopened = page.open_editor(area_id=area_id)
    again = reopened.window_fields
    assert again.from_check.isChecked() and again.until_check.isChecked()
    assert again.from_edit.dateTime() == start and again.until_edit.dateTime() == end
    assert [c.isChecked() for c in again.day_checks] == [True] * 4 + [False] * 3
    assert again.start_edit.time() == QTime(10, 0) and again.end_edit.time() == QTime(16, 30)
    assert not reopened.has_changes()
    qtbot.mouseClick(again.weekly_check, Qt.MouseButton.LeftButton)  # no weekly window
    saved = signal_once(reopened.saved)
    reopened.save_button.click()
    await saved
    assert bridge.area(area_id).spec.window.weekly is None


async def test_activity_shows_the_chosen_automations_state_and_its_changes(
        bridge: EngineBridge, qtbot: QtBot) -> None:
    area = await bridge.save_area(every_hour("Water the plants"))
    page = ActivityPage(bridge)
    qtbot.addWidget(page)
    page.resize(1000, 600)
    page.show()
    await page.select_area(None)
    assert not page.life.isVisible()  # all automations: no one state to tell
    await page.select_area(area.id)
    assert page.life.now.accessibleName() == "“Water the plants” is active."

    until_moment = datetime.now().astimezone() + timedelta(hours=2)
    await bridge.snooze(area.id, until_moment)
    await until(lambda: "snoozed until" in page.life.now.accessibleName())
    assert page.life.now.accessibleName() == (
        f"“Water the plants” is snoozed until {moment(until_moment)}, then active.")
    newest = page.life.changes[0].text()
    assert newest.startswith("today ")
    assert (f"active → snoozed: snoozed until {until_moment:%Y-%m-%d %H:%M}"
            in newest)
    await bridge.wake(area.id)
    await until(lambda: page.life.now.accessibleName() == "“Water the plants” is active.")
    assert page.life.changes[0].text().endswith(
        "snoozed → active: woken before its snooze ended")
