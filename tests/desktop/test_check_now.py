"""Check now in an automation's Checks window (what each item would do, nothing fired)
and "Find an item…" on the Activity page (whether and when it was seen, its run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.pages.activity import ActivityPage, CheckHistory
from engine.app import Engine
from engine.areas import Area, AreaSpec
from tests.desktop.conftest import signal_once, until


def folder_area(folder: Path) -> dict[str, Any]:
    return {
        "name": "Invoices",
        "trigger": {"service": "files", "trigger": "file_created",
                    "params": {"folder": str(folder)}},
        "condition": "{{ trigger.size < 100 }}",
        "interval": 3600,  # after the first check, the test makes each one
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "{{ trigger.name }}"}}],
    }


async def primed_area(bridge: EngineBridge, folder: Path) -> Area:
    """The automation, once its first check remembered what the folder holds."""
    folder.mkdir()
    (folder / "old-invoice.pdf").write_text("old")
    area = await bridge.save_area(AreaSpec.from_dict(folder_area(folder)))
    deadline = asyncio.get_running_loop().time() + 10
    while not await bridge.checks(area.id):  # the first check, 0.2 s after it is saved
        assert asyncio.get_running_loop().time() < deadline, "never checked"
        await asyncio.sleep(0.02)
    return area


async def check(bridge: EngineBridge, engine: Engine, area: Area) -> None:
    """A real check of the folder (as the scheduler makes it), on the engine's thread."""

    async def poll() -> None:
        current = engine.area(area.id)
        spec = engine.registry.trigger("files", "file_created")
        params = await engine._trigger_params(current, spec)
        await engine.poller.poll(current, spec, params, 3600)

    await bridge.call(poll())


async def test_check_now_shows_what_each_item_would_do_and_fires_nothing(
        bridge: EngineBridge, qtbot: QtBot, tmp_path: Path) -> None:
    area = await primed_area(bridge, tmp_path / "inbox")
    (tmp_path / "inbox" / "new-invoice.pdf").write_text("new")
    (tmp_path / "inbox" / "big-scan.pdf").write_text("x" * 500)
    dialog = CheckHistory(bridge, area.id, area.name)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.now_box.isVisible()

    done = signal_once(dialog.checkedNow)
    dialog.check_now_button.click()
    await done

    def row(number: int) -> list[str]:
        cells = [dialog.verdicts.item(number, c) for c in range(3)]
        return [c.text() if c is not None else "" for c in cells]

    assert dialog.now_box.isVisible()
    assert dialog.verdicts.rowCount() == 3
    assert row(0) == ["big-scan.pdf", "Filtered out", "would be filtered out: the condition "
                      "{{ trigger.size < 100 }} is false for it"]
    assert row(1) == ["new-invoice.pdf", "Would fire", "new — would fire"]
    assert row(2)[:2] == ["old-invoice.pdf", "Already seen"]
    assert row(2)[2].endswith("(was there at the first check)")
    assert "the trigger returns 3 items; 1 would fire." in dialog.verdicts_summary.text()
    dialog.grab().save("/tmp/hookline-check-now.png")

    assert len(await bridge.checks(area.id)) == 1  # no check was added to the history
    assert await bridge.runs() == []  # nothing fired
    await dialog.refresh()
    assert dialog.table.rowCount() == 1


async def test_check_now_of_a_timer_says_what_it_is_for(
        bridge: EngineBridge, qtbot: QtBot) -> None:
    area = await bridge.save_area(AreaSpec.from_dict({
        "name": "Hourly", "trigger": {"service": "timer", "trigger": "every",
                                      "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "tick"}}]}))
    dialog = CheckHistory(bridge, area.id, area.name)
    qtbot.addWidget(dialog)
    done = signal_once(dialog.checkedNow)
    dialog.check_now_button.click()
    await done
    assert dialog.verdicts_summary.text().startswith(
        "Could not check now: “Hourly” is not checked: its trigger")
    assert dialog.check_now_button.isEnabled()


async def test_find_an_item_says_when_it_was_seen_and_opens_its_run(
        bridge: EngineBridge, engine: Engine, qtbot: QtBot, tmp_path: Path) -> None:
    area = await primed_area(bridge, tmp_path / "inbox")
    (tmp_path / "inbox" / "new-invoice.pdf").write_text("new")
    finished = signal_once(bridge.runFinished)
    await check(bridge, engine, area)
    (run,) = await finished
    page = ActivityPage(bridge)
    qtbot.addWidget(page)
    page.resize(1000, 680)
    page.show()
    await page.refresh()
    assert not page.found.isVisible()

    page.find_field.setText("NEW-invoice")
    searched = signal_once(page.searched)
    qtbot.keyClick(page.find_field, Qt.Key.Key_Return)
    await searched

    assert page.found.isVisible()
    [answer] = [r.findChild(type(page.found.summary), "foundAnswer") for r in page.found.rows]
    assert answer is not None
    assert answer.text().startswith("Seen on ")
    assert answer.text().endswith(f"by “Invoices”; it fired: run #{run['run_id']} (succeeded)")
    page.grab().save("/tmp/hookline-find-item.png")

    page.table.clearSelection()
    page.detail.show_run(None)
    page.found.open_buttons[run["run_id"]].click()
    await until(lambda: page.detail.run is not None
                and page.detail.run["id"] == run["run_id"])
    assert page.area_filter.currentText() == "Invoices"
    page.grab().save("/tmp/hookline-find-opened.png")

    page.find_field.setText("old-invoice")
    searched = signal_once(page.searched)
    qtbot.keyClick(page.find_field, Qt.Key.Key_Return)
    await searched
    [answer] = [r.findChild(type(page.found.summary), "foundAnswer") for r in page.found.rows]
    assert answer is not None
    assert answer.text().startswith("Seen at the first check on ")
    assert answer.text().endswith("by “Invoices”, so it did not fire")
    assert page.found.open_buttons == {}

    page.find_field.setText("no such invoice")
    searched = signal_once(page.searched)
    qtbot.keyClick(page.find_field, Qt.Key.Key_Return)
    await searched
    assert page.found.rows == []
    assert page.found.summary.text().startswith(
        "Not seen: Hookline has no event or key matching 'no such invoice'")
    page.found.grab().save("/tmp/hookline-find-not-seen.png")
