"""The real window attached to an engine in another place through RemoteEngine, over the
engine's real control channel: it shows and changes that engine as it would its own,
says which engine it shows, and what it cannot do from here."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon
from pytestqt.qtbot import QtBot

from desktop import app as desktop_app
from desktop import remote_dialog
from desktop.bridge import EngineBridge
from desktop.custom_oauth import CustomProviderDialog
from desktop.engine_thread import EngineThread
from desktop.main_window import MainWindow
from desktop.models import AreasModel
from desktop.pages.accounts import AccountsPage
from desktop.pages.activity import ActivityPage
from desktop.pages.automations import AutomationsPage
from desktop.pages.settings import SettingsPage
from desktop.remote_dialog import (
    USE_THIS_COMPUTER,
    ConnectDialog,
    secrets_of,
    show_engine,
    title,
)
from desktop.remote_engine import (
    RECONNECTING,
    SAVED,
    RemoteEngine,
    as_engine,
    local_session,
)
from desktop.tasks import WidgetTasks
from engine.app import Engine
from engine.areas import AreaSpec
from engine.auth.oauth import LoopbackRedirect
from engine.errors import HooklineError
from engine.registry import BUILTIN_MODULES, Registry
from engine.remote.client import RemoteTarget, pair, token_ref
from engine.settings import Settings, load_settings, save_settings
from engine.standby import ACTIVE, STANDBY
from tests.desktop.conftest import shown_window, signal_once, until
from tests.desktop.test_accounts import shown
from tests.desktop.test_activity import closed_port
from tests.desktop.test_custom_oauth import fill, save
from tests.engine.oauth_provider import Provider
from tests.engine.remote.conftest import REMOTE

NAME = "homeserver"


def area(name: str) -> dict[str, Any]:
    return {"name": name,
            "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
            "reactions": [{"service": "notify", "reaction": "notify",
                           "params": {"title": "Hello from {{ trigger.missed }}"}}]}


class Tray:
    """The tray as show_engine uses it: its menu and tooltip (the real tray refreshes
    from the engine on its own, which these tests do not need)."""

    def __init__(self) -> None:
        self.menu = QMenu()
        self.quit_action = QAction("Quit Hookline", self.menu)
        self.menu.addAction(self.quit_action)
        self.icon = QSystemTrayIcon()
        self.refreshes = 0

    def schedule_refresh(self, *_args: object) -> None:
        self.refreshes += 1


def remote_for(data_dir: Path, state: Path, **options: Any) -> RemoteEngine:
    return RemoteEngine(lambda: local_session(data_dir), state, name=NAME,
                        host="homeserver.local", **options)


@pytest.fixture
async def remote_thread(engine_thread: EngineThread, data_dir: Path, tmp_path: Path
                        ) -> AsyncIterator[EngineThread]:
    """The app's engine thread, holding a RemoteEngine attached to ``engine_thread``'s
    engine (another engine, in another place, reached over its control channel)."""
    thread = EngineThread(as_engine(remote_for(data_dir, tmp_path / "app")))
    await thread.start()
    yield thread
    await thread.stop()


@pytest.fixture
async def remote_bridge(remote_thread: EngineThread) -> AsyncIterator[EngineBridge]:
    WidgetTasks.resume()
    bridge = EngineBridge(remote_thread.engine, remote_thread)
    yield bridge
    await WidgetTasks.cancel_all()
    bridge.close()


async def window_on(qtbot: QtBot, bridge: EngineBridge) -> MainWindow:
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    tray = Tray()
    show_engine(bridge, window, tray, window.tasks.spawn)
    window.tray = tray  # type: ignore[attr-defined]
    window.show()
    return window


async def test_the_window_shows_and_changes_the_other_engine(
        qtbot: QtBot, engine: Engine, engine_thread: EngineThread,
        remote_bridge: EngineBridge) -> None:
    there = await engine_thread.call(engine.create_area(AreaSpec.from_dict(area("Stretch"))))
    window = await window_on(qtbot, remote_bridge)
    assert window.windowTitle() == "Hookline — homeserver"
    assert window.statusBar().currentMessage() == (
        "Attached to Hookline on homeserver (homeserver.local)")
    tray: Tray = window.tray  # type: ignore[attr-defined]
    assert USE_THIS_COMPUTER in [a.text() for a in tray.menu.actions()]

    # The automations list shows its areas, live.
    page = window.show_screen("automations")
    assert isinstance(page, AutomationsPage)
    await until(lambda: page.loaded and page.row_index(there.id, 0).isValid())
    assert page.row_index(there.id, AreasModel.NAME).data() == "Stretch"

    # An automation made in the editor is made on that engine.
    editor = window.new_automation()
    editor.set_spec_dict(area("Water"))
    made = await editor.save()
    assert made is not None
    assert engine.area(made).name == "Water"
    await until(lambda: page.row_index(made, 0).isValid())

    # A run there appears in Activity (its signals come over the stream).
    activity = window.show_screen("activity")
    assert isinstance(activity, ActivityPage)
    finished = signal_once(remote_bridge.runsFinished)
    await engine_thread.call(engine.run_now(there.id))
    [run] = (await finished)[0]
    assert run["status"] == "succeeded"
    await until(lambda: any(activity.model.run(r)["id"] == run["run_id"]
                            for r in range(activity.model.rowCount())))

    # The why pane answers from that engine.
    window.show_screen("automations")
    page.select(there.id)
    await until(lambda: page.why.area_id == there.id and page.why.details.isVisible())
    assert page.why.answer.text() == (await engine_thread.call(engine.why(there.id))).answer

    # Its settings are that engine's, and the page says which engine it is.
    settings = window.show_screen("settings")
    assert isinstance(settings, SettingsPage)
    assert settings.fields["retry_delay"].value() == engine.settings.retry_delay == 0.01
    assert settings.engine_button.text() == USE_THIS_COMPUTER
    assert settings.restore_button.isEnabled()  # its backups (test_settings_remote_restore)
    # what widens what the engine may do there is changed there (the engine refuses it)
    assert not settings.fields["allow_shell"].widget.isEnabled()
    assert not settings.fields["database_url"].widget.isEnabled()
    assert settings.fields["retry_delay"].widget.isEnabled()
    window.show_screen("automations")
    window.resize(1000, 600)
    window.grab().save("/tmp/remote.png")


async def test_saving_settings_saves_them_on_that_engine(
        engine: Engine, data_dir: Path, remote_bridge: EngineBridge, tmp_path: Path) -> None:
    changed = signal_once(remote_bridge.settingsChanged)
    await remote_bridge.save_settings(remote_bridge.settings.replace(pause_after_failures=7))
    await changed
    assert engine.settings.pause_after_failures == 7
    assert load_settings(data_dir).pause_after_failures == 7  # in its folder
    assert remote_bridge.settings.pause_after_failures == 7
    assert not (tmp_path / "app" / "settings.json").exists()  # not here


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    server = Provider(client_secret="cs-kept-on-the-homeserver")
    await server.start()
    yield server
    await server.aclose()


async def test_an_account_is_signed_in_from_here_and_kept_there(
        qtbot: QtBot, engine: Engine, engine_thread: EngineThread, provider: Provider,
        remote_bridge: EngineBridge, browser_that_approves: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    page = AccountsPage(remote_bridge)
    qtbot.addWidget(page)
    adding = page.tasks.spawn(page.add_custom_provider())
    dialog = await shown(CustomProviderDialog)
    fill(dialog, name="my-app", authorize_url=f"{provider.base}/authorize",
         token_url=f"{provider.base}/token", scopes="read write",
         userinfo_url=f"{provider.base}/userinfo", client_id=provider.client_id,
         client_secret=provider.client_secret or "")
    save(dialog)
    assert await adding is not None

    listening: list[tuple[str, asyncio.AbstractEventLoop]] = []
    start = LoopbackRedirect.start

    async def start_here(self: LoopbackRedirect) -> str:  # whose loop listens
        uri = await start(self)
        listening.append((uri, asyncio.get_running_loop()))
        return uri

    monkeypatch.setattr(LoopbackRedirect, "start", start_here)
    [connect] = [a for a in page.connect_button.menu().actions() if a.text() == "my-app"]
    connect.trigger()
    await until(lambda: page.state()["rows"] == [("marta", "Working")])
    assert page.status.text() == "Connected my-app as marta."
    assert "Hookline can now act as your my-app account “marta”." in browser_that_approves[0]

    # The redirect came back to the window's side (its engine thread's loop), and the
    # engine exchanged the code: with the secret and the PKCE verifier only it had.
    [(redirect_uri, loop)] = listening
    assert loop is remote_bridge.engine_thread.loop
    assert loop is not engine_thread.loop
    [asked] = provider.authorize_requests
    assert asked["redirect_uri"] == redirect_uri
    [exchanged] = provider.token_requests
    assert exchanged["client_secret"] == "cs-kept-on-the-homeserver"
    assert exchanged["code_verifier"] and exchanged["redirect_uri"] == redirect_uri
    [account] = await engine_thread.call(engine.accounts.accounts("my-app"))
    assert account.name == "marta"
    tokens = await engine_thread.call(engine.accounts.load_tokens(account.id))
    assert tokens is not None and tokens.access_token in provider.issued


async def test_a_secret_there_is_said_saved_never_read(
        engine: Engine, remote_bridge: EngineBridge) -> None:
    keyring = remote_bridge.engine.secrets
    ref = "settings/events_mqtt/password"
    engine.secrets.delete(ref)  # the tests' keyring is shared: another may have set it
    try:
        assert await asyncio.to_thread(keyring.get, ref) is None
        await asyncio.to_thread(keyring.set, ref, "hunter2")
        assert engine.secrets.get(ref) == "hunter2"  # kept there
        assert await asyncio.to_thread(keyring.get, ref) == SAVED  # not its value
    finally:
        engine.secrets.delete(ref)


async def test_a_dropped_engine_is_reached_again(
        qtbot: QtBot, engine_thread: EngineThread, data_dir: Path,
        remote_thread: EngineThread, remote_bridge: EngineBridge) -> None:
    window = await window_on(qtbot, remote_bridge)
    away = signal_once(remote_bridge.connection)
    await engine_thread.stop()  # the other computer's Hookline restarts
    assert await away == (RECONNECTING, "Reconnecting to homeserver…")
    assert window.statusBar().currentMessage() == "Reconnecting to homeserver…"
    assert window.windowTitle() == "Hookline — homeserver (reconnecting…)"
    tray: Tray = window.tray  # type: ignore[attr-defined]
    assert tray.icon.toolTip() == "Hookline — Reconnecting to homeserver…"
    state, why = await signal_once(remote_bridge.connection)  # after its first try
    assert state == RECONNECTING
    assert re.match(r"Reconnecting to homeserver… \(since \d\d:\d\d: ", why)
    assert why.endswith(f": no Hookline engine is running on {data_dir} (its control.json "
                        "cannot be read: No such file or directory))")
    assert window.statusBar().currentMessage() == why
    assert window.statusBar().toolTip() == why  # whole: the bar cuts it at the window's edge

    back = signal_once(remote_bridge.connection)
    created = signal_once(remote_bridge.areaChanged)
    again = EngineThread(Engine(data_dir, settings=Settings.from_mapping(
        {"listener_port": 0})))
    await again.start()
    try:
        await again.call(again.engine.create_area(AreaSpec.from_dict(area("Meanwhile"))))
        assert (await back)[0] == "connected"
        area_id, _change = await created
        assert remote_bridge.area(area_id).name == "Meanwhile"
        assert window.windowTitle() == title(NAME)
        assert tray.refreshes  # the tray reads its state from the engine again
    finally:
        # the app goes first: an engine stopped under its open connections leaves
        # their sockets to the garbage collector (aiohttp's server, at a stop)
        await WidgetTasks.cancel_all()
        await remote_thread.stop()
        await again.stop()


async def test_an_engine_that_stands_by_says_which_one_to_use(
        engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    engine.role = STANDBY  # another engine took over its database (engine/standby.py)
    try:
        thread = EngineThread(as_engine(remote_for(data_dir, tmp_path / "app")))
        with pytest.raises(HooklineError, match=(
                r"^Hookline on homeserver stands by: another Hookline engine is active on "
                r"its database\. Use that one: Settings → Connect to another computer…, "
                r"with a code from `hookline pair` there$")):
            await thread.start()
        assert not thread.running
    finally:
        engine.role = ACTIVE


async def test_an_engine_of_another_hookline_says_so(
        engine_thread: EngineThread, data_dir: Path, tmp_path: Path) -> None:
    fewer = Registry.load(modules=tuple(m for m in BUILTIN_MODULES
                                        if not m.endswith(".github")), plugins=False)
    remote = remote_for(data_dir, tmp_path / "app", registry=fewer)
    thread = EngineThread(as_engine(remote))
    await thread.start()
    try:
        assert remote.mismatch == ("services on homeserver that this app does not have: "
                                   "github")
    finally:
        await thread.stop()


async def test_an_engine_that_cannot_be_reached_says_so(tmp_path: Path) -> None:
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "control.json").write_text('{"port": 9, "token": "x"}')
    thread = EngineThread(as_engine(remote_for(tmp_path / "gone", tmp_path / "app")))
    with pytest.raises(HooklineError, match="cannot reach homeserver: nothing answers"):
        await thread.start()



# --------------------------------------------------------------------- over TLS


@pytest.fixture
async def remote_site(tmp_path: Path) -> AsyncIterator[EngineThread]:
    """An engine with its remote site open (TLS, on 127.0.0.1), on its own thread, as
    on the other computer."""
    settings = Settings.from_mapping({**REMOTE, "listener_port": 0})
    thread = EngineThread(Engine(tmp_path / "there", settings=settings))
    await thread.start()
    yield thread
    # The clients have gone: their connections end before the engine stops (one cut
    # short by the stop would leave its socket to the garbage collector).
    async with asyncio.timeout(5):
        while await thread.run(open_connections, thread.engine):
            await asyncio.sleep(0.01)
    await thread.stop()


def open_connections(engine: Engine) -> int:
    """On the engine's thread: the connections its control channel holds (both sites)."""
    runner = engine.control._runner if engine.control is not None else None
    server = runner.server if runner is not None else None
    return len(server.connections) if server is not None else 0


