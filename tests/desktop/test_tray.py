"""The tray: its menu works (pause all, resume, recent activity, quit), its badge says
how things are, notifications come for what needs attention, and closing the window
keeps Hookline running there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop import tray as tray_module
from desktop.bridge import EngineBridge
from desktop.engine_thread import EngineThread
from desktop.state import DesktopState
from desktop.tray import Tray, badged_icon
from engine.areas import AreaSpec
from tests.desktop.conftest import signal_once, until


def area(name: str, **reaction_params: str) -> AreaSpec:
    return AreaSpec.from_dict({
        "name": name,
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": f"{name} says hi", **reaction_params}}],
    })


def failing_area(port: int) -> AreaSpec:
    return AreaSpec.from_dict({
        "name": "Post to a closed port",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "http", "reaction": "request",
                       "params": {"url": f"http://127.0.0.1:{port}/nothing-here"}}],
    })


class ActivityStub(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.selected: list[str] = []

    def select_area(self, area_id: str) -> None:
        self.selected.append(area_id)


class WindowStub(QObject):
    """What the tray uses of the main window, recorded."""

    hiddenToTray = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.tray_available = True
        self.brought_forward = 0
        self.screens: list[str] = []
        self.activity = ActivityStub()

    def bring_forward(self) -> None:
        self.brought_forward += 1

    def show_screen(self, key: str) -> QWidget:
        self.screens.append(key)
        return self.activity


@pytest.fixture
async def tray(bridge: EngineBridge) -> AsyncIterator[Tray]:
    tray = Tray(bridge, WindowStub())
    yield tray
    tray.close()


def action(tray: Tray, text: str) -> None:
    [found] = [a for a in tray.menu.actions() if a.text() == text]
    found.trigger()


async def test_without_a_system_tray_the_menu_is_still_there(tray: Tray) -> None:
    state = tray.state()
    assert state["available"] is False  # offscreen has no tray
    assert tray.window.tray_available is False  # so closing the window quits
    assert state["menu"] == ["Open Hookline", "Pause all", "Snooze all for 1 hour",
                             "Recent activity", "Quit Hookline"]
    assert state["recent"] == ["No runs yet"]
    assert state["status"] == "running" and state["tooltip"] == "Hookline — running"
    action(tray, "Open Hookline")
    assert tray.window.brought_forward == 1  # type: ignore[attr-defined]


async def test_pause_all_and_resume_exactly_those(tray: Tray, bridge: EngineBridge,
                                                  data_dir: Path) -> None:
    one = await bridge.save_area(area("One"))
    two = await bridge.save_area(area("Two"))
    off = await bridge.save_area(area("Was off"))
    await bridge.set_enabled(off.id, False)

    paused = signal_once(bridge.pausedAllChanged)
    action(tray, "Pause all")
    assert await paused == (True,)
    assert not any(a.spec.enabled for a in bridge.engine.areas())
    await tray.refresh()
    assert tray.state()["status"] == "paused"
    assert tray.state()["pause_action"] == "Resume all"
    # remembered in the data folder: a restart still knows what to resume
    assert sorted(DesktopState(data_dir).get("paused_areas")) == sorted([one.id, two.id])

    resumed = signal_once(bridge.pausedAllChanged)
    action(tray, "Resume all")
    assert await resumed == (False,)
    enabled = {a.name: a.spec.enabled for a in bridge.engine.areas()}
    assert enabled == {"One": True, "Two": True, "Was off": False}
    assert DesktopState(data_dir).get("paused_areas") is None
    await tray.refresh()
    assert tray.state()["status"] == "running"
    assert tray.state()["pause_action"] == "Pause all"


async def test_pause_all_is_remembered_across_a_restart(data_dir: Path, qtbot: QtBot,
                                                        engine_thread: EngineThread) -> None:
    engine = engine_thread.engine
    first = EngineBridge(engine, engine_thread)
    kept = await first.save_area(area("Kept"))
    await first.pause_all()
    first.close()
    # a later start of the app (a new bridge and tray on the same data folder)
    second = EngineBridge(engine, engine_thread)
    tray = Tray(second, WindowStub())
    try:
        assert tray.state()["pause_action"] == "Resume all"
        await second.resume_all()
        assert engine.area(kept.id).spec.enabled
    finally:
        tray.close()
        second.close()


async def test_recent_activity_opens_the_area_on_the_activity_screen(
        tray: Tray, bridge: EngineBridge) -> None:
    hello = await bridge.save_area(area("Hello & welcome"))
    finished = signal_once(bridge.runFinished)
    await bridge.run_now(hello.id)
    await finished
    await until(lambda: tray.state()["recent"] != ["No runs yet"])
    [text] = tray.state()["recent"]
    assert text.startswith("✓ Hello & welcome · ") and len(text.rsplit(" ", 1)[1]) == 5
    [entry] = tray.recent_menu.actions()
    entry.trigger()
    window = tray.window
    assert window.screens == ["activity"]  # type: ignore[attr-defined]
    assert window.activity.selected == [hello.id]  # type: ignore[attr-defined]
    assert window.brought_forward == 1  # type: ignore[attr-defined]


async def test_a_failing_area_turns_the_badge_red_and_notifies_once_when_paused(
        tray: Tray, bridge: EngineBridge, unused_tcp_port: int) -> None:
    await bridge.apply_settings(bridge.settings.replace(pause_after_failures=1,
                                                        reaction_attempts=1))
    bad = await bridge.save_area(failing_area(unused_tcp_port))
    paused = signal_once(bridge.areaPaused)
    await bridge.run_now(bad.id)
    await paused
    await until(lambda: tray.state()["status"] == "failing")
    assert "Post to a closed port" in tray.state()["tooltip"]
    # announced once, although the engine tells it both as "paused" and a notification
    [(title, body, level)] = tray.state()["messages"]
    assert title == "“Post to a closed port” paused" and level == "error"
    assert "failed" in body


async def test_notify_reactions_become_desktop_notifications(tray: Tray,
                                                             bridge: EngineBridge) -> None:
    hello = await bridge.save_area(area("Hello", message="From Hookline", level="warning"))
    shown = signal_once(bridge.notification)
    await bridge.run_now(hello.id)
    await shown
    assert tray.state()["messages"] == [("Hello says hi", "From Hookline", "warning")]


async def test_a_burst_of_notifications_shows_a_few_then_sums_up_the_rest(
        tray: Tray, monkeypatch: pytest.MonkeyPatch) -> None:
    # A webhook storm into a Notify area must not flood the screen with bubbles.
    monkeypatch.setattr(tray_module, "BURST_WINDOW", 0.3)
    for build in range(10):
        tray.notify(f"Build {build} finished", "all green")
    tray.notify("“Deploy” paused", "3 runs in a row failed", "error")
    assert [m[0] for m in tray.state()["messages"]] == [
        "Build 0 finished", "Build 1 finished", "Build 2 finished"]
    await until(lambda: len(tray.state()["messages"]) == 4)
    title, body, level = tray.state()["messages"][-1]
    assert (title, level) == ("8 more notifications", "error")
    assert "each run is in Activity" in body


async def test_a_long_notification_is_cut_for_the_bubble(tray: Tray) -> None:
    tray.notify("x" * 500, "word " * 500)
    [(title, body, _level)] = tray.state()["messages"]
    assert len(title) == tray_module.MAX_TITLE and title.endswith("…")
    assert len(body) <= tray_module.MAX_BODY and body.endswith("…")


async def test_quit_quits_the_application(tray: Tray, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(QApplication, "quit", lambda: calls.append(True))
    action(tray, "Quit Hookline")
    assert calls == [True]


def test_state_badges_differ() -> None:
    images = {s: badged_icon(s).pixmap(32, 32).toImage() for s in ("running", "paused",
                                                                    "failing")}
    corner = {s: img.pixelColor(24, 24).name() for s, img in images.items()}
    assert corner == {"running": "#1e8e3e", "paused": "#80868b", "failing": "#d93025"}


async def test_first_close_to_tray_says_hookline_keeps_running(tray: Tray,
                                                               data_dir: Path) -> None:
    window = tray.window
    window.hiddenToTray.emit()  # type: ignore[attr-defined]
    window.hiddenToTray.emit()  # type: ignore[attr-defined]
    [(title, _body, _level)] = tray.state()["messages"]
    assert title == "Hookline keeps running in the tray"
    assert DesktopState(data_dir).get("tray_hint_shown") is True


async def test_closing_the_window_hides_it_to_the_tray(bridge: EngineBridge,
                                                       qtbot: QtBot) -> None:
    from desktop.main_window import MainWindow

    window = MainWindow(bridge)
    qtbot.addWidget(window)
    tray = Tray(bridge, window)
    try:
        window.show()
        # offscreen there is no tray: closing really closes (the app then quits)
        assert window.tray_available is False
        assert window.close() and not window.isVisible()

        window.show()
        window.tray_available = True  # as on a desktop with a tray
        assert not window.close()  # refused: hidden instead, the engine keeps running
        assert not window.isVisible()
        assert tray.state()["messages"][0][0] == "Hookline keeps running in the tray"
        window.show()
        window.close()
        assert len(tray.state()["messages"]) == 1  # said once

        # with "keep running in the tray" off, closing closes
        await bridge.apply_settings(bridge.settings.replace(close_to_tray=False))
        window.show()
        assert window.close() and not window.isVisible()
        await until(lambda: getattr(window.pages["automations"], "loaded", True))
    finally:
        tray.close()
