"""Settings: every engine setting, grouped, derived from ``Settings.params()``; the
data folder with export and import; what this Hookline is."""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from PySide6.QtCore import QCoreApplication, Qt, QUrl, Signal, qVersion
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import engine
from desktop import autostart, remote_dialog
from desktop.bridge import EngineBridge
from desktop.forms import error_color
from desktop.pages.common import heading, muted
from desktop.remote_engine import CONNECTED
from desktop.tasks import WidgetTasks
from desktop.wheel import guard_inputs
from engine import logs
from engine.area_files import read_area_file
from engine.backup import BackupError, backup_dir, list_backups, request_restore, taken_at
from engine.catalog.params import Param, ParamType
from engine.errors import HooklineError, ImportRefused, ValidationError
from engine.observe.mqtt_events import PASSWORD_REF as BROKER_PASSWORD_REF
from engine.rpc import ON_ITS_OWN_COMPUTER
from engine.settings import Settings
from engine.storage.db import keep_password_in_keyring

log = logging.getLogger(__name__)

#: Settings the running engine cannot change: they take effect at the next start.
RESTART_NEEDED = frozenset({"listener_enabled", "listener_host", "listener_port",
                            "database_url", "service_concurrency", "events_mqtt_enabled",
                            "events_mqtt_host", "events_mqtt_port", "events_mqtt_username",
                            "events_mqtt_tls", "events_mqtt_prefix", "metrics_enabled",
                            "otel_endpoint", "remote_enabled", "remote_host", "remote_port"})

SHARE_EVENTS = "Share Hookline's events"

#: Groups on the page, in order; a setting declared later and not listed here lands
#: in "Other", so nothing declared is ever missing from the page.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Webhooks", ("listener_enabled", "listener_host", "listener_port", "public_url")),
    ("General", ("start_at_login", "close_to_tray", "log_level")),
    ("Safety", ("allow_shell", "allow_internal_targets")),
    ("Reliability", ("pause_after_failures", "reaction_attempts", "retry_delay",
                     "service_concurrency", "keep_successful_runs_days",
                     "keep_failed_runs_days", "max_runs_per_area")),
    ("Data", ("database_url",)),
    ("Other computers", ("remote_enabled", "remote_host", "remote_port")),
    (SHARE_EVENTS, ("events_mqtt_enabled", "events_mqtt_host", "events_mqtt_port",
                    "events_mqtt_username", "events_mqtt_tls", "events_mqtt_prefix")),
    ("Metrics", ("metrics_enabled", "otel_endpoint")),
)

#: Turning one of these on asks first: (title, explanation, confirm button).
WARNINGS: dict[str, tuple[str, str, str]] = {
    "allow_shell": (
        "Let automations run programs?",
        "An automation that runs programs can do anything you can do on this computer: "
        "read, change or delete your files, install software, and send your data "
        "anywhere.\n\nTurn this on only if you wrote or checked every automation that "
        "runs a program, including ones you import.",
        "Allow programs",
    ),
    "allow_internal_targets": (
        "Allow calls to internal addresses?",
        "Web requests could then reach link-local and cloud-metadata addresses (such as "
        "169.254.169.254) and Hookline's own webhook listener. A value filled in from a "
        "webhook or a feed could make Hookline call them, or call itself in a "
        "loop.\n\nTurn this on only if an automation needs it.",
        "Allow internal addresses",
    ),
}

LICENCE = "MIT licence — free to use, change and share."


