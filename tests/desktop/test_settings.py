"""The settings page: what a user changes there is validated, saved, applied or marked
for a restart; risky switches ask first; automations go out and come in as files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QInputDialog,
    QLineEdit,
    QMessageBox,
)
from pytestqt.qtbot import QtBot

from desktop.bridge import EngineBridge
from desktop.pages.settings import ImportReport, SettingsPage
from engine.areas import AreaSpec
from engine.backup import backup, backup_dir, pending_restore, taken_at
from engine.secrets import SecretStore
from engine.settings import load_settings
from engine.storage.db import DB_FILE, PASSWORD_REF
from tests.desktop.conftest import signal_once, until

NOTE = {
    "name": "Hello",
    "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
    "reactions": [{"service": "notify", "reaction": "notify", "params": {"title": "Hi"}}],
}
GITHUB = {
    "name": "Issues to a note",
    "trigger": {"service": "webhook", "trigger": "github",
                "params": {"secret": "s3cret-value", "events": "issues"}},
    "reactions": [{"service": "notify", "reaction": "notify",
                   "params": {"title": "{{ trigger.event }}"}}],
}


@pytest.fixture
def page(bridge: EngineBridge, qtbot: QtBot) -> SettingsPage:
    page = SettingsPage(bridge)
    qtbot.addWidget(page)
    page.resize(900, 700)
    page.show()
    return page


async def save(page: SettingsPage, qtbot: QtBot) -> list[str]:
    assert page.save_button.isEnabled()
    saved = signal_once(page.saved)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    (restart,) = await saved
    return list(restart)


def field(page: SettingsPage, name: str) -> object:
    return page.fields[name].widget


def tick(qtbot: QtBot, box: object) -> None:
    """Click a check box where a user would: on its box."""
    assert isinstance(box, QCheckBox)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


async def test_saved_settings_survive_a_restart(page: SettingsPage, bridge: EngineBridge,
                                                data_dir: Path, qtbot: QtBot) -> None:
    assert not page.save_button.isEnabled()  # nothing to save yet
    port = field(page, "listener_port")
    port.setValue(8899)  # type: ignore[attr-defined]
    delay = field(page, "retry_delay")
    assert isinstance(delay, QDoubleSpinBox)
    delay.clear()
    qtbot.keyClicks(delay, "7.5")
    field(page, "log_level").setCurrentIndex(  # type: ignore[attr-defined]
        field(page, "log_level").findData("DEBUG"))  # type: ignore[attr-defined]
    assert "unsaved" in page.status.text()

    restart = await save(page, qtbot)

    assert restart == ["listener_port"]
    assert "Restart Hookline" in page.status.text() and "Webhook port" in page.status.text()
    assert not page.save_button.isEnabled()
    fresh = load_settings(data_dir)  # what the next start reads
    assert (fresh.listener_port, fresh.retry_delay, fresh.log_level) == (8899, 7.5, "DEBUG")
    # applied at once where the engine can: the runner uses the new delay already
    assert bridge.engine.settings.retry_delay == 7.5
    assert bridge.engine.runner.settings.retry_delay == 7.5
    # a page opened later (after a restart) shows what was saved
    again = SettingsPage(bridge)
    qtbot.addWidget(again)
    assert again.fields["listener_port"].value() == 8899
    assert again.fields["retry_delay"].value() == 7.5


async def test_bad_values_are_refused_with_the_reason(page: SettingsPage, data_dir: Path,
                                                      qtbot: QtBot) -> None:
    url = field(page, "public_url")
    assert isinstance(url, QLineEdit)
    qtbot.keyClicks(url, "tunnel.example.org")
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    await until(lambda: "Not saved" in page.status.text())
    assert "Public base URL" in page.status.text() and "http://" in page.status.text()
    assert page.focusWidget() is url  # taken to the field to fix
    assert not (data_dir / "settings.json").exists()
    url.setText("https://tunnel.example.org")
    await save(page, qtbot)
    assert load_settings(data_dir).public_url == "https://tunnel.example.org"
    # the public URL applies at once: webhook addresses use it
    assert page.webhook_field.text() == "https://tunnel.example.org/hooks/…"


async def test_revert_puts_back_what_was_saved(page: SettingsPage) -> None:
    attempts = page.fields["reaction_attempts"]
    attempts.set_value(9)
    assert page.revert_button.isEnabled()
    page.revert_button.click()
    assert attempts.value() == 3 and not page.is_dirty()


async def test_running_programs_needs_a_confirmed_warning(page: SettingsPage,
                                                          bridge: EngineBridge,
                                                          qtbot: QtBot) -> None:
    shell = field(page, "allow_shell")
    assert isinstance(shell, QCheckBox) and not shell.isChecked()  # off by default
    tick(qtbot, shell)
    dialog = page.dialog
    assert isinstance(dialog, QMessageBox) and dialog.isVisible()
    assert "run programs" in dialog.text()
    assert not shell.isChecked()  # not until confirmed
    dialog.button(QMessageBox.StandardButton.Cancel).click()
    assert not shell.isChecked() and not page.is_dirty()

    tick(qtbot, shell)
    dialog = page.dialog
    assert isinstance(dialog, QMessageBox)
    [allow] = [b for b in dialog.buttons() if b.text() == "Allow programs"]
    allow.click()
    assert shell.isChecked()
    assert await save(page, qtbot) == []
    assert bridge.engine.settings.allow_shell
    # turning it off asks nothing
    tick(qtbot, shell)
    assert not shell.isChecked() and page.dialog is None


async def test_internal_addresses_warn_and_apply_to_the_guard(page: SettingsPage,
                                                              bridge: EngineBridge,
                                                              qtbot: QtBot) -> None:
    internal = field(page, "allow_internal_targets")
    tick(qtbot, internal)
    dialog = page.dialog
    assert isinstance(dialog, QMessageBox) and "internal addresses" in dialog.text()
    [allow] = [b for b in dialog.buttons() if b.text() == "Allow internal addresses"]
    allow.click()
    await save(page, qtbot)
    assert bridge.engine.http.guard.allow_internal


async def test_start_at_login_writes_the_autostart_entry(page: SettingsPage, qtbot: QtBot,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    entry = tmp_path / "config" / "autostart" / "hookline.desktop"
    tick(qtbot, field(page, "start_at_login"))
    await save(page, qtbot)
    assert "desktop.launcher" in entry.read_text(encoding="utf-8")
    tick(qtbot, field(page, "start_at_login"))
    await save(page, qtbot)
    assert not entry.exists()


async def test_webhook_base_address_is_shown_and_copied(page: SettingsPage,
                                                        bridge: EngineBridge,
                                                        qtbot: QtBot) -> None:
    assert bridge.engine.listener is not None
    base = f"http://127.0.0.1:{bridge.engine.listener.port}/hooks/"
    assert page.webhook_field.text() == base + "…"
    qtbot.mouseClick(page.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == base


async def test_open_folder_opens_the_data_folder(page: SettingsPage, data_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl",
                        lambda url: opened.append(url) or True)
    page.open_folder_button.click()
    assert [u.toLocalFile() for u in opened] == [str(data_dir)]


async def test_export_leaves_secrets_out_and_imports_back(page: SettingsPage,
                                                          bridge: EngineBridge,
                                                          tmp_path: Path) -> None:
    await bridge.save_area(AreaSpec.from_dict(NOTE))
    await bridge.save_area(AreaSpec.from_dict(GITHUB))
    target = tmp_path / "all.yaml"
    assert await page.export_to(target) == 2
    text = target.read_text(encoding="utf-8")
    assert "s3cret-value" not in text
    data = yaml.safe_load(text)
    assert [a["name"] for a in data["areas"]] == ["Hello", "Issues to a note"]
    assert "secret" not in data["areas"][1]["trigger"]["params"]
    assert "Exported 2 automations" in page.status.text()

    report = await page.import_from(target)
    # the webhook secret is not in the file: that one is refused, saying why, and
    # (all or nothing) the other is not imported either
    assert report.imported == []
    [(which, why)] = report.failures
    assert which == "“Issues to a note”" and "trigger.params.secret" in why
    assert len(bridge.engine.areas()) == 2


async def test_import_through_the_file_dialog_reports_every_failure_and_imports_none(
        page: SettingsPage, bridge: EngineBridge, tmp_path: Path) -> None:
    source = tmp_path / "some.json"
    broken = {**NOTE, "name": "Broken", "reactions": [
        {"service": "notify", "reaction": "notify", "params": {"title": "{{ trigger.nope }}"}}]}
    source.write_text(yaml.safe_dump({"areas": [NOTE, broken, {"name": "No trigger"}]}),
                      encoding="utf-8")
    page.import_button.click()
    dialog = page.dialog
    assert isinstance(dialog, QFileDialog)
    done = signal_once(page.imported)
    dialog.selectFile(str(source))
    dialog.accept()
    (report,) = await done
    assert isinstance(report, ImportReport)
    assert report.imported == []
    assert [w for w, _ in report.failures] == ["“Broken”", "“No trigger”"]
    assert "nope" in report.failures[0][1]
    assert report.failures[1][1].startswith("trigger: missing")
    box = page.dialog
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.text() == ("Nothing was imported: 2 of 3 automations could not be; fix them "
                          "and import the file again.")
    assert "“Broken”" in box.informativeText()
    assert bridge.engine.areas() == []
    # fixed, the same file imports all three... here the two good ones
    source.write_text(yaml.safe_dump({"areas": [NOTE, {**broken, "reactions": NOTE[
        "reactions"]}]}), encoding="utf-8")
    report = await page.import_from(source)
    assert report.imported == ["Hello", "Broken"] and report.failures == []
    assert page.status.text() == "Imported 2 automations."


async def test_import_of_a_file_that_is_not_automations(page: SettingsPage,
                                                        tmp_path: Path) -> None:
    source = tmp_path / "notes.yaml"
    source.write_text("just: [some, text", encoding="utf-8")
    report = await page.import_from(source)
    assert report.imported == []
    assert report.failures == [("notes.yaml", "not valid YAML or JSON (line 1): expected "
                                              "',' or ']', but got '<stream end>'")]
    assert report.summary() == "Nothing was imported: the file could not be read."


async def test_settings_saved_elsewhere_show_up_and_keep_unsaved_edits(
        page: SettingsPage, bridge: EngineBridge) -> None:
    page.fields["reaction_attempts"].set_value(7)  # typed, not saved yet
    # e.g. the services screen turned on running programs after its own warning
    await bridge.save_settings(bridge.engine.settings.replace(allow_shell=True))
    assert page.fields["allow_shell"].value() is True
    assert page.fields["reaction_attempts"].value() == 7
    assert page.changes() == {"reaction_attempts": 7}


async def test_restoring_a_backup_asks_then_quits_to_restore_at_the_next_start(
        page: SettingsPage, bridge: EngineBridge, qtbot: QtBot) -> None:
    data_dir = bridge.engine.data_dir
    page.restore_button.click()  # none yet
    assert page.dialog is None and "No backups yet" in page.status.text()

    made = backup(data_dir / DB_FILE, backup_dir(data_dir))
    quits: list[bool] = []
    page.quit_app = lambda: quits.append(True)
    page.restore_button.click()
    picker = page.dialog
    assert isinstance(picker, QInputDialog) and picker.isVisible()
    assert picker.comboBoxItems() == [f"{taken_at(made):%A %d %B %Y, %H:%M:%S}"]
    picker.setTextValue(picker.comboBoxItems()[0])
    picker.accept()
    confirm = page.dialog
    assert isinstance(confirm, QMessageBox) and confirm.isVisible()
    assert "quits now and restores it when you start it again" in confirm.informativeText()
    confirm.button(QMessageBox.StandardButton.Cancel).click()
    assert quits == [] and pending_restore(data_dir) is None

    page.restore_button.click()
    picker = page.dialog
    assert isinstance(picker, QInputDialog)
    picker.accept()
    confirm = page.dialog
    assert isinstance(confirm, QMessageBox)
    [restore_and_quit] = [b for b in confirm.buttons() if b.text() == "Restore and quit"]
    restore_and_quit.click()
    assert quits == [True]
    assert pending_restore(data_dir) == made


async def test_sharing_events_and_metrics_are_switched_on_for_the_next_start(
        page: SettingsPage, bridge: EngineBridge, data_dir: Path, qtbot: QtBot) -> None:
    from engine.observe.mqtt_events import PASSWORD_REF

    tick(qtbot, field(page, "events_mqtt_enabled"))
    qtbot.keyClicks(field(page, "events_mqtt_host"), "homeassistant.local")
    qtbot.keyClicks(field(page, "events_mqtt_username"), "hookline")
    qtbot.keyClicks(page.broker_password, "broker pa55")
    tick(qtbot, field(page, "metrics_enabled"))
    assert "/metrics" in page.metrics_url.text()

    restart = await save(page, qtbot)

    assert restart == ["events_mqtt_enabled", "events_mqtt_host", "events_mqtt_username",
                       "metrics_enabled"]
    fresh = load_settings(data_dir)
    assert (fresh.events_mqtt_enabled, fresh.events_mqtt_host, fresh.events_mqtt_username,
            fresh.metrics_enabled) == (True, "homeassistant.local", "hookline", True)
    assert bridge.engine.secrets.get(PASSWORD_REF) == "broker pa55"  # in the keyring
    assert "broker pa55" not in (data_dir / "settings.json").read_text()
    assert page.broker_password.text() == "" and not page.save_button.isEnabled()

    tick(qtbot, field(page, "metrics_enabled"))  # and off again
    await save(page, qtbot)
    assert not load_settings(data_dir).metrics_enabled


async def test_a_database_password_typed_in_the_address_goes_to_the_keyring(
        page: SettingsPage, data_dir: Path, qtbot: QtBot) -> None:
    address = field(page, "database_url")
    assert isinstance(address, QLineEdit)
    qtbot.keyClicks(address, "postgresql://hookline:pw-5e1b@db.example.lan/hookline")
    try:
        restart = await save(page, qtbot)
        assert restart == ["database_url"]
        saved = (data_dir / "settings.json").read_text()
        assert "pw-5e1b" not in saved
        assert load_settings(data_dir).database_url == \
            "postgresql://hookline@db.example.lan/hookline"
        assert address.text() == "postgresql://hookline@db.example.lan/hookline"
        assert SecretStore().get(PASSWORD_REF) == "pw-5e1b"
    finally:
        SecretStore().delete(PASSWORD_REF)
