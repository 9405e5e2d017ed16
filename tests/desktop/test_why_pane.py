"""The "why" pane under the automations list, driven as a user would: it follows the
selection, says the answer first and the rest under headings in local time, and
keeps up as runs finish and areas change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.why_pane import NONE_CHOSEN, SEVERAL_CHOSEN, WhyPane, why_html
from engine.areas import AreaSpec
from engine.why import when_words
from tests.desktop.conftest import until
from tests.desktop.test_activity import feed_answering_404, feed_area
from tests.desktop.test_automations import area, page_for

HOOK = {
    "name": "Notes from a hook",
    "trigger": {"service": "webhook", "trigger": "incoming",
                "params": {"secret": "hush-5b1e"}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "{{ trigger.body }}"}}],
}


def headings(pane: WhyPane) -> list[str]:
    """The section headings the pane shows, in order."""
    document = pane.details.document()
    found = []
    block = document.begin()
    while block.isValid():
        if block.charFormat().fontWeight() >= 600 or block.blockFormat().headingLevel():
            found.append(block.text())
        block = block.next()
    return found


async def explained(pane: WhyPane, area_id: str) -> None:
    await until(lambda: pane.area_id == area_id and pane.details.isVisible())


async def test_the_pane_follows_the_selection_with_the_answer_first(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    timer = await bridge.save_area(AreaSpec.from_dict(area("Hourly")))
    other = await bridge.save_area(AreaSpec.from_dict(area("Other")))
    page = await page_for(qtbot, bridge)
    pane = page.why
    assert pane.isVisible() and pane.answer.text() == NONE_CHOSEN
    assert not pane.details.isVisible()

    page.select(timer.id)
    await explained(pane, timer.id)
    why = await bridge.why(timer.id)
    assert why.timing is not None
    first = why.timing.next_times[0]
    # the answer first, with the next time as the user's clock shows it
    assert pane.answer.text() == why.answer
    assert why.answer.startswith(f"It is waiting: the next run is {when_words(first)} "
                                 "(every hour).")
    assert headings(pane) == ["State", "Schedule",
                              "Reaction 1 (Notifications: Show a notification)"]
    text = pane.details.toPlainText()
    assert "Catch-up is “skip”" in text and "Has not acted yet." in text

    page.table.selectAll()
    await until(lambda: pane.answer.text() == SEVERAL_CHOSEN)
    assert not pane.details.isVisible() and pane.area_id is None
    page.select(other.id)
    await explained(pane, other.id)
    assert pane.answer.text().startswith("It is waiting: the next run is ")


async def test_the_pane_keeps_up_as_runs_finish_and_the_area_changes(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    timer = await bridge.save_area(AreaSpec.from_dict(area("Hourly")))
    page = await page_for(qtbot, bridge)
    pane = page.why
    page.select(timer.id)
    await explained(pane, timer.id)
    [run_id] = [e.id for e in await bridge.run_now(timer.id)]
    assert run_id
    await until(lambda: "run #1 succeeded" in pane.details.toPlainText())

    await bridge.set_enabled(timer.id, False)  # as the switch does
    await until(lambda: pane.answer.text() == "It is off: switch it on to let it fire.")
    assert "No run while it is off." in pane.details.toPlainText()
    await bridge.set_enabled(timer.id, True)
    await until(lambda: pane.answer.text().startswith("It is waiting: "))
    # Snoozed from the list or the tray: the pane says so at once (the area.state signal).
    await bridge.snooze(timer.id, datetime.now(UTC) + timedelta(hours=1))
    await until(lambda: pane.answer.text().startswith("It is snoozed until "))
    await bridge.wake(timer.id)
    await until(lambda: pane.answer.text().startswith("It is waiting: "))


async def test_a_failing_feed_says_its_error_and_its_checks(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    async with feed_answering_404(bridge) as url:
        page = await page_for(qtbot, bridge)
        health = page.why.bridge.triggerHealth
        failing: list[Any] = []
        health.connect(lambda *args: failing.append(args))
        feed = await bridge.save_area(AreaSpec.from_dict(feed_area(url)))
        await until(lambda: bool(failing))  # its first check failed
        await until(lambda: page.model.row_of(feed.id) >= 0)
        page.select(feed.id)
        pane = page.why
        await explained(pane, feed.id)
        answer = pane.answer.text()
        assert answer.startswith("Its checks fail: ") and "404" in answer
        assert "The next try is " in answer
        assert headings(pane)[:2] == ["State", "Checks"]
        text = pane.details.toPlainText()
        assert "Failed: " in text and "Hookline keeps each automation's last 50 checks." in text


async def test_a_refused_delivery_is_said_without_its_body(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    hook = await bridge.save_area(AreaSpec.from_dict(HOOK))
    url = await bridge.webhook_url(hook.id)
    assert url is not None
    page = await page_for(qtbot, bridge)
    pane = page.why
    page.select(hook.id)
    await explained(pane, hook.id)
    assert pane.answer.text().startswith("It is waiting for a delivery: none has arrived "
                                         "since Hookline started ")
    async with aiohttp.ClientSession() as session, session.post(
            url, data=b'{"note": "s3cret-body"}',
            headers={"X-Hub-Signature-256": "sha256=00"}) as resp:
        assert resp.status == 401
    pane.live.now()  # a refusal starts no run: the pane reads it at its next refresh
    await until(lambda: pane.answer.text().startswith("The last delivery, "))
    assert "was refused (401): " in pane.answer.text()
    text = pane.details.toPlainText()
    assert "Deliveries" in headings(pane) and "Refused (401): " in text
    assert "no body or header is kept" in text and "s3cret" not in text


async def test_the_pane_hides_with_the_list_and_shows_its_details_as_rich_text(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    page = await page_for(qtbot, bridge)
    assert page.stack.currentWidget() is page.empty and not page.why.isVisible()
    timer = await bridge.save_area(AreaSpec.from_dict(area("First <b>bold</b>")))
    await until(lambda: page.stack.currentWidget() is page.table)
    assert page.why.isVisible()
    why = await bridge.why(timer.id)
    rich = why_html(why)
    assert "<h4>State</h4>" in rich and "<b>bold</b>" not in rich
    # the divider gives the list more room, or closes the pane
    assert page.splitter.orientation() is Qt.Orientation.Vertical
    assert not page.splitter.isCollapsible(0) and page.splitter.isCollapsible(1)
