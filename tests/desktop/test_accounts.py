"""The Accounts screen: what is connected, what needs reconnecting, removing one."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.pages.accounts import AccountsPage
from engine.areas import AreaSpec
from engine.auth.session import Account
from tests.desktop.conftest import until


async def test_accounts_show_their_state_and_can_be_removed(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    page = AccountsPage(bridge)
    qtbot.addWidget(page)
    await page.refresh()
    assert page.empty.isVisibleTo(page) and not page.table.isVisibleTo(page)

    accounts = bridge.engine.accounts
    await accounts.store.save(Account("acc-1", "github", "api_key", "octocat", []))
    await bridge.save_area(AreaSpec.from_dict({
        "name": "Issues", "trigger": {"service": "github", "trigger": "new_issue",
                                      "account": "acc-1", "params": {"repo": "o/r"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "{{ trigger.title }}"}}]}))
    await page.refresh()
    assert page.state()["rows"] == [("octocat", "Working")]
    used = page.table.item(0, 3)
    assert used is not None and used.text() == "1 automation"

    # A refused refresh marks it; the screen follows the engine's event by itself.
    account = await accounts.store.get("acc-1")
    assert account is not None
    await accounts.mark_needs_reconnect(account, "refresh token revoked")
    await until(lambda: page.state()["rows"] == [("octocat", "Needs reconnecting")])

    page.table.selectRow(0)
    assert page.reconnect_button.isEnabled()
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    page.remove_button.click()
    await until(lambda: page.state()["rows"] == [])
    assert await accounts.accounts() == []
    assert page.status.text() == ("Removed octocat. GitHub still accepts the token you pasted "
                                  "until you revoke it there.")


async def test_connecting_a_token_service_asks_for_the_token(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    page = AccountsPage(bridge)
    qtbot.addWidget(page)
    added: list[tuple[str, str]] = []

    async def add_token(service_id: str, token: str, name: str | None = None) -> Any:
        # called on the engine's thread, as the real one is
        added.append((service_id, token))
        return await bridge.engine.accounts.store.save(
            Account("acc-2", service_id, "api_key", "@mybot", []))

    monkeypatch.setattr(bridge.engine.accounts, "add_token", add_token)
    monkeypatch.setattr(page, "ask_token", lambda service: "123:abc")
    telegram = bridge.registry.service("telegram")
    account = await page.connect_service(telegram)
    assert account is not None and account.name == "@mybot"
    assert added == [("telegram", "123:abc")]
    assert page.status.text() == "Connected Telegram as @mybot."
    assert page.state()["rows"] == [("@mybot", "Working")]
