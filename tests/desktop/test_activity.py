"""Activity: runs appear as areas fire, filters narrow them, the detail pane shows what
happened, and Replay sends an event again."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPlainTextEdit
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.pages.activity import (
    EMPTY_TEXT,
    NO_MATCH_TEXT,
    ActivityPage,
    RunDetail,
    next_try,
)
from engine.areas import Area, AreaSpec
from tests.desktop.conftest import signal_once, until


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hello_area(name: str = "Hello") -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "Hello {{ trigger.missed }}"}}],
    }


def failing_area() -> dict[str, Any]:
    return {
        "name": "Ping nobody",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "http", "reaction": "request",
                       "params": {"method": "GET",
                                  "url": f"http://127.0.0.1:{closed_port()}/ping"}}],
    }


async def fire(bridge: EngineBridge, area: Area) -> dict[str, Any]:
    finished = signal_once(bridge.runFinished)
    await bridge.run_now(area.id)
    (run,) = await finished
    return dict(run)


@pytest.fixture
async def page(bridge: EngineBridge, qtbot: QtBot) -> ActivityPage:
    widget = ActivityPage(bridge)
    qtbot.addWidget(widget)
    widget.resize(1000, 680)
    widget.show()
    await widget.refresh()
    return widget


async def test_runs_appear_live_as_areas_fire_and_the_selection_stays(
        bridge: EngineBridge, page: ActivityPage) -> None:
    assert page.stack.currentWidget() is page.empty
    assert page.empty.text() == EMPTY_TEXT

    area = await bridge.save_area(AreaSpec.from_dict(hello_area()))
    run = await fire(bridge, area)
    await until(lambda: page.model.rowCount() == 1)  # no refresh asked: it came live
    assert page.stack.currentWidget() is page.splitter
    index = page.model.index(0, page.model.AREA)
    assert page.model.data(index) == "Hello"
    assert page.model.data(page.model.index(0, page.model.STATUS)) == "succeeded"

    page.table.selectRow(0)
    assert page.detail.run is not None and page.detail.run["id"] == run["run_id"]
    second = await fire(bridge, area)
    await until(lambda: page.model.rowCount() == 2)
    assert page.model.run(0)["id"] == second["run_id"]  # newest first
    assert [i.row() for i in page.table.selectionModel().selectedRows()] == [1]
    assert page.detail.run is not None and page.detail.run["id"] == run["run_id"]


async def test_filters_by_result_and_by_automation(bridge: EngineBridge,
                                                   page: ActivityPage) -> None:
    good = await bridge.save_area(AreaSpec.from_dict(hello_area()))
    bad = await bridge.save_area(AreaSpec.from_dict(failing_area()))
    await fire(bridge, good)
    assert (await fire(bridge, bad))["status"] == "failed"
    await until(lambda: page.model.rowCount() == 2)

    assert [page.status_filter.itemText(i) for i in range(page.status_filter.count())] == [
        "All results", "Succeeded", "Failed", "Skipped", "Missed", "Interrupted"]
    refreshed = signal_once(page.refreshed)
    page.status_filter.setCurrentIndex(page.status_filter.findData("failed"))
    await refreshed
    assert [page.model.run(r)["area_name"] for r in range(page.model.rowCount())] == [
        "Ping nobody"]

    refreshed = signal_once(page.refreshed)
    page.status_filter.setCurrentIndex(page.status_filter.findData("missed"))
    await refreshed
    assert page.stack.currentWidget() is page.empty
    assert page.empty.text() == NO_MATCH_TEXT

    page.status_filter.setCurrentIndex(0)
    names = [page.area_filter.itemText(i) for i in range(page.area_filter.count())]
    assert names == ["All automations", "Hello", "Ping nobody"]
    await page.select_area(good.id)
    assert page.area_filter.currentText() == "Hello"
    assert {page.model.run(r)["area_id"] for r in range(page.model.rowCount())} == {good.id}
    await page.select_area(None)
    assert page.model.rowCount() == 2


async def test_detail_shows_payload_steps_attempts_and_error(
        bridge: EngineBridge, page: ActivityPage) -> None:
    bad = await bridge.save_area(AreaSpec.from_dict(failing_area()))
    run = await fire(bridge, bad)
    await page.refresh()
    assert page.select_run(run["run_id"])
    detail = page.detail
    assert detail.title.text().startswith("Ping nobody")
    assert detail.status.text() == "Failed"
    assert '"missed": 0' in detail.payload_view.toPlainText()
    assert detail.payload_view.isReadOnly()
    assert detail.error_box.isVisible()
    assert "cannot reach" in detail.error_label.text()
    assert "after 3 attempts" in detail.error_label.text()
    assert detail.error_label.text().startswith("Reaction 1 (Send a request): cannot reach")
    assert detail.condition.text().startswith("No condition")
    # The trace id its requests carried, to follow the event in other services' logs.
    [record] = await bridge.runs(bad.id)
    assert re.fullmatch(r"[0-9a-f]{32}", detail.trace_label.text())
    assert detail.trace_label.text() == record["trace_id"]
    [box] = detail.step_boxes
    assert box.title() == "1. HTTP: Send a request"
    texts = [w.text() for w in box.findChildren(QLabel) if w.objectName() == "attempt"]
    assert len(texts) == 3 and all("cannot reach" in t for t in texts)
    assert "tried again" in texts[0]
    sent = [v.toPlainText() for v in box.findChildren(QPlainTextEdit)]
    assert any('"method": "GET"' in s for s in sent)


async def test_skipped_run_says_why(bridge: EngineBridge, page: ActivityPage) -> None:
    spec = hello_area("Only when caught up")
    spec["condition"] = "{{ trigger.catch_up }}"
    area = await bridge.save_area(AreaSpec.from_dict(spec))
    run = await fire(bridge, area)
    await page.refresh()
    page.select_run(run["run_id"])
    assert page.detail.status.text() == "Skipped"
    assert page.detail.condition.text() == ("{{ trigger.catch_up }}\n"
                                            "→ false: the reactions were skipped")
    assert not page.detail.error_box.isVisible()


async def test_replay_sends_the_event_again_as_a_new_run(
        bridge: EngineBridge, page: ActivityPage, qtbot: QtBot) -> None:
    area = await bridge.save_area(AreaSpec.from_dict(hello_area()))
    first = await fire(bridge, area)
    await page.refresh()
    page.select_run(first["run_id"])
    assert page.detail.replay_button.isEnabled()

    finished = signal_once(bridge.runFinished)
    qtbot.mouseClick(page.detail.replay_button, Qt.MouseButton.LeftButton)
    (replayed,) = await finished
    assert replayed["run_id"] != first["run_id"] and replayed["status"] == "succeeded"
    await until(lambda: page.model.rowCount() == 2)
    assert page.detail.message.isVisible()
    assert page.detail.message.text().startswith("Sent again to Hello as event #")
    event = await bridge.journaled_event(page.model.run(0)["event_id"])
    assert event["source"] == "replay"
    assert event["payload"] == page.model.run(1)["trigger_payload"]


def test_replay_is_off_for_a_run_whose_event_is_gone(bridge: EngineBridge,
                                                     qtbot: QtBot) -> None:
    detail = RunDetail(bridge)
    qtbot.addWidget(detail)
    detail.show_run({"id": 7, "area_id": "a" * 36, "area_name": "Old", "event_id": None,
                     "status": "succeeded", "resumed": False, "trigger_payload": {"x": 1},
                     "condition": None, "steps": [], "error": None,
                     "started_at": None, "finished_at": None})
    assert not detail.replay_button.isEnabled()
    assert "no longer kept" in detail.event_label.text()


@contextlib.asynccontextmanager
async def feed_answering_404(bridge: EngineBridge) -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 whose feed is gone (on the engine's loop)."""
    from aiohttp import web

    async def gone(_request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    app = web.Application()
    app.router.add_get("/feed.xml", gone)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    port = await bridge.call(start())
    try:
        yield f"http://127.0.0.1:{port}/feed.xml"
    finally:
        await bridge.call(runner.cleanup())


def feed_area(url: str) -> dict[str, Any]:
    return {
        "name": "Python blog",
        "trigger": {"service": "rss", "trigger": "new_item", "params": {"url": url}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "{{ trigger.title }}"}}],
    }


async def test_a_feed_that_cannot_be_checked_is_shown_above_the_runs_with_its_next_try(
        page: ActivityPage, bridge: EngineBridge) -> None:
    assert not page.failing.isVisible()
    async with feed_answering_404(bridge) as url:
        failing = signal_once(bridge.triggerHealth)
        area = await bridge.save_area(AreaSpec.from_dict(feed_area(url)))
        area_id, error = await failing  # the first check, soon after it is saved
        assert area_id == area.id and error
        await until(lambda: page.failing.isVisible() and len(page.failing.lines) == 1)
        [line] = page.failing.lines
        [streak] = await bridge.failing_checks()
        text = line.accessibleName()
        assert text.startswith("“Python blog” cannot check for new items: ")
        assert "127.0.0.1" in text and "404" in text
        assert text.endswith(f"— next try at {next_try(streak['next_at'], 'interval')}")
        assert page.stack.currentWidget() is page.empty  # no run: the strip says why
        page.failing.grab().save("/tmp/hookline-failing-checks.png")
        page.grab().save("/tmp/hookline-activity-failing.png")

        turned_off = signal_once(bridge.areaChanged)
        await bridge.set_enabled(area.id, False)
        await turned_off
        await until(lambda: not page.failing.isVisible())
