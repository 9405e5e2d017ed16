"""One app per data folder also when it is attached to an engine elsewhere: a second
launch brings its window forward, a second app or engine on its folder is refused, and
its folder's channel answers nothing but that hand-off."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.app import answer_hand_offs, hand_off
from desktop.bridge import EngineBridge
from desktop.engine_thread import EngineThread
from desktop.main_window import MainWindow
from desktop.remote_dialog import open_engine
from desktop.remote_engine import as_engine
from engine.app import Engine
from engine.control import CONTROL_FILE, ControlClient
from engine.errors import EngineLocked, HooklineError
from engine.lock import DataDirLock
from engine.settings import Settings, save_settings
from tests.desktop.conftest import signal_once, until
from tests.desktop.test_activity import closed_port
from tests.desktop.test_remote_engine import remote_bridge, remote_for, remote_thread

__all__ = ["remote_bridge", "remote_thread"]  # the fixtures these tests use

ALREADY_RUNNING = r"Hookline is already running on .*app \(pid \d+\)\. Use that one"


@pytest.fixture
def app_home(tmp_path: Path) -> Path:
    """The attached app's own data folder (``remote_thread``'s)."""
    return tmp_path / "app"


async def test_a_second_launch_brings_the_attached_window_forward(
        qtbot: QtBot, remote_bridge: EngineBridge, app_home: Path) -> None:
    window = MainWindow(remote_bridge)
    qtbot.addWidget(window)
    answer_hand_offs(remote_bridge, window)
    window.hide()  # closed to the tray
    asked = signal_once(remote_bridge.showRequested)

    # what a second launch does before it would open an app of its own
    assert await asyncio.to_thread(hand_off, app_home) is True

    await asked
    await until(window.isVisible)
    # the channel's token is readable by this user only, as the engine's own
    assert stat.S_IMODE(os.stat(app_home / CONTROL_FILE).st_mode) == 0o600
    await until(lambda: getattr(window.pages["automations"], "loaded", True))


async def test_the_folder_channel_passes_no_call_to_the_engine(
        remote_bridge: EngineBridge, app_home: Path) -> None:
    remote_bridge.accept_hand_offs()
    client = ControlClient(app_home)
    # the CLI's calls and the desktop's calls are refused, saying where the engine is
    for method, path, body in (("POST", "/areas", {"name": "x"}), ("GET", "/role", None),
                               ("POST", "/rpc/snapshot", {})):
        with pytest.raises(HooklineError, match=re.escape(
                "attached to the engine on homeserver.local: use `hookline` there")):
            await client.call(method, path, body)
    with pytest.raises(HooklineError, match="unknown command"):
        await client.call("POST", "/command/accounts.changed", {})
    assert (await client.call("POST", "/command/show", {}))["result"] == "shown"


async def test_after_the_attached_app_stops_a_launch_opens_its_own(
        remote_thread: EngineThread, remote_bridge: EngineBridge, app_home: Path) -> None:
    remote_bridge.accept_hand_offs()
    assert (app_home / CONTROL_FILE).exists()
    remote_bridge.close()
    await remote_thread.stop()
    assert await asyncio.to_thread(hand_off, app_home) is False
    assert not (app_home / CONTROL_FILE).exists()
    assert not DataDirLock(app_home).held_elsewhere()


async def test_a_second_attached_app_on_the_folder_is_refused(
        remote_bridge: EngineBridge, data_dir: Path, app_home: Path) -> None:
    remote_bridge.accept_hand_offs()
    second = as_engine(remote_for(data_dir, app_home))
    unreachable: list[str] = []
    with pytest.raises(EngineLocked, match=ALREADY_RUNNING + r" \(its window"):
        await open_engine(second, app_home, unreachable.append)
    # not "cannot reach": its own engine would be refused on the folder too
    assert unreachable == []
    # the first app still answers a launch
    assert await asyncio.to_thread(hand_off, app_home) is True


async def test_this_computers_engine_is_refused_on_the_folder(
        remote_bridge: EngineBridge, app_home: Path) -> None:
    # as `hookline serve` on that folder does (its own process: its own lock)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", "--data-dir", str(app_home), "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(child.communicate(), 60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 2, out.decode()
    assert err.decode().startswith("hookline: Hookline is already running on ")
    assert f"(pid {os.getpid()})" in err.decode()
    assert json.loads((app_home / CONTROL_FILE).read_text())["pid"] == os.getpid()


async def test_an_engine_out_of_reach_leaves_the_folder_to_this_computers(
        tmp_path: Path, app_home: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / CONTROL_FILE).write_text(json.dumps({"port": closed_port(), "token": "x"}))
    save_settings(app_home, Settings.from_mapping({"listener_port": 0}))
    said: list[str] = []
    thread = await open_engine(as_engine(remote_for(gone, app_home)), app_home, said.append)
    try:
        [message] = said
        assert message.startswith("cannot reach homeserver: nothing answers")
        # this computer's engine opened on the folder the attached app let go of
        assert isinstance(thread.engine, Engine)
        answer = await ControlClient(app_home).call("GET", "/role")
        assert answer == {"role": "active", "lease": False, "pid": os.getpid()}
    finally:
        await thread.stop()
