"""Attaching the app to an engine on another computer: which engine the app starts on,
the "Connect to another computer…" dialog, and saying which engine it is attached to."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSpinBox,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from desktop.dialogs import MESSAGE_WIDTH, finished
from desktop.engine_thread import EngineThread
from desktop.forms import error_label, small_label
from desktop.remote_engine import CONNECTED, Attachment, RemoteEngine, as_engine
from desktop.tasks import WidgetTasks
from engine.app import Engine
from engine.errors import EngineLocked, HooklineError
from engine.remote.client import DEFAULT_PORT, RemoteTarget, pair
from engine.remote.errors import NotTheEngine, PairingRefused
from engine.secrets import SecretStore, open_secret_store
from engine.standby import lease_holder
from engine.standby import wanted as lease_wanted

if TYPE_CHECKING:
    from desktop.bridge import EngineBridge

log = logging.getLogger(__name__)

CONNECT_ELSEWHERE = "Connect to another computer…"
USE_THIS_COMPUTER = "Use this computer's engine"

#: The Connect dialog's width (pixels).
DIALOG_WIDTH = 480

#: Pairs with the engine at host:port with a code: the target and its token.
Pairing = Callable[[str, int, str], Awaitable[tuple[RemoteTarget, str]]]


def title(where: str) -> str:
    """The window's title and the tray's first words: which engine the app shows."""
    return f"Hookline — {where}"


def secrets_of(data_dir: Path) -> SecretStore:
    """This computer's keyring, where the app keeps its token for the other engine."""
    return open_secret_store(data_dir)


def engine_for(data_dir: Path, secrets: SecretStore | None = None) -> Engine:
    """The engine the app opens on: the saved remote target's, when one is saved and
    its token is in the keyring; else this computer's own."""
    target = RemoteTarget.load(data_dir)
    if target is None:
        return Engine(data_dir)
    store = secrets or secrets_of(data_dir)
    token = target.token(store)
    if token is None:
        log.warning("the token for %s is gone from the keyring: this computer's engine "
                    "is used; connect again", target.name)
        return Engine(data_dir)
    attachment = Attachment(target, token,
                            lambda moved: moved.save(store, data_dir=data_dir))
    return as_engine(RemoteEngine(attachment.session, data_dir / "remote" / target.client_id,
                                  name=target.name, host=target.host, home=data_dir,
                                  attachment=attachment))


async def open_engine(engine: Engine, data_dir: Path,
                      unreachable: Callable[[str], None]) -> EngineThread:
    """Start ``engine`` on its thread. An engine on another computer that cannot be
    reached is said (``unreachable``) and this computer's engine opens instead, so the
    app is never left empty; the other stays saved for the next start. Raises what
    ``Engine.start`` raises, and EngineLocked when Hookline already runs on the folder
    (its own engine could not open there either)."""
    remote = engine if isinstance(engine, RemoteEngine) else None
    if remote is None:
        await refuse_to_stand_by(engine)
    thread = EngineThread(engine)
    try:
        await thread.start()
    except HooklineError as exc:
        if remote is None or isinstance(exc, EngineLocked):
            raise
        unreachable(f"{exc}.\n\nHookline opens with this computer's engine meanwhile; it "
                    f"tries {remote.name} again at the next start (or choose {remote.name} "
                    f"again: Settings → {CONNECT_ELSEWHERE}).")
        thread = EngineThread(Engine(data_dir))
        await thread.start()
    return thread


async def refuse_to_stand_by(engine: Engine) -> None:
    """On a PostgreSQL database another engine is active on, this engine would stand
    by (engine/standby.py) and the window wait, empty, until that one stops: say so at
    once instead, and how to use that engine from here."""
    if not lease_wanted(engine.url):
        return
    try:
        holder = await asyncio.to_thread(lease_holder, engine.url)
    except Exception:  # unreachable or refused: the start says it better
        return
    if holder is not None:
        raise HooklineError(
            f"Another Hookline engine is active on this database ({holder}); this "
            "window would wait, empty, until it stops. Use that engine from here: run "
            "`hookline pair` on its computer, then `hookline remote connect HOST CODE` "
            "here (or Settings → Connect to another computer… once Hookline opens), and "
            "start Hookline again. Or stop that engine first.")


