"""Restoring a backup from a window attached to an engine elsewhere: the Settings page
lists that engine's backups, says what will happen there, and the window reconnects to
the engine once it restarted with the backup; an engine that cannot restart itself says
where to restore instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QInputDialog, QMessageBox
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.engine_thread import EngineThread
from desktop.main_window import MainWindow
from desktop.pages.automations import AutomationsPage
from desktop.pages.settings import SettingsPage
from desktop.remote_engine import CONNECTED
from desktop.tasks import WidgetTasks
from engine.app import Engine
from engine.areas import AreaSpec
from engine.backup import PENDING_RESTORE, backup, backup_dir, sqlite_path, taken_at
from engine.settings import Settings
from tests.desktop.conftest import signal_once, until
from tests.desktop.test_remote_engine import area, remote_bridge, remote_thread, window_on

__all__ = ["remote_bridge", "remote_thread"]  # the fixtures these tests use


def back_up(engine: Engine) -> Path:
    db_path = sqlite_path(engine.url)
    assert db_path is not None
    return backup(db_path, backup_dir(engine.data_dir))


async def confirm_on(window: MainWindow, made: Path) -> QMessageBox:
    """Pick ``made`` on the Settings page; the confirmation asked."""
    settings = window.show_screen("settings")
    assert isinstance(settings, SettingsPage)
    assert settings.restore_button.isEnabled()
    assert "on homeserver" in settings.restore_button.toolTip()
    settings.restore_button.click()
    await until(lambda: isinstance(settings.dialog, QInputDialog))  # read over there
    picker = settings.dialog
    assert isinstance(picker, QInputDialog) and picker.isVisible()
    assert picker.labelText() == ("Go back to the automations and history on homeserver "
                                  "as they were on:")
    assert picker.comboBoxItems() == [f"{taken_at(made):%A %d %B %Y, %H:%M:%S}"]
    picker.setTextValue(picker.comboBoxItems()[0])
    picker.accept()
    confirm = settings.dialog
    assert isinstance(confirm, QMessageBox) and confirm.isVisible()
    assert confirm.text() == (f"Restore the backup of {taken_at(made):%A %d %B, %H:%M} on "
                              "homeserver?")
    assert confirm.informativeText().startswith(
        "Hookline on homeserver restarts now and restores it; this window reconnects "
        "when it is back")
    return confirm


def restore_and_restart(confirm: QMessageBox) -> None:
    [button] = [b for b in confirm.buttons() if b.text() == "Restore and restart"]
    button.click()


async def test_an_engine_that_cannot_restart_itself_says_where_to_restore(
        qtbot: QtBot, engine: Engine, engine_thread: EngineThread, data_dir: Path,
        remote_bridge: EngineBridge) -> None:
    """The engine here runs in its desktop app (not `hookline serve`)."""
    made = back_up(engine)
    window = await window_on(qtbot, remote_bridge)
    confirm = await confirm_on(window, made)
    restore_and_restart(confirm)
    settings = window.show_screen("settings")
    assert isinstance(settings, SettingsPage)
    await until(lambda: settings.status.property("kind") == "error")
    assert settings.status.text().startswith(
        "Hookline cannot restart itself there to restore a backup")
    assert f"`hookline backup restore {made.name}`" in settings.status.text()
    assert not (data_dir / PENDING_RESTORE).exists()
    assert engine_thread.running  # nothing happened there


@pytest.mark.parametrize("damaged", [False, True])
async def test_the_engine_restarts_with_the_backup_and_the_window_reconnects(
        qtbot: QtBot, engine: Engine, engine_thread: EngineThread, data_dir: Path,
        remote_thread: EngineThread, remote_bridge: EngineBridge, damaged: bool) -> None:
    kept = await engine_thread.call(engine.create_area(AreaSpec.from_dict(area("Kept"))))
    made = back_up(engine)
    added = await engine_thread.call(engine.create_area(AreaSpec.from_dict(area("Since"))))
    engine.restartable = True  # as `hookline serve` runs it (engine/cli.py)
    wanted = engine_thread.call(engine.restart_wanted.wait())

    window = await window_on(qtbot, remote_bridge)
    automations = window.show_screen("automations")
    assert isinstance(automations, AutomationsPage)
    await until(lambda: automations.loaded and automations.row_index(added.id, 0).isValid())
    confirm = await confirm_on(window, made)
    away = signal_once(remote_bridge.connection)
    restore_and_restart(confirm)
    settings = window.show_screen("settings")
    assert isinstance(settings, SettingsPage)
    await until(lambda: settings.status.property("kind") == "saved")
    assert settings.status.text() == ("Hookline on homeserver is restarting to restore the "
                                      "backup; this window reconnects when it is back.")

    # what `hookline serve` does when asked: stop as for Ctrl+C, then start again
    await wanted
    back = signal_once(remote_bridge.connection, timeout=30.0,
                       match=lambda state, _text: state == CONNECTED)
    gone = None if damaged else signal_once(
        remote_bridge.areaChanged, timeout=30.0,
        match=lambda area_id, _change: area_id == added.id)
    await engine_thread.stop()
    assert (await away)[1] == "Reconnecting to homeserver…"
    if damaged:  # the disk lost it meanwhile: the start goes on with the data as it was
        made.write_bytes(b"no longer a database" * 100)
    again = EngineThread(Engine(data_dir, settings=Settings.from_mapping(
        {"listener_port": 0})))
    await again.start()
    try:
        if damaged:
            assert again.engine.restored is None
            await back
            await until(lambda: settings.status.property("kind") == "error")
            assert settings.status.text().startswith(
                "Hookline on homeserver restarted but did not restore the backup of "
                f"{taken_at(made):%A %d %B, %H:%M}: ")
            assert settings.status.text().endswith(
                "is not a usable backup: file is not a database; nothing was changed. It "
                "runs with its data as it was.")
            assert sorted(a.name for a in remote_bridge.areas()) == ["Kept", "Since"]
            return
        assert again.engine.restored == made and gone is not None
        await back
        await gone
        assert [a.name for a in remote_bridge.areas()] == ["Kept"]
        window.show_screen("automations")
        await until(lambda: not automations.row_index(added.id, 0).isValid())
        assert automations.row_index(kept.id, 0).isValid()
        assert settings.status.text() == (
            f"Hookline on homeserver restarted to restore the backup of "
            f"{taken_at(made):%A %d %B, %H:%M}, and this window is connected to it again.")
    finally:
        await WidgetTasks.cancel_all()
        await remote_thread.stop()
        await again.stop()