def site_port(thread: EngineThread) -> int:
    site = thread.engine.remote
    assert site is not None
    return site.port


async def test_connect_pairs_over_tls_and_the_bridge_reaches_that_engine(
        qtbot: QtBot, remote_site: EngineThread, tmp_path: Path) -> None:
    there = remote_site.engine
    await remote_site.call(there.create_area(AreaSpec.from_dict(area("On the server"))))
    site = there.remote
    assert site is not None
    issued = await remote_site.call(site.pairing.issue())

    dialog = ConnectDialog()
    qtbot.addWidget(dialog)
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(site_port(remote_site))
    dialog.code.setText(issued.code)
    assert await dialog.try_pairing()
    assert dialog.target is not None and dialog.token is not None
    target, token = dialog.target, dialog.token

    remote = RemoteEngine(lambda: target.session(token), tmp_path / "app",
                          name=target.name, host=target.host)
    thread = EngineThread(as_engine(remote))
    await thread.start()
    bridge = EngineBridge(thread.engine, thread)
    try:  # (the window on such a bridge: the tests above, over the local channel)
        assert bridge.where == target.name
        [shown] = there.areas()
        assert [row.name for row in await bridge.area_rows()] == ["On the server"]
        made = await bridge.save_area(AreaSpec.from_dict(area("Made from here")))
        assert there.area(made.id).name == "Made from here"
        finished = signal_once(bridge.runsFinished)
        await remote_site.call(there.run_now(shown.id))
        assert (await finished)[0][0]["area_id"] == shown.id  # the stream is up, over TLS
    finally:
        bridge.close()
        await thread.stop()


