"""The editor's account picker for HTTP, which may act as a custom OAuth 2 provider's
account: opening and saving keeps the account; "No account" removes it."""

from __future__ import annotations

from typing import Any

from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.editor import AreaEditor
from engine.areas import AreaSpec
from engine.auth.session import Account
from tests.desktop.conftest import signal_once, until

HTTP_AS_ACME: dict[str, Any] = {
    "name": "Ping Acme",
    "enabled": False,
    "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
    "reactions": [{"service": "http", "reaction": "request", "account": "acme:ada",
                   "params": {"method": "GET", "url": "https://api.acme.test/me"}}],
}


async def connected(bridge: EngineBridge) -> None:
    """An account of the custom provider "acme", and a GitHub one (not offered to HTTP)."""
    for account in (Account("acc-acme", "acme", "oauth2", "ada", ["read"]),
                    Account("acc-gh", "github", "api_key", "octocat", [])):
        await bridge.call(bridge.engine.accounts.store.save(account))


async def save(editor: AreaEditor) -> None:
    saved = signal_once(editor.saved)
    editor.save_button.click()
    await saved


async def opened(qtbot: QtBot, bridge: EngineBridge, **kwargs: Any) -> AreaEditor:
    editor = AreaEditor(bridge, **kwargs)
    qtbot.addWidget(editor)
    editor.show()
    await until(lambda: editor.cards[0].picker.account_note.text() != "")
    return editor


async def test_an_http_step_keeps_its_custom_account_through_open_and_save(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    await connected(bridge)
    area = await bridge.save_area(AreaSpec.from_dict(HTTP_AS_ACME))
    assert area.spec.reactions[0].account == "acc-acme"

    editor = await opened(qtbot, bridge, area_id=area.id)
    picker = editor.cards[0].picker
    assert picker.account_row.isVisible() and picker.account_combo.isEnabled()
    assert [picker.account_combo.itemText(i) for i in range(picker.account_combo.count())
            ] == ["No account", "acme: ada"]
    assert picker.account_combo.currentText() == "acme: ada"
    assert picker.account_note.text().startswith("Requests carry this account's token")
    await save(editor)
    assert bridge.area(area.id).spec.reactions[0].account == "acc-acme"

    again = await opened(qtbot, bridge, area_id=area.id)
    combo = again.cards[0].picker.account_combo
    assert combo.currentText() == "acme: ada"
    combo.setCurrentIndex(combo.findText("No account"))
    combo.activated.emit(combo.currentIndex())  # as a user's choice does
    await save(again)
    assert bridge.area(area.id).spec.reactions[0].account is None


async def test_an_imported_step_names_its_account_provider_colon_name(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    await connected(bridge)
    editor = await opened(qtbot, bridge, spec_dict=HTTP_AS_ACME)  # account: acme:ada
    assert editor.cards[0].picker.account_combo.currentText() == "acme: ada"
    assert editor.spec_dict()["reactions"][0]["account"] == "acc-acme"


async def test_http_without_a_custom_account_says_it_acts_as_no_one(
        qtbot: QtBot, bridge: EngineBridge) -> None:
    spec = {**HTTP_AS_ACME, "reactions": [{**HTTP_AS_ACME["reactions"][0], "account": None}]}
    editor = await opened(qtbot, bridge, spec_dict=spec)
    picker = editor.cards[0].picker
    assert picker.account_combo.count() == 1
    assert picker.account_combo.currentText() == "No account"
    assert "requests carry no one's token" in picker.account_note.text()
    assert "account" not in editor.spec_dict()["reactions"][0]