class SettingField:
    """The editor of one setting, chosen by its parameter type.

    Args:
        param: the setting's declaration (``Settings.params()``).
        changed: called whenever the user changes the value.
    """

    def __init__(self, param: Param, changed: Callable[[], None]) -> None:
        self.param = param
        kind = param.type
        self.widget: QWidget
        if kind is ParamType.BOOL:
            box = QCheckBox(param.label)
            box.toggled.connect(lambda _on: changed())
            self.widget = box
        elif kind is ParamType.INTEGER:
            spin = QSpinBox()
            spin.setRange(int(param.minimum if param.minimum is not None else -2**31),
                          int(param.maximum if param.maximum is not None else 2**31 - 1))
            spin.valueChanged.connect(lambda _v: changed())
            self.widget = spin
        elif kind in (ParamType.NUMBER, ParamType.DURATION):
            number = QDoubleSpinBox()
            number.setDecimals(2)
            number.setRange(param.minimum if param.minimum is not None else -1e9,
                            param.maximum if param.maximum is not None else 1e9)
            if kind is ParamType.DURATION:
                number.setSuffix(" s")
            number.valueChanged.connect(lambda _v: changed())
            self.widget = number
        elif kind is ParamType.CHOICE:
            combo = QComboBox()
            for value, label in param.choices:
                combo.addItem(label, value)
            combo.currentIndexChanged.connect(lambda _i: changed())
            self.widget = combo
        else:
            line = QLineEdit()
            if param.example:
                line.setPlaceholderText(str(param.example))
            line.textChanged.connect(lambda _t: changed())
            self.widget = line
        if isinstance(self.widget, QAbstractSpinBox):
            self.widget.setMinimumWidth(120)
            self.widget.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.widget.setObjectName(f"setting-{param.name}")
        self.widget.setAccessibleName(param.label)
        if param.help:
            self.widget.setAccessibleDescription(param.help)

    def value(self) -> Any:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            return w.value()
        if isinstance(w, QComboBox):
            return w.currentData()
        assert isinstance(w, QLineEdit)
        return w.text().strip()

    def set_value(self, value: Any) -> None:
        w = self.widget
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(value))
        elif isinstance(w, QComboBox):
            w.setCurrentIndex(max(0, w.findData(value)))
        elif isinstance(w, QLineEdit):
            w.setText("" if value is None else str(value))


@dataclass
class ImportReport:
    """What an import did: all of a file's automations, or none of them. Names imported,
    or (which, why) for each one refused (the file itself when it cannot be read)."""

    imported: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0

    def summary(self) -> str:
        noun = "automation" if self.total == 1 else "automations"
        if not self.failures:
            return f"Imported {len(self.imported)} {noun}."
        if not self.total:
            return "Nothing was imported: the file could not be read."
        return (f"Nothing was imported: {len(self.failures)} of {self.total} {noun} "
                "could not be; fix them and import the file again.")


