"""The Accounts screen: what is connected, what needs reconnecting, removing one."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QWidget,
)
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.main_window import MainWindow
from desktop.oauth_guide import OAuthGuide
from desktop.pages.accounts import AccountsPage
from engine.areas import AreaSpec
from engine.auth.session import Account
from tests.desktop.conftest import until

T = TypeVar("T", bound=QWidget)


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

    async def ask_token(_service: Any) -> str:
        return "123:abc"

    monkeypatch.setattr(page, "ask_token", ask_token)
    telegram = bridge.registry.service("telegram")
    account = await page.connect_service(telegram)
    assert account is not None and account.name == "@mybot"
    assert added == [("telegram", "123:abc")]
    assert page.status.text() == "Connected Telegram as @mybot."
    assert page.state()["rows"] == [("@mybot", "Working")]


async def test_the_oauth_app_dialog_stops_no_other_screen(qtbot: QtBot,
                                                          bridge: EngineBridge) -> None:
    """Accounts → Connect → GitHub asks for the OAuth app in a dialog; while it waits for
    the user, the other screens go on (a nested Qt loop inside the sign-in's task would
    have stopped them for good)."""
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    window.show()
    page = window.show_screen("accounts")
    assert isinstance(page, AccountsPage)
    connecting = page.tasks.spawn(page.connect_service(bridge.registry.service("github")))
    # GitHub takes a browser sign-in or a pasted token: the browser, then the app's ID
    click(await shown(QMessageBox), "Sign in with the browser")
    dialog = await shown(OAuthGuide)
    assert dialog.windowTitle() == "Connect GitHub: your own OAuth app"
    area = await bridge.save_area(AreaSpec.from_dict({
        "name": "Hello", "trigger": {"service": "timer", "trigger": "every",
                                     "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "Hello"}}]}))
    await bridge.run_now(area.id)
    activity = window.show_screen("activity")  # behind the dialog, the window goes on
    await until(lambda: activity.model.rowCount() == 1)  # type: ignore[attr-defined]
    assert dialog.isVisible()  # still waiting for the user meanwhile
    dialog.reject()
    assert await connecting is None


async def test_a_service_with_two_ways_in_asks_which_in_plain_words(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    page = AccountsPage(bridge)
    qtbot.addWidget(page)
    github = bridge.registry.service("github")
    connecting = page.tasks.spawn(page.connect_service(github))
    question = await shown(QMessageBox)
    assert sorted(b.text() for b in question.buttons()) == [
        "Cancel", "Paste a token", "Sign in with the browser"]
    assert "Paste a token: create a personal access token" in question.text()
    qtbot.keyClick(question, Qt.Key.Key_Escape)  # Esc cancels: nothing else is asked
    assert await connecting is None
    assert not [w for w in QApplication.topLevelWidgets()
                if isinstance(w, QInputDialog) and w.isVisible()]

    connecting = page.tasks.spawn(page.connect_service(github))
    click(await shown(QMessageBox), "Paste a token")
    token = await shown(QInputDialog)
    assert token.labelText() == "Personal access token:"
    assert token.textEchoMode() == QLineEdit.EchoMode.Password
    token.reject()
    assert await connecting is None
    assert await bridge.accounts() == []


async def test_the_oauth_app_dialog_fits_on_the_screen(qtbot: QtBot,
                                                       bridge: EngineBridge) -> None:
    """Each service's guide wraps its notes in a dialog narrower than a laptop's screen,
    and shows them whole."""
    page = AccountsPage(bridge)
    qtbot.addWidget(page)
    services = sorted((s for s in bridge.registry if s.oauth is not None),
                      key=lambda s: len(bridge.client_missing(s)), reverse=True)
    assert len(bridge.client_missing(services[0])) > 600  # Google Drive's, today
    for service in services:
        assert service.oauth is not None
        asking = page.tasks.spawn(page.ask_client(service))
        dialog = await shown(OAuthGuide)
        assert dialog.width() <= 720, service.id
        notes = [label.text() for label in dialog.findChildren(QLabel)]
        assert any(service.oauth.client_help.strip("()") in text for text in notes)
        dialog.reject()
        assert await asking is None


def click(box: QMessageBox, label: str) -> None:
    [button] = [b for b in box.buttons() if b.text() == label]
    button.click()


async def shown(kind: type[T]) -> T:
    """The dialog of ``kind`` once it shows."""
    found: list[T] = []

    def visible() -> bool:
        found[:] = [w for w in QApplication.topLevelWidgets()
                    if isinstance(w, kind) and w.isVisible()]
        return bool(found)

    await until(visible)
    return found[0]
