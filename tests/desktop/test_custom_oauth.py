"""Accounts → Add a custom OAuth 2 provider…: the dialog says under each field what is
wrong, and a provider it adds connects through Connect… like the built-in services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from PySide6.QtWidgets import QDialogButtonBox
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.custom_oauth import CustomProviderDialog
from desktop.pages.accounts import AccountsPage
from engine.auth.custom import CustomProvider
from tests.desktop.conftest import until
from tests.desktop.test_accounts import shown
from tests.engine.oauth_provider import Provider


def fill(dialog: CustomProviderDialog, **values: str) -> None:
    for name, value in values.items():
        dialog.fields[name].setText(value)


def save(dialog: CustomProviderDialog) -> None:
    box = dialog.findChild(QDialogButtonBox)
    assert box is not None
    box.button(QDialogButtonBox.StandardButton.Save).click()


def said(dialog: CustomProviderDialog) -> dict[str, str]:
    return {name: label.text() for name, label in dialog.problems.items()
            if label.isVisible()}


async def test_the_dialog_says_under_each_field_what_is_wrong(qtbot: QtBot) -> None:
    dialog = CustomProviderDialog(taken={"github"})
    qtbot.addWidget(dialog)
    dialog.show()
    fill(dialog, name="github", authorize_url="http://git.example/login/oauth/authorize",
         scopes="read:user read:repository")
    save(dialog)

    assert dialog.isVisible() and dialog.provider is None  # kept open to fix them
    assert said(dialog) == {
        "name": "“github” is the name of a built-in service: choose another, e.g. "
                "my-github.",
        "authorize_url": "The authorize URL must start with https://: over plain http "
                         "anyone on the network could read the codes and tokens (http is "
                         "allowed only for 127.0.0.1 and localhost).",
        "token_url": "Give the token URL.",
        "client_id": "Give the client ID of the OAuth app you registered at the provider."}
    assert dialog.focusWidget() is dialog.fields["name"]
    dialog.grab().save("/tmp/custom-oauth.png")

    fill(dialog, name="my-gitea", authorize_url="https://git.example/login/oauth/authorize",
         token_url="https://git.example/login/oauth/access_token",
         userinfo_url="https://git.example/api/v1/user", client_id="0f4b3b7e",
         client_secret="gto_secret")
    save(dialog)
    assert not dialog.isVisible()
    assert dialog.provider == CustomProvider(
        "my-gitea", "https://git.example/login/oauth/authorize",
        "https://git.example/login/oauth/access_token", ("read:user", "read:repository"),
        "https://git.example/api/v1/user")
    assert (dialog.client_id, dialog.client_secret) == ("0f4b3b7e", "gto_secret")


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    server = Provider()
    await server.start()
    yield server
    await server.aclose()


async def test_a_provider_added_on_the_page_connects_like_the_others(
        qtbot: QtBot, bridge: EngineBridge, provider: Provider,
        browser_that_approves: list[str]) -> None:
    page = AccountsPage(bridge)
    qtbot.addWidget(page)
    adding = page.tasks.spawn(page.add_custom_provider())
    dialog = await shown(CustomProviderDialog)
    fill(dialog, name="my-app", authorize_url=f"{provider.base}/authorize",
         token_url=f"{provider.base}/token", scopes="read write",
         userinfo_url=f"{provider.base}/userinfo", client_id=provider.client_id)
    save(dialog)
    added = await adding
    assert added is not None and added.name == "my-app"
    assert page.status.text() == ("Added the custom provider my-app. To sign in, choose "
                                  "Connect… → my-app.")

    menu = page.connect_button.menu()
    [connect] = [a for a in menu.actions() if a.text() == "my-app"]
    connect.trigger()
    await until(lambda: page.state()["rows"] == [("marta", "Working")])
    assert page.status.text() == "Connected my-app as marta."
    [asked] = provider.authorize_requests
    assert asked["scope"] == "read write"