class SettingsPage(QWidget):
    """Settings grouped as Webhooks, General, Safety, Reliability, Data and About.

    Changes are kept in the form until Save; Save validates them all
    (``Settings.from_mapping``), writes ``settings.json`` in the data folder and applies
    what the running engine can change. The rest is marked as needing a restart.

    Args:
        bridge: the engine bridge.
        parent: the parent widget.

    Signals:
        saved(list): settings were saved; the names of those that need a restart.
        imported(object): an import finished, with its :class:`ImportReport`.
    """

    saved = Signal(list)
    imported = Signal(object)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self._saved: Settings = bridge.settings
        #: What the running engine started with (for "needs a restart").
        self._running: Settings = bridge.settings
        self.tasks = WidgetTasks(self)
        self._loading = False
        #: The open non-modal dialog, if any (confirmation, file picker, report).
        self.dialog: QWidget | None = None
        #: Ends the app (after asking for a restore at the next start).
        self.quit_app: Callable[[], None] = QCoreApplication.quit
        #: The backup the attached engine restarts to restore, its name and when it was
        #: taken (said until it is back).
        self._restoring: tuple[str, datetime] | None = None

        self.fields: dict[str, SettingField] = {}
        params = {p.name: p for p in Settings.params()}
        listed = {name for _title, names in GROUPS for name in names}
        groups = [*GROUPS, ("Other", tuple(n for n in params if n not in listed))]

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(16, 8, 16, 16)
        column.setSpacing(16)
        self.groups: dict[str, QGroupBox] = {}
        for title, names in groups:
            names = tuple(n for n in names if n in params)
            if not names and title != "Data":
                continue
            box = QGroupBox(title)
            box.setObjectName(f"group-{title.lower()}")
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            if title == "Data":
                self._data_rows(form)
            for name in names:
                self._add_field(form, params[name])
            if title == "Webhooks":
                self._webhook_row(form)
            elif title == SHARE_EVENTS:
                self._broker_password_row(form)
            elif title == "Metrics":
                self._metrics_row(form)
            self.groups[title] = box
            column.addWidget(box)
        login = self.fields.get("start_at_login")
        if login is not None:
            login.widget.setToolTip(
                f"Runs {autostart.describe(autostart.launch_command())} when you log in")
        column.addWidget(self._about())
        column.addStretch(1)
        guard_inputs(content)  # scrolling the page past a setting leaves it be

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)

        self.status = QLabel()
        self.status.setObjectName("settingsStatus")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Undo the changes not saved yet")
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.setToolTip("Save the settings (Ctrl+S)")
        self.save_button.clicked.connect(lambda: self._spawn(self.save()))
        bar = QHBoxLayout()
        bar.setContentsMargins(16, 8, 16, 12)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.revert_button)
        bar.addWidget(self.save_button)

        header = heading("Settings")
        header.setContentsMargins(16, 12, 16, 4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(header)
        layout.addWidget(scroll, 1)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(line)
        layout.addLayout(bar)

        shortcut = QShortcut(QKeySequence.StandardKey.Save, self)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(lambda: self._spawn(self.save()))
        bridge.settingsChanged.connect(self._settings_changed)
        self.load(self._saved)

    # ----------------------------------------------------------------- building

    def _add_field(self, form: QFormLayout, param: Param) -> None:
        setting = SettingField(param, self._changed)
        self.fields[param.name] = setting
        if param.name in WARNINGS:
            assert isinstance(setting.widget, QCheckBox)
            setting.widget.clicked.connect(
                lambda on, name=param.name: self._confirm_risky(name, on))
        help_text = param.help
        if param.name in RESTART_NEEDED:
            help_text = (help_text + " " if help_text else "") + "Takes effect after a restart."
        if self.bridge.remote is not None and param.name in ON_ITS_OWN_COMPUTER:
            # the engine refuses them from afar (engine/rpc.py): shown, not editable
            setting.widget.setEnabled(False)
            help_text = (help_text + " " if help_text else "") + (
                f"Changed only on {self.bridge.where} itself.")
        cell = QWidget()
        # Expanding, so the help under a narrow spin box gets the row's whole width.
        cell.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        stack = QVBoxLayout(cell)
        stack.setContentsMargins(0, 0, 0, 4)
        stack.setSpacing(2)
        stack.addWidget(setting.widget, 0, Qt.AlignmentFlag.AlignLeft
                        if isinstance(setting.widget, QAbstractSpinBox | QComboBox)
                        else Qt.AlignmentFlag(0))
        if help_text:
            hint = muted(QLabel(help_text))
            hint.setWordWrap(True)
            hint.setObjectName(f"help-{param.name}")
            stack.addWidget(hint)
        if isinstance(setting.widget, QCheckBox):
            form.addRow(cell)
        else:
            label = QLabel(param.label + ":")
            label.setBuddy(setting.widget)
            form.addRow(label, cell)

    def _webhook_row(self, form: QFormLayout) -> None:
        self.webhook_field = QLineEdit()
        self.webhook_field.setReadOnly(True)
        self.webhook_field.setObjectName("webhookBase")
        self.webhook_field.setAccessibleName("Webhook addresses")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the webhook base address")
        self.copy_button.clicked.connect(self.copy_webhook_base)
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.webhook_field, 1)
        line.addWidget(self.copy_button)
        label = QLabel("Addresses:")
        label.setBuddy(self.webhook_field)
        form.addRow(label, row)
        self._show_webhook_base()

    def _broker_password_row(self, form: QFormLayout) -> None:
        """The broker's password: kept in the keyring, never in the settings file."""
        self.broker_password = QLineEdit()
        self.broker_password.setObjectName("brokerPassword")
        self.broker_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.broker_password.setPlaceholderText("none: connect without one")
        self._spawn(self._show_saved_password())
        self.broker_password.textChanged.connect(lambda _t: self._changed())
        label = QLabel("Broker password:")
        label.setBuddy(self.broker_password)
        form.insertRow(4, label, self.broker_password)  # under the user name

    async def _show_saved_password(self) -> None:
        if await asyncio.to_thread(self.bridge.engine.secrets.get, BROKER_PASSWORD_REF):
            self.broker_password.setPlaceholderText("saved — leave empty to keep")

    def _metrics_row(self, form: QFormLayout) -> None:
        self.metrics_url = QLabel()
        self.metrics_url.setObjectName("metricsUrl")
        self.metrics_url.setTextFormat(Qt.TextFormat.PlainText)
        self.metrics_url.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.insertRow(1, "Address:", self.metrics_url)
        self._show_metrics_url()

    def _show_metrics_url(self) -> None:
        listener = self.bridge.engine.listener
        if listener is None or listener.port is None:
            text = "Metrics need the webhook listener, which is off."
        else:
            text = f"http://127.0.0.1:{listener.port}/metrics"
            if not self._running.metrics_enabled:
                text += " (once metrics are on and Hookline restarted)"
        self.metrics_url.setText(text)

    def _data_rows(self, form: QFormLayout) -> None:
        folder = QLabel(str(self.bridge.data_dir))
        folder.setObjectName("dataFolder")
        folder.setWordWrap(True)
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_folder_button = QPushButton("Open folder")
        self.open_folder_button.clicked.connect(self.open_data_folder)
        where = QWidget()
        line = QHBoxLayout(where)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(folder)
        line.addWidget(self.open_folder_button)
        line.addStretch(1)
        form.addRow("Data folder:", where)

        self.export_button = QPushButton("Export all automations…")
        self.export_button.setToolTip("Save every automation to one YAML file (secrets "
                                      "such as passwords are left out)")
        self.export_button.clicked.connect(self.choose_export_file)
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Add the automations from a YAML or JSON file")
        self.import_button.clicked.connect(self.choose_import_file)
        buttons = QWidget()
        line = QHBoxLayout(buttons)
        line.setContentsMargins(0, 0, 0, 4)
        line.addWidget(self.export_button)
        line.addWidget(self.import_button)
        line.addStretch(1)
        form.addRow("Automations:", buttons)

        self.restore_button = QPushButton("Restore a backup…")
        self.restore_button.setToolTip("Go back to a daily copy of the automations and "
                                       "their history (Hookline quits to do it)")
        self.restore_button.clicked.connect(self.choose_backup)
        buttons = QWidget()
        line = QHBoxLayout(buttons)
        line.setContentsMargins(0, 0, 0, 4)
        line.addWidget(self.restore_button)
        line.addStretch(1)
        form.addRow("Backups:", buttons)
        self._engine_row(form)

    def _engine_row(self, form: QFormLayout) -> None:
        """Which engine the app shows, and the way to another (desktop/remote_dialog.py)."""
        remote = self.bridge.remote
        where = QLabel(f"Hookline on {remote.name} ({remote.host})" if remote is not None
                       else "This computer")
        where.setObjectName("engineWhere")
        if remote is None:
            self.engine_button = QPushButton(remote_dialog.CONNECT_ELSEWHERE)
            self.engine_button.clicked.connect(lambda: self.tasks.spawn(
                remote_dialog.connect_elsewhere(self, self.bridge)))
        else:
            self.engine_button = QPushButton(remote_dialog.USE_THIS_COMPUTER)
            self.engine_button.clicked.connect(
                lambda: remote_dialog.use_this_computer(self.bridge))
            self.restore_button.setToolTip(
                f"Go back to a daily copy of the automations and their history on "
                f"{remote.name} (Hookline restarts there to do it)")
            self.bridge.connection.connect(self._connection_changed)
        line = QHBoxLayout()
        line.addWidget(where)
        line.addWidget(self.engine_button)
        line.addStretch(1)
        form.addRow("Engine:", line)

    def _about(self) -> QGroupBox:
        box = QGroupBox("About")
        box.setObjectName("group-about")
        form = QFormLayout(box)
        self.version_label = QLabel(f"Hookline {engine.__version__}")
        self.version_label.setObjectName("version")
        form.addRow("Version:", self.version_label)
        folder = QLabel(str(self.bridge.data_dir))
        folder.setWordWrap(True)
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Data folder:", folder)
        form.addRow("Licence:", QLabel(LICENCE))
        form.addRow("Built on:", muted(QLabel(
            f"Python {platform.python_version()}, Qt {qVersion()}")))
        return box

    # ----------------------------------------------------------------- form state

    def load(self, settings: Settings) -> None:
        """Show ``settings`` in the form."""
        self._loading = True
        try:
            values = settings.to_mapping()
            for name, setting in self.fields.items():
                setting.set_value(values[name])
        finally:
            self._loading = False
        self._changed()

    def values(self) -> dict[str, Any]:
        """The form's values, by setting name (not yet validated)."""
        return {name: setting.value() for name, setting in self.fields.items()}

    def changes(self) -> dict[str, Any]:
        saved = self._saved.to_mapping()
        return {k: v for k, v in self.values().items() if saved[k] != v}

    def is_dirty(self) -> bool:
        return bool(self.changes()) or bool(self.broker_password.text())

    def _changed(self) -> None:
        if self._loading:
            return
        dirty = self.is_dirty()
        self.save_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        if dirty:
            self._say("You have unsaved changes.")
        elif self.status.property("kind") == "info":
            self._say("")

    def _settings_changed(self) -> None:
        """Settings were saved (here or elsewhere): show them, keeping unsaved edits."""
        self._show_webhook_base()
        current = self.bridge.settings
        if current is self._saved:
            return
        edits = self.changes()
        self._saved = current
        self.load(current)
        for name, value in edits.items():
            self.fields[name].set_value(value)

    def revert(self) -> None:
        self.broker_password.clear()
        self.load(self._saved)

    def _say(self, text: str, kind: str = "info") -> None:
        self.status.setText(text)
        self.status.setProperty("kind", kind)
        self.status.setStyleSheet(f"color: {error_color()};" if kind == "error" else "")

    def needs_restart(self) -> list[str]:
        """Saved settings the running engine does not use yet."""
        saved, running = self._saved.to_mapping(), self._running.to_mapping()
        return sorted(n for n in RESTART_NEEDED if n in saved and saved[n] != running[n])

    # ----------------------------------------------------------------- safety

    def _confirm_risky(self, name: str, on: bool) -> None:
        """The user ticked a risky setting: untick it until they confirm the warning."""
        if not on:
            return
        box = self.fields[name].widget
        assert isinstance(box, QCheckBox)
        box.setChecked(False)
        title, text, confirm = WARNINGS[name]
        self._ask(title, text, confirm, f"confirm-{name}", lambda: box.setChecked(True))

    def _ask(self, title: str, text: str, confirm: str, name: str,
             on_yes: Callable[[], object]) -> None:
        """A warning with ``confirm`` and Cancel (the default); ``on_yes`` once confirmed."""
        dialog = QMessageBox(QMessageBox.Icon.Warning, "Hookline", title,
                             QMessageBox.StandardButton.NoButton, self)
        dialog.setInformativeText(text)
        dialog.setObjectName(name)
        yes = dialog.addButton(confirm, QMessageBox.ButtonRole.AcceptRole)
        cancel = dialog.addButton(QMessageBox.StandardButton.Cancel)
        dialog.setDefaultButton(cancel)
        dialog.setEscapeButton(cancel)

        def done() -> None:
            self.dialog = None
            if dialog.clickedButton() is yes:
                on_yes()

        dialog.finished.connect(lambda _r: done())
        self.dialog = dialog
        dialog.open()

    # ----------------------------------------------------------------- saving

    async def save(self) -> bool:
        """Validate and save the form; True when saved."""
        for setting in self.fields.values():
            try:
                setting.param.validate(setting.value())
            except ValidationError as exc:
                self._say(f"Not saved — {setting.param.label}: {exc.problem}", "error")
                setting.widget.setFocus()
                return False
        try:
            settings = Settings.from_mapping({**self._saved.to_mapping(), **self.values()})
            if self.bridge.remote is None and settings.database_url != self._saved.database_url:
                # a password typed in the address goes to the keyring, as with
                # `hookline settings set database_url`: the settings file keeps the rest
                settings = settings.replace(database_url=await asyncio.to_thread(
                    keep_password_in_keyring, settings.database_url))
                self.fields["database_url"].set_value(settings.database_url)
        except (HooklineError, OSError) as exc:  # ConfigError, or the keyring's
            self._say(f"Not saved: {exc}", "error")
            return False
        self.save_button.setEnabled(False)
        problems = []
        if settings.start_at_login != self._saved.start_at_login:
            try:
                if settings.start_at_login:
                    await asyncio.to_thread(autostart.enable, autostart.launch_command())
                else:
                    await asyncio.to_thread(autostart.disable)
            except OSError as exc:
                problems.append(f"could not change start at login ({exc})")
                settings = settings.replace(start_at_login=self._saved.start_at_login)
                self.fields["start_at_login"].set_value(self._saved.start_at_login)
        try:
            password = self.broker_password.text()
            if password:  # the keyring first: the settings saved next may use it
                await asyncio.to_thread(self.bridge.engine.secrets.set,
                                        BROKER_PASSWORD_REF, password)
                self.broker_password.clear()
                self.broker_password.setPlaceholderText("saved — leave empty to keep")
            await self.bridge.save_settings(settings)
        except (OSError, HooklineError) as exc:
            self._say(f"Not saved: {exc}", "error")
            self._changed()
            return False
        logs.set_level(settings.log_level)
        self._saved = settings
        restart = self.needs_restart()
        self._changed()
        message = "Saved."
        if restart:
            labels = {p.name: p.label for p in Settings.params()}
            message += (" Restart Hookline (Quit, then open it again) to use: "
                        + ", ".join(labels[n] for n in restart) + ".")
        if problems:
            self._say(message + " But " + "; ".join(problems) + ".", "error")
        else:
            self._say(message, "warning" if restart else "saved")
        self.saved.emit(restart)
        return True

    # ----------------------------------------------------------------- webhooks

    def webhook_base(self) -> str | None:
        """The base of every webhook address, ``http://host:port/hooks/``."""
        return self.bridge.webhook_base()

    def _show_webhook_base(self) -> None:
        base = self.webhook_base()
        if base is None:
            self.webhook_field.setText("")
            self.webhook_field.setPlaceholderText("The webhook listener is not running")
        else:
            self.webhook_field.setText(base + "…")
        self.copy_button.setEnabled(base is not None)

    def copy_webhook_base(self) -> None:
        base = self.webhook_base()
        if base is not None:
            QGuiApplication.clipboard().setText(base)
            self._say("Copied the webhook base address. Each automation with a webhook "
                      "trigger shows its full address in the editor.")

    # ----------------------------------------------------------------- data

    def open_data_folder(self) -> None:
        folder = self.bridge.data_dir
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self._say(f"Could not open {folder}: open it from your file manager.", "error")

    def _file_dialog(self, caption: str, save: bool,
                     chosen: Callable[[str], object]) -> QFileDialog:
        dialog = QFileDialog(self, caption, str(Path.home()))
        dialog.setObjectName("exportDialog" if save else "importDialog")
        if save:
            dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
            dialog.setNameFilters(["YAML files (*.yaml *.yml)", "All files (*)"])
            dialog.setDefaultSuffix("yaml")
            dialog.selectFile("hookline-automations.yaml")
        else:
            dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
            dialog.setNameFilters(["Automations (*.yaml *.yml *.json)", "All files (*)"])
        dialog.fileSelected.connect(chosen)
        dialog.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()
        return dialog

    def choose_backup(self) -> None:
        """Pick one of the daily backups (the attached engine's, when attached), then
        confirm restoring it."""
        if self.bridge.remote is not None:
            self._spawn(self._choose_remote_backup())
            return
        folder = backup_dir(self.bridge.data_dir)
        found = list_backups(folder)
        if not found:
            self._say("No backups yet: Hookline makes one each day and before every "
                      f"upgrade, in {folder}.", "error")
            return
        self._pick_backup([(path.name, taken_at(path)) for path in found],
                          "Go back to the automations and history as they were on:",
                          lambda name, _when: self._confirm_restore(folder / name))

    async def _choose_remote_backup(self) -> None:
        """The attached engine's backups, read there, to pick from."""
        remote = self.bridge.remote
        assert remote is not None
        try:
            found = await self.bridge.call(remote.backups())
        except HooklineError as exc:
            self._say(f"Could not read the backups of Hookline on {remote.name}: {exc}",
                      "error")
            return
        if not found:
            self._say(f"No backups yet on {remote.name}: Hookline makes one there each day "
                      "and before every upgrade.", "error")
            return
        self._pick_backup([(b["name"], b["taken_at"]) for b in found],
                          f"Go back to the automations and history on {remote.name} as "
                          "they were on:", self._confirm_remote_restore)

    def _pick_backup(self, found: list[tuple[str, datetime]], question: str,
                     chosen: Callable[[str, datetime], object]) -> None:
        """Ask which of ``found`` (name, when taken; newest first) to restore."""
        labels: dict[str, tuple[str, datetime]] = {}
        for name, when in found:
            label = f"{when:%A %d %B %Y, %H:%M:%S}"
            labels[label if label not in labels else f"{label} ({name})"] = (name, when)
        dialog = QInputDialog(self)
        dialog.setObjectName("restoreDialog")
        dialog.setWindowTitle("Restore a backup")
        dialog.setLabelText(question)
        dialog.setComboBoxItems(list(labels))
        dialog.setOption(QInputDialog.InputDialogOption.UseListViewForComboBoxItems)
        dialog.setOkButtonText("Restore…")
        dialog.setMinimumWidth(420)
        dialog.textValueSelected.connect(lambda label: chosen(*labels[label]))
        dialog.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()

    def _confirm_restore(self, chosen: Path) -> None:
        def restore_and_quit() -> None:
            try:
                request_restore(chosen, self.bridge.data_dir)
            except BackupError as exc:
                self._say(str(exc), "error")
                return
            self.quit_app()

        self._ask(f"Restore the backup of {taken_at(chosen):%A %d %B, %H:%M}?",
                  "Hookline quits now and restores it when you start it again. Automations, "
                  "their history and the list of accounts go back to that time; the "
                  "database as it is now is kept in the backups folder. Passwords and "
                  "tokens stay in the keyring.",
                  "Restore and quit", "confirmRestore", restore_and_quit)

    def _confirm_remote_restore(self, name: str, when: datetime) -> None:
        remote = self.bridge.remote
        assert remote is not None
        self._ask(f"Restore the backup of {when:%A %d %B, %H:%M} on {remote.name}?",
                  f"Hookline on {remote.name} restarts now and restores it; this window "
                  "reconnects when it is back (runs under way there finish first).\n\n"
                  "Automations, their history and the list of accounts go back to that "
                  f"time; the database as it is now is kept in the backups folder on "
                  f"{remote.name}. Passwords and tokens stay in its keyring.",
                  "Restore and restart", "confirmRestore",
                  lambda: self._spawn(self.restore_remote(name, when)))

    async def restore_remote(self, name: str, when: datetime) -> bool:
        """Have the attached engine restore its backup ``name`` (taken ``when``): it
        restarts to do it and the window reconnects by itself. True when it took the
        request."""
        remote = self.bridge.remote
        assert remote is not None
        try:
            await self.bridge.call(remote.restore_backup(name))
        except HooklineError as exc:  # it cannot restart itself, or is on PostgreSQL
            self._say(str(exc), "error")
            return False
        self._restoring = name, when
        self._say(f"Hookline on {remote.name} is restarting to restore the backup; this "
                  "window reconnects when it is back.", "saved")
        return True

    def _connection_changed(self, state: str, _text: str) -> None:
        """Attached elsewhere: once the engine restarted for a restore, say it is back,
        and whether it restored the backup (as it says)."""
        remote = self.bridge.remote
        if state != CONNECTED or self._restoring is None or remote is None:
            return
        (name, when), self._restoring = self._restoring, None
        if remote.restored == name:
            self._say(f"Hookline on {remote.name} restarted to restore the backup of "
                      f"{when:%A %d %B, %H:%M}, and this window is connected to it again.",
                      "saved")
        else:
            self._say(f"Hookline on {remote.name} restarted but did not restore the backup "
                      f"of {when:%A %d %B, %H:%M}: "
                      f"{remote.restore_failed or 'it did not say why (see its log)'}. "
                      "It runs with its data as it was.", "error")

    def choose_export_file(self) -> None:
        self._file_dialog("Export all automations", True,
                          lambda path: self._spawn(self.export_to(Path(path))))

    def choose_import_file(self) -> None:
        self._file_dialog("Import automations", False,
                          lambda path: self._spawn(self.import_from(Path(path))))

    async def export_to(self, path: Path) -> int:
        """Write every automation to ``path`` as YAML (secrets left out)."""
        registry = self.bridge.registry
        areas = [a.spec.to_dict(registry) for a in self.bridge.areas()]
        text = yaml.safe_dump({"areas": areas}, sort_keys=False, allow_unicode=True)
        try:
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
        except OSError as exc:
            self._say(f"Could not export to {path}: {exc}", "error")
            return 0
        noun = "automation" if len(areas) == 1 else "automations"
        self._say(f"Exported {len(areas)} {noun} to {path}. Passwords and other secrets "
                  "are not in the file.", "saved")
        return len(areas)

    async def import_from(self, path: Path) -> ImportReport:
        """Create an automation for each area in ``path``, or none (every problem is
        reported at once)."""
        report = ImportReport()
        try:
            items = await asyncio.to_thread(read_area_file, path)
            report.total = len(items)
            areas = await self.bridge.import_areas(items)
        except ImportRefused as exc:
            report.failures = list(exc.failures)
        except HooklineError as exc:
            where = exc.where if isinstance(exc, ValidationError) else ""
            problem = exc.problem if isinstance(exc, ValidationError) else str(exc)
            report.failures.append((where or path.name, problem))
        else:
            report.imported = [a.name for a in areas]
        self._show_report(report)
        self.imported.emit(report)
        return report

    def _show_report(self, report: ImportReport) -> None:
        self._say(report.summary(), "error" if report.failures else "saved")
        icon = QMessageBox.Icon.Warning if report.failures else QMessageBox.Icon.Information
        box = QMessageBox(icon, "Import", report.summary(), QMessageBox.StandardButton.Ok,
                          self)
        box.setObjectName("importReport")
        if report.failures:
            lines = [f"{which}: {why}" for which, why in report.failures]
            shown = lines[:8] + ([f"… and {len(lines) - 8} more (see Show Details)"]
                                 if len(lines) > 8 else [])
            box.setInformativeText("\n".join(shown))
            box.setDetailedText("\n".join(lines))
        box.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = box
        box.open()

    # ----------------------------------------------------------------- tasks

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.tasks.spawn(work)

        def finished(done: asyncio.Task[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                self._say(f"Something went wrong: {done.exception()}", "error")

        task.add_done_callback(finished)
        return task
