"""Services: the catalog lists every service with its triggers and reactions, shows
plugins that failed to load, and starts a new automation from any of them."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.pages.services import BrokenPluginDetail, ServiceDetail, ServicesPage


def texts(widget: Any) -> list[str]:
    return [label.text() for label in widget.findChildren(QLabel)]


@pytest.fixture
def page(bridge: EngineBridge, qtbot: QtBot) -> ServicesPage:
    bridge.registry.broken["acme"] = "ModuleNotFoundError: No module named 'acme_sdk'"
    widget = ServicesPage(bridge)
    qtbot.addWidget(widget)
    widget.resize(1000, 680)
    widget.show()
    return widget


async def test_lists_every_service_and_the_broken_plugin(bridge: EngineBridge,
                                                         page: ServicesPage) -> None:
    names = [page.services.item(i).text() for i in range(page.services.count())]
    registry = bridge.registry
    assert names == [s.name for s in registry] + ["acme (failed to load)"]
    assert "Email" in names and "Timer" in names and "RSS / Atom" in names

    page.services.setCurrentRow(names.index("acme (failed to load)"))
    assert isinstance(page.detail, BrokenPluginDetail)
    assert page.detail.error.text() == "ModuleNotFoundError: No module named 'acme_sdk'"
    assert "This plugin failed to load" in texts(page.detail)


async def test_a_service_shows_its_triggers_reactions_and_account_needs(
        bridge: EngineBridge, page: ServicesPage, qtbot: QtBot) -> None:
    assert page.show_service("rss")
    assert isinstance(page.detail, ServiceDetail)
    shown = texts(page.detail)
    assert "RSS / Atom" in shown
    assert "No account needed" in shown
    assert "Fires for each item that appears in an RSS or Atom feed." in shown
    assert [c.action_id for c in page.cards()] == ["new_item"]
    page.show_service("email")
    assert isinstance(page.detail, ServiceDetail)
    assert page.detail.auth.text().startswith("No account needed (you give a password")

    page.show_service("files")
    cards = {c.action_id: c for c in page.cards()}
    assert set(cards) == {"file_created", "file_modified", "write_text", "append_text",
                          "copy_file", "move_file"}
    assert cards["file_created"].is_trigger and not cards["copy_file"].is_trigger
    assert "Copies a file to a folder or to a new path, keeping its dates." in texts(
        cards["copy_file"])

    # keyboard: the list moves through the services
    page.services.setFocus()
    row = page.services.currentRow()
    qtbot.keyClick(page.services, Qt.Key.Key_Down)
    assert page.services.currentRow() == row + 1
    assert page.detail is not None and page.detail.isVisible()


async def test_a_reaction_that_needs_a_setting_says_so(bridge: EngineBridge,
                                                       page: ServicesPage) -> None:
    page.show_service("shell")
    [card] = page.cards()
    assert card.requirement is not None
    assert card.requirement.text() == "Off until you turn on “Run shell commands” in Settings."


async def test_use_opens_the_editor_with_the_trigger_or_reaction(
        page: ServicesPage, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[dict[str, Any]] = []
    monkeypatch.setattr(page, "open_editor", opened.append)
    page.show_service("rss")
    [card] = page.cards()
    assert card.use_button.text() == "Use in a new automation"
    qtbot.mouseClick(card.use_button, Qt.MouseButton.LeftButton)
    page.show_service("notify")
    [card] = page.cards()
    qtbot.mouseClick(card.use_button, Qt.MouseButton.LeftButton)
    assert opened == [
        {"name": "", "trigger": {"service": "rss", "trigger": "new_item", "params": {}}},
        {"name": "", "reactions": [{"service": "notify", "reaction": "notify",
                                    "params": {}}]},
    ]


async def test_use_opens_the_real_editor(page: ServicesPage, qtbot: QtBot) -> None:
    editor_module = pytest.importorskip("desktop.editor")
    page.show_service("rss")
    editor = page.use("rss", "new_item", True)
    assert isinstance(editor, editor_module.AreaEditor)
    assert editor.isVisible()
    assert editor.spec_dict()["trigger"]["trigger"] == "new_item"
    editor.close()  # a child of the page, deleted on close


async def test_turning_a_setting_on_updates_the_card(bridge: EngineBridge,
                                                     page: ServicesPage) -> None:
    page.show_service("shell")
    settings = bridge.engine.settings.replace(allow_shell=True)
    await bridge.save_settings(settings)
    [card] = page.cards()
    assert card.requirement is not None
    assert card.requirement.text() == "Allowed by the setting “Run shell commands”."
