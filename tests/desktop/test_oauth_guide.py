"""The guide to registering your own OAuth app: per service, the redirect URI the engine
sends, Copy, the client ID checked before Connect, and a dialog that fits a laptop."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMenu, QMessageBox
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.oauth_guide import OAuthGuide
from desktop.pages.accounts import AccountsPage
from engine.auth.oauth import LoopbackRedirect
from engine.catalog.service import Service
from engine.registry import Registry
from tests.desktop.conftest import until
from tests.desktop.test_accounts import shown

#: A client ID of the right shape, for the providers that document one.
GOOD_IDS = {"gdrive": "123456789012-abcdefghijklmnop0123456789abcdef.apps.googleusercontent.com",
            "github": "Ov23liABCDEFGHIJ1234"}


def oauth_services() -> list[Service]:
    return [s for s in Registry.load() if s.oauth is not None]


def guide_for(qtbot: QtBot, service: Service) -> OAuthGuide:
    guide = OAuthGuide(service)
    qtbot.addWidget(guide)
    guide.show()
    return guide


@pytest.mark.parametrize("service", oauth_services(), ids=lambda s: s.id)
async def test_the_guide_shows_the_redirect_uri_the_engine_sends(
        qtbot: QtBot, service: Service) -> None:
    guide = guide_for(qtbot, service)
    spec = guide.spec
    shown = guide.redirect.text()
    assert guide.redirect.isReadOnly()
    # What the sign-in listens on and sends (engine/auth/oauth.py's flow).
    listener = LoopbackRedirect(spec.loopback_host, spec.fixed_port or 0, "state")
    if spec.fixed_port:
        assert shown == listener.redirect_uri  # registered exactly as sent
    else:
        sent = await listener.start()
        await listener.aclose()
        # The provider accepts any port on the loopback address: the same URI but for it.
        assert urlsplit(sent)._replace(netloc=urlsplit(sent).hostname or "") == \
            urlsplit(shown)
        assert "accepts any port" in guide.redirect_note.text()

    QGuiApplication.clipboard().clear()
    guide.copy_button.click()
    assert QGuiApplication.clipboard().text() == shown
    assert guide.copy_button.text() == "Copied"


@pytest.mark.parametrize("service", oauth_services(), ids=lambda s: s.id)
async def test_connect_waits_for_a_client_id_that_looks_right(
        qtbot: QtBot, service: Service) -> None:
    guide = guide_for(qtbot, service)
    spec = guide.spec
    assert not guide.connect_button.isEnabled() and not guide.problem.isVisible()
    if guide.secret_edit is not None:
        qtbot.keyClicks(guide.secret_edit, "s3cret")
    qtbot.keyClicks(guide.client_id_edit, "my app id")
    assert not guide.connect_button.isEnabled()
    assert guide.problem.isVisible()
    assert guide.problem.text().startswith("It contains a space")

    guide.client_id_edit.setText(GOOD_IDS.get(service.id, "a1B2c3D4e5F6g7"))
    assert guide.connect_button.isEnabled() and not guide.problem.isVisible()
    if spec.client_id_pattern:  # a plausible id of another shape is refused, saying why
        guide.client_id_edit.setText("a1B2c3D4e5F6g7")
        assert not guide.connect_button.isEnabled()
        assert guide.problem.text() == (f"This does not look like a {service.name} client "
                                        f"ID: {spec.client_id_shape}.")
    if guide.secret_edit is not None:  # a secret is wanted too
        guide.client_id_edit.setText(GOOD_IDS.get(service.id, "a1B2c3D4e5F6g7"))
        guide.secret_edit.clear()
        assert not guide.connect_button.isEnabled()


@pytest.mark.parametrize("service", oauth_services(), ids=lambda s: s.id)
async def test_the_guide_fits_a_laptop_screen(
        qtbot: QtBot, service: Service, tmp_path: Path) -> None:
    guide = guide_for(qtbot, service)
    await until(lambda: guide.isVisible())
    qtbot.keyClicks(guide.client_id_edit, "bad id")  # the message shows whole too
    assert guide.frameGeometry().width() <= 720, guide.width()
    assert guide.frameGeometry().height() <= 700, guide.height()
    layout = guide.layout()
    assert layout is not None and guide.height() >= layout.totalHeightForWidth(guide.width())
    assert guide.grab().save(str(tmp_path / f"oauth-guide-{service.id}.png"))  # to look at


async def test_how_do_i_get_these_opens_the_guide_then_signs_in_through_it(
        qtbot: QtBot, bridge: EngineBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts → "How do I get these?" → Spotify: the guide, then the browser sign-in
    with the redirect URI the guide showed; the provider's refusal is shown."""
    opened: list[str] = []

    def browser(url: str, *_args: Any, **_kwargs: Any) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    page = AccountsPage(bridge)
    qtbot.addWidget(page)
    page.show()
    spotify = bridge.registry.service("spotify")
    assert "How do I get these?" in page.guide_link.text()
    page.guide_link.linkActivated.emit("#guide")
    menu = await shown(QMenu)
    [choice] = [a for a in menu.actions() if a.text() == spotify.name]
    choice.trigger()
    guide = await shown(OAuthGuide)
    assert guide.windowTitle() == "Connect Spotify: your own OAuth app"
    registered = guide.redirect.text()
    qtbot.keyClicks(guide.client_id_edit, "0123456789abcdef0123456789abcdef")
    guide.connect_button.click()

    await until(lambda: bool(opened))
    query = parse_qs(urlsplit(opened[0]).query)
    assert query["client_id"] == ["0123456789abcdef0123456789abcdef"]
    [sent] = query["redirect_uri"]
    assert urlsplit(sent)._replace(netloc="127.0.0.1") == urlsplit(registered)
    async with aiohttp.ClientSession() as http, http.get(
            sent, params={"error": "access_denied", "state": query["state"][0]}):
        pass
    refusal = await shown(QMessageBox)
    assert refusal.windowTitle() == "Spotify not connected"
    refusal.accept()
    await until(lambda: page.status.text() == "")
    assert await bridge.accounts() == []
    assert await bridge.has_oauth_client("spotify")  # kept for the next try