def cannot_reach(message: str) -> None:
    """Say why the app is not attached to the other computer (it opens on this one)."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Hookline could not reach the other "
                      "computer", message)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.exec()


class ConnectDialog(QDialog):
    """Asks for the other computer's address, its remote port and the pairing code
    ``hookline pair`` printed there; Connect pairs and says in plain words what went
    wrong (wrong code, cannot reach, certificate changed), closing only once paired.

    Args:
        pairing: pairs with host, port and code (default: engine/remote/client.py's
            ``pair``, naming this computer).

    Attributes:
        target / token: what pairing gave, once accepted.
    """

    def __init__(self, parent: QWidget | None = None, *, pairing: Pairing | None = None
                 ) -> None:
        super().__init__(parent)
        self.setObjectName("connectDialog")
        self.setWindowTitle("Connect to another computer")
        self.setMinimumWidth(DIALOG_WIDTH)  # wrapped lines stay readable
        self._pairing = pairing or _pair
        self.target: RemoteTarget | None = None
        self.token: str | None = None
        intro = QLabel("Use Hookline running on another computer from this window. "
                       "There, run <b>hookline pair</b> (with <b>hookline serve "
                       "--remote</b> running) and type the code it prints here.")
        intro.setWordWrap(True)
        intro.setMaximumWidth(MESSAGE_WIDTH)
        self.host = QLineEdit()
        self.host.setPlaceholderText("homeserver.local or 192.168.1.20")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.code = QLineEdit()
        self.code.setPlaceholderText("7K3QD-M9XTA")
        self.problem = error_label()
        self.problem.setObjectName("connectProblem")
        self.problem.setMaximumWidth(MESSAGE_WIDTH)
        self.problem.hide()
        form = QFormLayout()
        form.addRow("Computer:", self.host)
        form.addRow("Port:", self.port)
        form.addRow("Pairing code:", self.code)
        form.addRow("", small_label("The code works once, for 10 minutes."))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.connect_button = self.buttons.addButton(
            "Connect", QDialogButtonBox.ButtonRole.AcceptRole)
        self.connect_button.setDefault(True)
        self.buttons.accepted.connect(self._start_pairing)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.tasks = WidgetTasks(self)

    def _start_pairing(self) -> None:
        self.tasks.spawn(self.try_pairing())

    async def try_pairing(self) -> bool:
        """Pair with what the form holds; True (and accepted) once paired."""
        host, code = self.host.text().strip(), self.code.text().strip()
        if not host:
            return self._say("Type the other computer's name or address.")
        if not code:
            return self._say("Type the pairing code `hookline pair` printed there.")
        self.connect_button.setEnabled(False)
        self.connect_button.setText("Connecting…")
        try:
            self.target, self.token = await self._pairing(host, self.port.value(), code)
        except PairingRefused as exc:
            return self._say(f"Wrong code. {exc}")
        except NotTheEngine as exc:
            return self._say(f"Not connected: the certificate is not the engine's. {exc}")
        except HooklineError as exc:
            return self._say(f"Cannot reach {host}. {exc}")
        finally:
            self.connect_button.setEnabled(True)
            self.connect_button.setText("Connect")
        self.accept()
        return True

    def _say(self, text: str) -> bool:
        self.problem.setText(text)
        self.problem.show()
        self.adjustSize()  # as tall as the explanation
        return False


async def _pair(host: str, port: int, code: str) -> tuple[RemoteTarget, str]:
    return await pair(host, port, code, client_name=socket.gethostname())


async def connect_elsewhere(parent: QWidget, bridge: EngineBridge, *,
                            pairing: Pairing | None = None) -> RemoteTarget | None:
    """Ask for another computer and pair with it; once paired, keep the target (its
    token in the keyring) and ask the app to reopen on it. None: cancelled."""
    dialog = ConnectDialog(parent, pairing=pairing)
    if await finished(dialog) != QDialog.DialogCode.Accepted or dialog.target is None:
        return None
    target, token = dialog.target, dialog.token
    home = home_folder(bridge)
    target.save(secrets_of(home), token, data_dir=home)
    bridge.switchRequested.emit()
    return target


def use_this_computer(bridge: EngineBridge) -> None:
    """Forget the other computer (its token too) and reopen on this computer's engine."""
    home = home_folder(bridge)
    target = RemoteTarget.load(home)
    if target is not None:
        target.forget(secrets_of(home), data_dir=home)
    bridge.switchRequested.emit()


def home_folder(bridge: EngineBridge) -> Path:
    """The app's own data folder (a remote engine's state folder is inside it)."""
    return bridge.remote.home if bridge.remote is not None else bridge.data_dir


class TrayLike(Protocol):
    menu: QMenu
    quit_action: QAction
    icon: QSystemTrayIcon

    def schedule_refresh(self, *_args: object) -> None: ...


def say(window: QMainWindow, text: str) -> None:
    """Show ``text`` in the status bar, whole in its tooltip (a narrow window cuts it)."""
    window.statusBar().showMessage(text)
    window.statusBar().setToolTip(text)


def attached(remote: RemoteEngine) -> str:
    """The status bar's words while the app is attached to ``remote``."""
    text = f"Attached to Hookline on {remote.name} ({remote.host})"
    if remote.moved:
        text += f", {remote.moved}"
    if remote.mismatch:
        text += f" — {remote.mismatch}"
    return text


def show_engine(bridge: EngineBridge, window: QMainWindow, tray: TrayLike,
                spawn: Callable[[Coroutine[Any, Any, Any]], object]) -> None:
    """Say which engine the app is attached to (title, status bar, tray) and offer to
    change it from the tray."""
    window.setWindowTitle(title(bridge.where))
    remote = bridge.remote
    if remote is not None:
        say(window, attached(remote))

        def connection(state: str, said: str) -> None:
            say(window, said if state != CONNECTED else attached(remote))
            window.setWindowTitle(title(bridge.where) + ("" if state == CONNECTED
                                                         else " (reconnecting…)"))
            if state == CONNECTED:
                tray.schedule_refresh()  # its state, from the engine again
            else:
                tray.icon.setToolTip(f"Hookline — {said}")

        bridge.connection.connect(connection)
    change = QAction(USE_THIS_COMPUTER if remote is not None else CONNECT_ELSEWHERE,
                     tray.menu)
    change.setObjectName("changeEngine")
    if remote is not None:
        change.triggered.connect(lambda: use_this_computer(bridge))
    else:
        change.triggered.connect(lambda: spawn(connect_elsewhere(window, bridge)))
    tray.menu.insertAction(tray.quit_action, change)

