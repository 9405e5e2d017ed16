"""The onboarding path, measured as a user makes it: from the first window to a working
"new feed item → notification" automation, its run seen in Activity, in under 10 clicks
and 60 seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from desktop.main_window import MainWindow
from desktop.models import AreasModel
from desktop.pages.activity import ActivityPage
from desktop.pages.automations import AutomationsPage
from desktop.pages.presets import PresetsPage
from tests.desktop.conftest import until

PRESET = "New feed item → notification"
NEW_TITLE = "Hookline 2.0 is out"


class Feed:
    """A blog's RSS document, served for real on 127.0.0.1; ``post`` adds an item."""

    def __init__(self) -> None:
        self.items: list[tuple[str, datetime]] = [
            ("Hello world", datetime(2026, 1, 5, 9, tzinfo=UTC)),
            ("Second post", datetime(2026, 2, 1, 9, tzinfo=UTC))]

    def post(self, title: str) -> None:
        self.items.append((title, self.items[-1][1] + timedelta(days=1)))

    async def serve(self, _request: web.Request) -> web.Response:
        entries = "".join(
            f"<item><title>{title}</title><link>https://blog.example/{n}</link>"
            f"<guid>https://blog.example/{n}</guid>"
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
            for n, (title, when) in reversed(list(enumerate(self.items))))
        return web.Response(
            text=f'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
                 f"<link>https://blog.example/</link>{entries}</channel></rss>",
            content_type="application/rss+xml")


@pytest.fixture
async def feed() -> AsyncIterator[tuple[Feed, str]]:
    served = Feed()
    app = web.Application()
    app.router.add_get("/feed.xml", served.serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield served, str(server.make_url("/feed.xml"))
    await server.close()


class User:
    """Real clicks on the real widgets, counted."""

    def __init__(self, qtbot: QtBot) -> None:
        self.qtbot = qtbot
        self.clicks = 0
        self.started: float | None = None

    def click(self, widget: QWidget, at: QPoint | None = None) -> None:
        if self.started is None:
            self.started = time.monotonic()
        self.clicks += 1
        if at is None:
            self.qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)
        else:
            self.qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=at)

    def click_row(self, view: QAbstractItemView, row: int, column: int = 0) -> None:
        index = view.model().index(row, column)
        view.scrollTo(index)
        self.click(view.viewport(), view.visualRect(index).center())

    def type(self, text: str) -> None:
        widget = QApplication.focusWidget()
        assert widget is not None, "typing into nothing"
        self.qtbot.keyClicks(widget, text)


def visible_editor(window: MainWindow) -> AreaEditor | None:
    return next((e for e in window.findChildren(AreaEditor) if e.isVisible()), None)


async def test_from_the_first_window_to_a_feed_notification_in_activity(
        qtbot: QtBot, bridge: EngineBridge, feed: tuple[Feed, str]) -> None:
    """Counting: each mouse click is one (a sidebar entry, a button, a row); typing is
    none; choosing from a combo box would be one per open-and-choose (this path needs
    none). The clock runs from the first click to the run showing in Activity."""
    served, url = feed
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    await until(lambda: QApplication.activeWindow() is window)
    user = User(qtbot)

    # Presets → "Use" on the feed preset: the editor opens at the one blank, the address.
    user.click_row(window.sidebar, [k for k, _, _ in MainWindow.SCREENS].index("presets"))
    presets = window.pages["presets"]
    assert isinstance(presets, PresetsPage) and presets.isVisible()
    [card] = [c for c in presets.cards if c.preset.name == PRESET]
    user.click(card.use_button)
    await until(lambda: visible_editor(window) is not None)
    editor = visible_editor(window)
    assert editor is not None
    await until(lambda: QApplication.activeWindow() is editor)
    user.type(url)
    user.click(editor.save_button)
    await until(lambda: visible_editor(window) is None)  # saved and closed
    [area] = bridge.areas()
    assert area.spec.trigger.params["url"] == url
    # Its first check remembers what the feed holds (nothing fires for those posts).
    deadline = asyncio.get_running_loop().time() + 20
    while not await bridge.checks(area.id):
        assert asyncio.get_running_loop().time() < deadline, "the feed was never checked"
        await asyncio.sleep(0.05)

    served.post(NEW_TITLE)  # the blog publishes
    # Automations → the automation's row → Run now (it checks the feed, fires the newest).
    user.click_row(window.sidebar, 0)
    automations = window.pages["automations"]
    assert isinstance(automations, AutomationsPage)
    await until(lambda: automations.model.row_of(area.id) >= 0)
    row = automations.proxy.mapFromSource(
        automations.model.index(automations.model.row_of(area.id), AreasModel.NAME)).row()
    user.click_row(automations.table, row, AreasModel.NAME)
    user.click(automations.run_button)

    # Activity → the run: its event is the new post.
    user.click_row(window.sidebar, [k for k, _, _ in MainWindow.SCREENS].index("activity"))
    activity = window.pages["activity"]
    assert isinstance(activity, ActivityPage)

    def finished() -> bool:
        return activity.model.rowCount() > 0 and activity.model.run(0)["status"] == "succeeded"

    await until(finished, 30)
    user.click_row(activity.table, 0)
    await until(lambda: NEW_TITLE in activity.detail.payload_view.toPlainText())
    assert user.started is not None
    seconds = time.monotonic() - user.started
    run = activity.model.run(0)
    assert run["area_id"] == area.id
    assert run["steps"][0]["params"]["title"] == f"Blog: {NEW_TITLE}"  # the notification
    assert user.clicks < 10, f"{user.clicks} clicks"  # 8 when this was written
    assert seconds < 60, f"{seconds:.1f} s"  # well under a second offscreen