async def test_connect_says_a_wrong_code_and_an_unreachable_computer(
        qtbot: QtBot, remote_site: EngineThread) -> None:
    dialog = ConnectDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(site_port(remote_site))
    dialog.code.setText("7K3QD-M9XTA")
    assert not await dialog.try_pairing()
    assert dialog.problem.text().startswith("Wrong code. The engine did not accept the code")
    assert dialog.isVisible()

    dialog.port.setValue(closed_port())
    assert not await dialog.try_pairing()
    assert dialog.problem.text().startswith("Cannot reach 127.0.0.1. Cannot reach Hookline")
    assert dialog.connect_button.isEnabled() and dialog.connect_button.text() == "Connect"


# --------------------------------------------------------------------- the app


async def test_the_app_opens_on_the_saved_computer_and_goes_back_to_its_own(
        tmp_path: Path, qapp: QApplication, app_run: None,
        remote_site: EngineThread) -> None:
    site = remote_site.engine.remote
    assert site is not None
    issued = await remote_site.call(site.pairing.issue())
    target, token = await pair("127.0.0.1", site.port, issued.code, client_name="laptop")
    home = tmp_path / "home"
    home.mkdir()
    target.save(secrets_of(home), token, data_dir=home)

    running = asyncio.ensure_future(desktop_app.run(qapp, home))
    try:
        await until(lambda: shown_window() is not None)
        window = shown_window()
        assert window is not None
        assert window.windowTitle() == f"Hookline — {target.name}"
        assert not (home / "hookline.db").exists()  # its own engine did not start
        settings = window.show_screen("settings")
        assert isinstance(settings, SettingsPage)
        assert settings.engine_button.text() == USE_THIS_COMPUTER
        settings.engine_button.click()
        assert await asyncio.wait_for(running, 10) == desktop_app.REOPEN  # main opens again
    finally:
        if not running.done():
            qapp.aboutToQuit.emit()
            await running
    assert RemoteTarget.load(home) is None
    assert secrets_of(home).get(token_ref(target.client_id)) is None  # the token is gone


async def test_a_saved_computer_out_of_reach_is_said_and_this_one_opens(
        tmp_path: Path, qapp: QApplication, app_run: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    save_settings(home, Settings.from_mapping({"listener_port": 0}))
    RemoteTarget("127.0.0.1", closed_port(), "ab" * 32, "c1", "homeserver").save(
        secrets_of(home), "a token", data_dir=home)
    said: list[str] = []
    monkeypatch.setattr(remote_dialog, "cannot_reach", said.append)
    running = asyncio.ensure_future(desktop_app.run(qapp, home))
    try:
        await until(lambda: shown_window() is not None)
        window = shown_window()
        assert window is not None
        assert window.windowTitle() == "Hookline — this computer"
        [message] = said
        assert message.startswith("cannot reach homeserver: nothing answers at that address")
        assert "Hookline opens with this computer's engine meanwhile" in message
        assert RemoteTarget.load(home) is not None  # tried again at the next start
    finally:
        qapp.aboutToQuit.emit()
        await running
