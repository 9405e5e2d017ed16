"""The app attached to one of two engines on a PostgreSQL database follows the active
one: the engine it shows stops, the other takes over, and the window goes on with that
one (desktop/remote_engine.py: Attachment; engine/remote/sites.py)."""

from __future__ import annotations

import asyncio
import errno
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop import remote_engine
from desktop.bridge import EngineBridge
from desktop.engine_thread import EngineThread
from desktop.remote_dialog import engine_for, title
from desktop.remote_engine import CONNECTED, RemoteEngine
from desktop.tasks import WidgetTasks
from engine.app import Engine
from engine.areas import AreaSpec
from engine.remote.client import RemoteTarget, engines, pair
from engine.secrets import MemorySecretStore
from engine.standby import ACTIVE
from tests.desktop.conftest import signal_once, until
from tests.desktop.test_remote_engine import area, window_on
from tests.engine.remote.test_sites import Make, engines_on, site_of
from tests.engine.test_standby import TAKEOVER, role, standing_by


@pytest.fixture
async def make(postgres_url: str, tmp_path: Path) -> AsyncIterator[Make]:
    async with engines_on(postgres_url, tmp_path / "engines") as new:
        yield new


async def paired_app(engine: Engine, app: Path) -> MemorySecretStore:
    """The app's folder holding a pairing with ``engine``, as Connect… leaves it; the
    app's keyring (its token)."""
    issued = await site_of(engine).pairing.issue()
    target, token = await pair("127.0.0.1", site_of(engine).port, issued.code,
                               client_name="laptop")
    keyring = MemorySecretStore()
    target.save(keyring, token, data_dir=app)
    return keyring


async def connected_again(bridge: EngineBridge) -> str:
    """The connection's next "connected" text (reconnecting ones are passed over)."""
    async with asyncio.timeout(TAKEOVER * 2):
        while True:
            state, text = await signal_once(bridge.connection)
            if state == CONNECTED:
                return str(text)


async def test_the_window_follows_the_engine_that_took_over(
        qtbot: QtBot, make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_engine, "LEARN_EVERY", 0.05)
    first = make("a")
    await first.start()
    app = tmp_path / "app"
    keyring = await paired_app(first, app)
    thread = EngineThread(engine_for(app, keyring))
    await thread.start()
    WidgetTasks.resume()
    bridge = EngineBridge(thread.engine, thread)
    try:
        window = await window_on(qtbot, bridge)
        attached_to = bridge.where
        # another machine's engine joins the database after the app attached: the app
        # learns where it answers
        second = make("b")
        await standing_by(second)
        await until(lambda: [s.port for s in RemoteTarget.load(app).also  # type: ignore[union-attr]
                             ] == [site_of(second).port], TAKEOVER)

        took_over = role(second, ACTIVE)
        await first.aclose()  # the home server's engine stops for good
        await took_over
        said = await connected_again(bridge)
        assert re.fullmatch(
            rf"Connected to {re.escape(bridge.where)} \(moved from {re.escape(attached_to)} "
            r"\(127\.0\.0\.1\) at \d\d:\d\d: it stopped answering\)", said), said
        assert window.windowTitle() == title(bridge.where)
        shown = window.statusBar().currentMessage()
        assert re.match(rf"Attached to Hookline on {re.escape(bridge.where)} \(127\.0\.0\.1\), "
                        r"moved from .+ at \d\d:\d\d: it stopped answering", shown), shown
        assert window.statusBar().toolTip() == shown  # whole, however narrow the window

        kept = RemoteTarget.load(app)  # the next start goes there at once
        assert kept is not None
        assert (kept.port, kept.fingerprint) == (site_of(second).port,
                                                 site_of(second).identity.fingerprint)
        assert [s.fingerprint for s in kept.also] == [site_of(first).identity.fingerprint]
        made = await bridge.save_area(AreaSpec.from_dict(area("Made after the move")))
        assert second.area(made.id).name == "Made after the move"  # the active one has it
    finally:
        await WidgetTasks.cancel_all()
        bridge.close()
        await thread.stop()


@pytest.mark.parametrize("disk_full", [False, True])
async def test_the_app_starts_on_the_engine_that_took_over_while_it_was_closed(
        make: Make, tmp_path: Path, disk_full: bool, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = make("a"), make("b")
    await first.start()
    await standing_by(second)
    app = tmp_path / "app"
    keyring = await paired_app(first, app)
    saved = RemoteTarget.load(app)
    assert saved is not None
    token = saved.token(keyring)
    assert token is not None
    saved.knowing(await engines(saved, token)).save(keyring, data_dir=app)  # last session
    took_over = role(second, ACTIVE)
    await first.aclose()
    await took_over

    attached = engine_for(app, keyring)
    assert isinstance(attached, RemoteEngine) and attached.attachment is not None
    if disk_full:
        def no_space(_target: RemoteTarget) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        attached.attachment.keep = no_space
    thread = EngineThread(attached)
    await thread.start()  # (without following, this computer's engine would open)
    try:
        assert attached.moved is not None
        assert re.fullmatch(r"moved from .+ \(127\.0\.0\.1\) at \d\d:\d\d: it stopped "
                            "answering", attached.moved), attached.moved
        made = await thread.call(attached.create_area(AreaSpec.from_dict(area("Hello"))))
        assert second.area(made.id).name == "Hello"
        kept = RemoteTarget.load(app)
        assert kept is not None
        if disk_full:  # it goes on there, and says the next start may not know it
            assert kept.port == site_of(first).port
            assert (f"could not save where {attached.name} answers (No space left on "
                    "device)") in caplog.text
        else:
            assert kept.port == site_of(second).port
    finally:
        await thread.stop()
